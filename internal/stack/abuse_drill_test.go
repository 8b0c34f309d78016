package stack_test

// The abuse drill (issue 17): with the ingress's default limits, one client
// floods at full speed in three phases — random unknown projectIds; a real
// project with garbage tokens; then that project from 1,000 addresses a
// trusted proxy header names — while a legitimate site, from an address of
// its own, sends 50 requests a second to its project. The site must get
// 200 for ≥ 99.9 % of its requests and every one of its decisions must
// reach ClickHouse; the flood must get 429s; the decisions the flood causes
// are bounded by the limits (a token bucket's count, whatever the speed).
// The line ABUSE of -v gives the figures (latencies are recorded, never
// checked: the machine is shared). HISSUNO_ABUSE_DURATION sets the
// flood's length (default 15 s, the drill is 30 s).
//
// It needs a ClickHouse (HISSUNO_TEST_CLICKHOUSE); -short skips it.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

func TestAbuseDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the abuse drill floods for 15 s")
	}
	duration := 15 * time.Second
	if v := os.Getenv("HISSUNO_ABUSE_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("HISSUNO_ABUSE_DURATION: %v", err)
		}
		duration = d
	}
	dsn := stacktest.ClickHouse(t)
	// The flood comes from 127.0.0.1, a trusted proxy (so that it can name
	// 1,000 addresses in phase 3); the site from 127.0.0.2, as itself.
	st := stacktest.Start(t, stack.Config{
		ClickHouseDSN: dsn,
		Ingress:       ingress.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
	})
	js, err := jetstream.New(stacktest.ConnectAs(t, st, stacktest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	site := createStackProject(t, st)
	victim := createStackProject(t, st)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
	sc := &siteClient{addr: st.HTTPAddr, project: site.ID, token: mint(t, site.Secret, "site-user"),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 64}}}
	stacktest.Eventually(t, 30*time.Second, "the site's project decided (200)", func() error {
		if r := sc.send(); r.status != http.StatusOK {
			return fmt.Errorf("status %d %s", r.status, r.err)
		}
		return nil
	})
	// The site alone, for its unloaded latency.
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	unloaded := sc.run(ctx, drillLegitEvery).wait()
	stop()

	decided := func() uint64 {
		info, err := streamInfo(t, js, events.StreamDecisions)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	var heapMax uint64
	memCtx, memStop := context.WithCancel(context.Background())
	memDone := make(chan struct{})
	go func() {
		defer close(memDone)
		var ms runtime.MemStats
		for memCtx.Err() == nil {
			runtime.ReadMemStats(&ms)
			heapMax = max(heapMax, ms.HeapInuse)
			time.Sleep(200 * time.Millisecond)
		}
	}()

	ctx, stop = context.WithCancel(context.Background())
	legit := sc.run(ctx, drillLegitEvery)
	phases := []struct {
		name string
		body func() (string, string) // body, X-Forwarded-For
	}{
		{"unknown projectIds", func() (string, string) {
			return fmt.Sprintf(`{"projectId":"flood_%016x"}`, rand.Uint64()), ""
		}},
		{"garbage tokens", func() (string, string) {
			return fmt.Sprintf(`{"projectId":%q,"widgetToken":"eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ4In0.%016x"}`, victim.ID, rand.Uint64()), ""
		}},
		{"1,000 spoofed addresses", func() (string, string) {
			return fmt.Sprintf(`{"projectId":%q,"widgetToken":"eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ4In0.%016x"}`, victim.ID, rand.Uint64()),
				fmt.Sprintf("198.51.%d.%d", rand.IntN(4), rand.IntN(250))
		}},
	}
	type phaseResult struct {
		counts  map[int]int
		decided uint64
		site    int
		elapsed time.Duration
	}
	var results []phaseResult
	for _, p := range phases {
		before, siteBefore := decided(), len(legit.snapshot())
		pctx, pstop := context.WithTimeout(ctx, duration/3)
		start := time.Now()
		counts := floodWith(pctx, st.HTTPAddr, drillFloodWorkers, p.body)
		pstop()
		elapsed := time.Since(start)
		// The flood's last attempts are decided before the count.
		stacktest.Eventually(t, time.Minute, "the phase's attempts decided", func() error {
			info, err := streamInfo(t, js, events.StreamAttempts)
			if err != nil {
				return err
			}
			if info.State.Msgs != 0 {
				return fmt.Errorf("%d attempts left", info.State.Msgs)
			}
			return nil
		})
		results = append(results, phaseResult{counts: counts, decided: decided() - before, site: len(legit.snapshot()) - siteBefore, elapsed: elapsed})
	}
	stop()
	siteResults := legit.wait()
	memStop()
	<-memDone

	ok := 0
	var lat, unloadedLat []time.Duration
	var ids []string
	failures := map[string]int{}
	for _, r := range siteResults {
		if r.status == http.StatusOK {
			ok++
			ids = append(ids, r.decisionID)
		} else {
			failures[fmt.Sprintf("%d %s", r.status, r.err)]++
		}
		lat = append(lat, r.latency)
	}
	for _, r := range unloaded {
		unloadedLat = append(unloadedLat, r.latency)
	}
	slices.Sort(lat)
	slices.Sort(unloadedLat)
	success := float64(ok) / float64(max(len(siteResults), 1))
	var b strings.Builder
	for i, r := range results {
		fmt.Fprintf(&b, "; phase %d (%s) %s: flood %v, decisions %d (%.0f/s, the site's %d)", i+1, phases[i].name, r.elapsed.Round(time.Millisecond),
			r.counts, r.decided, float64(r.decided)/r.elapsed.Seconds(), r.site)
	}
	t.Logf("ABUSE site %d requests, %.3f %% 200, p50 %s p99 %s (unloaded p50 %s p99 %s, %d requests); heap in use at most %d MiB%s; site failures %v",
		len(siteResults), 100*success, percentile(lat, 0.50), percentile(lat, 0.99), percentile(unloadedLat, 0.50), percentile(unloadedLat, 0.99),
		len(unloaded), heapMax>>20, b.String(), failures)

	if success < drillMinSuccess {
		t.Errorf("the site got 200 for %.3f %% of its requests, want at least %.1f %%: %v", 100*success, 100*drillMinSuccess, failures)
	}
	// Phases 1 and 2 come from one address: its bucket bounds their
	// decisions (burst + rate × time), the site's aside.
	// edge is what can be in flight as a phase starts or ends and so
	// counted in a phase it was not timed in: a site request (counted by
	// the site when it answers) and each flood worker's last request.
	edge := float64(drillFloodWorkers + 2)
	ipL := ingress.DefaultIPLimit
	oneIP := results[0].decided + results[1].decided - uint64(results[0].site+results[1].site)
	if bound := float64(ipL.Burst) + ipL.Rate*(results[0].elapsed+results[1].elapsed).Seconds() + 2*edge; float64(oneIP) > bound {
		t.Errorf("one address caused %d decisions in phases 1 and 2, over its bucket's %.0f", oneIP, bound)
	}
	pL := ingress.DefaultProjectLimit
	if spoofed, bound := results[2].decided-uint64(results[2].site), float64(pL.Burst)+pL.Rate*results[2].elapsed.Seconds()+edge; float64(spoofed) > bound {
		t.Errorf("1,000 addresses caused %d decisions of one project, over its bucket's %.0f", spoofed, bound)
	}
	// The one address gets 429s once it has sent more than its bucket
	// holds by then; a slow machine (the race detector) may not send that
	// much in the first phase.
	// A machine too slow to send more than the bucket holds (the flood
	// waits for each answer, and under -race on a loaded machine the
	// pipeline answers a few hundred a second) cannot show a 429 here;
	// TestFloodThrottled and TestRateLimitPerIP show it apart.
	var sent int
	var spent time.Duration
	exceeded := false
	for i, r := range results[:2] {
		for _, n := range r.counts {
			sent += n
		}
		spent += r.elapsed
		over := float64(sent) > float64(ipL.Burst)+ipL.Rate*spent.Seconds()+edge
		exceeded = exceeded || over
		if over && r.counts[http.StatusTooManyRequests] == 0 {
			t.Errorf("phase %d (%s): %d requests from one address by its end, over its bucket, and no 429: %v", i+1, phases[i].name, sent, r.counts)
		}
	}
	if !exceeded {
		t.Logf("phases 1 and 2 sent %d requests from one address in %s, within its bucket (%d + %.0f/s): no 429 was due", sent, spent.Round(time.Millisecond), ipL.Burst, ipL.Rate)
	}
	for i, r := range results {
		if n := r.counts[http.StatusServiceUnavailable]; n > 0 {
			t.Errorf("phase %d (%s): %d answers 503", i+1, phases[i].name, n)
		}
	}

	// Nothing of the site's audit is lost.
	conn, err := audit.Open(testContext(t, 30*time.Second), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stacktest.Eventually(t, 2*time.Minute, "every site decision in ClickHouse", func() error {
		var stored uint64
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		q := "SELECT count() FROM hissuno_decisions FINAL WHERE decision_id IN (" + strings.Repeat("?, ", len(ids)-1) + "?)"
		if err := conn.QueryRow(testContext(t, 30*time.Second), q, args...).Scan(&stored); err != nil {
			return err
		}
		if stored != uint64(len(ids)) {
			return fmt.Errorf("%d of the site's %d decisions stored", stored, len(ids))
		}
		return nil
	})
	if err := st.Err(); err != nil {
		t.Errorf("a role stopped: %v", err)
	}
}

// floodWith sends next's requests from workers at full speed until ctx
// ends and counts the answers by status (0: no HTTP answer).
func floodWith(ctx context.Context, addr string, workers int, next func() (body, xff string)) map[int]int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	total := map[int]int{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}, Timeout: 10 * time.Second}
	url := "http://" + addr + ingress.ConnectPath
	for range workers {
		wg.Go(func() {
			counts := map[int]int{}
			for ctx.Err() == nil {
				body, xff := next()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", "https://flood.example")
				if xff != "" {
					req.Header.Set("X-Forwarded-For", xff)
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						counts[0]++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				counts[resp.StatusCode]++
			}
			mu.Lock()
			for k, v := range counts {
				total[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

package ingress_test

// Black-box tests of the public edge: the client's address behind a
// trusted load balancer, the rate limits and the connection limits.

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/throttle"
)

// decidedIP sends one attempt with the headers and returns the clientIp
// its stored decision carries.
func decidedIP(t *testing.T, st *stack.Stack, headers map[string]string) string {
	t.Helper()
	if headers == nil {
		headers = map[string]string{}
	}
	headers["Content-Type"] = "application/json"
	a := post(t, st.HTTPAddr, []byte(`{"projectId":"proj_nobody"}`), headers)
	id, ok := a.str("decisionId")
	if !ok {
		t.Fatalf("no decision: %s", a)
	}
	ds := storedDecisions(t, jetStream(t, st), id)
	if len(ds) != 1 {
		t.Fatalf("%d decisions stored for %s", len(ds), id)
	}
	return ds[0].ClientIP
}

func TestClientIPBehindProxies(t *testing.T) {
	t.Parallel()
	// The test client connects from 127.0.0.1.
	trusting := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
	}})
	distrusting := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}})
	for _, tc := range []struct {
		name    string
		st      *stack.Stack
		headers map[string]string
		want    string
	}{
		{name: "untrusted peer, no header", st: distrusting, want: "127.0.0.1"},
		{name: "untrusted peer, spoofed XFF", st: distrusting, headers: map[string]string{"X-Forwarded-For": "198.51.100.9"}, want: "127.0.0.1"},
		{name: "untrusted peer, spoofed Forwarded", st: distrusting, headers: map[string]string{"Forwarded": "for=198.51.100.9"}, want: "127.0.0.1"},
		{name: "trusted peer, no header", st: trusting, want: "127.0.0.1"},
		{name: "trusted peer, XFF chain", st: trusting, headers: map[string]string{"X-Forwarded-For": "1.2.3.4, 198.51.100.9, 10.0.0.7"}, want: "198.51.100.9"},
		{name: "trusted peer, Forwarded IPv6", st: trusting, headers: map[string]string{"Forwarded": `for="[2001:db8::5]:443";proto=https`}, want: "2001:db8::5"},
		{name: "trusted peer, malformed XFF", st: trusting, headers: map[string]string{"X-Forwarded-For": "198.51.100.9, bogus"}, want: "127.0.0.1"},
		{name: "trusted peer, obfuscated Forwarded", st: trusting, headers: map[string]string{"Forwarded": "for=_hidden"}, want: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decidedIP(t, tc.st, tc.headers); got != tc.want {
				t.Errorf("clientIp = %q, want %q", got, tc.want)
			}
		})
	}
}

// slow is a limit of n requests and then (nearly) none.
func slow(n int) throttle.Limit { return throttle.Limit{Rate: 0.001, Burst: n} }

// off is no limit.
var off = throttle.Limit{Rate: -1}

// wantThrottled checks a 429: Retry-After in whole seconds, a JSON error
// and the reason.
func wantThrottled(t *testing.T, a answer, reason events.Throttle) {
	t.Helper()
	if a.Status != http.StatusTooManyRequests {
		t.Fatalf("got %s, want 429", a)
	}
	if s, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", a.Header.Get("Retry-After"))
	}
	if got, _ := a.str("reason"); got != string(reason) {
		t.Errorf("reason %q, want %q: %s", got, reason, a)
	}
	if msg, _ := a.str("error"); msg == "" {
		t.Errorf("no error message: %s", a)
	}
	// Every request here comes from shopOrigin: the widget must read the
	// answer and its Retry-After.
	if a.Header.Get("Access-Control-Allow-Origin") != shopOrigin || a.Header.Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Errorf("the widget cannot read this 429 or its Retry-After: %v", a.Header)
	}
}

// throttled reads hissuno_ingress_throttled_total{reason}.
func throttled(reason events.Throttle) float64 {
	var m dto.Metric
	c, ok := metrics.IngressThrottled.WithLabelValues(string(reason)).(prometheus.Metric)
	if !ok || c.Write(&m) != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// unknownReq is an attempt for a projectId no project has, from a client
// address a trusted proxy names.
func unknownReq(t *testing.T, st *stack.Stack, projectID, clientIP string) answer {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "Origin": shopOrigin}
	if clientIP != "" {
		h["X-Forwarded-For"] = clientIP
	}
	return post(t, st.HTTPAddr, []byte(`{"projectId":"`+projectID+`"}`), h)
}

func TestRateLimitPerIP(t *testing.T) {
	// Not parallel: it counts hissuno_ingress_throttled_total{reason=ip_rate}
	// exactly, a counter of the whole process that the package's parallel
	// floods move too (CI saw 735 → 745).
	st := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Limits:         ingress.Limits{IP: slow(2), Project: off, Unseen: off},
	}})
	js := jetStream(t, st)
	for _, tc := range []struct {
		name string
		// first and second spend the bucket of first's address; then
		// third is tried.
		first, second, third string
		wantThird            int
	}{
		{name: "same IPv4", first: "198.51.100.1", second: "198.51.100.1", third: "198.51.100.1", wantThird: 429},
		{name: "another IPv4 has its own", first: "198.51.100.2", second: "198.51.100.2", third: "198.51.100.3", wantThird: 401},
		{name: "same IPv6 /64", first: "2001:db8:1:1::1", second: "2001:db8:1:1::2", third: "2001:db8:1:1:ffff::3", wantThird: 429},
		{name: "another IPv6 /64", first: "2001:db8:1:2::1", second: "2001:db8:1:2::1", third: "2001:db8:1:3::1", wantThird: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ip := range []string{tc.first, tc.second} {
				if err := wantStatus(unknownReq(t, st, "proj_nobody", ip), 401); err != nil {
					t.Fatalf("within the burst: %v", err)
				}
			}
			before, seq := throttled(events.ThrottleIP), lastSeq(t, js, events.StreamAttempts)
			a := unknownReq(t, st, "proj_nobody", tc.third)
			if tc.wantThird != 429 {
				if err := wantStatus(a, tc.wantThird); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantThrottled(t, a, events.ThrottleIP)
			if got := lastSeq(t, js, events.StreamAttempts); got != seq {
				t.Errorf("a throttled request was published: attempts #%d → #%d", seq, got)
			}
			if got := throttled(events.ThrottleIP); got != before+1 {
				t.Errorf("hissuno_ingress_throttled_total{reason=ip_rate} %v → %v, want +1", before, got)
			}
		})
	}
	// A request refused as malformed spends the address's bucket too:
	// garbage floods are limited alike.
	h := map[string]string{"X-Forwarded-For": "198.51.100.50", "Origin": shopOrigin}
	for range 2 {
		if err := wantStatus(post(t, st.HTTPAddr, []byte(`{`), h), 400); err != nil {
			t.Fatal(err)
		}
	}
	wantThrottled(t, post(t, st.HTTPAddr, []byte(`{`), h), events.ThrottleIP)
}

func TestRateLimitProjects(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		Limits: ingress.Limits{IP: off, Project: slow(2), Unseen: slow(3)},
	}})
	js := jetStream(t, st)
	shop := shopProject(t, st, "Shop", false)
	other := shopProject(t, st, "Other", false)
	visit := func(p testProject) answer {
		return connect(t, st.HTTPAddr, connectReq{ProjectID: p.ID, UserID: "visitor", Origin: shopOrigin})
	}
	// Each project's first request is unseen: it spends the unseen bucket
	// (3), and its decision tells the ingress the project exists.
	for _, p := range []testProject{shop, other} {
		if err := wantStatus(visit(p), 200); err != nil {
			t.Fatalf("first request of %s: %v", p.ID, err)
		}
	}
	// One unseen token is left: one unknown projectId, then 429.
	if err := wantStatus(unknownReq(t, st, "proj_nobody1", ""), 401); err != nil {
		t.Fatal(err)
	}
	seq := lastSeq(t, js, events.StreamAttempts)
	wantThrottled(t, unknownReq(t, st, "proj_nobody2", ""), events.ThrottleUnseenProject)
	wantThrottled(t, unknownReq(t, st, "proj_nobody1", ""), events.ThrottleUnseenProject)
	// Known projects keep their own buckets under the unknown ones' flood.
	for range 2 {
		if err := wantStatus(visit(shop), 200); err != nil {
			t.Fatalf("shop within its burst: %v", err)
		}
	}
	seq2 := lastSeq(t, js, events.StreamAttempts)
	if seq2 != seq+2 {
		t.Errorf("attempts #%d → #%d, want the two shop requests only", seq, seq2)
	}
	wantThrottled(t, visit(shop), events.ThrottleProject)
	if got := lastSeq(t, js, events.StreamAttempts); got != seq2 {
		t.Errorf("a throttled request was published: attempts #%d → #%d", seq2, got)
	}
	if err := wantStatus(visit(other), 200); err != nil {
		t.Fatalf("another project throttled with the shop: %v", err)
	}
}

func TestRateLimitsDefaults(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	shop := shopProject(t, st, "Shop", false)
	// A site's normal traffic from one address never meets the defaults.
	for i := range 200 {
		if err := wantStatus(connect(t, st.HTTPAddr, connectReq{ProjectID: shop.ID, UserID: "visitor", Origin: shopOrigin}), 200); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

// TestFloodThrottled: a flood from one address over its rate is answered
// 429 and publishes nothing, however long it lasts. The line FLOOD of -v
// gives the 429s' latency next to a decision's (a figure, not a check).
func TestFloodThrottled(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{Ingress: ingress.Config{Limits: ingress.Limits{IP: slow(1)}}})
	js := jetStream(t, st)
	start := time.Now()
	if err := wantStatus(unknownReq(t, st, "proj_nobody", ""), 401); err != nil {
		t.Fatal(err)
	}
	decided := time.Since(start)
	seq := lastSeq(t, js, events.StreamAttempts)
	const n = 2000
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		a := unknownReq(t, st, "proj_nobody", "")
		lat = append(lat, time.Since(start))
		if a.Status != http.StatusTooManyRequests {
			t.Fatalf("flood request answered %s", a)
		}
	}
	if got := lastSeq(t, js, events.StreamAttempts); got != seq {
		t.Errorf("the flood published attempts #%d → #%d", seq, got)
	}
	slices.Sort(lat)
	t.Logf("FLOOD %d requests over the rate: 429 p50 %s p99 %s max %s; the first (cold) decision %s", n, lat[n/2], lat[n*99/100], lat[n-1], decided)
}

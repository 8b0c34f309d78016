package ingress_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/schemas"
)

// TestThrottledRollup: a flood from 10,000 addresses a trusted proxy names
// is answered 429 and publishes, per minute, at most Rollup.Keys counts
// plus one overflow count per reason, never one message per request; the
// counts add up exactly to the 429s answered; and a count published again
// with its id is stored once.
func TestThrottledRollup(t *testing.T) {
	// Not parallel: its 10,000 requests would slow the package's other
	// stacks past their deadlines on a small machine.
	const keys, ips, twice = 50, 10_000, 200
	st := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Limits:         ingress.Limits{IP: slow(1), Project: off, Unseen: slow(1)},
		Rollup:         ingress.Rollup{Keys: keys, Every: 50 * time.Millisecond},
	}})
	js := jetStream(t, st)
	attemptsBefore := lastSeq(t, js, events.StreamAttempts)

	// Each address sends once (the first twice): its first request passes
	// its own bucket and meets the one of unseen projectIds, spent by the
	// very first; the second of the first `twice` addresses meets its
	// address's bucket.
	var mu sync.Mutex
	got429 := map[events.Throttle]uint64{}
	other := 0
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ip := range jobs {
				a := unknownReq(t, st, "proj_flood", ip)
				mu.Lock()
				if a.Status == http.StatusTooManyRequests {
					r, _ := a.str("reason")
					got429[events.Throttle(r)]++
				} else {
					other++
				}
				mu.Unlock()
			}
		})
	}
	for i := range ips {
		ip := fmt.Sprintf("198.18.%d.%d", i/256, i%256)
		jobs <- ip
		if i < twice {
			jobs <- ip
		}
	}
	close(jobs)
	wg.Wait()
	if other != 1 || got429[events.ThrottleIP] != twice || got429[events.ThrottleUnseenProject] != ips-1 {
		t.Fatalf("answers: %d not 429, 429s %v; want 1, %d ip_rate and %d unseen_project_rate", other, got429, twice, ips-1)
	}
	if got := lastSeq(t, js, events.StreamAttempts); got != attemptsBefore+1 {
		t.Errorf("attempts #%d → #%d: a throttled request was published", attemptsBefore, got)
	}

	// Stopping the ingress publishes the current minute's counts.
	st.StopIngress()
	msgs := stacktest.ReadStream(t, js, events.StreamThrottled)
	type minuteKey struct {
		minute time.Time
		over   bool
	}
	rows := map[minuteKey]int{}
	overflows := map[string]int{}
	sum := map[events.Throttle]uint64{}
	var one []byte
	for _, m := range msgs {
		if err := schemas.Validate(schemas.Throttled, m.Data()); err != nil {
			t.Errorf("count on %s does not match its schema: %v", m.Subject(), err)
		}
		var e events.Throttled
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatal(err)
		}
		if err := e.Verify(m.Subject()); err != nil {
			t.Errorf("count %s: %v", m.Data(), err)
		}
		if m.Headers().Get(events.HeaderMsgID) != e.ID {
			t.Errorf("count %s published with Nats-Msg-Id %q", e.ID, m.Headers().Get(events.HeaderMsgID))
		}
		if !e.Overflow && e.Reason == events.ThrottleUnseenProject && e.ProjectID != events.ThrottledUnknownProject {
			t.Errorf("an unseen projectId recorded as %q", e.ProjectID)
		}
		rows[minuteKey{e.Minute, e.Overflow}]++
		if e.Overflow {
			overflows[e.Minute.String()+string(e.Reason)]++
		}
		sum[e.Reason] += e.Count
		one = m.Data()
	}
	for k, n := range rows {
		if !k.over && n > keys {
			t.Errorf("minute %s: %d counts apart, over the bound of %d", k.minute, n, keys)
		}
	}
	for k, n := range overflows {
		if n != 1 {
			t.Errorf("%s: %d overflow counts, want 1", k, n)
		}
	}
	if len(msgs) > 2*(keys+len(events.Throttles)) {
		t.Errorf("%d counts published for %d requests refused", len(msgs), ips+twice-1)
	}
	for _, r := range []events.Throttle{events.ThrottleIP, events.ThrottleUnseenProject} {
		if sum[r] != got429[r] {
			t.Errorf("%s: counts add up to %d, %d requests answered 429", r, sum[r], got429[r])
		}
	}
	t.Logf("%d requests refused, recorded in %d counts", ips+twice-1, len(msgs))

	// A count published again (a retry whose acknowledgement was lost) is
	// stored once.
	var e events.Throttled
	if err := json.Unmarshal(one, &e); err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(events.ThrottledSubject(e.Ingress))
	msg.Data = one
	msg.Header.Set(events.HeaderMsgID, e.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil || !ack.Duplicate {
		t.Errorf("the same count published again: ack %+v, %v; want a duplicate", ack, err)
	}
}

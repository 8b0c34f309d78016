package ingress

import (
	"fmt"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
)

func TestRollupBoundedAndExact(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 10, 0, 30, 0, time.UTC)
	tests := []struct {
		name      string
		keys      int
		ips       int // distinct addresses, each refused twice
		wantRows  int // counts apart
		wantOver  uint64
		reasonsOf func(i int) events.Throttle
	}{
		{name: "under the bound", keys: 10, ips: 5, wantRows: 5},
		{name: "at the bound", keys: 10, ips: 10, wantRows: 10},
		{name: "over the bound: one overflow count", keys: 10, ips: 10_000, wantRows: 10, wantOver: 2 * (10_000 - 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRollup(tt.keys)
			for i := range tt.ips {
				ip := fmt.Sprintf("198.18.%d.%d", i/256, i%256)
				r.add(t0, events.ThrottledUnknownProject, ip, events.ThrottleUnseenProject)
				r.add(t0.Add(time.Second), events.ThrottledUnknownProject, ip, events.ThrottleUnseenProject)
			}
			if got := r.take(t0, "ingress.i-1"); len(got) != 0 {
				t.Fatalf("the current minute was taken: %d counts", len(got))
			}
			evs := r.take(t0.Add(time.Minute), "ingress.i-1")
			var total, over uint64
			rows := 0
			ids := map[string]bool{}
			for _, e := range evs {
				if err := e.Verify(events.ThrottledSubject("ingress.i-1")); err != nil {
					t.Errorf("count %+v: %v", e, err)
				}
				if ids[e.ID] {
					t.Errorf("id %s twice", e.ID)
				}
				ids[e.ID] = true
				if !e.Minute.Equal(t0.Truncate(time.Minute)) {
					t.Errorf("minute %s, want %s", e.Minute, t0.Truncate(time.Minute))
				}
				total += e.Count
				if e.Overflow {
					over += e.Count
				} else {
					rows++
				}
			}
			if total != uint64(2*tt.ips) {
				t.Errorf("counts add up to %d, want %d refused", total, 2*tt.ips)
			}
			if rows != tt.wantRows || over != tt.wantOver {
				t.Errorf("%d counts apart and %d in overflow, want %d and %d", rows, over, tt.wantRows, tt.wantOver)
			}
			if again := r.take(time.Time{}, "ingress.i-1"); len(again) != 0 {
				t.Errorf("taken twice: %d counts", len(again))
			}
		})
	}
}

func TestRollupMinutesApart(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 10, 0, 59, 0, time.UTC)
	r := newRollup(1)
	r.add(t0, "proj_a", "198.51.100.1", events.ThrottleProject)
	r.add(t0.Add(2*time.Second), "proj_a", "198.51.100.1", events.ThrottleProject) // the next minute: its own bound
	r.add(t0.Add(3*time.Second), "proj_a", "198.51.100.2", events.ThrottleProject) // over it
	first := r.take(t0.Add(time.Second), "ingress.i-1")
	if len(first) != 1 || first[0].Count != 1 || first[0].Overflow {
		t.Fatalf("first minute: %+v", first)
	}
	rest := r.take(time.Time{}, "ingress.i-1") // when the ingress stops
	if len(rest) != 2 || rest[0].ClientIP != "198.51.100.1" || !rest[1].Overflow || rest[1].Count != 1 {
		t.Fatalf("second minute: %+v", rest)
	}
}

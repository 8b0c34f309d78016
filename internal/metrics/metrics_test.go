package metrics

import (
	"testing"
	"time"
)

// BenchmarkHopObserve is what the latency budget adds to a request per
// hop: a clock read and one observation of a pre-resolved histogram, with
// no allocation.
func BenchmarkHopObserve(b *testing.B) {
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		IngressPublish.Observe(time.Since(start).Seconds())
	}
}

// TestHopsResolved checks that every hop has its observer and its label.
func TestHopsResolved(t *testing.T) {
	for i, o := range []any{IngressPublish, IngressReplyWait, AttemptQueued, Decide, DecisionStore, IngressAnswer} {
		if o == nil {
			t.Fatalf("hop %s has no observer", Hops[i])
		}
	}
	if len(Hops) != 6 {
		t.Fatalf("%d hops, want 6", len(Hops))
	}
}

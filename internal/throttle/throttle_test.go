package throttle_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/throttle"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestAllow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		limit throttle.Limit
		// at each offset from t0, one request; want says whether it passes.
		steps []time.Duration
		want  []bool
	}{
		{name: "burst then refused", limit: throttle.Limit{Rate: 1, Burst: 3},
			steps: []time.Duration{0, 0, 0, 0}, want: []bool{true, true, true, false}},
		{name: "refills at the rate", limit: throttle.Limit{Rate: 10, Burst: 1},
			steps: []time.Duration{0, 0, 50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}, want: []bool{true, false, false, true, false}},
		{name: "refill capped at the burst", limit: throttle.Limit{Rate: 100, Burst: 2},
			steps: []time.Duration{0, time.Hour, time.Hour, time.Hour}, want: []bool{true, true, true, false}},
		{name: "off", limit: throttle.Limit{Rate: 0},
			steps: []time.Duration{0, 0, 0}, want: []bool{true, true, true}},
		{name: "burst below one is one", limit: throttle.Limit{Rate: 1, Burst: 0},
			steps: []time.Duration{0, 0}, want: []bool{true, false}},
		{name: "a clock going back takes nothing", limit: throttle.Limit{Rate: 1, Burst: 1},
			steps: []time.Duration{time.Second, 0}, want: []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tb := throttle.NewTable(tc.limit, 10)
			for i, d := range tc.steps {
				if ok, _ := tb.Allow("k", t0.Add(d)); ok != tc.want[i] {
					t.Fatalf("request %d at +%s: ok = %v, want %v", i, d, ok, tc.want[i])
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tb := throttle.NewTable(throttle.Limit{Rate: 4, Burst: 1}, 10)
	tb.Allow("k", t0)
	ok, after := tb.Allow("k", t0.Add(100*time.Millisecond))
	if ok || after != 150*time.Millisecond {
		t.Fatalf("ok = %v, retry after %s; want refused, 150ms", ok, after)
	}
	if ok, _ := tb.Allow("k", t0.Add(250*time.Millisecond)); !ok {
		t.Fatal("refused once the retry-after passed")
	}
}

func TestKeysApart(t *testing.T) {
	t.Parallel()
	tb := throttle.NewTable(throttle.Limit{Rate: 1, Burst: 1}, 10)
	if ok, _ := tb.Allow("a", t0); !ok {
		t.Fatal("a refused")
	}
	if ok, _ := tb.Allow("b", t0); !ok {
		t.Fatal("b refused: a's bucket was b's")
	}
}

func TestLRU(t *testing.T) {
	t.Parallel()
	tb := throttle.NewTable(throttle.Limit{Rate: 1, Burst: 1}, 2)
	tb.Allow("a", t0)
	tb.Allow("b", t0)
	tb.Allow("a", t0) // a is now the most recently used
	tb.Allow("c", t0) // drops b
	if !tb.Has("a") || tb.Has("b") || !tb.Has("c") || tb.Len() != 2 {
		t.Fatalf("a %v b %v c %v len %d; want a and c", tb.Has("a"), tb.Has("b"), tb.Has("c"), tb.Len())
	}
	if ok, _ := tb.Allow("a", t0); ok {
		t.Fatal("a's drained bucket was dropped instead of b's")
	}
	tb.Add("d", t0)
	if tb.Has("c") || !tb.Has("d") {
		t.Fatal("Add did not make room the LRU way")
	}
}

// TestMillionKeysBounded: a million distinct client addresses, each
// sending once, leave the table at its size and the heap within a bound
// proportional to it, not to the million.
func TestMillionKeysBounded(t *testing.T) {
	const maxKeys = 10_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb := throttle.NewTable(throttle.Limit{Rate: 1, Burst: 5}, maxKeys)
	for i := range 1_000_000 {
		key := fmt.Sprintf("%d.%d.%d.%d", 10+i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
		if ok, _ := tb.Allow(key, t0); !ok {
			t.Fatalf("first request of %s refused", key)
		}
		if n := tb.Len(); n > maxKeys {
			t.Fatalf("%d keys held after %d distinct ones; bound %d", n, i+1, maxKeys)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// About 200 B a key; a table holding every key would be over 150 MB.
	const bound = maxKeys * 1024
	t.Logf("%d keys held, heap grew %d B (%d B a held key)", tb.Len(), grown, grown/maxKeys)
	if grown > bound {
		t.Errorf("heap grew %d B for %d keys held; bound %d", grown, tb.Len(), bound)
	}
	runtime.KeepAlive(tb)
}

func BenchmarkAllow(b *testing.B) {
	tb := throttle.NewTable(throttle.Limit{Rate: 1e9, Burst: 1e9}, 65536)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("198.51.%d.%d", i>>8, i&0xff)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Allow(keys[i%len(keys)], t0)
		i++
	}
}

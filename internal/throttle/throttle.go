// Package throttle holds token buckets by key (a client address, a
// project) in a table bounded in memory whatever the number of distinct
// keys: at its size, the least recently used key's bucket is dropped.
//
// A dropped bucket is a full one when it comes back, so the bound only
// ever errs towards letting a request through, and only for a key unused
// for longer than the table's churn: a key that is busy enough to be
// limited stays at the front. It keeps no clock of its own: now is passed
// in. It must never block or allocate per request beyond a new key's entry.
package throttle

import (
	"container/list"
	"sync"
	"time"
)

// Limit is a token bucket's shape: Rate tokens a second, up to Burst. A
// Limit with Rate ≤ 0 limits nothing.
type Limit struct {
	// Rate is the sustained requests per second.
	Rate float64
	// Burst is how many requests may come at once after a quiet spell;
	// at least 1 when Rate > 0.
	Burst int
}

// On reports whether the limit limits anything.
func (l Limit) On() bool { return l.Rate > 0 }

// Table is a bounded set of token buckets of one Limit; safe for
// concurrent use.
type Table struct {
	limit   Limit
	maxKeys int

	mu  sync.Mutex
	m   map[string]*list.Element
	lru list.List // of *bucket, most recently used first
}

type bucket struct {
	key    string
	tokens float64
	last   int64 // Unix ns of the last refill
}

// NewTable makes a table of buckets of limit holding at most maxKeys keys
// (at least 1).
func NewTable(limit Limit, maxKeys int) *Table {
	if maxKeys < 1 {
		maxKeys = 1
	}
	if limit.Burst < 1 {
		limit.Burst = 1
	}
	return &Table{limit: limit, maxKeys: maxKeys, m: make(map[string]*list.Element)}
}

// Allow takes a token from key's bucket at now; when there is none it
// says how long until there is one.
func (t *Table) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if !t.limit.On() {
		return true, 0
	}
	ns := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.get(key, ns)
	if elapsed := ns - b.last; elapsed > 0 {
		b.tokens = min(float64(t.limit.Burst), b.tokens+float64(elapsed)*t.limit.Rate/1e9)
		b.last = ns
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / t.limit.Rate * 1e9)
}

// Has reports whether key has a bucket, without touching it.
func (t *Table) Has(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.m[key]
	return ok
}

// Add gives key a full bucket unless it has one, and marks it used.
func (t *Table) Add(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(key, now.UnixNano())
}

// Len is the number of keys held.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// get returns key's bucket, made full when it is new (dropping the least
// recently used one when the table is full), and marks it used. t.mu is
// held.
func (t *Table) get(key string, ns int64) *bucket {
	if e, ok := t.m[key]; ok {
		t.lru.MoveToFront(e)
		return e.Value.(*bucket)
	}
	var b *bucket
	if len(t.m) >= t.maxKeys {
		// Reuse the oldest entry: no allocation but the new key's.
		e := t.lru.Back()
		b = e.Value.(*bucket)
		delete(t.m, b.key)
		t.lru.MoveToFront(e)
		*b = bucket{key: key, tokens: float64(t.limit.Burst), last: ns}
		t.m[key] = e
		return b
	}
	b = &bucket{key: key, tokens: float64(t.limit.Burst), last: ns}
	t.m[key] = t.lru.PushFront(b)
	return b
}

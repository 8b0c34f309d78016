package authz

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
)

func TestCacheNeverOutlivesValidity(t *testing.T) {
	t.Parallel()
	tok := sign(t, testKey1, hs256(), with(goodClaims(), "exp", testNow.Add(time.Hour).Unix()))
	req := func(p *Project) Request { return Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tok} }
	tests := []struct {
		name  string
		after func(p *Project) (*Project, time.Time) // the world at the second decision
		want  events.Reason
		skew  int64
	}{
		{
			name:  "served from the cache while valid",
			after: func(p *Project) (*Project, time.Time) { return p, testNow.Add(time.Minute) },
		},
		{
			name: "dropped on rotation",
			after: func(p *Project) (*Project, time.Time) {
				q := *p
				q.Keys = []Key{{Version: 2, Secret: []byte(testKey2)}}
				return &q, testNow
			},
			want: events.ReasonTokenBadSignature,
		},
		{
			name: "dropped when the key changes under the same version",
			after: func(p *Project) (*Project, time.Time) {
				q := *p
				q.Keys = []Key{{Version: 1, Secret: []byte(testKey2)}}
				return &q, testNow
			},
			want: events.ReasonTokenBadSignature,
		},
		{
			name: "kept during grace",
			after: func(p *Project) (*Project, time.Time) {
				q := *p
				q.Keys = []Key{{Version: 2, Secret: []byte(testKey2)}, {Version: 1, Secret: []byte(testKey1), ValidUntil: testNow.Add(time.Minute)}}
				return &q, testNow.Add(59 * time.Second)
			},
		},
		{
			name: "dropped when grace ends",
			after: func(p *Project) (*Project, time.Time) {
				q := *p
				q.Keys = []Key{{Version: 2, Secret: []byte(testKey2)}, {Version: 1, Secret: []byte(testKey1), ValidUntil: testNow.Add(time.Minute)}}
				return &q, testNow.Add(time.Minute)
			},
			want: events.ReasonTokenBadSignature,
		},
		{
			name:  "dropped past exp plus leeway",
			after: func(p *Project) (*Project, time.Time) { return p, testNow.Add(time.Hour + 61*time.Second) },
			want:  events.ReasonTokenExpired,
			skew:  61,
		},
		{
			name:  "kept at exp plus leeway",
			after: func(p *Project) (*Project, time.Time) { return p, testNow.Add(time.Hour + 60*time.Second) },
		},
		{
			name:  "not used when the clock is before iat minus leeway",
			after: func(p *Project) (*Project, time.Time) { return p, testNow.Add(-61 * time.Second) },
			want:  events.ReasonTokenNotYetValid,
			skew:  61,
		},
		{
			name: "revocation after caching",
			after: func(p *Project) (*Project, time.Time) {
				q := *p
				q.RevokedBefore = map[string]time.Time{"user-42": testNow.Add(time.Second)}
				return &q, testNow.Add(2 * time.Second)
			},
			want: events.ReasonTokenRevoked,
		},
		{
			name: "another project with the same token",
			after: func(p *Project) (*Project, time.Time) {
				q := *p
				q.ID = "proj_other"
				q.Keys = []Key{{Version: 1, Secret: []byte(testKey2)}}
				return &q, testNow
			},
			want: events.ReasonTokenBadSignature,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := NewDecider(64)
			p := testProject(t)
			if got := d.Decide(p, req(p), testNow); got.Reason != "" {
				t.Fatalf("first decision: %v", got.Err)
			}
			if d.cache.len() != 1 {
				t.Fatalf("cache holds %d entries, want 1", d.cache.len())
			}
			q, now := tt.after(p)
			got := d.Decide(q, req(q), now)
			if got.Reason != tt.want || got.SkewSeconds != tt.skew {
				t.Errorf("second decision: reason %q skew %d (%v), want %q skew %d", got.Reason, got.SkewSeconds, got.Err, tt.want, tt.skew)
			}
			// The uncached decider agrees.
			if fresh := NewDecider(0).Decide(q, req(q), now); fresh.Reason != got.Reason {
				t.Errorf("uncached decider says %q", fresh.Reason)
			}
		})
	}
}

func TestCacheBoundedAndPurged(t *testing.T) {
	t.Parallel()
	d := NewDecider(cacheShards * 4)
	p := testProject(t)
	for i := 0; i < 2000; i++ {
		tok := sign(t, testKey1, hs256(), with(goodClaims(), "userId", fmt.Sprintf("user-%d", i)))
		if got := d.Decide(p, Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tok}, testNow); got.Reason != "" {
			t.Fatal(got.Err)
		}
	}
	if n := d.cache.len(); n > cacheShards*4 || n == 0 {
		t.Errorf("cache holds %d entries, bound %d", n, cacheShards*4)
	}
	d.Purge("proj_other")
	if d.cache.len() == 0 {
		t.Error("purging another project emptied the cache")
	}
	d.Purge(p.ID)
	if n := d.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries after purge", n)
	}
}

// TestCacheAgreesWithFreshParse decides random tokens at random times with
// and without the cache: every decision must be the same.
func TestCacheAgreesWithFreshParse(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	cached, fresh := NewDecider(256), NewDecider(0)
	keys := [][]Key{
		{{Version: 1, Secret: []byte(testKey1)}},
		{{Version: 2, Secret: []byte(testKey2)}, {Version: 1, Secret: []byte(testKey1), ValidUntil: testNow.Add(30 * time.Second)}},
		{{Version: 2, Secret: []byte(testKey2)}},
	}
	var tokens []string
	for i := 0; i < 40; i++ {
		c := goodClaims()
		c["userId"] = fmt.Sprintf("u%d", i%5)
		c["exp"] = testNow.Add(time.Duration(rng.IntN(300)-150) * time.Second).Unix()
		if rng.IntN(2) == 0 {
			c["iat"] = testNow.Add(time.Duration(rng.IntN(300)-150) * time.Second).Unix()
		} else {
			delete(c, "iat")
		}
		switch rng.IntN(4) {
		case 0:
			c["nbf"] = testNow.Add(time.Duration(rng.IntN(300)-150) * time.Second).Unix()
		case 1:
			// A fraction: truncated to the second by parse and cache alike.
			c["exp"] = float64(testNow.Add(time.Duration(rng.IntN(300)-150)*time.Second).Unix()) + rng.Float64()
		}
		key := testKey1
		if rng.IntN(3) == 0 {
			key = testKey2
		}
		tokens = append(tokens, sign(t, key, hs256(), c))
	}
	for i := 0; i < 20000; i++ {
		p := testProject(t)
		p.Keys = keys[rng.IntN(len(keys))]
		if rng.IntN(4) == 0 {
			p.RevokedBefore = map[string]time.Time{"u1": testNow.Add(time.Duration(rng.IntN(120)-60) * time.Second)}
		}
		now := testNow.Add(time.Duration(rng.IntN(400_000)-200_000) * time.Millisecond)
		req := Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tokens[rng.IntN(len(tokens))]}
		a, b := cached.Decide(p, req, now), fresh.Decide(p, req, now)
		a.Err, b.Err = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("at %v: cached %+v, fresh %+v", now, a, b)
		}
	}
}

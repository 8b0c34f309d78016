package authz

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"time"
)

const cacheShards = 32

// tokenCache remembers tokens that verified, keyed by the SHA-256 of the
// token, so that a widget reconnecting with the same token skips the JSON
// decoding and the HMAC. An entry is used only while everything that made
// the token valid still holds at the time of the new decision: same project,
// the same key (version and secret) still usable, exp/nbf/iat still within
// the leeway. Revocation is checked outside the cache on every decision.
type tokenCache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	projectID string
	secret    []byte // the key that verified the token, compared on use
	token     verifiedToken
}

func newTokenCache(entries int) *tokenCache {
	c := &tokenCache{perShard: entries / cacheShards}
	if entries > 0 && c.perShard == 0 {
		c.perShard = 1
	}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(k [sha256.Size]byte) *cacheShard { return &c.shards[k[0]%cacheShards] }

// get returns the cached verification of a token when it still holds for p
// at now. A stale entry is dropped.
func (c *tokenCache) get(k [sha256.Size]byte, p *Project, now time.Time) (verifiedToken, bool) {
	if c.perShard == 0 {
		return verifiedToken{}, false
	}
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	if !ok {
		return verifiedToken{}, false
	}
	if e.projectID == p.ID && keyStillUsable(p.Keys, e.token.keyVersion, e.secret, now) && e.token.timesValidAt(now) {
		return e.token, true
	}
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
	return verifiedToken{}, false
}

func (c *tokenCache) put(k [sha256.Size]byte, p *Project, v verifiedToken) {
	if c.perShard == 0 {
		return
	}
	var secret []byte
	for _, key := range p.Keys {
		if key.Version == v.keyVersion {
			secret = key.Secret
		}
	}
	s := c.shard(k)
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		for old := range s.m { // evict an arbitrary entry
			delete(s.m, old)
			break
		}
	}
	s.m[k] = cacheEntry{projectID: p.ID, secret: secret, token: v}
	s.mu.Unlock()
}

func (c *tokenCache) purge(projectID string) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.projectID == projectID {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

func keyStillUsable(keys []Key, version int, secret []byte, now time.Time) bool {
	for _, k := range keys {
		if k.Version == version && k.usableAt(now) && bytes.Equal(k.Secret, secret) {
			return true
		}
	}
	return false
}

// timesValidAt repeats golang-jwt's time checks with the same leeway and the
// same boundaries as parseToken: exp inclusive at whole seconds, nbf and iat
// inclusive.
func (v verifiedToken) timesValidAt(now time.Time) bool {
	if !now.Before(time.Unix(v.exp, 0).Add(time.Second + Leeway)) {
		return false
	}
	if v.hasNbf && now.Before(time.Unix(v.nbf, 0).Add(-Leeway)) {
		return false
	}
	if v.hasIat && now.Before(time.Unix(v.iat, 0).Add(-Leeway)) {
		return false
	}
	return true
}

package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
)

// Store is the console's accounts, sessions, API tokens and sign-in
// throttle, in the console's KV buckets. It is safe for concurrent use, and
// several Stores (console instances) may share the buckets: every change is
// compare-and-set.
type Store struct {
	cfg      Config
	log      zerolog.Logger
	accounts jetstream.KeyValue
	sessions jetstream.KeyValue
	tokens   jetstream.KeyValue
	throttle jetstream.KeyValue

	// hashSlots bounds the argon2id hashes run at once.
	hashSlots chan struct{}
	// dummyHash is what a sign-in for an unknown email verifies its password
	// against, so that it costs what one for a known email costs.
	dummyHash string
	// argonRuns counts argon2id runs (hashes and verifications), for tests.
	argonRuns atomic.Int64
}

// dummyHash is made once per process: an argon2id hash, with the
// parameters new hashes get, of a random password nobody knows.
var dummyHash = sync.OnceValues(func() (string, error) {
	pw, err := GeneratePassword()
	if err != nil {
		return "", err
	}
	return hashPassword(pw)
})

// Open binds the console's buckets, which `hissuno setup` (bus.Ensure)
// creates: Open creates none, so that the console's NATS user needs no
// right to.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:       cfg,
		log:       cfg.Logger.With().Str("component", "account").Logger(),
		hashSlots: make(chan struct{}, cfg.HashConcurrency),
	}
	for name, kv := range map[string]*jetstream.KeyValue{
		events.BucketConsoleAccounts: &s.accounts,
		events.BucketConsoleSessions: &s.sessions,
		events.BucketConsoleTokens:   &s.tokens,
		events.BucketConsoleThrottle: &s.throttle,
	} {
		b, err := js.KeyValue(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("account: bucket %s (created by hissuno setup): %w", name, err)
		}
		*kv = b
	}
	// Made now, not at the first sign-in for an unknown email, which would
	// otherwise take twice as long as any other.
	h, err := dummyHash()
	if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	s.dummyHash = h
	return s, nil
}

// now is the clock's time in UTC, without a monotonic reading, as it is
// stored.
func (s *Store) now() time.Time { return s.cfg.Clock().UTC().Round(0) }

// argon runs f, one argon2id hash or verification, when a hash slot is
// free.
func (s *Store) argon(ctx context.Context, f func()) error {
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashSlots }()
	s.argonRuns.Add(1)
	f()
	return nil
}

// hash hashes a new password.
func (s *Store) hash(ctx context.Context, password string) (string, error) {
	var h string
	var err error
	if werr := s.argon(ctx, func() { h, err = hashPassword(password) }); werr != nil {
		return "", werr
	}
	return h, err
}

// verify reports whether password matches the hash encoded.
func (s *Store) verify(ctx context.Context, encoded, password string) (bool, error) {
	var ok bool
	var err error
	if werr := s.argon(ctx, func() { ok, err = verifyPassword(encoded, password) }); werr != nil {
		return false, werr
	}
	return ok, err
}

// errUnchanged, returned by a change given to modify, means there is
// nothing to write.
var errUnchanged = errors.New("unchanged")

// getJSON reads and decodes the JSON value at key, with its revision;
// jetstream.ErrKeyNotFound when there is none.
func getJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string) (T, uint64, error) {
	var v T
	e, err := kv.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode %s entry: %w", kv.Bucket(), err)
	}
	return v, e.Revision(), nil
}

// modify reads the JSON value at key (the zero value and found false when
// there is none), applies change and writes the result at the revision it
// read, created when there was none; a concurrent writer makes it read and
// change again, up to tries times, then ErrConflict. A change returning
// errUnchanged writes nothing; any other error it returns is modify's.
// The key is never in an error: some are digests of secrets.
func modify[T any](ctx context.Context, kv jetstream.KeyValue, key string, tries int, change func(v *T, found bool) error) (T, error) {
	for range tries {
		v, rev, err := getJSON[T](ctx, kv, key)
		found := err == nil
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return v, fmt.Errorf("read %s: %w", kv.Bucket(), err)
		}
		if err := change(&v, found); errors.Is(err, errUnchanged) {
			return v, nil
		} else if err != nil {
			return v, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("encode %s entry: %w", kv.Bucket(), err)
		}
		if found {
			_, err = kv.Update(ctx, key, b, rev)
		} else {
			_, err = kv.Create(ctx, key, b)
		}
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			continue
		default:
			return v, fmt.Errorf("write %s: %w", kv.Bucket(), err)
		}
	}
	var zero T
	return zero, fmt.Errorf("%s: %w", kv.Bucket(), ErrConflict)
}

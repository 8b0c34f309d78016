package account

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// counter is one throttle entry: the recent failures of an email or of a
// client address, and until when it is locked.
type counter struct {
	Failures    int       `json:"failures"`
	LastFailure time.Time `json:"lastFailure"`
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
}

// limit is the throttle's rule for one kind of counter.
type limit struct {
	failures int           // failures that lock
	first    time.Duration // the first lock
	longest  time.Duration // the longest lock
	memory   time.Duration // a counter without failures for this long is forgotten
}

// current is c as it stands at now: forgotten once no failure came for the
// limit's memory.
func (l limit) current(c counter, now time.Time) counter {
	if c.Failures > 0 && now.Sub(c.LastFailure) >= l.memory {
		return counter{}
	}
	return c
}

// retryAfter is how long c stays locked after now; zero when it is not.
func (c counter) retryAfter(now time.Time) time.Duration {
	if now.Before(c.LockedUntil) {
		return c.LockedUntil.Sub(now)
	}
	return 0
}

// fail counts one failure at now and returns the counter and the lock it
// started (zero for none): the limit's failures-th failure locks for the
// first lock, each further one for twice the last, up to the longest.
func (l limit) fail(c counter, now time.Time) (counter, time.Duration) {
	c = l.current(c, now)
	c.Failures++
	c.LastFailure = now
	if c.Failures < l.failures {
		return c, 0
	}
	lock := l.first
	for n := c.Failures - l.failures; n > 0 && lock < l.longest; n-- {
		lock *= 2
	}
	lock = min(lock, l.longest)
	c.LockedUntil = now.Add(lock)
	return c, lock
}

// forgive takes back one failure counted in advance at now for an attempt
// that succeeded, and lock, the lock that failure started (zero for
// none), unless a later failure has locked the counter since; any lock
// goes once the count falls below the limit again. Without the second
// rule a success from an address past its limit, once its lock was over,
// would lock it anew for everyone behind it.
func (l limit) forgive(c counter, now time.Time, lock time.Duration) counter {
	c = l.current(c, now)
	if c.Failures > 0 {
		c.Failures--
	}
	if c.Failures < l.failures || lock > 0 && c.LockedUntil.Equal(now.Add(lock)) {
		c.LockedUntil = time.Time{}
	}
	return c
}

func (t Throttle) accountLimit() limit {
	return limit{failures: t.AccountFailures, first: t.FirstLock, longest: t.MaxLock, memory: t.FailureMemory}
}

func (t Throttle) addressLimit() limit {
	return limit{failures: t.AddressFailures, first: t.FirstLock, longest: t.MaxLock, memory: t.FailureMemory}
}

// accountThrottleKey is the throttle bucket's key of a normalised email,
// whether or not an account has it.
func accountThrottleKey(email string) string {
	return "account." + digestKey("throttle account", email)
}

// addressThrottleKey is the throttle bucket's key of a client address.
func addressThrottleKey(clientIP string) string {
	return "address." + digestKey("throttle address", addressGroup(clientIP))
}

// addressGroup is what the address throttle counts failures of: an IPv4
// address (an IPv4-mapped IPv6 one too), the /64 of an IPv6 address (one
// host usually holds a whole /64), or the text as given when it is not an
// address.
func addressGroup(clientIP string) string {
	s := strings.TrimSpace(clientIP)
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "text:" + s
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// throttleRetries bounds the compare-and-set retries of a counter: every
// failed attempt must be counted, however many race.
const throttleRetries = 100

// throttled returns a *ThrottledError when any of the counters at keys is
// locked. It reads only, so that refused attempts cost no write.
func (s *Store) throttled(ctx context.Context, now time.Time, keys ...string) error {
	var wait time.Duration
	for _, key := range keys {
		c, _, err := getJSON[counter](ctx, s.throttle, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read sign-in throttle: %w", err)
		}
		wait = max(wait, c.retryAfter(now))
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	return nil
}

// reserve counts a failure at key before the password is checked, so that
// attempts racing each other are refused as soon as enough of them were
// counted, not after all were checked; a *ThrottledError when the counter
// is locked. It returns the lock the failure started, if any.
func (s *Store) reserve(ctx context.Context, now time.Time, key string, l limit) (time.Duration, error) {
	var lock time.Duration
	_, err := modify(ctx, s.throttle, key, throttleRetries, func(c *counter, _ bool) error {
		if wait := c.retryAfter(now); wait > 0 {
			return &ThrottledError{RetryAfter: wait}
		}
		*c, lock = l.fail(*c, now)
		return nil
	})
	if err != nil {
		var te *ThrottledError
		if errors.As(err, &te) {
			return 0, err
		}
		return 0, fmt.Errorf("count sign-in attempt: %w", err)
	}
	return lock, nil
}

// forgive takes back the failure reserve counted at key for an attempt
// that succeeded, and the lock it started.
func (s *Store) forgive(ctx context.Context, now time.Time, key string, l limit, lock time.Duration) error {
	_, err := modify(ctx, s.throttle, key, throttleRetries, func(c *counter, found bool) error {
		if !found {
			return errUnchanged
		}
		*c = l.forgive(*c, now, lock)
		return nil
	})
	if err != nil {
		return fmt.Errorf("uncount sign-in attempt: %w", err)
	}
	return nil
}

// clearCounter forgets the counter at key: a successful sign-in ends its
// email's run of failures.
func (s *Store) clearCounter(ctx context.Context, key string) error {
	for range throttleRetries {
		e, err := s.throttle.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("clear sign-in throttle: %w", err)
		}
		err = s.throttle.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("clear sign-in throttle: %w", err)
		}
	}
	return fmt.Errorf("clear sign-in throttle: %w", ErrConflict)
}

package account

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/bus"
)

// Defaults of Config, one source for the console's flags too.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionAbsolute = 12 * time.Hour
)

// Defaults of Throttle.
const (
	DefaultAccountFailures = 5
	DefaultAddressFailures = 20
	DefaultFirstLock       = time.Minute
	DefaultMaxLock         = 15 * time.Minute
	DefaultFailureMemory   = time.Hour
)

// TouchEvery is how often at most a session's lastSeenAt and a token's
// lastUsedAt are written: not on every request, at most once a minute.
const TouchEvery = time.Minute

// Config configures a Store. The zero value is usable: every field has a
// default.
type Config struct {
	// Clock is the time source; default time.Now. Tests pass a clock they
	// advance.
	Clock func() time.Time
	// SessionIdle ends a session unused for this long; default 30 min, at
	// least 2 × TouchEvery (last use is recorded once a minute at most).
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after its sign-in however
	// much it is used; default 12 h, at most bus.MaxSessionLifetime.
	SessionAbsolute time.Duration
	// Throttle configures the sign-in throttle.
	Throttle Throttle
	// HashConcurrency bounds the argon2id hashes run at once (each takes
	// 19 MiB for some tens of milliseconds on one core): more sign-ins at
	// once wait their turn instead of exhausting memory. Default GOMAXPROCS.
	HashConcurrency int
	// Logger receives the store's few warnings (a last-use time that could
	// not be recorded); default none. It never gets a secret.
	Logger zerolog.Logger
}

// Throttle configures how failed sign-ins slow down further attempts, per
// email (whether or not an account has it) and per client address. After
// AccountFailures consecutive failures for an email (AddressFailures from an
// address), the email (the address) is locked for FirstLock: every attempt
// is refused without checking its password. Each further failure doubles
// the lock, up to MaxLock. A counter is forgotten once no failure came for
// FailureMemory; a successful sign-in clears its email's counter, never its
// address's.
type Throttle struct {
	// AccountFailures is the failures for one email that lock it; default 5.
	AccountFailures int
	// AddressFailures is the failures from one client address that lock it;
	// default 20.
	AddressFailures int
	// FirstLock is the first lock's length; default 1 min.
	FirstLock time.Duration
	// MaxLock bounds a lock's length; default 15 min.
	MaxLock time.Duration
	// FailureMemory is how long a counter without new failures is kept;
	// default 1 h, at most bus.ThrottleMemory (the throttle bucket's TTL).
	FailureMemory time.Duration
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.SessionAbsolute == 0 {
		c.SessionAbsolute = DefaultSessionAbsolute
	}
	if c.HashConcurrency == 0 {
		c.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	t := &c.Throttle
	if t.AccountFailures == 0 {
		t.AccountFailures = DefaultAccountFailures
	}
	if t.AddressFailures == 0 {
		t.AddressFailures = DefaultAddressFailures
	}
	if t.FirstLock == 0 {
		t.FirstLock = DefaultFirstLock
	}
	if t.MaxLock == 0 {
		t.MaxLock = DefaultMaxLock
	}
	if t.FailureMemory == 0 {
		t.FailureMemory = DefaultFailureMemory
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	t := c.Throttle
	switch {
	case c.SessionIdle < 2*TouchEvery:
		return fmt.Errorf("account: the session idle timeout must be at least %s", 2*TouchEvery)
	case c.SessionAbsolute < c.SessionIdle:
		return errors.New("account: the session lifetime must be at least its idle timeout")
	case c.SessionAbsolute > bus.MaxSessionLifetime:
		return fmt.Errorf("account: the session lifetime must be at most %s", bus.MaxSessionLifetime)
	case c.HashConcurrency < 1:
		return errors.New("account: the hash concurrency must be at least 1")
	case t.AccountFailures < 1 || t.AddressFailures < 1:
		return errors.New("account: the throttle's failure counts must be at least 1")
	case t.FirstLock <= 0 || t.MaxLock < t.FirstLock:
		return errors.New("account: the throttle's first lock must be positive and at most its longest")
	case t.FailureMemory < t.MaxLock || t.FailureMemory > bus.ThrottleMemory:
		// A counter must outlive the longest lock, or a locked email would
		// be forgotten while locked; and the bucket forgets an entry after
		// bus.ThrottleMemory anyway.
		return fmt.Errorf("account: the throttle's failure memory must be between its longest lock and %s", bus.ThrottleMemory)
	}
	return nil
}

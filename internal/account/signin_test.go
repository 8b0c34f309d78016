package account_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
)

// outcome is what a sign-in attempt's caller can see, in one comparable
// value.
type outcome struct {
	Err        string // the error's message; "" for a success
	BadCreds   bool
	Throttled  bool
	RetryAfter time.Duration
	Locked     bool // the email
	AddrLocked bool
	LockedFor  time.Duration
	Argon      int64 // argon2id runs the attempt cost
}

func (e *env) attempt(t *testing.T, email, password, ip string) outcome {
	t.Helper()
	before := e.store.ArgonRuns()
	_, secret, err := e.store.SignIn(testCtx(t), email, password, ip, "test-agent/1.0")
	o := outcome{Argon: e.store.ArgonRuns() - before}
	if err == nil {
		if secret == "" {
			t.Fatal("a sign-in succeeded without a secret")
		}
		return o
	}
	o.Err = err.Error()
	var se *account.SignInError
	var te *account.ThrottledError
	switch {
	case errors.As(err, &se):
		o.BadCreds = errors.Is(err, account.ErrBadCredentials)
		o.Locked, o.AddrLocked, o.LockedFor = se.AccountLocked, se.AddressLocked, se.LockedFor
	case errors.As(err, &te):
		o.Throttled = errors.Is(err, account.ErrThrottled)
		o.RetryAfter = te.RetryAfter
	default:
		t.Fatalf("SignIn %s: unexpected error %v", email, err)
	}
	return o
}

var (
	badCreds = outcome{Err: account.ErrBadCredentials.Error(), BadCreds: true, Argon: 1}
	success  = outcome{Argon: 1}
)

func locked(d time.Duration) outcome {
	o := badCreds
	o.Locked, o.LockedFor = true, d
	return o
}

func throttled(d time.Duration) outcome {
	return outcome{Err: (&account.ThrottledError{RetryAfter: d}).Error(), Throttled: true, RetryAfter: d}
}

// TestSignIn: an unknown email, a wrong password and a disabled account
// look alike, each at the cost of exactly one argon2id verification.
func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	e.mustAccount(t, "owner@example.com", account.RoleOwner)
	e.mustAccount(t, "gone@example.com", account.RoleAdmin)
	if _, err := e.store.UpdateAccount(ctx, "gone@example.com", account.AccountChange{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		email    string
		password string
		want     outcome
	}{
		{"right password", "owner@example.com", goodPassword, success},
		{"right password, email spelt otherwise", " OWNER@example.com", goodPassword, success},
		{"wrong password", "owner@example.com", otherPassword, badCreds},
		{"password differing in case", "owner@example.com", strings.ToUpper(goodPassword), badCreds},
		{"unknown email", "nobody@example.com", goodPassword, badCreds},
		{"malformed email", "nobody", goodPassword, badCreds},
		{"disabled, right password", "gone@example.com", goodPassword, badCreds},
		{"disabled, wrong password", "gone@example.com", otherPassword, badCreds},
		{"over-long password", "owner@example.com", goodPassword + strings.Repeat("x", 300), badCreds},
		{"empty password", "owner@example.com", "", badCreds},
	}
	// An unknown email's password is checked against a hash made with the
	// parameters of the accounts' own.
	if !phcRE.MatchString(e.store.DummyHash()) {
		t.Fatalf("the dummy hash %q does not have today's parameters", e.store.DummyHash())
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Sequential: ArgonRuns counts the store's runs. One address
			// each, so that no case throttles another.
			got := e.attempt(t, tc.email, tc.password, fmt.Sprintf("198.51.100.%d", i+1))
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestThrottleAccount: five failures lock an email for a minute, each
// further one doubles the lock up to 15 min, a locked email is refused
// before any hashing, and all of it is the same for an email without an
// account.
func TestThrottleAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	e.mustAccount(t, "known@example.com", account.RoleAdmin)

	// script runs the same attempts for an email, with the clock advanced
	// before some, and returns what each gave.
	script := func(email, ip string) []outcome {
		var out []outcome
		step := func(advance time.Duration, password string) {
			e.clock.Advance(advance)
			out = append(out, e.attempt(t, email, password, ip))
		}
		for range 5 {
			step(0, otherPassword) // 4 failures, then the one that locks
		}
		step(0, otherPassword)      // locked: 1 min to wait
		step(0, goodPassword)       // even the right password is refused unchecked
		step(30*time.Second, "")    // 30 s left
		step(30*time.Second, "bad") // the lock is over: one attempt, which locks 2 min
		step(2*time.Minute, "bad")  // 4 min
		step(4*time.Minute, "bad")  // 8 min
		step(8*time.Minute, "bad")  // 15 min, not 16
		step(time.Minute, "bad")    // 14 min to wait
		step(14*time.Minute, "bad") // 15 min again
		return out
	}
	want := []outcome{
		badCreds, badCreds, badCreds, badCreds, locked(time.Minute),
		throttled(time.Minute), throttled(time.Minute), throttled(30 * time.Second),
		locked(2 * time.Minute), locked(4 * time.Minute), locked(8 * time.Minute), locked(15 * time.Minute),
		throttled(14 * time.Minute), locked(15 * time.Minute),
	}
	known := script("known@example.com", "203.0.113.1")
	unknown := script("unknown@example.com", "203.0.113.2")
	for i := range want {
		if known[i] != want[i] {
			t.Errorf("known email, attempt %d: %+v, want %+v", i+1, known[i], want[i])
		}
		if unknown[i] != known[i] {
			t.Errorf("attempt %d: unknown email %+v, known email %+v: they must look alike", i+1, unknown[i], known[i])
		}
	}

	t.Run("other emails unaffected", func(t *testing.T) {
		if got := e.attempt(t, "third@example.com", "bad", "203.0.113.1"); got != badCreds {
			t.Errorf("another email from the same address: %+v", got)
		}
	})

	t.Run("success clears the email's failures", func(t *testing.T) {
		e.mustAccount(t, "reset@example.com", account.RoleAdmin)
		ip := "203.0.113.3"
		for range 4 {
			e.attempt(t, "reset@example.com", "bad", ip)
		}
		if got := e.attempt(t, "reset@example.com", goodPassword, ip); got != success {
			t.Fatalf("right password after 4 failures: %+v", got)
		}
		for i := range 4 {
			if got := e.attempt(t, "reset@example.com", "bad", ip); got != badCreds {
				t.Fatalf("failure %d after a success: %+v; the count did not restart", i+1, got)
			}
		}
		if got := e.attempt(t, "reset@example.com", "bad", ip); got != locked(time.Minute) {
			t.Fatalf("fifth failure after a success: %+v, want a lock of a minute (not a longer one)", got)
		}
	})

	t.Run("failures forgotten after an hour without any", func(t *testing.T) {
		ip := "203.0.113.4"
		for range 4 {
			e.attempt(t, "forgetful@example.com", "bad", ip)
		}
		e.clock.Advance(account.DefaultFailureMemory)
		for i := range 4 {
			if got := e.attempt(t, "forgetful@example.com", "bad", ip); got != badCreds {
				t.Fatalf("failure %d an hour later: %+v", i+1, got)
			}
		}
	})
}

// TestThrottleAddress: twenty failures from one address lock it for every
// email, known or not; other addresses go on; a success does not wipe the
// address's failures.
func TestThrottleAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	e.mustAccount(t, "victim@example.com", account.RoleAdmin)
	ip := "192.0.2.50"
	for i := range 19 {
		if got := e.attempt(t, fmt.Sprintf("spray%d@example.com", i), "bad", ip); got != badCreds {
			t.Fatalf("failure %d: %+v", i+1, got)
		}
	}
	addrLocked := badCreds
	addrLocked.AddrLocked, addrLocked.LockedFor = true, time.Minute
	if got := e.attempt(t, "spray19@example.com", "bad", ip); got != addrLocked {
		t.Fatalf("20th failure: %+v, want %+v", got, addrLocked)
	}
	for _, email := range []string{"spray20@example.com", "victim@example.com"} {
		if got := e.attempt(t, email, goodPassword, ip); got != throttled(time.Minute) {
			t.Errorf("%s from the locked address: %+v, want throttled without hashing", email, got)
		}
	}
	if got := e.attempt(t, "victim@example.com", goodPassword, "192.0.2.51"); got != success {
		t.Errorf("from another address: %+v", got)
	}
	e.clock.Advance(time.Minute)
	addrLocked.LockedFor = 2 * time.Minute
	if got := e.attempt(t, "spray21@example.com", "bad", ip); got != addrLocked {
		t.Errorf("the first failure after the lock: %+v, want %+v", got, addrLocked)
	}

	t.Run("success does not clear the address", func(t *testing.T) {
		e := newEnv(t, account.Config{Throttle: account.Throttle{AddressFailures: 3}})
		e.mustAccount(t, "insider@example.com", account.RoleAdmin)
		ip := "192.0.2.60"
		e.attempt(t, "a@example.com", "bad", ip)
		e.attempt(t, "b@example.com", "bad", ip)
		if got := e.attempt(t, "insider@example.com", goodPassword, ip); got != success {
			t.Fatalf("success: %+v", got)
		}
		want := badCreds
		want.AddrLocked, want.LockedFor = true, time.Minute
		if got := e.attempt(t, "c@example.com", "bad", ip); got != want {
			t.Fatalf("third failure, after a success: %+v, want the address locked", got)
		}
	})

	t.Run("success after a lock locks nothing anew", func(t *testing.T) {
		e := newEnv(t, account.Config{Throttle: account.Throttle{AddressFailures: 2}})
		e.mustAccount(t, "insider@example.com", account.RoleAdmin)
		ip := "192.0.2.70"
		e.attempt(t, "a@example.com", "bad", ip)
		e.attempt(t, "b@example.com", "bad", ip) // locks the address for 1 min
		e.clock.Advance(time.Minute)
		for i := range 2 {
			if got := e.attempt(t, "insider@example.com", goodPassword, ip); got != success {
				t.Fatalf("sign-in %d after the lock: %+v, want success", i+1, got)
			}
		}
		want := badCreds
		want.AddrLocked, want.LockedFor = true, 2*time.Minute
		if got := e.attempt(t, "c@example.com", "bad", ip); got != want {
			t.Fatalf("the next failure: %+v, want the address locked again, for longer", got)
		}
	})

	t.Run("an IPv6 /64 counts as one address", func(t *testing.T) {
		e := newEnv(t, account.Config{Throttle: account.Throttle{AddressFailures: 2}})
		e.attempt(t, "a@example.com", "bad", "2001:db8:1:2::1")
		want := badCreds
		want.AddrLocked, want.LockedFor = true, time.Minute
		if got := e.attempt(t, "b@example.com", "bad", "2001:db8:1:2:ffff::9"); got != want {
			t.Fatalf("second failure in the /64: %+v, want the address locked", got)
		}
		if got := e.attempt(t, "c@example.com", "bad", "2001:db8:1:3::1"); got != badCreds {
			t.Fatalf("another /64: %+v", got)
		}
	})
}

func TestAddressGroup(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{" 192.0.2.1 ", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:DB8:1:2::9", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", "text:"},
		{"not an address", "text:not an address"},
	}
	for _, tc := range cases {
		if got := account.AddressGroup(tc.in); got != tc.want {
			t.Errorf("AddressGroup(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if account.AccountThrottleKey("a@example.com") == account.AddressThrottleKey("a@example.com") {
		t.Error("an email's and an address's throttle keys collide")
	}
}

// TestThrottleConcurrent: failures racing each other, through two stores
// sharing the buckets, are all counted (compare-and-set) and refused as
// soon as enough were counted: no more passwords are checked than the
// limit lets through.
func TestThrottleConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	other, err := account.Open(testCtx(t), e.js, account.Config{Clock: e.clock.Now, HashConcurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	stores := []*account.Store{e.store, other}
	e.mustAccount(t, "target@example.com", account.RoleOwner)

	run := func(n int, email func(i int) string, ip func(i int) string) map[string]int {
		t.Helper()
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, _, err := stores[i%2].SignIn(testCtx(t), email(i), "wrong password!", ip(i), "")
				var se *account.SignInError
				k := "other: " + fmt.Sprint(err)
				switch {
				case errors.As(err, &se) && (se.AccountLocked || se.AddressLocked):
					k = "locking failure"
				case errors.As(err, &se):
					k = "failure"
				case errors.Is(err, account.ErrThrottled):
					k = "throttled"
				}
				mu.Lock()
				counts[k]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return counts
	}
	argon := func() int64 { return e.store.ArgonRuns() + other.ArgonRuns() }

	t.Run("one email", func(t *testing.T) {
		before := argon()
		got := run(30, func(int) string { return "target@example.com" }, func(i int) string { return fmt.Sprintf("198.18.0.%d", i) })
		want := map[string]int{"failure": 4, "locking failure": 1, "throttled": 25}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("30 racing failures for one email: %v, want %v", got, want)
		}
		if n := argon() - before; n != 5 {
			t.Errorf("%d passwords checked, want 5", n)
		}
	})

	t.Run("one address", func(t *testing.T) {
		got := run(30, func(i int) string { return fmt.Sprintf("user%d@example.com", i) }, func(int) string { return "198.18.1.1" })
		want := map[string]int{"failure": 19, "locking failure": 1, "throttled": 10}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("30 racing failures from one address: %v, want %v", got, want)
		}
	})
}

// TestChangePasswordThrottled: checking the current password in a change
// counts failures as a sign-in does, so a stolen session cannot guess it.
func TestChangePasswordThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	e.mustAccount(t, "me@example.com", account.RoleAdmin)
	for i := range 5 {
		_, err := e.store.ChangePassword(ctx, "me@example.com", "not my password", otherPassword)
		var se *account.SignInError
		if !errors.As(err, &se) || !errors.Is(err, account.ErrBadCredentials) || se.AccountLocked != (i == 4) {
			t.Fatalf("failure %d: %v (%+v)", i+1, err, se)
		}
	}
	_, err := e.store.ChangePassword(ctx, "me@example.com", goodPassword, otherPassword)
	var te *account.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != time.Minute {
		t.Fatalf("the right password while locked: %v, want throttled for a minute", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.store.ChangePassword(ctx, "me@example.com", goodPassword, otherPassword); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	e.mustSignIn(t, "me@example.com", otherPassword)
}

// TestRehash: a hash made with weaker parameters (made before they were
// raised) still verifies, and the first sign-in with it stores the password
// hashed with today's, without ending the account's sessions.
func TestRehash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	e.mustAccount(t, "old@example.com", account.RoleAdmin)
	kv := e.kv[events.BucketConsoleAccounts]
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	en, err := kv.Get(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(en.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	salt := "0123456789abcdef"
	raw["passwordHash"] = "$argon2id$v=19$m=1024,t=1,p=1$" + base64.RawStdEncoding.EncodeToString([]byte(salt)) + "$" + idKeyB64(goodPassword, salt, 1, 1024, 1, 32)
	b, _ := json.Marshal(raw)
	if _, err := kv.Update(ctx, keys[0], b, en.Revision()); err != nil {
		t.Fatal(err)
	}

	before := e.store.ArgonRuns()
	_, first := e.mustSignIn(t, "old@example.com", goodPassword)
	if n := e.store.ArgonRuns() - before; n != 2 {
		t.Errorf("%d argon2id runs, want 2: the check and the new hash", n)
	}
	en, err = kv.Get(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(en.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	if h, _ := raw["passwordHash"].(string); !phcRE.MatchString(h) {
		t.Fatalf("after the sign-in the hash is %q, want today's parameters", h)
	}
	before = e.store.ArgonRuns()
	e.mustSignIn(t, "old@example.com", goodPassword)
	if n := e.store.ArgonRuns() - before; n != 1 {
		t.Errorf("%d argon2id runs for a sign-in with a current hash, want 1", n)
	}
	if _, _, err := e.store.Session(ctx, first); err != nil {
		t.Errorf("the new hash ended a session: %v", err)
	}
}

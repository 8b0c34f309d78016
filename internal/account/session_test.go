package account_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

func TestSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	e.mustAccount(t, "me@example.com", account.RoleAdmin, "proj_a")
	ua := strings.Repeat("é", 300) // 600 bytes
	started := e.clock.Now()
	s, secret, err := e.store.SignIn(ctx, "me@example.com", goodPassword, " 192.0.2.7 ", ua)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 43 {
		t.Errorf("secret of %d characters, want 43 (256 bits in base64url)", len(secret))
	}
	if s.Fingerprint != redact.Fingerprint(secret) || s.Email != "me@example.com" || s.ClientIP != "192.0.2.7" ||
		!s.CreatedAt.Equal(started) || !s.LastSeenAt.Equal(started) || !s.ExpiresAt.Equal(started.Add(account.DefaultSessionAbsolute)) {
		t.Errorf("session %+v", s)
	}
	if len(s.UserAgent) > events.MaxUserAgentBytes || !utf8.ValidString(s.UserAgent) || !strings.HasPrefix(ua, s.UserAgent) {
		t.Errorf("user agent of %d bytes, want at most %d of valid UTF-8", len(s.UserAgent), events.MaxUserAgentBytes)
	}

	got, acct, err := e.store.Session(ctx, secret)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if got != s || acct.Email != "me@example.com" || acct.Role != account.RoleAdmin || !acct.CanSee("proj_a") || acct.CanSee("proj_b") {
		t.Errorf("Session = %+v, %+v", got, acct)
	}

	t.Run("stored under the secret's hash only", func(t *testing.T) {
		kv := e.kv[events.BucketConsoleSessions]
		if _, err := kv.Get(ctx, account.SessionKey(secret)); err != nil {
			t.Fatalf("no entry under SHA-256(secret): %v", err)
		}
		for _, m := range stacktest.ReadStream(t, e.js, "KV_"+events.BucketConsoleSessions) {
			if strings.Contains(m.Subject(), secret) || strings.Contains(string(m.Data()), secret) {
				t.Fatalf("the sessions bucket holds the secret: %s", m.Subject())
			}
		}
	})

	t.Run("last use recorded once a minute at most", func(t *testing.T) {
		kv := e.kv[events.BucketConsoleSessions]
		rev := func() uint64 {
			en, err := kv.Get(ctx, account.SessionKey(secret))
			if err != nil {
				t.Fatal(err)
			}
			return en.Revision()
		}
		r0 := rev()
		e.clock.Advance(59 * time.Second)
		if _, _, err := e.store.Session(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if rev() != r0 {
			t.Error("a use within the minute wrote the session")
		}
		e.clock.Advance(time.Second)
		if _, _, err := e.store.Session(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if rev() == r0 {
			t.Error("a use a minute later did not record the last use")
		}
		got, _, err := e.store.Session(ctx, secret)
		if err != nil || !got.LastSeenAt.Equal(e.clock.Now()) {
			t.Errorf("lastSeenAt %v, want %v (%v)", got.LastSeenAt, e.clock.Now(), err)
		}
	})

	t.Run("malformed secrets", func(t *testing.T) {
		for _, bad := range []string{"", "x", secret + "A", secret[:42], secret[:42] + "!", strings.ToUpper(secret), account.SessionKey(secret)} {
			if bad == secret {
				continue
			}
			if _, _, err := e.store.Session(ctx, bad); !errors.Is(err, account.ErrNoSession) {
				t.Errorf("Session(%q) = %v, want ErrNoSession", bad, err)
			}
		}
	})

	t.Run("sign out", func(t *testing.T) {
		if err := e.store.SignOut(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.store.Session(ctx, secret); !errors.Is(err, account.ErrNoSession) {
			t.Errorf("after sign-out: %v", err)
		}
		if _, err := e.kv[events.BucketConsoleSessions].Get(ctx, account.SessionKey(secret)); err == nil {
			t.Error("the session's entry is still there")
		}
		for _, s := range []string{secret, "", "garbage"} {
			if err := e.store.SignOut(ctx, s); err != nil {
				t.Errorf("SignOut(%q) again: %v", s, err)
			}
		}
	})
}

func TestSessionLifetimes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	e.mustAccount(t, "me@example.com", account.RoleSecurity)
	alive := func(secret string) bool {
		t.Helper()
		_, _, err := e.store.Session(ctx, secret)
		if err != nil && !errors.Is(err, account.ErrNoSession) {
			t.Fatal(err)
		}
		return err == nil
	}

	t.Run("idle", func(t *testing.T) {
		_, secret := e.mustSignIn(t, "me@example.com", goodPassword)
		e.clock.Advance(account.DefaultSessionIdle - time.Second)
		if !alive(secret) {
			t.Fatal("ended before its idle timeout")
		}
		e.clock.Advance(account.DefaultSessionIdle - time.Second)
		if !alive(secret) {
			t.Fatal("a use did not renew the idle timeout")
		}
		e.clock.Advance(account.DefaultSessionIdle)
		if alive(secret) {
			t.Fatal("alive after its idle timeout")
		}
		e.clock.Advance(-account.DefaultSessionIdle)
		if alive(secret) {
			t.Fatal("an idle session came back: it must be deleted")
		}
	})

	t.Run("absolute", func(t *testing.T) {
		_, secret := e.mustSignIn(t, "me@example.com", goodPassword)
		for used := time.Duration(0); used < account.DefaultSessionAbsolute-20*time.Minute; used += 20 * time.Minute {
			e.clock.Advance(20 * time.Minute)
			if !alive(secret) {
				t.Fatalf("ended after %s of use every 20 min", used+20*time.Minute)
			}
		}
		e.clock.Advance(20 * time.Minute) // 12 h after sign-in
		if alive(secret) {
			t.Fatal("alive 12 h after sign-in")
		}
	})

	t.Run("configured lifetimes", func(t *testing.T) {
		e := newEnv(t, account.Config{SessionIdle: 5 * time.Minute, SessionAbsolute: 10 * time.Minute})
		e.mustAccount(t, "me@example.com", account.RoleSecurity)
		s, secret := e.mustSignIn(t, "me@example.com", goodPassword)
		if !s.ExpiresAt.Equal(s.CreatedAt.Add(10 * time.Minute)) {
			t.Errorf("ExpiresAt %v", s.ExpiresAt)
		}
		for range 2 {
			e.clock.Advance(4 * time.Minute)
			if _, _, err := e.store.Session(ctx, secret); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.Advance(2 * time.Minute)
		if _, _, err := e.store.Session(ctx, secret); !errors.Is(err, account.ErrNoSession) {
			t.Fatalf("10 min after sign-in: %v", err)
		}
	})
}

// TestSessionsEnded: a password change, a reset, disabling and "sign out
// everywhere" end every session of the account at once, and only its.
func TestSessionsEnded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		end  func(e *env, t *testing.T)
		// password signs in afterwards ("" for none).
		password string
	}{
		{"password change", func(e *env, t *testing.T) {
			if _, err := e.store.ChangePassword(testCtx(t), "me@example.com", goodPassword, otherPassword); err != nil {
				t.Fatal(err)
			}
		}, otherPassword},
		{"password reset", func(e *env, t *testing.T) {
			if _, err := e.store.SetPassword(testCtx(t), "me@example.com", otherPassword); err != nil {
				t.Fatal(err)
			}
		}, otherPassword},
		{"disabled", func(e *env, t *testing.T) {
			if _, err := e.store.UpdateAccount(testCtx(t), "me@example.com", account.AccountChange{Disabled: ptr(true)}); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"sign out everywhere", func(e *env, t *testing.T) {
			if _, err := e.store.EndSessions(testCtx(t), "ME@example.com"); err != nil {
				t.Fatal(err)
			}
		}, goodPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, account.Config{})
			ctx := testCtx(t)
			e.mustAccount(t, "me@example.com", account.RoleOwner)
			e.mustAccount(t, "you@example.com", account.RoleOwner)
			_, mine1 := e.mustSignIn(t, "me@example.com", goodPassword)
			_, mine2 := e.mustSignIn(t, "me@example.com", goodPassword)
			_, yours := e.mustSignIn(t, "you@example.com", goodPassword)
			// No time passes: the cut does not depend on the clock.
			tc.end(e, t)
			for _, s := range []string{mine1, mine2} {
				if _, _, err := e.store.Session(ctx, s); !errors.Is(err, account.ErrNoSession) {
					t.Errorf("a session of the account survived: %v", err)
				}
			}
			if _, _, err := e.store.Session(ctx, yours); err != nil {
				t.Errorf("another account's session ended: %v", err)
			}
			if tc.password == "" {
				if _, _, err := e.store.SignIn(ctx, "me@example.com", goodPassword, "192.0.2.1", ""); !errors.Is(err, account.ErrBadCredentials) {
					t.Errorf("a disabled account signs in: %v", err)
				}
				if _, err := e.store.UpdateAccount(ctx, "me@example.com", account.AccountChange{Disabled: ptr(false)}); err != nil {
					t.Fatal(err)
				}
				if _, _, err := e.store.Session(ctx, mine1); !errors.Is(err, account.ErrNoSession) {
					t.Errorf("enabling the account again revived a session: %v", err)
				}
				tc.password = goodPassword
			}
			if tc.password != goodPassword {
				if _, _, err := e.store.SignIn(ctx, "me@example.com", goodPassword, "192.0.2.1", ""); !errors.Is(err, account.ErrBadCredentials) {
					t.Errorf("the old password still signs in: %v", err)
				}
			}
			_, fresh := e.mustSignIn(t, "me@example.com", tc.password)
			if _, _, err := e.store.Session(ctx, fresh); err != nil {
				t.Errorf("a session made after the cut: %v", err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	_, nc := stacktest.NATS(t)
	js := mustJS(t, nc)
	cases := []struct {
		name string
		cfg  account.Config
		ok   bool
	}{
		{"defaults", account.Config{}, true},
		{"absolute at the bucket's limit", account.Config{SessionAbsolute: bus.MaxSessionLifetime}, true},
		{"absolute beyond", account.Config{SessionAbsolute: bus.MaxSessionLifetime + time.Second}, false},
		{"idle too short", account.Config{SessionIdle: time.Minute}, false},
		{"idle above absolute", account.Config{SessionIdle: 2 * time.Hour, SessionAbsolute: time.Hour}, false},
		{"memory beyond the bucket's", account.Config{Throttle: account.Throttle{FailureMemory: bus.ThrottleMemory + time.Second}}, false},
		{"memory below the longest lock", account.Config{Throttle: account.Throttle{FailureMemory: 10 * time.Minute}}, false},
		{"first lock above the longest", account.Config{Throttle: account.Throttle{FirstLock: time.Hour}}, false},
		{"negative failures", account.Config{Throttle: account.Throttle{AccountFailures: -1}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := account.Open(testCtx(t), js, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("Open: %v, want ok=%v", err, tc.ok)
			}
		})
	}

	t.Run("buckets missing", func(t *testing.T) {
		t.Parallel()
		ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		_, err = account.Open(testCtx(t), mustJS(t, stacktest.Connect(t, ns)), account.Config{})
		if err == nil || !strings.Contains(err.Error(), "hissuno setup") {
			t.Fatalf("Open without the buckets: %v, want an error naming hissuno setup", err)
		}
	})
}

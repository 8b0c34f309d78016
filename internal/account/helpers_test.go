package account_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// clock is a test clock that moves only when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a store on a fresh embedded JetStream server, with its clock and
// raw access to the buckets.
type env struct {
	store *account.Store
	clock *clock
	js    jetstream.JetStream
	kv    map[string]jetstream.KeyValue
}

// newEnv opens a store on a fresh server; cfg's Clock is the env's.
func newEnv(t *testing.T, cfg account.Config) *env {
	t.Helper()
	_, nc := stacktest.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{clock: newClock(), js: js, kv: map[string]jetstream.KeyValue{}}
	cfg.Clock = e.clock.Now
	if cfg.HashConcurrency == 0 {
		cfg.HashConcurrency = 4
	}
	ctx := testCtx(t)
	if e.store, err = account.Open(ctx, js, cfg); err != nil {
		t.Fatalf("Open: %v", err)
	}
	for _, b := range events.ConsoleBuckets {
		if e.kv[b], err = js.KeyValue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// testCtx is a context that ends with the test or after a minute.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	return stacktest.Context(t, time.Minute)
}

// mustAccount creates an account or fails the test.
func (e *env) mustAccount(t *testing.T, email string, role account.Role, projects ...string) account.Account {
	t.Helper()
	a, err := e.store.CreateAccount(testCtx(t), email, role, projects, goodPassword)
	if err != nil {
		t.Fatalf("CreateAccount %s: %v", email, err)
	}
	return a
}

// mustSignIn signs in or fails the test, returning the session's secret.
func (e *env) mustSignIn(t *testing.T, email, password string) (account.Session, string) {
	t.Helper()
	s, secret, err := e.store.SignIn(testCtx(t), email, password, "192.0.2.1", "test-agent/1.0")
	if err != nil {
		t.Fatalf("SignIn %s: %v", email, err)
	}
	return s, secret
}

func mustJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

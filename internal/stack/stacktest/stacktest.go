// Package stacktest starts real embedded NATS servers and whole stacks for
// tests, each on a temporary store and free ports, stopped by t.Cleanup.
package stacktest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack"
)

// Logger is a test logger: silent unless HISSUNO_TEST_LOG is set.
func Logger(t testing.TB) zerolog.Logger {
	t.Helper()
	if os.Getenv("HISSUNO_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
}

// Missing stops a test that cannot run without something this machine
// lacks. Under CI (the environment variable CI set) the test fails, as CI
// runs every test; elsewhere it is skipped. why says what is missing and
// the command that provides it.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (under CI no test is skipped)", why)
	}
	t.Skip(why)
}

// Superuser is the NATS user with every permission that Start adds to a
// stack (stack.Config.Superuser), for tests that watch or seed what no role
// may.
const Superuser = "test"

// Start runs a whole stack (embedded NATS, every role) for the test, with
// the Superuser unless cfg names another.
func Start(t testing.TB, cfg stack.Config) *stack.Stack {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Superuser == "" {
		cfg.Superuser = Superuser
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, cfg, Logger(t))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(st.Stop)
	return st
}

// NATS runs an embedded JetStream server with the streams and bucket of
// bus.Ensure, and returns it with a connection.
func NATS(t testing.TB) (*server.Server, *nats.Conn) {
	t.Helper()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, Logger(t))
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc := Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.Ensure(ctx, js, bus.Topology{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	return ns, nc
}

// Connect opens a connection to ns, closed by t.Cleanup.
func Connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ConnectAs opens a connection to a stack's NATS server as one of its
// users (a role of deploy/nats/nats.conf, or the Superuser), with that
// user's inbox prefix; the stack closes it.
func ConnectAs(t testing.TB, st *stack.Stack, user string) *nats.Conn {
	t.Helper()
	nc, err := st.ConnectAs(user, "test-"+user)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	return nc
}

// NATSArgs are the flags that connect a CLI command to a stack's NATS as
// user: --nats, --nats-user and --nats-password.
func NATSArgs(t testing.TB, st *stack.Stack, user string) []string {
	t.Helper()
	c, ok := st.Credentials(user)
	if !ok {
		t.Fatalf("the stack has no NATS user %q", user)
	}
	return []string{"--nats", c.URL, "--nats-user", c.User, "--nats-password", c.Password}
}

// pollInterval is how long Eventually waits between two calls of its
// condition.
const pollInterval = 10 * time.Millisecond

// Eventually calls cond every pollInterval until it returns nil or the
// timeout passes; then it fails the test, naming what it waited for and the
// last error cond returned. That error should say what cond saw ("3 of 5
// decisions stored"), so that a failure says why.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s: %v", timeout, what, err)
		}
		time.Sleep(pollInterval)
	}
}

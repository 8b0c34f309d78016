package ingress_test

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestRunLeavesNoGoroutine: once the ingress's Run has returned, none of
// the goroutines it started (the HTTP server, the republish sweep, its
// subscriptions) is left.
func TestRunLeavesNoGoroutine(t *testing.T) {
	_, nc := stacktest.NATS(t)
	noLeaks := stacktest.NoLeaks(t)
	in, err := ingress.New(ingress.Config{NATS: nc, Listen: "127.0.0.1:0", Instance: "leak-test", Deadline: 200 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop := stacktest.Run(t, in.Run)
	select {
	case <-in.Listening():
	case <-time.After(20 * time.Second):
		t.Fatal("the ingress did not listen within 20 s")
	}
	// A request in flight when the ingress stops is answered, then the
	// server goes.
	if a := post(t, in.Addr(), []byte(`{"projectId":"proj_leak"}`), nil); a.Status != 503 {
		t.Fatalf("a connect with no verifier: %d, want 503", a.Status)
	}
	stop()
	noLeaks()
}

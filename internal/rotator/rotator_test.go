package rotator_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/rotator"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestRunLeavesNoGoroutine: once the rotator's Run has returned, none of
// the goroutines it started (its consumer loop, its subscriptions, its
// micro service) is left.
func TestRunLeavesNoGoroutine(t *testing.T) {
	_, nc := stacktest.NATS(t)
	noLeaks := stacktest.NoLeaks(t)
	key := make([]byte, project.MasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := project.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rotator.New(rotator.Config{NATS: nc, Sealer: sealer, Instance: "leak-test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stacktest.Eventually(t, 20*time.Second, "the rotator handling commands", func() error {
		if !r.Ready() {
			return errors.New("not handling commands yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s of its context's end")
	}
	noLeaks()
}

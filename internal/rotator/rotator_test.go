package rotator_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/bus"
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
	r, err := rotator.New(rotator.Config{NATS: nc, Sealer: newSealer(t), Instance: "leak-test"}, zerolog.Nop())
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

// TestJustStartedRotatorWaitsForEveryVerifier: a rotator that applies a
// change right after it started has heard every live verifier's heartbeat
// before it asks who must confirm, so a verifier that discovery misses
// (here one that is no micro service at all) is asked too and confirms.
func TestJustStartedRotatorWaitsForEveryVerifier(t *testing.T) {
	t.Parallel()
	ns, nc := stacktest.NATS(t)
	const instance = "verifier-heartbeats-only"
	if _, err := nc.Subscribe(events.SyncSubject(instance), func(m *nats.Msg) {
		b, _ := json.Marshal(events.SyncReply{Verifier: instance, OK: true})
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		tick := time.NewTicker(events.HeartbeatEvery)
		defer tick.Stop()
		for {
			b, _ := json.Marshal(events.Heartbeat{SchemaVersion: events.SchemaVersion, Verifier: instance, Time: time.Now().UTC()})
			_ = nc.Publish(events.SubjectHeartbeat, b)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	r, err := rotator.New(rotator.Config{NATS: nc, Sealer: newSealer(t), Instance: "rotator-just-started"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	stacktest.Eventually(t, 20*time.Second, "the rotator handling commands", func() error {
		if !r.Ready() {
			return errors.New("not handling commands yet")
		}
		return nil
	})
	anc, err := bus.Connect(bus.ConnConfig{URL: ns.ClientURL(), InboxPrefix: events.AdminInboxPrefix}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	client, err := admin.New(anc, events.SourceAdmin)
	if err != nil {
		t.Fatal(err)
	}
	cmd := admin.NewCommand(events.CommandCreateProject, "proj_just_started", "test")
	cmd.Name = "just started"
	res, err := client.Submit(ctx, cmd, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Confirmed, []string{instance}) || len(res.Unconfirmed) != 0 {
		t.Errorf("confirmed %v, unconfirmed %v; want the verifier heard from confirmed", res.Confirmed, res.Unconfirmed)
	}
}

func newSealer(t *testing.T) *project.Sealer {
	t.Helper()
	key := make([]byte, project.MasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := project.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return sealer
}

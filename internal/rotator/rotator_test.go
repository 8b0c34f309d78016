package rotator_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/rotator"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestRunLeavesNoGoroutine: once the rotator's Run has returned, none of
// the goroutines it started (its consumer loop, its subscriptions, its
// micro service) is left.
func TestRunLeavesNoGoroutine(t *testing.T) {
	_, nc := stacktest.NATS(t)
	noLeaks := stacktest.NoLeaks(t)
	r, err := rotator.New(rotator.Config{NATS: nc, Sealer: stacktest.SecretSealer(t), Instance: "leak-test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop := stacktest.Run(t, r.Run)
	stacktest.Eventually(t, 20*time.Second, "the rotator handling commands", stacktest.Ready(r.Ready))
	stop()
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
	r, err := rotator.New(rotator.Config{NATS: nc, Sealer: stacktest.SecretSealer(t), Instance: "rotator-just-started"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Run(t, r.Run)
	stacktest.Eventually(t, 20*time.Second, "the rotator handling commands", stacktest.Ready(r.Ready))
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

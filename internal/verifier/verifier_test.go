package verifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/verifier"
	"github.com/hissuno/widgetauth/internal/worker"
)

// TestRunLeavesNoGoroutine starts a verifier on a real JetStream, waits
// until it decides, stops it: once Run has returned, none of the
// goroutines it started is left, and its NATS callbacks are the
// connection's own again.
func TestRunLeavesNoGoroutine(t *testing.T) {
	_, nc := stacktest.NATS(t)
	disconnects := 0
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) { disconnects++ })
	noLeaks := stacktest.NoLeaks(t)
	v, err := verifier.New(verifier.Config{NATS: nc, Sealer: stacktest.SecretSealer(t), Instance: "leak-test"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop := stacktest.Run(t, v.Run)
	stacktest.Eventually(t, 20*time.Second, "the verifier deciding", stacktest.Ready(v.Ready))
	stop()
	noLeaks()
	nc.Opts.DisconnectedErrCB(nc, nil)
	if disconnects != 1 || verifier.Resyncing(v) {
		t.Errorf("after Run: the disconnect callback reached the connection's own %d time(s) and the verifier's resync is %v; want the connection's own only", disconnects, verifier.Resyncing(v))
	}
}

// TestHandlingStaysWithinTheAckWait: an attempt for a project the view
// stays behind on is handed back (to be retried) before JetStream would
// give it to another verifier, never decided late.
func TestHandlingStaysWithinTheAckWait(t *testing.T) {
	t.Parallel()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc := stacktest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := stacktest.Context(t, 30*time.Second)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "STALE", Subjects: []string{events.SubjectAttempts + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	const ackWait = 2 * time.Second
	v, err := verifier.New(verifier.Config{NATS: nc, Sealer: stacktest.SecretSealer(t), Instance: "stale-test", AckWait: ackWait, PublishTimeout: time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// The view is complete and current, but an invalidation announced a
	// revision of the project that never comes.
	verifier.MarkCurrent(v)
	verifier.Require(v, "proj_stale", 1<<40)

	now := time.Now().UTC().Truncate(time.Millisecond)
	a := events.Attempt{SchemaVersion: events.SchemaVersion, AttemptID: events.NewAttemptID(now), ProjectID: "proj_stale",
		ReceivedAt: now, Deadline: now.Add(time.Second), Ingress: "ingress.stale-test"}
	body, _ := json.Marshal(a)
	m := nats.NewMsg(events.AttemptSubject(a.Ingress))
	m.Data = body
	m.Header.Set(events.HeaderMsgID, a.AttemptID)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "stale", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	herr := verifier.Handle(v, context.Background(), msg)
	took := time.Since(start)
	if !errors.Is(herr, verifier.ErrStale) || errors.Is(herr, worker.ErrPermanent) {
		t.Errorf("handle: %v, want the stale view's retry", herr)
	}
	if took >= ackWait {
		t.Errorf("handle took %s, the ack wait is %s: JetStream would have given the attempt to another verifier meanwhile", took.Round(time.Millisecond), ackWait)
	}
}

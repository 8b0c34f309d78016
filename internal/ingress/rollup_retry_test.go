package ingress

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
)

// TestRollupRetriedWithItsIDs: counts JetStream does not take (their
// stream is gone) are kept and published at the next try with the same
// ids, so that a count stored by a try whose acknowledgement was lost is a
// duplicate JetStream drops (or, past its window, a row the audit's FINAL
// merges).
func TestRollupRetriedWithItsIDs(t *testing.T) {
	t.Parallel()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, err := New(Config{NATS: nc, Instance: "i-1", Rollup: Rollup{Keys: 2}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.1"} {
		in.rollup.add(now, events.ThrottledUnknownProject, ip, events.ThrottleUnseenProject)
	}
	if n := in.publishRollups(ctx, true); n != 0 {
		t.Fatalf("%d counts published to a stream that does not exist", n)
	}
	var kept []string
	for _, e := range in.unsent {
		kept = append(kept, e.ID)
	}
	if len(kept) != 3 { // two keys and one overflow count
		t.Fatalf("kept %v, want 3 counts", kept)
	}
	if err := bus.Ensure(ctx, js, bus.Topology{}); err != nil {
		t.Fatal(err)
	}
	if n := in.publishRollups(context.Background(), false); n != 3 {
		t.Fatalf("published %d at the retry, want the 3 kept", n)
	}
	var stored []string
	var total uint64
	cons, err := js.CreateConsumer(ctx, events.StreamThrottled, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var e events.Throttled
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, e.ID)
		total += e.Count
	}
	slices.Sort(kept)
	slices.Sort(stored)
	if !slices.Equal(kept, stored) || total != 4 {
		t.Errorf("stored %v (%d requests), want the ids kept %v (4 requests)", stored, total, kept)
	}
	if len(in.unsent) != 0 {
		t.Errorf("%d counts still waiting", len(in.unsent))
	}
}

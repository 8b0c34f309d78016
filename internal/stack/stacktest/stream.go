package stacktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadStream reads every message a stream holds now, in order, with an
// ordered consumer; it fails the test when the stream stops delivering
// before its last sequence.
func ReadStream(t testing.TB, js jetstream.JetStream, name string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	var cons jetstream.Consumer
	if info.Config.Retention == jetstream.InterestPolicy {
		// An ordered consumer has one replica, which an interest stream
		// with more refuses; an ephemeral one takes the stream's. Reading
		// without acks, it holds nothing once it has read.
		cfg := jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true}
		cons, err = s.CreateConsumer(ctx, cfg)
		if err == nil {
			t.Cleanup(func() { _ = s.DeleteConsumer(context.Background(), cons.CachedInfo().Name) })
		}
	} else {
		cons, err = s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		// Ask for no more than is left: a batch ends when it is full.
		want := max(min(int(info.State.Msgs)-len(out), 1000), 1)
		batch, err := cons.Fetch(want, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			out = append(out, m)
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last {
				done = true
			}
		}
		if done {
			return out
		}
		if n == 0 {
			// Right after a cluster node left, the stream may have no leader
			// for a moment: the ordered consumer asks again, until the
			// deadline.
			if err := batch.Error(); ctx.Err() != nil || !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
				t.Fatalf("read %d messages of the %d in %s (last sequence %d), then nothing more: %v", len(out), info.State.Msgs, name, last, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

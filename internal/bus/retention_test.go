package bus_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// sameConsumer compares the fields of a consumer configuration that decide
// which messages it keeps and how they are redelivered.
func sameConsumer(got, want jetstream.ConsumerConfig) bool {
	return got.Durable == want.Durable && got.FilterSubject == want.FilterSubject && got.AckPolicy == want.AckPolicy &&
		got.AckWait == want.AckWait && got.MaxDeliver == want.MaxDeliver && got.MaxAckPending == want.MaxAckPending &&
		got.DeliverPolicy == want.DeliverPolicy && got.Description == want.Description
}

// publishDecisions stores n decision events of about the size of real ones
// (600 bytes of body) and waits for each ack.
func publishDecisions(t *testing.T, js jetstream.JetStream, n int) error {
	t.Helper()
	ctx := testCtx(t)
	pad := make([]byte, 560)
	for i := range pad {
		pad[i] = 'x'
	}
	for i := range n {
		body := fmt.Sprintf(`{"decisionId":"dec_%s_%d","pad":%q}`, t.Name(), i, pad)
		if _, err := js.Publish(ctx, events.SubjectDecisions, []byte(body)); err != nil {
			return fmt.Errorf("decision %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

// decisionsState is the decisions stream's state and configuration now.
func decisionsState(t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	s, err := js.Stream(testCtx(t), events.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// ackDecisions takes n decisions from the auditor's consumer and acks
// each, waiting for the server's confirmation, as the auditor does after
// the ClickHouse insert.
func ackDecisions(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	cons, err := js.Consumer(testCtx(t), events.StreamDecisions, events.ConsumerAuditDecisions)
	if err != nil {
		t.Fatal(err)
	}
	for acked := 0; acked < n; {
		res, err := cons.Fetch(n-acked, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range res.Messages() {
			if err := m.DoubleAck(testCtx(t)); err != nil {
				t.Fatalf("ack: %v", err)
			}
			got++
		}
		if got == 0 {
			t.Fatalf("the auditor's consumer delivered %d decisions, want %d: %v", acked, n, res.Error())
		}
		acked += got
	}
}

// TestStoredDecisionsDoNotFillTheStream is issue 19's flood in small: a
// decisions stream of 1 MiB takes four times its size of decisions, each
// acknowledged by the auditor's consumer (stored), and never refuses one;
// decisions not acknowledged still count, and fill it.
func TestStoredDecisionsDoNotFillTheStream(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	if err := bus.Ensure(testCtx(t), js, bus.Topology{DecisionsMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	// The auditor starts, as it does on its consumer.
	if _, err := js.CreateOrUpdateConsumer(testCtx(t), events.StreamDecisions, bus.AuditDecisionsConsumer(bus.AuditSettings{})); err != nil {
		t.Fatal(err)
	}
	const perRound = 500 // about 340 KiB
	for round := range 12 {
		if err := publishDecisions(t, js, perRound); err != nil {
			t.Fatalf("round %d: a stream holding only stored decisions refused one: %v", round+1, err)
		}
		ackDecisions(t, js, perRound)
	}
	stacktest.Eventually(t, 10*time.Second, "the stream empty once every decision was acknowledged", func() error {
		if st := decisionsState(t, js).State; st.Msgs != 0 || st.Bytes != 0 {
			return fmt.Errorf("the stream holds %d decisions, %d bytes", st.Msgs, st.Bytes)
		}
		return nil
	})
	if last := decisionsState(t, js).State.LastSeq; last != 12*perRound {
		t.Errorf("the stream took %d decisions, want %d", last, 12*perRound)
	}

	// Without the auditor's acks the backlog fills the stream, which then
	// refuses new decisions rather than drop any.
	err := publishDecisions(t, js, 4*perRound)
	if err == nil || !strings.Contains(err.Error(), "maximum bytes exceeded") {
		t.Fatalf("an unacknowledged backlog of 1.3 MiB in a 1 MiB stream: %v, want maximum bytes exceeded", err)
	}
	if f := bus.Fill(decisionsState(t, js)); f < bus.DecisionsNearlyFull {
		t.Errorf("Fill of a stream that refused a decision = %.2f, want at least %.2f", f, bus.DecisionsNearlyFull)
	}
}

// oldDecisionsStream makes the decisions stream as an older `hissuno
// setup` did: limits retention, no consumer.
func oldDecisionsStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	topo := bus.Topology{}
	topo.SetDefaults()
	for _, cfg := range topo.Streams() {
		if cfg.Name == events.StreamDecisions {
			cfg.Retention = jetstream.LimitsPolicy
			if _, err := js.CreateStream(testCtx(t), cfg); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("no decisions stream in the topology")
}

// TestEnsureBringsALimitsStreamForward: a decisions stream made with limits
// retention by an older `hissuno setup` is switched to interest retention
// by Ensure without losing a decision the auditor has not stored, whether
// no auditor ever ran or one stored some; and an auditor's consumer is left
// as the auditor configured it.
func TestEnsureBringsALimitsStreamForward(t *testing.T) {
	t.Parallel()
	const held = 7
	tests := []struct {
		name string
		// before runs on the old stream, which holds held decisions; it
		// returns how many of them the auditor acknowledged.
		before func(t *testing.T, js jetstream.JetStream) int
		// wantMaxAckPending is the auditor's consumer's after Ensure.
		wantMaxAckPending int
	}{
		{
			name:              "no auditor ever ran (hissuno dev without ClickHouse)",
			before:            func(*testing.T, jetstream.JetStream) int { return 0 },
			wantMaxAckPending: bus.DefaultAuditMaxAckPending,
		},
		{
			name: "the auditor stored some",
			before: func(t *testing.T, js jetstream.JetStream) int {
				if _, err := js.CreateConsumer(testCtx(t), events.StreamDecisions, bus.AuditDecisionsConsumer(bus.AuditSettings{})); err != nil {
					t.Fatal(err)
				}
				ackDecisions(t, js, 3)
				return 3
			},
			wantMaxAckPending: bus.DefaultAuditMaxAckPending,
		},
		{
			name: "an auditor with its own batch settings",
			before: func(t *testing.T, js jetstream.JetStream) int {
				if _, err := js.CreateConsumer(testCtx(t), events.StreamDecisions, bus.AuditDecisionsConsumer(bus.AuditSettings{MaxAckPending: 1234})); err != nil {
					t.Fatal(err)
				}
				return 0
			},
			wantMaxAckPending: 1234,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			js := bareJS(t)
			oldDecisionsStream(t, js)
			if err := publishDecisions(t, js, held); err != nil {
				t.Fatal(err)
			}
			acked := tt.before(t, js)

			if err := bus.Ensure(testCtx(t), js, bus.Topology{}); err != nil {
				t.Fatalf("Ensure on the old stream: %v", err)
			}
			info := decisionsState(t, js)
			if info.Config.Retention != jetstream.InterestPolicy {
				t.Errorf("retention %v after Ensure, want interest", info.Config.Retention)
			}
			stacktest.Eventually(t, 10*time.Second, "the stored decisions gone", func() error {
				if n := decisionsState(t, js).State.Msgs; n > uint64(held-acked) {
					return fmt.Errorf("the stream holds %d decisions, want at most %d", n, held-acked)
				}
				return nil
			})
			if st := decisionsState(t, js).State; st.Msgs != uint64(held-acked) || st.FirstSeq != uint64(acked+1) {
				t.Errorf("the stream holds %d decisions from %d, want the %d not stored, from %d", st.Msgs, st.FirstSeq, held-acked, acked+1)
			}
			cons, err := js.Consumer(testCtx(t), events.StreamDecisions, events.ConsumerAuditDecisions)
			if err != nil {
				t.Fatalf("the auditor's consumer: %v", err)
			}
			ci := cons.CachedInfo()
			if pending := ci.NumPending + uint64(ci.NumAckPending); pending != uint64(held-acked) {
				t.Errorf("the auditor's consumer has %d decisions to store, want %d", pending, held-acked)
			}
			if ci.Config.MaxAckPending != tt.wantMaxAckPending {
				t.Errorf("the auditor's max ack pending %d after Ensure, want %d (Ensure must not fight the auditor's settings)", ci.Config.MaxAckPending, tt.wantMaxAckPending)
			}
			// The rest reaches the auditor, and then leaves.
			ackDecisions(t, js, held-acked)
			stacktest.Eventually(t, 10*time.Second, "the stream empty once the auditor stored the rest", func() error {
				if n := decisionsState(t, js).State.Msgs; n != 0 {
					return fmt.Errorf("the stream holds %d decisions", n)
				}
				return nil
			})
		})
	}
}

// TestDecisionsBeforeAnyAuditorWait: on a stream made by Ensure, decisions
// stored before any auditor ran are kept for it, and a second Ensure keeps
// them too.
func TestDecisionsBeforeAnyAuditorWait(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	if err := bus.Ensure(testCtx(t), js, bus.Topology{}); err != nil {
		t.Fatal(err)
	}
	if err := publishDecisions(t, js, 5); err != nil {
		t.Fatal(err)
	}
	if err := bus.Ensure(testCtx(t), js, bus.Topology{}); err != nil {
		t.Fatal(err)
	}
	if n := decisionsState(t, js).State.Msgs; n != 5 {
		t.Fatalf("the stream holds %d decisions before any auditor ran, want 5", n)
	}
	ackDecisions(t, js, 5)
}

// TestCheckNeedsTheAuditConsumer: without the auditor's consumer an
// interest stream drops every decision at once, so Check fails.
func TestCheckNeedsTheAuditConsumer(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	ctx := testCtx(t)
	if err := bus.Ensure(ctx, js, bus.Topology{}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, events.StreamDecisions, events.ConsumerAuditDecisions); err != nil {
		t.Fatal(err)
	}
	err := bus.Check(ctx, js)
	if err == nil {
		t.Fatal("Check passes without the auditor's consumer of decisions")
	}
	if !errors.Is(err, bus.ErrNoAuditConsumer) {
		t.Errorf("Check: %v, want ErrNoAuditConsumer", err)
	}
	// Ensure brings it back.
	if err := bus.Ensure(ctx, js, bus.Topology{}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Check(ctx, js); err != nil {
		t.Errorf("Check after Ensure: %v", err)
	}
}

// TestFill is the share of a stream's limit it uses.
func TestFill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		maxBytes, maxMsgs int64
		bytes, msgs       uint64
		want              float64
	}{
		{"empty", 1000, 0, 0, 0, 0},
		{"bytes", 1000, 0, 900, 3, 0.9},
		{"messages fuller than bytes", 1000, 10, 100, 9, 0.9},
		{"bytes fuller than messages", 1000, 100, 950, 9, 0.95},
		{"no limits", -1, -1, 1 << 40, 1 << 30, 0},
		{"over the limit", 1000, 0, 1200, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info := &jetstream.StreamInfo{
				Config: jetstream.StreamConfig{MaxBytes: tt.maxBytes, MaxMsgs: tt.maxMsgs},
				State:  jetstream.StreamState{Bytes: tt.bytes, Msgs: tt.msgs},
			}
			if got := bus.Fill(info); got < tt.want-1e-9 || got > tt.want+1e-9 {
				t.Errorf("Fill = %v, want %v", got, tt.want)
			}
		})
	}
}

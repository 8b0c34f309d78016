package bus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/internal/bus"
)

// TestPublishAgreesWithJetStream publishes through bus.Publish and through
// jetstream's PublishMsg to a real stream and requires the same answers:
// acknowledgement, duplicate, a full stream's refusal, no stream at all.
func TestPublishAgreesWithJetStream(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	ctx := testCtx(t)
	nc := js.Conn()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "PUB", Subjects: []string{"pub.>"}, MaxMsgs: 4, Discard: jetstream.DiscardNew, Duplicates: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	msg := func(subject, id string) *nats.Msg {
		m := nats.NewMsg(subject)
		m.Data = []byte(`{"n":1}`)
		if id != "" {
			m.Header.Set(jetstream.MsgIDHeader, id)
		}
		return m
	}
	type publishFunc func(m *nats.Msg) (*jetstream.PubAck, error)
	ours := func(m *nats.Msg) (*jetstream.PubAck, error) { return bus.Publish(ctx, nc, m) }
	theirs := func(m *nats.Msg) (*jetstream.PubAck, error) { return js.PublishMsg(ctx, m) }
	for _, tc := range []struct {
		name    string
		subject string
		id      string
		wantSeq [2]uint64 // ours, theirs
		wantDup bool
	}{
		{name: "stored", subject: "pub.a", id: "m1", wantSeq: [2]uint64{1, 2}},
		{name: "another", subject: "pub.b", id: "m2", wantSeq: [2]uint64{3, 4}},
		{name: "duplicate", subject: "pub.a", id: "m1", wantSeq: [2]uint64{1, 1}, wantDup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, publish := range []publishFunc{ours, theirs} {
				id := tc.id + "-ours" // a duplicate repeats the id ours stored
				if !tc.wantDup {
					id = tc.id + []string{"-ours", "-theirs"}[i]
				}
				ack, err := publish(msg(tc.subject, id))
				if err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				if ack.Stream != "PUB" || ack.Sequence != tc.wantSeq[i] || ack.Duplicate != tc.wantDup {
					t.Fatalf("publish %d: ack %+v, want stream PUB seq %d duplicate %v", i, ack, tc.wantSeq[i], tc.wantDup)
				}
			}
		})
	}

	t.Run("full stream refuses with its API error", func(t *testing.T) {
		var errs [2]error
		for i, publish := range []publishFunc{ours, theirs} {
			_, errs[i] = publish(msg("pub.c", ""))
		}
		for i, err := range errs {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.Code == 0 {
				t.Fatalf("publish %d to a full stream: %v (%T), want the stream's API error", i, err, err)
			}
		}
		if errs[0].Error() != errs[1].Error() {
			t.Fatalf("errors differ: ours %q, jetstream's %q", errs[0], errs[1])
		}
	})

	t.Run("no stream", func(t *testing.T) {
		for i, publish := range []publishFunc{ours, theirs} {
			if _, err := publish(msg("nostream.x", "")); !errors.Is(err, jetstream.ErrNoStreamResponse) {
				t.Fatalf("publish %d to a subject without a stream: %v, want ErrNoStreamResponse", i, err)
			}
		}
	})
}

func TestParseAck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		data    string
		wantSeq uint64
		wantErr error
	}{
		{name: "ack", data: `{"stream":"S","seq":7}`, wantSeq: 7},
		{name: "duplicate", data: `{"stream":"S","seq":7,"duplicate":true}`, wantSeq: 7},
		{name: "not JSON", data: `+OK`, wantErr: jetstream.ErrInvalidJSAck},
		{name: "no stream", data: `{"seq":7}`, wantErr: jetstream.ErrInvalidJSAck},
		{name: "empty", data: ``, wantErr: jetstream.ErrInvalidJSAck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ack, err := bus.ParseAck([]byte(tc.data))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseAck(%q) error %v, want %v", tc.data, err, tc.wantErr)
			}
			if err == nil && ack.Sequence != tc.wantSeq {
				t.Fatalf("ParseAck(%q) seq %d, want %d", tc.data, ack.Sequence, tc.wantSeq)
			}
		})
	}
	_, err := bus.ParseAck([]byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 503 || apiErr.ErrorCode != 10077 {
		t.Fatalf("ParseAck of a refusal: %v, want the API error 503/10077", err)
	}
}

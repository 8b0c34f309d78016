package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/worker"
)

// testCtx is a context that ends with the test or after 30 s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queue is a stream of the test's own with one durable consumer.
type queue struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	cons     jetstream.Consumer
	name     string // the stream's name
	subject  string
	settler  *worker.Settler
	deadSubj string
}

// newJS runs an embedded JetStream server with the project's streams (the
// dead-letter stream among them).
func newJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, nc := stacktest.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// newQueue makes stream WT_<name> on subject wt.<name> and a consumer
// delivering each message at most maxDeliver times, with a settler for it.
func newQueue(t *testing.T, js jetstream.JetStream, name string, maxDeliver int) *queue {
	t.Helper()
	ctx := testCtx(t)
	q := &queue{js: js, name: "WT_" + name, subject: "wt." + strings.ToLower(name)}
	var err error
	q.stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     q.name,
		Subjects: []string{q.subject},
		Storage:  jetstream.MemoryStorage,
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", q.name, err)
	}
	q.cons, err = q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:    "test",
		AckPolicy:  jetstream.AckExplicitPolicy,
		AckWait:    30 * time.Second, // redeliveries come from naks, never from the ack wait
		MaxDeliver: maxDeliver,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	q.settler = &worker.Settler{
		JS:         js,
		Stream:     q.name,
		MaxDeliver: maxDeliver,
		Backoff:    []time.Duration{10 * time.Millisecond},
		Log:        stacktest.Logger(t),
	}
	q.deadSubj = events.SubjectDeadLetterPrefix + q.name
	return q
}

// publish stores a message and returns its stream sequence.
func (q *queue) publish(t *testing.T, body string) uint64 {
	t.Helper()
	ack, err := q.js.Publish(testCtx(t), q.subject, []byte(body))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ack.Sequence
}

// next waits up to wait for the next delivery; nil when none came.
func (q *queue) next(t *testing.T, wait time.Duration) jetstream.Msg {
	t.Helper()
	msg, err := q.cons.Next(jetstream.FetchMaxWait(wait))
	if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
		return nil
	}
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return msg
}

// mustNext waits for the next delivery and fails without one.
func (q *queue) mustNext(t *testing.T) jetstream.Msg {
	t.Helper()
	msg := q.next(t, 10*time.Second)
	if msg == nil {
		t.Fatal("no delivery within 10 s")
	}
	return msg
}

func delivered(t *testing.T, msg jetstream.Msg) uint64 {
	t.Helper()
	md, err := msg.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	return md.NumDelivered
}

// consumerInfo reads the consumer's state.
func (q *queue) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := q.cons.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// waitSettled waits until the consumer has nothing pending: every message
// acknowledged or terminated.
func (q *queue) waitSettled(t *testing.T, seq uint64) {
	t.Helper()
	stacktest.Eventually(t, 5*time.Second, "the message is settled", func() error {
		info := q.info(t)
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream < seq {
			return fmt.Errorf("%d ack pending, %d pending, ack floor %d (want %d)", info.NumAckPending, info.NumPending, info.AckFloor.Stream, seq)
		}
		return nil
	})
}

// noRedelivery checks that the consumer delivers nothing more.
func (q *queue) noRedelivery(t *testing.T) {
	t.Helper()
	if msg := q.next(t, 300*time.Millisecond); msg != nil {
		t.Errorf("message redelivered (delivery %d): %q", delivered(t, msg), msg.Data())
	}
	if info := q.info(t); info.NumRedelivered != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer: %d redelivered, %d pending acks; want 0 and 0", info.NumRedelivered, info.NumAckPending)
	}
}

// deadLetter returns the last dead letter of the queue's stream, nil when
// there is none.
func (q *queue) deadLetter(t *testing.T) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := testCtx(t)
	dl, err := q.js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	m, err := dl.GetLastMsgForSubject(ctx, q.deadSubj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("read dead letter: %v", err)
	}
	return m
}

func TestSettleAck(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	q := newQueue(t, js, "Ack", 5)
	seq := q.publish(t, "hello")
	msg := q.mustNext(t)
	q.settler.Settle(context.Background(), msg, nil)
	q.waitSettled(t, seq)
	q.noRedelivery(t)
	if dl := q.deadLetter(t); dl != nil {
		t.Errorf("an acked message was dead-lettered: %v", dl.Header)
	}
	// The message is still in the stream (limits retention): it was acked,
	// not removed by a Term.
	if _, err := q.stream.GetMsg(testCtx(t), seq); err != nil {
		t.Errorf("message %d: %v", seq, err)
	}
}

func TestSettleTransient(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	cause := errors.New("clickhouse down")
	tests := []struct {
		name     string
		backoff  []time.Duration
		err      error
		minDelay time.Duration
	}{
		{name: "settler back-off", backoff: []time.Duration{300 * time.Millisecond}, err: cause, minDelay: 300 * time.Millisecond},
		{name: "retry delay shorter than the back-off", backoff: []time.Duration{time.Hour}, err: worker.Retry(cause, 100*time.Millisecond), minDelay: 100 * time.Millisecond},
		{name: "retry delay longer than the back-off", backoff: []time.Duration{time.Millisecond}, err: worker.Retry(cause, 400*time.Millisecond), minDelay: 400 * time.Millisecond},
		{name: "wrapped retry", backoff: []time.Duration{time.Hour}, err: fmt.Errorf("handle: %w", worker.Retry(cause, 100*time.Millisecond)), minDelay: 100 * time.Millisecond},
		{name: "no back-off waits a second", backoff: nil, err: cause, minDelay: time.Second},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newQueue(t, js, fmt.Sprintf("Transient%d", i), 5)
			q.settler.Backoff = tt.backoff
			q.publish(t, "work")
			msg := q.mustNext(t)
			if n := delivered(t, msg); n != 1 {
				t.Fatalf("first delivery numbered %d", n)
			}
			start := time.Now()
			q.settler.Settle(context.Background(), msg, tt.err)
			again := q.mustNext(t)
			elapsed := time.Since(start)
			if n := delivered(t, again); n != 2 {
				t.Errorf("redelivery numbered %d, want 2", n)
			}
			if string(again.Data()) != "work" {
				t.Errorf("redelivered %q", again.Data())
			}
			if elapsed < tt.minDelay*9/10 {
				t.Errorf("redelivered after %v, want at least %v", elapsed, tt.minDelay)
			}
			if info := q.info(t); info.NumRedelivered != 1 {
				t.Errorf("consumer counts %d redelivered, want 1", info.NumRedelivered)
			}
			if dl := q.deadLetter(t); dl != nil {
				t.Errorf("a transient error was dead-lettered: %v", dl.Header)
			}
			_ = again.Ack()
		})
	}
}

func TestSettleTransientDoesNotComeBackEarly(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	q := newQueue(t, js, "Early", 5)
	q.settler.Backoff = []time.Duration{time.Hour}
	q.publish(t, "work")
	q.settler.Settle(context.Background(), q.mustNext(t), errors.New("transient"))
	if msg := q.next(t, 500*time.Millisecond); msg != nil {
		t.Errorf("redelivered before the one-hour back-off (delivery %d)", delivered(t, msg))
	}
	if info := q.info(t); info.NumAckPending != 1 {
		t.Errorf("%d pending acks, want the message still pending", info.NumAckPending)
	}
}

func TestSettleBackoffPerDelivery(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	q := newQueue(t, js, "PerDelivery", 10)
	q.settler.Backoff = []time.Duration{10 * time.Millisecond, 300 * time.Millisecond}
	q.publish(t, "work")
	var gaps []time.Duration
	msg := q.mustNext(t)
	for range 3 {
		start := time.Now()
		q.settler.Settle(context.Background(), msg, errors.New("transient"))
		msg = q.mustNext(t)
		gaps = append(gaps, time.Since(start))
	}
	if n := delivered(t, msg); n != 4 {
		t.Errorf("fourth delivery numbered %d", n)
	}
	// Delivery 1 waits Backoff[0]; 2 waits Backoff[1]; 3 repeats the last.
	if gaps[1] < 270*time.Millisecond || gaps[2] < 270*time.Millisecond {
		t.Errorf("gaps %v: the second back-off entry (300ms) is not used, or not repeated", gaps)
	}
	_ = msg.Ack()
}

func TestSettleDeadLetter(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	scrub := func(b []byte) []byte { return []byte(redact.String(string(b))) }
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		body       string
		maxDeliver int
		// transientFirst is how many deliveries fail transiently (with a short
		// Retry) before the last one fails with err.
		transientFirst int
		err            error
		ctx            context.Context
		scrub          func([]byte) []byte
		wantBody       string
		wantDelivered  uint64
	}{
		{
			name: "permanent", body: `{"not":"an event"`, maxDeliver: 5,
			err: worker.Permanent(errors.New("attempt is not valid JSON")), scrub: scrub,
			wantBody: `{"not":"an event"`, wantDelivered: 1,
		},
		{
			name: "wrapped permanent", body: "x", maxDeliver: 5,
			err: fmt.Errorf("handle: %w", worker.Permanent(errors.New("bad"))), scrub: scrub,
			wantBody: "x", wantDelivered: 1,
		},
		{
			name: "max deliver reached with a transient error", body: "y", maxDeliver: 3, transientFirst: 2,
			err: errors.New("still down"), scrub: scrub,
			wantBody: "y", wantDelivered: 3,
		},
		{
			name: "secret key in the error", body: "z", maxDeliver: 5,
			err: worker.Permanent(errors.New("key sk_live_abc does not open")), scrub: scrub,
			wantBody: "z", wantDelivered: 1,
		},
		{
			name: "body scrubbed", body: `{"key":"sk_live_SECRETBODY","token":"eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ1In0.c2ln"}`, maxDeliver: 5,
			err: worker.Permanent(errors.New("bad")), scrub: scrub,
			wantBody: `{"key":"sk_live_[redacted]","token":"[token redacted]"}`, wantDelivered: 1,
		},
		{
			name: "no scrub keeps the body", body: "raw body", maxDeliver: 5,
			err: worker.Permanent(errors.New("bad")), scrub: nil,
			wantBody: "raw body", wantDelivered: 1,
		},
		{
			name: "canceled context", body: "late", maxDeliver: 5,
			err: worker.Permanent(errors.New("bad")), ctx: canceled, scrub: scrub,
			wantBody: "late", wantDelivered: 1,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newQueue(t, js, fmt.Sprintf("Dead%d", i), tt.maxDeliver)
			q.settler.Scrub = tt.scrub
			seq := q.publish(t, tt.body)
			msg := q.mustNext(t)
			for range tt.transientFirst {
				q.settler.Settle(context.Background(), msg, worker.Retry(errors.New("transient"), 10*time.Millisecond))
				if dl := q.deadLetter(t); dl != nil {
					t.Fatalf("dead-lettered on delivery %d of %d: %v", delivered(t, msg), tt.maxDeliver, dl.Header)
				}
				msg = q.mustNext(t)
			}
			if n := delivered(t, msg); n != tt.wantDelivered {
				t.Fatalf("delivery %d, want %d", n, tt.wantDelivered)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			q.settler.Settle(ctx, msg, tt.err)

			dl := q.deadLetter(t)
			if dl == nil {
				t.Fatalf("no dead letter on %s", q.deadSubj)
			}
			if dl.Subject != "hissuno.deadletter."+q.name {
				t.Errorf("dead letter subject %q", dl.Subject)
			}
			if string(dl.Data) != tt.wantBody {
				t.Errorf("dead letter body %q, want %q", dl.Data, tt.wantBody)
			}
			wantErr := redact.String(tt.err.Error())
			if got := dl.Header.Get("Hissuno-Error"); got != wantErr {
				t.Errorf("Hissuno-Error %q, want %q", got, wantErr)
			}
			if got := dl.Header.Get("Hissuno-Error"); strings.Contains(got, "sk_live_abc") {
				t.Errorf("Hissuno-Error %q holds a secret key", got)
			}
			if got := dl.Header.Get("Hissuno-Source-Subject"); got != q.subject {
				t.Errorf("Hissuno-Source-Subject %q, want %q", got, q.subject)
			}
			if got := dl.Header.Get("Hissuno-Source-Sequence"); got != strconv.FormatUint(seq, 10) {
				t.Errorf("Hissuno-Source-Sequence %q, want %d", got, seq)
			}
			for _, v := range dl.Header {
				for _, s := range v {
					if strings.Contains(s, "SECRET") {
						t.Errorf("a dead-letter header holds a secret: %q", s)
					}
				}
			}
			q.waitSettled(t, seq)
			q.noRedelivery(t)
		})
	}
}

// TestSettleDeadLetterOnce: a message dead-lettered twice (its Term lost,
// say) is stored once in the dead-letter stream.
func TestSettleDeadLetterOnce(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	q := newQueue(t, js, "Once", 5)
	q.publish(t, "x")
	msg := q.mustNext(t)
	q.settler.Settle(context.Background(), msg, worker.Permanent(errors.New("bad")))
	q.settler.Settle(context.Background(), msg, worker.Permanent(errors.New("bad")))
	dl, err := js.Stream(testCtx(t), events.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dl.Info(testCtx(t), jetstream.WithSubjectFilter(q.deadSubj))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[q.deadSubj]; n != 1 {
		t.Errorf("%d dead letters stored, want 1", n)
	}
}

// TestSettleDeadLetterNotStored: when the dead letter cannot be stored, the
// message is retried, never dropped.
func TestSettleDeadLetterNotStored(t *testing.T) {
	t.Parallel()
	// A server without the project's streams: no dead-letter stream.
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	js, err := jetstream.New(stacktest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	q := newQueue(t, js, "NoDead", 5)
	q.publish(t, "keep me")
	msg := q.mustNext(t)
	q.settler.Settle(context.Background(), msg, worker.Permanent(errors.New("bad")))
	again := q.mustNext(t)
	if n := delivered(t, again); n != 2 || string(again.Data()) != "keep me" {
		t.Errorf("redelivery %d %q, want delivery 2 of the same message", n, again.Data())
	}
	_ = again.Ack()
}

func TestPermanentAndRetry(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
	}{
		{"plain", cause, false},
		{"permanent", worker.Permanent(cause), true},
		{"wrapped permanent", fmt.Errorf("x: %w", worker.Permanent(cause)), true},
		{"retry", worker.Retry(cause, time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errors.Is(tt.err, worker.ErrPermanent); got != tt.wantPermanent {
				t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", tt.err, got, tt.wantPermanent)
			}
			if !errors.Is(tt.err, cause) {
				t.Errorf("%v does not wrap its cause", tt.err)
			}
			if !strings.Contains(tt.err.Error(), "cause") {
				t.Errorf("%q does not say its cause", tt.err)
			}
		})
	}
	if got := worker.Retry(cause, time.Second).Error(); got != "cause" {
		t.Errorf("Retry(cause).Error() = %q, want the cause's text", got)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("handler failed")
	tests := []struct {
		name          string
		h             worker.Handler
		wantErr       error // errors.Is; nil: no error
		wantPermanent bool
		wantText      string
	}{
		{name: "ok", h: func(context.Context, jetstream.Msg) error { return nil }},
		{name: "error passes through", h: func(context.Context, jetstream.Msg) error { return sentinel }, wantErr: sentinel, wantText: "handler failed"},
		{name: "panic with a string", h: func(context.Context, jetstream.Msg) error { panic("boom") }, wantPermanent: true, wantText: "boom"},
		{name: "panic with an error", h: func(context.Context, jetstream.Msg) error { panic(sentinel) }, wantPermanent: true, wantText: "handler failed"},
		{name: "nil map write", h: func(context.Context, jetstream.Msg) error {
			var m map[string]int
			//lint:ignore SA5000 the handler panics on purpose: Recover must turn a runtime panic into a permanent error
			m["x"] = 1
			return nil
		}, wantPermanent: true, wantText: "nil map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := worker.Chain(tt.h, worker.Recover(stacktest.Logger(t)))
			err := h(context.Background(), nil)
			if tt.wantErr == nil && !tt.wantPermanent {
				if err != nil {
					t.Fatalf("error %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if got := errors.Is(err, worker.ErrPermanent); got != tt.wantPermanent {
				t.Errorf("errors.Is(%v, ErrPermanent) = %v, want %v", err, got, tt.wantPermanent)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
		})
	}
}

// TestRecoverDeadLetters runs a panicking handler through a settler: the
// message is dead-lettered at once.
func TestRecoverDeadLetters(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	q := newQueue(t, js, "Panic", 5)
	seq := q.publish(t, "crash")
	h := worker.Chain(func(context.Context, jetstream.Msg) error { panic("boom") }, worker.Recover(stacktest.Logger(t)))
	msg := q.mustNext(t)
	q.settler.Settle(context.Background(), msg, h(context.Background(), msg))
	dl := q.deadLetter(t)
	if dl == nil {
		t.Fatal("a panic was not dead-lettered")
	}
	if got := dl.Header.Get(events.HeaderError); !strings.Contains(got, "boom") {
		t.Errorf("Hissuno-Error %q does not say the panic", got)
	}
	q.waitSettled(t, seq)
	q.noRedelivery(t)
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, s)
	}
	mw := func(name string) worker.Middleware {
		return func(next worker.Handler) worker.Handler {
			return func(ctx context.Context, msg jetstream.Msg) error {
				record(name + " before")
				err := next(ctx, msg)
				record(name + " after")
				return err
			}
		}
	}
	h := worker.Chain(func(context.Context, jetstream.Msg) error {
		record("handler")
		return nil
	}, mw("a"), mw("b"), mw("c"))
	if err := h(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"a before", "b before", "c before", "handler", "c after", "b after", "a after"}
	if strings.Join(calls, ",") != strings.Join(want, ",") {
		t.Errorf("calls %q, want %q (the first middleware outermost)", calls, want)
	}

	// No middleware: the handler itself.
	calls = nil
	if err := worker.Chain(func(context.Context, jetstream.Msg) error { record("only"); return nil })(context.Background(), nil); err != nil || len(calls) != 1 {
		t.Errorf("Chain without middleware: %v, calls %q", err, calls)
	}
}

// TestSettleDeadLetterMultilineError: an error over several lines (as
// errors.Join makes) still makes a dead letter whose header says it.
func TestSettleDeadLetterMultilineError(t *testing.T) {
	t.Parallel()
	js := newJS(t)
	q := newQueue(t, js, "Multiline", 5)
	seq := q.publish(t, "x")
	cause := worker.Permanent(errors.Join(errors.New("first problem"), errors.New("second problem\r\nInjected: yes")))
	q.settler.Settle(context.Background(), q.mustNext(t), cause)
	dl := q.deadLetter(t)
	if dl == nil {
		t.Fatal("no dead letter for an error over several lines")
	}
	got := dl.Header.Get(events.HeaderError)
	if !strings.Contains(got, "first problem") || !strings.Contains(got, "second problem") {
		t.Errorf("Hissuno-Error %q does not hold the whole error", got)
	}
	if v := dl.Header.Get("Injected"); v != "" {
		t.Errorf("the error text injected a header: Injected: %q", v)
	}
	q.waitSettled(t, seq)
	q.noRedelivery(t)
}

// Package worker is the one consumer loop and handler shape of every
// JetStream consumer of Hissuno: Run (and RunBatches, for a handler of
// batches) pulls a durable consumer into a fixed pool of workers, each
// running a Handler of (ctx, message) returning an error, wrapped by
// middleware (Recover), and a settlement turns the error into the message's
// fate: nil → Ack; a transient error → NakWithDelay with back-off; a
// permanent error, or a transient one on the last delivery → a dead letter
// carrying the error, then Term. A message is never dropped silently, and
// the loop returns only when every goroutine it started has ended.
package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/redact"
)

// Handler handles one message. It must be idempotent: a message can be
// delivered more than once.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Middleware wraps a Handler.
type Middleware func(Handler) Handler

// ErrPermanent marks an error that no retry can fix (a message that cannot
// be decoded, say). Wrap it with Permanent.
var ErrPermanent = errors.New("permanent")

// Permanent marks err as permanent.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// ErrLeave marks a message its handler leaves unsettled: JetStream delivers
// it again after the consumer's ack wait, as it does when a process dies
// before it settles. Tests use it to play such a death.
var ErrLeave = errors.New("left unsettled")

// retryError asks for a redelivery after a given delay.
type retryError struct {
	err   error
	delay time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Retry marks err as transient, to be retried after delay rather than after
// the settler's back-off.
func Retry(err error, delay time.Duration) error { return &retryError{err: err, delay: delay} }

// Chain wraps h with middleware, the first outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Recover turns a panic in the handler into a permanent error, logged with
// its stack.
func Recover(log zerolog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, msg jetstream.Msg) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error().Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("handler panicked")
					err = Permanent(fmt.Errorf("handler panicked: %v", r))
				}
			}()
			return next(ctx, msg)
		}
	}
}

// Settler settles messages of one consumer.
type Settler struct {
	// JS publishes dead letters.
	JS jetstream.JetStream
	// Stream names the stream the messages come from (the dead-letter
	// subject's last token).
	Stream string
	// MaxDeliver is the consumer's MaxDeliver: on that delivery a transient
	// error is treated as permanent.
	MaxDeliver int
	// Backoff is the delay before the n-th redelivery after a transient error
	// (the last entry repeats).
	Backoff []time.Duration
	// Scrub removes secrets from a message body before it is dead-lettered;
	// nil keeps the body.
	Scrub func([]byte) []byte
	// Log receives one line per failure.
	Log zerolog.Logger
}

// Settle acks, naks or terminates msg according to err.
func (s *Settler) Settle(ctx context.Context, msg jetstream.Msg, err error) {
	if err == nil {
		if aerr := msg.Ack(); aerr != nil {
			s.Log.Warn().Err(aerr).Msg("ack failed; the message will be redelivered")
		}
		return
	}
	if errors.Is(err, ErrLeave) {
		return
	}
	delivered := uint64(1)
	if md, merr := msg.Metadata(); merr == nil {
		delivered = md.NumDelivered
	}
	if errors.Is(err, ErrPermanent) || (s.MaxDeliver > 0 && delivered >= uint64(s.MaxDeliver)) {
		s.deadLetter(ctx, msg, err, delivered)
		return
	}
	delay := s.delay(delivered)
	var re *retryError
	if errors.As(err, &re) {
		delay = re.delay
	}
	s.Log.Warn().Err(err).Uint64("delivered", delivered).Dur("retry_in", delay).Str("subject", msg.Subject()).Msg("handling failed; will retry")
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		s.Log.Warn().Err(nerr).Msg("nak failed; the message will be redelivered after the ack wait")
	}
}

func (s *Settler) delay(delivered uint64) time.Duration {
	if len(s.Backoff) == 0 {
		return time.Second
	}
	i := int(delivered) - 1
	if i >= len(s.Backoff) {
		i = len(s.Backoff) - 1
	}
	if i < 0 {
		i = 0
	}
	return s.Backoff[i]
}

// deadLetter publishes the message, scrubbed, with the error to the
// dead-letter stream, then terminates it. If the dead letter cannot be
// stored the message is nak'ed instead: it is never dropped.
func (s *Settler) deadLetter(ctx context.Context, msg jetstream.Msg, cause error, delivered uint64) {
	body := msg.Data()
	if s.Scrub != nil {
		body = s.Scrub(body)
	}
	dl := nats.NewMsg(events.SubjectDeadLetterPrefix + s.Stream)
	dl.Data = body
	dl.Header.Set(events.HeaderError, redact.String(cause.Error()))
	dl.Header.Set(events.HeaderSourceSubject, msg.Subject())
	if md, err := msg.Metadata(); err == nil {
		seq := strconv.FormatUint(md.Sequence.Stream, 10)
		dl.Header.Set(events.HeaderSourceSequence, seq)
		dl.Header.Set(events.HeaderMsgID, "dl-"+s.Stream+"-"+seq)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.JS.PublishMsg(pctx, dl); err != nil {
		s.Log.Error().Err(err).AnErr("cause", cause).Msg("dead letter not stored; the message will be retried")
		_ = msg.NakWithDelay(s.delay(delivered))
		return
	}
	metrics.DeadLetters.WithLabelValues(s.Stream).Inc()
	s.Log.Error().Err(cause).Uint64("delivered", delivered).Str("subject", msg.Subject()).Msg("message dead-lettered")
	if err := msg.Term(); err != nil {
		s.Log.Warn().Err(err).Msg("term failed")
	}
}

package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/nats-io/nats.go"
)

// pending is an attempt waiting for its verifier's reply.
type pending struct {
	msg    *nats.Msg    // the attempt as published, for a republish
	done   chan outcome // the reply, or the stream's refusal
	acked  atomic.Bool  // JetStream acknowledged storing the attempt
	sentAt atomic.Int64 // last publish, Unix ns
}

// outcome ends a pending attempt: the verifier's reply, or the stream's
// refusal to store it.
type outcome struct {
	reply []byte
	err   error
	// at is when the reply arrived.
	at time.Time
}

// send delivers o unless an outcome is already there: the first one counts.
func (p *pending) send(o outcome) {
	select {
	case p.done <- o:
	default:
	}
}

func (in *Ingress) onReply(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, in.replyPrefix)
	in.mu.Lock()
	p, ok := in.waiting[id]
	delete(in.waiting, id)
	in.mu.Unlock()
	if ok {
		p.send(outcome{reply: m.Data, at: time.Now()})
	}
}

// onAck handles JetStream's answer to an attempt's publish. The request
// does not wait for it (the verifier's reply proves the attempt was
// stored); it only stops republishing, or ends the request when the stream
// refused the attempt. "No responders" (the stream has no leader for a
// moment) republishes after noResponderWait.
func (in *Ingress) onAck(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, in.ackPrefix)
	in.mu.Lock()
	p, ok := in.waiting[id]
	in.mu.Unlock()
	if !ok || p.acked.Load() {
		return
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		p.sentAt.Store(time.Now().Add(noResponderWait - publishTry).UnixNano())
		return
	}
	if _, err := bus.ParseAck(m.Data); err != nil {
		in.log.Warn().Err(err).Str("attempt", id).Msg("attempt not queued")
		p.send(outcome{err: err})
		return
	}
	p.acked.Store(true)
}

// Republishing: an attempt without JetStream's acknowledgement after
// publishTry (a publish sent to a stream leader that is stepping down is
// dropped unanswered), or noResponderWait after "no responders", is
// published again, until its request ends. Its Nats-Msg-Id makes a repeat
// a no-op.
const (
	publishTry      = time.Second
	noResponderWait = 250 * time.Millisecond
	sweepEvery      = 50 * time.Millisecond
)

// republish sweeps the pending attempts until ctx ends.
func (in *Ingress) republish(ctx context.Context) {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	var again []*pending
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		again = again[:0]
		in.mu.Lock()
		for _, p := range in.waiting {
			if !p.acked.Load() && now-p.sentAt.Load() >= int64(publishTry) {
				again = append(again, p)
			}
		}
		in.mu.Unlock()
		var failed int
		var lastErr error
		for _, p := range again {
			p.sentAt.Store(now)
			if err := in.cfg.NATS.PublishMsg(p.msg); err != nil {
				failed, lastErr = failed+1, err
			}
		}
		if failed > 0 {
			// One line per sweep, not one per attempt: during an outage every
			// pending attempt fails alike.
			in.log.Warn().Err(lastErr).Int("attempts", failed).Msg("attempts not republished; retrying until their deadlines")
		}
	}
}

// errNotQueued answers an attempt JetStream did not store.
var errNotQueued = errors.New("the attempt could not be queued; retry shortly")

// roundTrip publishes the attempt and waits for the verifier's reply until
// the deadline, and returns the reply and when it arrived. Its errors
// carry the HTTP status to answer. start is when the request's handling
// began (the latency budget's first hop ends at the publish).
func (in *Ingress) roundTrip(ctx context.Context, a *events.Attempt, start time.Time) ([]byte, time.Time, int, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return nil, time.Time{}, http.StatusInternalServerError, fmt.Errorf("attempt not encoded: %v", err)
	}
	msg := nats.NewMsg(in.subject)
	msg.Data = body
	msg.Reply = in.ackPrefix + a.AttemptID
	msg.Header.Set(events.HeaderMsgID, a.AttemptID)
	p := &pending{msg: msg, done: make(chan outcome, 1)}
	p.sentAt.Store(time.Now().UnixNano())
	in.mu.Lock()
	in.waiting[a.AttemptID] = p
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.waiting, a.AttemptID)
		in.mu.Unlock()
	}()

	if err := in.cfg.NATS.PublishMsg(msg); err != nil {
		in.log.Warn().Err(err).Str("attempt", a.AttemptID).Msg("attempt not queued")
		return nil, time.Time{}, http.StatusServiceUnavailable, errNotQueued
	}
	published := time.Now()
	metrics.IngressPublish.Observe(published.Sub(start).Seconds())
	timer := time.NewTimer(a.Deadline.Sub(published))
	defer timer.Stop()
	select {
	case o := <-p.done:
		if o.err != nil {
			return nil, time.Time{}, http.StatusServiceUnavailable, errNotQueued
		}
		metrics.IngressReplyWait.Observe(o.at.Sub(published).Seconds())
		return o.reply, o.at, 0, nil
	case <-timer.C:
		if !p.acked.Load() {
			in.log.Warn().Str("attempt", a.AttemptID).Msg("attempt not queued: no acknowledgement from JetStream before the deadline")
			return nil, time.Time{}, http.StatusServiceUnavailable, errNotQueued
		}
		return nil, time.Time{}, http.StatusServiceUnavailable, fmt.Errorf("no verifier answered within %s; retry shortly", in.cfg.Deadline)
	case <-ctx.Done():
		return nil, time.Time{}, 499, errors.New("the client went away")
	}
}

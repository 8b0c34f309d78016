package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/authz"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/worker"
)

// staleWait bounds how long an attempt waits for the view to catch up with
// an announced change before it is handed back (within the handling's own
// budget); staleRetry is how soon it is then tried again.
const (
	staleWait  = 5 * time.Second
	staleRetry = time.Second
)

// handle decides one attempt: decide, store the decision (waiting for its
// persistence ack), then reply if the ingress still waits.
func (v *Verifier) handle(ctx context.Context, msg jetstream.Msg) error {
	taken := time.Now()
	ctx, cancel := context.WithTimeout(ctx, handleBudget(v.cfg.AckWait))
	defer cancel()
	var a events.Attempt
	// By the schema's exact key names: other ingresses publish attempts.
	if err := events.Unmarshal(msg.Data(), &a); err != nil {
		return worker.Permanent(fmt.Errorf("attempt is not valid JSON: %w", err))
	}
	if a.SchemaVersion != events.SchemaVersion || a.AttemptID == "" {
		return worker.Permanent(fmt.Errorf("attempt %q: schema version %d or attempt id unsupported", a.AttemptID, a.SchemaVersion))
	}
	md, err := msg.Metadata()
	if err != nil {
		return worker.Permanent(fmt.Errorf("attempt %q refused: no stream metadata: %w", clip(a.AttemptID), err))
	}
	if err := checkProvenance(&a, msg, md); err != nil {
		return worker.Permanent(fmt.Errorf("attempt %q refused: %w", clip(a.AttemptID), err))
	}
	if md.NumDelivered == 1 {
		// A redelivery's wait is the ack wait's, not the queue's.
		metrics.AttemptQueued.Observe(taken.Sub(md.Timestamp).Seconds())
	}
	dec, ok := v.decide(ctx, &a)
	metrics.Decide.Observe(time.Since(taken).Seconds())
	if !ok {
		// An invalidation announced a change the watch has not brought yet,
		// the connection came back and the view is catching up, or the
		// verifier stalled past its freshness lease: decide nothing for
		// this project until the view is current.
		return worker.Retry(errStale, staleRetry)
	}
	ev := authz.DecisionEvent(&a, dec, v.cfg.Instance)
	body, err := json.Marshal(ev)
	if err != nil {
		return worker.Permanent(fmt.Errorf("encode decision: %w", err))
	}
	out := nats.NewMsg(events.SubjectDecisions)
	out.Data = body
	out.Header.Set(events.HeaderMsgID, ev.DecisionID)
	pctx, cancel := context.WithTimeout(ctx, v.cfg.PublishTimeout)
	storing := time.Now()
	ack, err := bus.Publish(pctx, v.cfg.NATS, out)
	cancel()
	metrics.DecisionStore.Observe(time.Since(storing).Seconds())
	if err != nil {
		return fmt.Errorf("store decision %s: %w", ev.DecisionID, err)
	}
	if ack.Duplicate {
		// An earlier delivery stored the decision on this attempt, and the
		// browser may only ever see the stored one: this one, made later,
		// can differ (settings changed meanwhile). The earlier delivery
		// replied.
		return nil
	}
	metrics.Decisions.WithLabelValues(string(dec.Outcome), string(dec.Reason)).Inc()
	if !a.ReceivedAt.IsZero() {
		metrics.DecisionLatency.Observe(time.Since(a.ReceivedAt).Seconds())
	}
	if a.ReplyTo != "" && v.cfg.Clock().Before(a.Deadline) {
		if err := v.cfg.NATS.Publish(a.ReplyTo, body); err != nil {
			v.log.Warn().Err(err).Str("attempt", a.AttemptID).Msg("reply not sent")
		}
	}
	return nil
}

// checkProvenance refuses an attempt that is not what it claims to be:
// published on a subject other than its ingress's (NATS lets each source
// publish under its own name only, so the subject proves who sent it), or
// under a Nats-Msg-Id other than its id, with an id not of
// events.NewAttemptID's form or whose time is not its
// receivedAt, stored by JetStream outside events.AttemptWindow of its
// receivedAt (an old attempt id published again), replying anywhere but to
// its ingress, or with a client address that is not an IP address.
func checkProvenance(a *events.Attempt, msg jetstream.Msg, md *jetstream.MsgMetadata) error {
	if !events.ValidIngress(a.Ingress) || msg.Subject() != events.AttemptSubject(a.Ingress) {
		return fmt.Errorf("published on %q by an ingress other than the one it names (%q)", msg.Subject(), clip(a.Ingress))
	}
	if id := msg.Headers().Get(events.HeaderMsgID); id != a.AttemptID {
		// JetStream de-duplicates by this header: an attempt id stored
		// under another would be stored twice.
		return fmt.Errorf("its %s %q is not its attempt id", events.HeaderMsgID, clip(id))
	}
	idTime, ok := events.AttemptTime(a.AttemptID)
	if !ok {
		return errors.New("the attempt id is not att_<time><NUID>")
	}
	if !a.ReceivedAt.Truncate(time.Millisecond).Equal(idTime) {
		return fmt.Errorf("receivedAt %s is not the time its id carries (%s)", a.ReceivedAt.UTC().Format(time.RFC3339Nano), idTime.Format(time.RFC3339Nano))
	}
	if age := md.Timestamp.Sub(a.ReceivedAt); age > events.AttemptWindow || age < -events.AttemptClockSkew {
		return fmt.Errorf("stored %s after its receivedAt: outside [-%s, %s]; an attempt id is decided once", age.Round(time.Millisecond), events.AttemptClockSkew, events.AttemptWindow)
	}
	if a.ReplyTo != "" && a.ReplyTo != events.ReplySubject(a.Ingress, a.AttemptID) {
		return fmt.Errorf("replyTo %q is not its ingress's reply subject", clip(a.ReplyTo))
	}
	if a.ClientIP != "" {
		if _, err := netip.ParseAddr(a.ClientIP); err != nil {
			return fmt.Errorf("clientIp %q is not an IP address", clip(a.ClientIP))
		}
	}
	return nil
}

var errStale = errors.New("project view is behind an announced change")

// current returns the project as the view holds it once the view is not
// known to be behind for it and the freshness lease holds, waiting up to
// staleWait and never past ctx (the handling's budget); ok is false when it
// is still behind.
func (v *Verifier) current(ctx context.Context, id string) (p *authz.Project, ok bool) {
	deadline := time.Now().Add(staleWait)
	for {
		v.view.mu.RLock()
		changed := v.view.changed
		v.view.mu.RUnlock()
		p, stale := v.view.lookup(id)
		if !stale && v.lease.held() {
			return p, true
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, false
		}
		select {
		case <-changed:
		case <-time.After(min(wait, 50*time.Millisecond)):
		case <-ctx.Done():
			return nil, false
		}
	}
}

// decide makes the decision on a current view, waiting up to staleWait for
// one, and never past ctx. A decision counts only if, once made, the freshness lease still
// holds and the project it used is still the view's: a verifier paused
// between looking the project up and deciding would otherwise decide with
// what it held before the pause.
func (v *Verifier) decide(ctx context.Context, a *events.Attempt) (authz.Decision, bool) {
	deadline := time.Now().Add(staleWait)
	for time.Now().Before(deadline) {
		p, ok := v.current(ctx, a.ProjectID)
		if !ok {
			return authz.Decision{}, false
		}
		dec := v.decider.Decide(p, authz.Request{
			ProjectID:    a.ProjectID,
			Origin:       a.Origin,
			Token:        a.WidgetToken,
			UserID:       a.UserID,
			UserMetadata: a.UserMetadata,
		}, v.cfg.Clock())
		if q, stale := v.view.lookup(a.ProjectID); q == p && !stale && v.lease.held() {
			return dec, true
		}
	}
	return authz.Decision{}, false
}

// scrubAttempt replaces the token of a dead-lettered attempt by its
// fingerprint.
func scrubAttempt(b []byte) []byte {
	var a map[string]any
	if json.Unmarshal(b, &a) != nil {
		return []byte(redact.String(string(b)))
	}
	if tok, ok := a["widgetToken"].(string); ok {
		delete(a, "widgetToken")
		a["tokenFingerprint"] = redact.Fingerprint(tok)
	}
	out, err := json.Marshal(a)
	if err != nil {
		return []byte(redact.String(string(b)))
	}
	return out
}

// clip bounds client-provided text quoted in an error.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

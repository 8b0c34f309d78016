package rotator

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/hissuno/widgetauth/events"
)

// propagate broadcasts that a project changed at a KV revision, then asks
// every live verifier to confirm it holds that revision. It returns the
// verifiers that confirmed and those that did not in time. The broadcast
// only makes it fast: the KV revision is the truth, and a verifier that was
// asked refuses the project until its watch has brought the revision.
func (r *Rotator) propagate(ctx context.Context, projectID string, revision uint64, keyVersion int) (confirmed, unconfirmed []string) {
	inv, _ := json.Marshal(events.Invalidation{SchemaVersion: events.SchemaVersion, ProjectID: projectID, Revision: revision, KeyVersion: keyVersion})
	if err := r.cfg.NATS.Publish(events.SubjectInvalidate, inv); err != nil {
		r.log.Warn().Err(err).Msg("invalidation broadcast not sent; asking each verifier")
	}
	live := r.liveVerifiers(ctx)
	req, _ := json.Marshal(events.SyncRequest{ProjectID: projectID, Revision: revision})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, instance := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := r.askSync(ctx, instance, req)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				confirmed = append(confirmed, instance)
			} else {
				unconfirmed = append(unconfirmed, instance)
			}
		}()
	}
	wg.Wait()
	slices.Sort(confirmed)
	slices.Sort(unconfirmed)
	return confirmed, unconfirmed
}

func (r *Rotator) askSync(ctx context.Context, instance string, req []byte) bool {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConfirmTimeout)
	defer cancel()
	m, err := r.cfg.NATS.RequestWithContext(ctx, events.SyncSubject(instance), req)
	if err != nil {
		return false
	}
	var rep events.SyncReply
	return json.Unmarshal(m.Data, &rep) == nil && rep.OK
}

// heartbeatsLive is how long a verifier counts as alive after its last
// heartbeat: three missed heartbeats.
const heartbeatsLive = 3 * events.HeartbeatEvery

// heartbeats remembers when each verifier was last heard from.
type heartbeats struct {
	mu   sync.Mutex
	seen map[string]time.Time
	// since is when the rotator began to listen: until a whole heartbeat
	// period has passed, it has not heard every live verifier yet.
	since time.Time
}

// listening marks the start of listening to heartbeats.
func (h *heartbeats) listening() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since = time.Now()
}

// warm waits, until ctx ends, for the rotator to have listened a whole
// heartbeat period (and a margin for a heartbeat in flight): a verifier
// alive then has been heard from, even one that answers discovery too late.
func (h *heartbeats) warm(ctx context.Context) {
	h.mu.Lock()
	wait := time.Until(h.since.Add(events.HeartbeatEvery + heartbeatMargin))
	h.mu.Unlock()
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// heartbeatMargin covers a heartbeat on its way when the period ends.
const heartbeatMargin = 250 * time.Millisecond

func (h *heartbeats) onHeartbeat(m *nats.Msg) {
	var hb events.Heartbeat
	if json.Unmarshal(m.Data, &hb) != nil || hb.Verifier == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hb.Leaving {
		delete(h.seen, hb.Verifier)
		return
	}
	if h.seen == nil {
		h.seen = map[string]time.Time{}
	}
	h.seen[hb.Verifier] = time.Now()
}

// live lists the verifiers heard from within heartbeatsLive, and forgets
// the others.
func (h *heartbeats) live() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for v, at := range h.seen {
		if time.Since(at) < heartbeatsLive {
			out = append(out, v)
		} else {
			delete(h.seen, v)
		}
	}
	return out
}

// liveVerifiers are the verifiers a change must be confirmed by: those
// heard from recently (a stalled verifier that does not answer discovery in
// time is among them, and so is named if it does not confirm) and those
// that answer discovery now (one that started a moment ago).
func (r *Rotator) liveVerifiers(ctx context.Context) []string {
	r.heartbeats.warm(ctx)
	known := r.heartbeats.live()
	live := r.discoverVerifiers(ctx, known)
	for _, v := range known {
		if !slices.Contains(live, v) {
			live = append(live, v)
		}
	}
	return live
}

// discoverVerifiers pings the verifier micro service and gathers the
// instances that answer, until every verifier in known has and none has
// answered for DiscoveryIdle, or DiscoveryIdle has passed since the last
// answer when known is empty.
func (r *Rotator) discoverVerifiers(ctx context.Context, known []string) []string {
	inbox := r.cfg.NATS.NewRespInbox()
	replies := make(chan *nats.Msg, 256)
	sub, err := r.cfg.NATS.ChanSubscribe(inbox, replies)
	if err != nil {
		r.log.Warn().Err(err).Msg("verifier discovery failed")
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	subject, _ := micro.ControlSubject(micro.PingVerb, events.ServiceVerifier, "")
	if err := r.cfg.NATS.PublishRequest(subject, inbox, nil); err != nil {
		r.log.Warn().Err(err).Msg("verifier discovery failed")
		return nil
	}
	var found []string
	// The first answer may take a round trip; later ones come together.
	idle := time.NewTimer(r.cfg.DiscoveryIdle * 4)
	defer idle.Stop()
	for {
		select {
		case m := <-replies:
			var p micro.Ping
			if json.Unmarshal(m.Data, &p) == nil && p.Metadata["instance"] != "" && !slices.Contains(found, p.Metadata["instance"]) {
				found = append(found, p.Metadata["instance"])
			}
			if len(known) > 0 && containsAll(found, known) {
				// Every verifier known alive answered: a new one would have
				// answered with them. Heartbeats cover the slow.
				return found
			}
			idle.Reset(r.cfg.DiscoveryIdle)
		case <-idle.C:
			return found
		case <-ctx.Done():
			return found
		}
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

package verifier

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
)

// syncWait bounds how long a verifier waits for its watch to bring a
// revision before it answers a sync request.
const syncWait = 2 * time.Second

// heartbeat tells the rotator, now and every events.HeartbeatEvery, that
// this verifier is alive, until ctx ends; the last one says it leaves.
func (v *Verifier) heartbeat(ctx context.Context) {
	t := time.NewTicker(events.HeartbeatEvery)
	defer t.Stop()
	send := func(leaving bool) {
		b, _ := json.Marshal(events.Heartbeat{SchemaVersion: events.SchemaVersion, Verifier: v.cfg.Instance,
			Revision: v.view.lastRev.Load(), Time: time.Now().UTC(), Leaving: leaving})
		_ = v.cfg.NATS.Publish(events.SubjectHeartbeat, b)
	}
	for {
		send(false)
		select {
		case <-ctx.Done():
			// Stopping: rotations need not wait for this verifier.
			send(true)
			_ = v.cfg.NATS.Flush()
			return
		case <-t.C:
		}
	}
}

// registerService registers the verifier as a NATS micro service with a
// sync endpoint of its own: the rotator asks each live verifier, found by
// discovery, to confirm it holds a change.
func (v *Verifier) registerService() (micro.Service, error) {
	svc, err := bus.AddService(v.cfg.NATS, bus.Service{
		Name:        events.ServiceVerifier,
		Role:        "verifier",
		Instance:    v.cfg.Instance,
		Description: "Decides widget connection attempts",
		Status: func() any {
			return map[string]any{"instance": v.cfg.Instance, "ready": v.view.ready.Load(), "projects": v.view.size(), "revision": v.view.lastRev.Load()}
		},
	})
	if err != nil {
		return nil, err
	}
	err = svc.AddEndpoint("sync", micro.HandlerFunc(v.onSync),
		micro.WithEndpointSubject(events.SyncSubject(v.cfg.Instance)),
		micro.WithEndpointMetadata(map[string]string{"instance": v.cfg.Instance}))
	if err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("verifier: micro endpoint: %w", err)
	}
	return svc, nil
}

// onSync confirms, within syncWait, that the view holds a project at the
// revision asked for.
func (v *Verifier) onSync(r micro.Request) {
	var req events.SyncRequest
	if err := json.Unmarshal(r.Data(), &req); err != nil {
		_ = r.Error("400", "sync request is not valid JSON", nil)
		return
	}
	v.view.require(req.ProjectID, req.Revision)
	ctx, cancel := context.WithTimeout(context.Background(), syncWait)
	ok := v.view.waitFor(ctx, req.Revision)
	cancel()
	_ = r.RespondJSON(events.SyncReply{Verifier: v.cfg.Instance, Revision: v.view.revision(req.ProjectID), OK: ok})
}

// onInvalidate marks a project stale until the watch brings the announced
// revision.
func (v *Verifier) onInvalidate(m *nats.Msg) {
	var inv events.Invalidation
	if err := json.Unmarshal(m.Data, &inv); err != nil || inv.ProjectID == "" {
		v.log.Warn().Msg("invalidation not understood; ignored")
		return
	}
	v.view.require(inv.ProjectID, inv.Revision)
}

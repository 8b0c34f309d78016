package console

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/redact"
)

// accountEvent is an admin event the console records itself (an account.*
// or token.* kind): who did it, the account or token it concerns, and the
// browser it came from.
type accountEvent struct {
	kind    events.AdminEventKind
	actor   string
	account string
	reason  string
	project string
	client  client
}

// record publishes an account or token event to the admin stream, where the
// auditor stores it, and waits for JetStream to have it.
func (c *Console) record(ctx context.Context, e accountEvent) error {
	id := "adm_evt_" + nuid.Next()
	ev := events.AdminEvent{
		SchemaVersion: events.SchemaVersion,
		EventID:       id,
		Kind:          e.kind,
		Actor:         redact.String(e.actor),
		Account:       redact.String(e.account),
		Reason:        redact.String(clip(e.reason, events.MaxReasonBytes)),
		ClientIP:      redact.String(e.client.ip),
		UserAgent:     redact.String(e.client.userAgent),
		Time:          c.cfg.Clock().UTC(),
		ProjectID:     e.project,
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode admin event: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.js.Publish(ctx, e.kind.Subject(), b, jetstream.WithMsgID(id)); err != nil {
		c.log.Error().Err(err).Str("kind", string(e.kind)).Msg("admin event not recorded")
		return fmt.Errorf("record %s: %w", e.kind, err)
	}
	return nil
}

// denied records that p asked for something it may not do (a role that
// lacks the permission, a project outside its list).
func (c *Console) denied(ctx context.Context, p *principal, why string) {
	c.log.Info().Str("actor", redact.String(p.actor)).Str("why", why).Msg("access denied")
	_ = c.record(ctx, accountEvent{kind: events.AdminAccessDenied, actor: p.actor, account: p.account, reason: why, client: p.client})
}

package authz

import (
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/redact"
)

// DecisionEvent is the event recording a decision on an attempt: the
// audit record, and the reply the ingress answers from. Every string a
// client or an ingress chose goes through redact.String, so that a secret
// key or a JWT put in an Origin, a projectId, a userId, userMetadata or a
// User-Agent is never stored; the decision was made on the raw values. The
// attempt and decision ids are kept as they are: they identify the record.
func DecisionEvent(a *events.Attempt, d Decision, instance string) events.Decision {
	ev := events.Decision{
		SchemaVersion:    events.SchemaVersion,
		DecisionID:       events.DecisionIDFor(a.AttemptID),
		AttemptID:        a.AttemptID,
		Time:             d.ServerTime.UTC(),
		ReceivedAt:       a.ReceivedAt.UTC(),
		ProjectID:        redact.String(a.ProjectID),
		Decision:         d.Outcome,
		Reason:           d.Reason,
		Session:          d.Session,
		UserID:           redact.String(d.UserID),
		UserVerified:     d.UserVerified,
		UserMetadata:     redact.Map(d.UserMetadata),
		ClaimedUserID:    redact.String(d.ClaimedUserID),
		Origin:           redact.String(a.Origin),
		TokenFingerprint: d.TokenFingerprint,
		KeyVersion:       d.KeyVersion,
		SkewSeconds:      d.SkewSeconds,
		Verifier:         redact.String(instance),
		Ingress:          redact.String(a.Ingress),
		ClientIP:         redact.String(a.ClientIP),
		UserAgent:        redact.String(a.UserAgent),
	}
	if d.Err != nil {
		ev.Message = redact.String(d.Message())
	}
	if d.Reason == events.ReasonTokenExpired || d.Reason == events.ReasonTokenNotYetValid {
		ev.LeewaySeconds = int64(Leeway / time.Second)
	}
	if !a.ReceivedAt.IsZero() {
		ev.LatencyMicros = max(d.ServerTime.Sub(a.ReceivedAt).Microseconds(), 0)
	}
	return ev
}

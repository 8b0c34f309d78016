package stacktest

import (
	"fmt"
	"time"

	"github.com/hissuno/widgetauth/events"
)

// SampleDecision is the realistic decision event number i of a run, made at.
// The outcome cycles through authenticated and anonymous accepts, a bad
// signature and a blocked origin.
func SampleDecision(run string, i int, at time.Time) events.Decision {
	attempt := fmt.Sprintf("att_%s_%06d", run, i)
	d := events.Decision{
		SchemaVersion: events.SchemaVersion,
		DecisionID:    events.DecisionIDFor(attempt),
		AttemptID:     attempt,
		Time:          at.UTC(),
		ReceivedAt:    at.Add(-1500 * time.Microsecond).UTC(),
		ProjectID:     fmt.Sprintf("proj_%d", i%3),
		Origin:        "https://app.example.com",
		Verifier:      "verifier-1",
		Ingress:       "ingress-1",
		LatencyMicros: 1500,
		ClientIP:      "203.0.113.7",
		UserAgent:     "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
	}
	fp := fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15)
	switch i % 4 {
	case 0:
		d.Decision, d.Session = events.OutcomeAccept, events.SessionAuthenticated
		d.UserID, d.UserVerified, d.KeyVersion, d.TokenFingerprint = fmt.Sprintf("user-%d", i%37), true, 1, fp
		d.UserMetadata = map[string]string{"plan": "pro", "email": fmt.Sprintf("user-%d@example.com", i%37)}
	case 1:
		d.Decision, d.Reason, d.TokenFingerprint = events.OutcomeUnauthorized, events.ReasonTokenBadSignature, fp
		d.Message = "the token's signature does not match the project's key"
	case 2:
		d.Decision, d.Reason, d.Origin = events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed, "https://evil.example"
		d.Message = "origin https://evil.example is not allowed"
	default:
		d.Decision, d.Session, d.UserID = events.OutcomeAccept, events.SessionAnonymous, fmt.Sprintf("visitor-%d", i)
	}
	return d
}

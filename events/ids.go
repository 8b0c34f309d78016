package events

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"
)

// Attempt ids carry the time the attempt was received: "att_", the Unix
// time in milliseconds as attemptTimeDigits lower-case hex digits, then a
// NUID. A verifier checks that an attempt's receivedAt is that time and
// that JetStream stored the attempt within AttemptWindow of it: an attempt
// id published again after the streams' duplicate window is refused, so an
// attempt is decided at most once, at any age.
const (
	attemptIDPrefix   = "att_"
	attemptTimeDigits = 11
)

// Bounds of an attempt's receivedAt, by the NATS server's clock when the
// attempt was stored: at most AttemptClockSkew ahead of it, and at most
// AttemptWindow behind (the ingress republishes an unacknowledged attempt
// until its deadline, which must stay below AttemptWindow). Their sum must
// stay below the streams' duplicate window (bus.Topology), so that the
// same attempt id stored twice is always a duplicate JetStream drops.
const (
	AttemptWindow    = 45 * time.Second
	AttemptClockSkew = 30 * time.Second
)

// NewAttemptID makes the id of an attempt received at t.
func NewAttemptID(t time.Time) string {
	ms := strconv.FormatInt(t.UnixMilli(), 16)
	var b strings.Builder
	b.Grow(len(attemptIDPrefix) + attemptTimeDigits + 22)
	b.WriteString(attemptIDPrefix)
	for i := len(ms); i < attemptTimeDigits; i++ {
		b.WriteByte('0')
	}
	b.WriteString(ms)
	b.WriteString(nuid.Next())
	return b.String()
}

// AttemptTime is the time an attempt id of NewAttemptID's form carries; ok
// is false for an id of any other form.
func AttemptTime(id string) (t time.Time, ok bool) {
	rest, found := strings.CutPrefix(id, attemptIDPrefix)
	if !found || len(rest) < attemptTimeDigits+16 || len(rest) > attemptTimeDigits+64 {
		return time.Time{}, false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return time.Time{}, false
		}
	}
	ms, err := strconv.ParseInt(rest[:attemptTimeDigits], 16, 64)
	if err != nil || ms < 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

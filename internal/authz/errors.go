package authz

import (
	"errors"

	"github.com/hissuno/widgetauth/events"
)

// The refusal sentinels. Each maps one-to-one onto a reason code of
// DESIGN.md; golang-jwt's errors are translated into them inside this
// package, so no caller needs golang-jwt to branch on a refusal.
var (
	ErrUnknownProject     = errors.New("unknown project")
	ErrOriginNotAllowed   = errors.New("origin not allowed")
	ErrOriginMissing      = errors.New("origin missing")
	ErrTokenRequired      = errors.New("token required")
	ErrTokenMalformed     = errors.New("token malformed")
	ErrTokenAlgNotAllowed = errors.New("token algorithm not allowed")
	ErrTokenBadSignature  = errors.New("token signature does not verify")
	ErrTokenExpired       = errors.New("token expired")
	ErrTokenNotYetValid   = errors.New("token not yet valid")
	ErrTokenMissingExp    = errors.New("token has no exp")
	ErrTokenInvalidClaims = errors.New("token claims invalid")
	ErrTokenTooLarge      = errors.New("token too large")
	ErrTokenRevoked       = errors.New("token revoked")
)

var reasons = map[error]events.Reason{
	ErrUnknownProject:     events.ReasonUnknownProject,
	ErrOriginNotAllowed:   events.ReasonOriginNotAllowed,
	ErrOriginMissing:      events.ReasonOriginMissing,
	ErrTokenRequired:      events.ReasonTokenRequired,
	ErrTokenMalformed:     events.ReasonTokenMalformed,
	ErrTokenAlgNotAllowed: events.ReasonTokenAlgNotAllowed,
	ErrTokenBadSignature:  events.ReasonTokenBadSignature,
	ErrTokenExpired:       events.ReasonTokenExpired,
	ErrTokenNotYetValid:   events.ReasonTokenNotYetValid,
	ErrTokenMissingExp:    events.ReasonTokenMissingExp,
	ErrTokenInvalidClaims: events.ReasonTokenInvalidClaims,
	ErrTokenTooLarge:      events.ReasonTokenTooLarge,
	ErrTokenRevoked:       events.ReasonTokenRevoked,
}

// ReasonOf returns the reason code of a refusal error: the code of the
// sentinel it wraps, or "" for nil. An error that wraps no sentinel is not a
// refusal this package made; ReasonOf reports token_malformed for it rather
// than let it pass as an accept.
func ReasonOf(err error) events.Reason {
	if err == nil {
		return ""
	}
	for s, r := range reasons {
		if errors.Is(err, s) {
			return r
		}
	}
	return events.ReasonTokenMalformed
}

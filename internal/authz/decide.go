package authz

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/origin"
	"github.com/hissuno/widgetauth/internal/redact"
)

// Key is one secret key of a project. Secret is the raw HMAC key: the whole
// `sk_live_…` string as bytes, exactly as customers' token minters use it.
type Key struct {
	// Version numbers the project's keys: 1 for the first, one more at each
	// rotation. A token's `kid` header, when present, names it.
	Version int
	// Secret is the HMAC key.
	Secret []byte
	// ValidUntil is the end of a previous key's grace period, by server
	// time. Zero for the current key, which has no end.
	ValidUntil time.Time
}

// Project is everything the decision needs to know of one project.
type Project struct {
	// ID is the projectId widgets send.
	ID string
	// RequireToken refuses attempts without a token (token_required).
	RequireToken bool
	// Origins is the allowlist; empty allows every origin, a missing one too.
	Origins []origin.Pattern
	// Keys are the current key and any previous keys still in grace.
	Keys []Key
	// RevokedBefore maps a userId to the time its tokens were revoked: a
	// token of that user issued before it, or without iat, is refused.
	RevokedBefore map[string]time.Time
}

// Request is one connection attempt as the decision sees it.
type Request struct {
	// ProjectID is the projectId the widget sent.
	ProjectID string
	// Origin is the raw Origin header; "" when there was none.
	Origin string
	// Token is the widget token ("" when none was sent), already taken out
	// of an `Authorization: Bearer` header where it came that way.
	Token string
	// UserID and UserMetadata are what the client claims; never trusted.
	UserID       string
	UserMetadata map[string]string
}

// Decision is the outcome of one attempt.
type Decision struct {
	// Outcome is accept, unauthorized or origin_blocked.
	Outcome events.Outcome
	// Reason is the refusal code; "" for an accept.
	Reason events.Reason
	// Err is the refusal sentinel (wrapped with detail); nil for an accept.
	Err error
	// Session is authenticated or anonymous for an accept, "" otherwise.
	Session events.Session
	// UserID and UserMetadata are the token's claims in an authenticated
	// session, the client's in an anonymous one.
	UserID       string
	UserMetadata map[string]string
	// UserVerified is true when UserID comes from a verified token.
	UserVerified bool
	// ClaimedUserID is the client's userId when it differs from the token's.
	ClaimedUserID string
	// KeyVersion is the version of the key that verified the token; 0 when
	// no token was verified.
	KeyVersion int
	// TokenFingerprint identifies the token without revealing it.
	TokenFingerprint string
	// ServerTime is the time the decision was made at.
	ServerTime time.Time
	// SkewSeconds is, for token_expired, how many seconds past exp the
	// server's clock is; for token_not_yet_valid, how many seconds before
	// nbf or iat. Zero otherwise.
	SkewSeconds int64
}

// Decider makes decisions. It holds a bounded cache of verified tokens, so
// one Decider should serve a whole verifier; it is safe for concurrent use.
type Decider struct {
	cache   *tokenCache
	origins origin.Cache
}

// DefaultCacheEntries is the default bound of the verified-token cache.
const DefaultCacheEntries = 1 << 16

// NewDecider returns a Decider whose cache holds at most cacheEntries
// verified tokens; zero or less disables the cache.
func NewDecider(cacheEntries int) *Decider {
	return &Decider{cache: newTokenCache(cacheEntries)}
}

// Decide applies DESIGN.md's decision rules, in order: unknown project,
// origin, token. p is nil when the project is unknown. now is the server's
// clock; Decide does no I/O and reads no clock of its own.
func (d *Decider) Decide(p *Project, req Request, now time.Time) Decision {
	dec := Decision{ServerTime: now}
	var sum [sha256.Size]byte
	if req.Token != "" {
		sum = sha256.Sum256([]byte(req.Token))
		dec.TokenFingerprint = redact.FingerprintOf(sum)
	}
	if p == nil {
		return dec.refuse(fmt.Errorf("%w: no project has id %q", ErrUnknownProject, clip(req.ProjectID)))
	}
	if err := checkOriginWith(p.Origins, req.Origin, d.origins.Parse); err != nil {
		return dec.refuse(err)
	}
	if req.Token == "" {
		if p.RequireToken {
			return dec.refuse(fmt.Errorf("%w: the project requires a widget token", ErrTokenRequired))
		}
		dec.Outcome, dec.Session = events.OutcomeAccept, events.SessionAnonymous
		dec.UserID, dec.UserMetadata = req.UserID, req.UserMetadata
		return dec
	}
	v, terr := d.verify(p, req.Token, sum, now)
	if terr != nil {
		dec.SkewSeconds = terr.skew
		return dec.refuse(terr)
	}
	if revokedAt, ok := p.RevokedBefore[v.userID]; ok && (!v.hasIat || time.Unix(v.iat, 0).Before(revokedAt)) {
		return dec.refuse(fmt.Errorf("%w: the user's tokens issued before %s are revoked", ErrTokenRevoked, revokedAt.UTC().Format(time.RFC3339)))
	}
	dec.Outcome, dec.Session = events.OutcomeAccept, events.SessionAuthenticated
	// A copy: the cache keeps the original for the next decision.
	dec.UserID, dec.UserMetadata, dec.UserVerified = v.userID, maps.Clone(v.metadata), true
	dec.KeyVersion = v.keyVersion
	if req.UserID != "" && req.UserID != v.userID {
		dec.ClaimedUserID = req.UserID
	}
	return dec
}

// verify checks a token, through the cache when it holds the token.
// sum is the token's SHA-256, the cache key.
func (d *Decider) verify(p *Project, token string, sum [sha256.Size]byte, now time.Time) (verifiedToken, *tokenError) {
	if len(token) > events.MaxTokenBytes {
		return verifiedToken{}, &tokenError{err: ErrTokenTooLarge}
	}
	if v, ok := d.cache.get(sum, p, now); ok {
		return v, nil
	}
	v, err := parseToken(token, p.Keys, now)
	if err == nil {
		d.cache.put(sum, p, v)
	}
	return v, err
}

// Purge drops every cached token of a project. The verifier calls it when
// the project's keys change; correctness does not depend on it (a cached
// token is only used while the key that verified it is still usable), but it
// frees the memory at once.
func (d *Decider) Purge(projectID string) { d.cache.purge(projectID) }

func (dec Decision) refuse(err error) Decision {
	dec.Err = err
	dec.Reason = ReasonOf(err)
	dec.Outcome = dec.Reason.Outcome()
	return dec
}

// checkOriginWith applies the origin rule with the given parser of the
// header: an empty allowlist passes everything; otherwise the Origin
// header must be a bare origin matching a pattern.
func checkOriginWith(patterns []origin.Pattern, header string, parse func(string) (origin.Origin, error)) error {
	_, err := matchOrigin(patterns, header, parse)
	return err
}

// matchOrigin is the origin rule, with the pattern that let the origin in
// (nil for an empty allowlist).
func matchOrigin(patterns []origin.Pattern, header string, parse func(string) (origin.Origin, error)) (*origin.Pattern, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	if header == "" || header == "null" {
		return nil, fmt.Errorf("%w: the request has no Origin and the project allows only listed origins", ErrOriginMissing)
	}
	o, err := parse(header)
	if err != nil {
		return nil, fmt.Errorf("%w: %q matches no pattern: %v", ErrOriginNotAllowed, clip(header), err)
	}
	for i, p := range patterns {
		if p.Match(o) {
			return &patterns[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not in the project's allowed origins", ErrOriginNotAllowed, o)
}

// OriginVerdict is what the origin rule says of one Origin header for one
// allowlist, and why.
type OriginVerdict struct {
	// Allowed is whether a widget loaded from that origin passes the
	// origin rule (its token is judged after).
	Allowed bool `json:"allowed"`
	// Pattern is the allowlist's pattern that matched; empty when the list
	// is empty (every origin passes) or nothing matched.
	Pattern string `json:"pattern,omitempty"`
	// Reason is the decision's reason code when refused
	// (origin_not_allowed, origin_missing).
	Reason events.Reason `json:"reason,omitempty"`
	// Explanation says why, in words.
	Explanation string `json:"explanation"`
}

// CheckOrigin applies the verifier's origin rule, with the verifier's
// matcher, to an Origin header and an allowlist of canonical patterns.
func CheckOrigin(patterns []string, header string) (OriginVerdict, error) {
	parsed, err := origin.ParsePatterns(patterns)
	if err != nil {
		return OriginVerdict{}, err
	}
	matched, err := matchOrigin(parsed, header, origin.Parse)
	switch {
	case err != nil:
		reason := ReasonOf(err)
		return OriginVerdict{Reason: reason, Explanation: err.Error()}, nil
	case matched == nil:
		return OriginVerdict{Allowed: true, Explanation: "the project's allowed-origins list is empty: every origin is allowed"}, nil
	case matched.Wildcard():
		return OriginVerdict{Allowed: true, Pattern: matched.String(), Explanation: fmt.Sprintf("%s matches the wildcard %s", header, matched)}, nil
	default:
		return OriginVerdict{Allowed: true, Pattern: matched.String(), Explanation: fmt.Sprintf("%s is listed exactly as %s", header, matched)}, nil
	}
}

// clip bounds client-provided text quoted in an error.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// Message explains a refusal to an integrator in one sentence, with what to
// do about it. It never quotes the token.
func (dec Decision) Message() string {
	switch dec.Reason {
	case "":
		return ""
	case events.ReasonUnknownProject:
		return "no project has this projectId; check the projectId you pass to the widget"
	case events.ReasonOriginMissing:
		return "the request has no Origin and this project allows only listed origins; load the widget from an allowed site"
	case events.ReasonTokenRequired:
		return "this project requires a widget token; mint one on your backend and pass it as widgetToken"
	case events.ReasonTokenExpired:
		return fmt.Sprintf("the token expired: the server time %s is %d s past its exp (%d s of clock skew allowed); fetch a fresh token from your backend",
			dec.ServerTime.UTC().Format(time.RFC3339), dec.SkewSeconds, int(Leeway/time.Second))
	case events.ReasonTokenNotYetValid:
		return fmt.Sprintf("the token is not valid yet: the server time %s is %d s before its iat or nbf (%d s of clock skew allowed); check your backend's clock",
			dec.ServerTime.UTC().Format(time.RFC3339), dec.SkewSeconds, int(Leeway/time.Second))
	case events.ReasonTokenAlgNotAllowed:
		return "only HS256 tokens are accepted; sign with algorithm HS256 and your project's secret key"
	case events.ReasonTokenBadSignature:
		return "the token's signature does not verify with the project's current key; if the key was rotated, mint tokens with the new key"
	case events.ReasonTokenMissingExp:
		return "the token has no exp claim; set an expiry (expiresIn: '24h')"
	case events.ReasonTokenTooLarge:
		return fmt.Sprintf("the token is over %d bytes; keep userMetadata small", events.MaxTokenBytes)
	case events.ReasonTokenRevoked:
		return "this user's tokens issued before a revocation are refused; mint a new token (with iat)"
	}
	if dec.Err != nil {
		return redact.String(dec.Err.Error())
	}
	return string(dec.Reason)
}

package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	fastjson "github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/redact"
)

// Rules of a widget token beyond the limits of events/limits.go (DESIGN.md
// "Decision rules").
const (
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway = 60 * time.Second
	// MinKeyBytes is the shortest secret key the verifier uses: a shorter or
	// empty key never verifies anything.
	MinKeyBytes = 32
)

// Algorithm is the only JWS algorithm a widget token may use.
const Algorithm = "HS256"

// Fingerprint is how a token appears in logs and audit records: the first 16
// hex digits of its SHA-256 (redact.Fingerprint).
func Fingerprint(token string) string { return redact.Fingerprint(token) }

// claims are a widget token's claims. Only the claims Hissuno reads are
// decoded, by their exact names (jsonwebtoken and PyJWT are case-sensitive:
// a token with USERID has no userId); unknown claims are ignored. Every
// claim decodes leniently so that a claim of the wrong type is
// token_invalid_claims, not token_malformed.
type claims struct {
	claimFields
	// expLate is exp one second late, for golang-jwt (GetExpirationTime).
	expLate jwt.NumericDate
}

// claimFields are the claims as decoded, without claims' UnmarshalJSON.
type claimFields struct {
	UserID       claimString   `json:"userId"`
	UserMetadata claimMetadata `json:"userMetadata"`
	Exp          numericDate   `json:"exp"`
	Nbf          numericDate   `json:"nbf"`
	Iat          numericDate   `json:"iat"`
}

var (
	_ jwt.ClaimsValidator = (*claims)(nil)
	_ json.Unmarshaler    = (*claims)(nil)
)

// UnmarshalJSON decodes the claims object. golang-jwt decodes claims with
// encoding/json, which matches object keys to struct fields
// case-insensitively; the fast decoder is told to match them exactly.
// golang-jwt has already checked that b is valid JSON.
func (c *claims) UnmarshalJSON(b []byte) error {
	c.claimFields = claimFields{}
	_, err := fastjson.Parse(b, &c.claimFields, fastjson.DontMatchCaseInsensitiveStructFields)
	return err
}

// GetExpirationTime reports exp one second late so that golang-jwt's strict
// "now before exp+leeway" compares at whole seconds like the claim itself:
// a token whose exp is 60 s behind the server's current second is accepted,
// 61 s behind is refused. iat and nbf are already inclusive in golang-jwt.
func (c *claims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.Exp.bad || !c.Exp.set {
		return c.Exp.get("exp")
	}
	c.expLate = jwt.NumericDate{Time: c.Exp.at.Add(time.Second)}
	return &c.expLate, nil
}

// GetNotBefore returns nbf.
func (c *claims) GetNotBefore() (*jwt.NumericDate, error) { return c.Nbf.get("nbf") }

// GetIssuedAt returns iat.
func (c *claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.Iat.get("iat") }

// GetIssuer is unused: Hissuno does not check iss.
func (c *claims) GetIssuer() (string, error) { return "", nil }

// GetSubject is unused: Hissuno does not check sub.
func (c *claims) GetSubject() (string, error) { return "", nil }

// GetAudience is unused: Hissuno does not check aud.
func (c *claims) GetAudience() (jwt.ClaimStrings, error) { return nil, nil }

// The range of time claims read: RFC 7519's NumericDate is a JSON number of
// seconds since 1970; a time before 1970 or after the end of 9999 is no
// time a widget token can mean, and refusing it bounds every skew.
const (
	minNumericDate = 0
	maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z
)

// timeClaimError is a time claim that is not a NumericDate in range. It
// decides before the time checks: a token whose times cannot be read is
// token_invalid_claims, whatever its other times say.
type timeClaimError struct{ claim string }

func (e timeClaimError) Error() string {
	return e.claim + " must be a JSON number of seconds from 1970 to the end of 9999 (an RFC 7519 NumericDate)"
}

// numericDate decodes a time claim: a JSON number only (a string, a bool,
// null, an array or an object is refused, and so is a number out of
// range), fractional seconds truncated as golang-jwt does.
type numericDate struct {
	at  jwt.NumericDate
	set bool // present and valid
	bad bool // present and not a NumericDate in range
}

// UnmarshalJSON implements json.Unmarshaler and never fails: a bad value
// is remembered and refused when the claims are validated, after the
// signature.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	*d = numericDate{}
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		d.bad = true
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < minNumericDate || f > maxNumericDate {
		d.bad = true
		return nil
	}
	secs := int64(f) // in range, and truncated like jwt.NumericDate
	d.at, d.set = jwt.NumericDate{Time: time.Unix(secs, 0)}, true
	return nil
}

// get is the claim named claim for golang-jwt's validator: nil when absent.
func (d *numericDate) get(claim string) (*jwt.NumericDate, error) {
	if d.bad {
		return nil, timeClaimError{claim}
	}
	if !d.set {
		return nil, nil
	}
	return &d.at, nil
}

// unix is the claim in whole seconds; 0 when absent.
func (d *numericDate) unix() int64 {
	if !d.set {
		return 0
	}
	return d.at.Unix()
}

// Validate checks userId and userMetadata against DESIGN.md's limits.
func (c *claims) Validate() error {
	switch {
	case !c.UserID.ok:
		return fmt.Errorf("%w: userId is missing or not a string", ErrTokenInvalidClaims)
	case c.UserID.v == "":
		return fmt.Errorf("%w: userId is empty", ErrTokenInvalidClaims)
	case len(c.UserID.v) > events.MaxUserIDBytes:
		return fmt.Errorf("%w: userId is over %d bytes", ErrTokenInvalidClaims, events.MaxUserIDBytes)
	case c.UserMetadata.bad:
		return fmt.Errorf("%w: userMetadata is not an object of strings", ErrTokenInvalidClaims)
	}
	return validMetadata(c.UserMetadata.v)
}

func validMetadata(m map[string]string) error {
	if len(m) > events.MaxMetadataKeys {
		return fmt.Errorf("%w: userMetadata has over %d keys", ErrTokenInvalidClaims, events.MaxMetadataKeys)
	}
	for k, v := range m {
		if len(k) > events.MaxMetadataKeyBytes {
			return fmt.Errorf("%w: a userMetadata key is over %d bytes", ErrTokenInvalidClaims, events.MaxMetadataKeyBytes)
		}
		if len(v) > events.MaxMetadataValueBytes {
			return fmt.Errorf("%w: a userMetadata value is over %d bytes", ErrTokenInvalidClaims, events.MaxMetadataValueBytes)
		}
	}
	return nil
}

// claimString decodes a JSON string; anything else leaves ok false.
type claimString struct {
	v  string
	ok bool
}

// UnmarshalJSON implements json.Unmarshaler and never fails.
func (s *claimString) UnmarshalJSON(b []byte) error {
	s.ok = len(b) > 0 && b[0] == '"' && json.Unmarshal(b, &s.v) == nil
	return nil
}

// claimMetadata decodes a JSON object of strings; absent or null is no
// metadata, anything else sets bad.
type claimMetadata struct {
	v   map[string]string
	bad bool
}

// UnmarshalJSON implements json.Unmarshaler and never fails.
func (m *claimMetadata) UnmarshalJSON(b []byte) error {
	m.v = nil
	if bytes.Equal(b, []byte("null")) {
		m.bad = false
		return nil
	}
	// Decode through pointers: encoding/json turns a null value into "" in
	// a map[string]string, and null is not a string.
	var raw map[string]*string
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &raw) != nil {
		m.bad = true
		return nil
	}
	m.v = make(map[string]string, len(raw))
	for k, v := range raw {
		if v == nil {
			m.bad = true
			return nil
		}
		m.v[k] = *v
	}
	m.bad = false
	return nil
}

// verifiedToken is what a token that passed verification says.
type verifiedToken struct {
	userID     string
	metadata   map[string]string
	exp        int64 // unix seconds
	nbf        int64 // unix seconds, 0 when absent
	iat        int64 // unix seconds, 0 when absent
	hasNbf     bool
	hasIat     bool
	keyVersion int
}

// tokenError is a refusal of a token: a sentinel plus, for time errors, the
// skew that caused it.
type tokenError struct {
	err  error // one of the Err* sentinels
	skew int64 // seconds past exp, or before nbf/iat
	why  error // the underlying error, never holding the token
}

func (e *tokenError) Error() string {
	if e.why == nil {
		return e.err.Error()
	}
	return e.err.Error() + ": " + e.why.Error()
}

func (e *tokenError) Unwrap() error { return e.err }

var validMethods = []string{Algorithm}

// errNotCompact explains a token refused by compactJWS.
var errNotCompact = errors.New("a widget token is three base64url parts (A-Z, a-z, 0-9, - and _) joined by two dots, and nothing else")

// base64URL marks the bytes of the unpadded base64url alphabet.
var base64URL = func() (t [256]bool) {
	for _, r := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[r] = true
	}
	return t
}()

// compactJWS reports whether a token holds only the base64url alphabet and
// exactly two dots. Go's base64 decoders skip CR and LF, Strict included:
// without this check one token would verify under as many spellings, and
// fingerprints, as there are ways to sprinkle line breaks into it.
func compactJWS(token string) bool {
	dots := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case base64URL[c]:
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return dots == 2
}

// parseToken verifies a token against the project's keys usable at now.
// A token over events.MaxTokenBytes, or with a byte outside base64url and its two
// dots, is refused before anything is decoded. It then uses golang-jwt with
// HS256 only, exp required, iat checked, 60 s leeway and strict base64;
// every error is a refusal, classified into one sentinel.
func parseToken(token string, keys []Key, now time.Time) (verifiedToken, *tokenError) {
	if len(token) > events.MaxTokenBytes {
		return verifiedToken{}, &tokenError{err: ErrTokenTooLarge}
	}
	if !compactJWS(token) {
		return verifiedToken{}, &tokenError{err: ErrTokenMalformed, why: errNotCompact}
	}
	var c claims
	kf := keyFunc(keys, now)
	parser := jwt.NewParser(
		jwt.WithValidMethods(validMethods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	tok, err := parser.ParseWithClaims(token, &c, kf.keyFunc)
	if err != nil {
		return verifiedToken{}, classify(tok, &c, err, now)
	}
	return verifiedToken{
		userID:     c.UserID.v,
		metadata:   c.UserMetadata.v,
		exp:        c.Exp.unix(),
		nbf:        c.Nbf.unix(),
		iat:        c.Iat.unix(),
		hasNbf:     c.Nbf.set,
		hasIat:     c.Iat.set,
		keyVersion: kf.used,
	}, nil
}

// classify turns any golang-jwt error into exactly one refusal sentinel.
// The order matters: header problems first, then the signature, then the
// claims; an error no branch recognises is still a refusal (malformed).
func classify(tok *jwt.Token, c *claims, err error, now time.Time) *tokenError {
	te := func(s error) *tokenError { return &tokenError{err: s, why: scrub(err)} }
	// Errors the key function raised carry our own sentinel.
	for _, s := range []error{ErrTokenMalformed, ErrTokenBadSignature} {
		if errors.Is(err, s) {
			return te(s)
		}
	}
	if errors.Is(err, jwt.ErrTokenMalformed) || tok == nil || tok.Header == nil {
		return te(ErrTokenMalformed)
	}
	if alg, ok := tok.Header["alg"].(string); !ok || alg != Algorithm {
		return te(ErrTokenAlgNotAllowed)
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable) {
		return te(ErrTokenBadSignature)
	}
	// Every time claim read is within minNumericDate..maxNumericDate, so
	// no skew overflows.
	secs := now.Unix()
	switch {
	case errors.As(err, new(timeClaimError)):
		return te(ErrTokenInvalidClaims)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return te(ErrTokenMissingExp)
	case errors.Is(err, jwt.ErrTokenExpired):
		e := te(ErrTokenExpired)
		e.skew = secs - c.Exp.unix()
		return e
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		e := te(ErrTokenNotYetValid)
		for _, d := range []*numericDate{&c.Nbf, &c.Iat} {
			if d.set && d.unix()-secs > e.skew {
				e.skew = d.unix() - secs
			}
		}
		return e
	case errors.Is(err, ErrTokenInvalidClaims):
		return te(ErrTokenInvalidClaims)
	}
	return te(ErrTokenMalformed)
}

// scrub keeps golang-jwt's explanation but never the token: golang-jwt's
// messages do not quote the token, and this is the one place that could.
func scrub(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(redact.String(err.Error()))
}

// keyChooser is the golang-jwt key function over a project's keys usable at
// a given time. It remembers which key version it handed out.
type keyChooser struct {
	keys []Key
	now  time.Time
	used int
}

func keyFunc(keys []Key, now time.Time) *keyChooser {
	return &keyChooser{keys: keys, now: now}
}

// keyFunc returns the key a token names with `kid`, or the set of usable
// keys. It errors for a JWS `crit` header, an unknown kid, and when no usable
// key is long enough: an empty key must never verify an HMAC.
func (k *keyChooser) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, fmt.Errorf("%w: the crit header names extensions this verifier does not support", ErrTokenMalformed)
	}
	var candidates []Key
	if kid, present := t.Header["kid"]; present {
		s, ok := kid.(string)
		if !ok {
			return nil, fmt.Errorf("%w: kid is not a string", ErrTokenMalformed)
		}
		for _, key := range k.keys {
			if key.ID() == s && key.usableAt(k.now) {
				candidates = append(candidates, key)
			}
		}
		if len(candidates) == 0 {
			return nil, fmt.Errorf("%w: no usable key has kid %q", ErrTokenBadSignature, s)
		}
	} else {
		for _, key := range k.keys {
			if key.usableAt(k.now) {
				candidates = append(candidates, key)
			}
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%w: the project has no usable key", ErrTokenBadSignature)
	}
	if len(candidates) == 1 {
		k.used = candidates[0].Version
		return candidates[0].Secret, nil
	}
	// Several keys (grace rotation): verify here to learn which key signed.
	parts := strings.SplitN(t.Raw, ".", 3)
	signed := t.Raw[:len(parts[0])+1+len(parts[1])]
	for _, key := range candidates {
		if jwt.SigningMethodHS256.Verify(signed, t.Signature, key.Secret) == nil {
			k.used = key.Version
			return key.Secret, nil
		}
	}
	return nil, fmt.Errorf("%w: no usable key verifies the signature", ErrTokenBadSignature)
}

// ID is the value of the `kid` header that selects this key: its version.
func (k Key) ID() string { return strconv.Itoa(k.Version) }

// usableAt reports whether the key verifies tokens at now (by server time):
// long enough, and either current or within its grace period.
func (k Key) usableAt(now time.Time) bool {
	return len(k.Secret) >= MinKeyBytes && (k.ValidUntil.IsZero() || now.Before(k.ValidUntil))
}

package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/nats-io/nats.go/jetstream"
)

// API tokens look like GitHub's: a prefix secret scanners recognise, a
// base62 payload and a base62 CRC32 of the payload that they can check
// offline. The payload is, as one 352-bit number in 60 base62 digits, the
// token's 12-byte id followed by its 256-bit secret:
//
//	hst_<60 base62 digits: id ‖ secret><6 base62 digits: CRC32 of the 60>
//
// 70 characters in all. The id is public (TokenIDPrefix and the id's 12
// bytes in lower-case base32: "tok_…", the key in the tokens bucket); the
// bucket holds the SHA-256 of the secret only.
const (
	// TokenPrefix starts every API token; redact scrubs what follows it
	// out of logs and errors.
	TokenPrefix = redact.APITokenPrefix
	// TokenIDPrefix starts every API token's id.
	TokenIDPrefix = "tok_"
	// TokenLen is an API token's length.
	TokenLen = len(TokenPrefix) + tokenPayloadDigits + tokenChecksumDigits
	// MaxTokenNameBytes bounds a token's name.
	MaxTokenNameBytes = 100
	// MaxActorBytes bounds a token's createdBy.
	MaxActorBytes = 300

	tokenIDBytes        = 12
	tokenSecretBytes    = 32
	tokenPayloadDigits  = 60 // 62^60 > 2^352 > 62^59
	tokenChecksumDigits = 6  // 62^6 > 2^32
)

// base62Digits are math/big's digits for base 62, as Text and SetString
// use them.
const base62Digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

var tokenIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Token is an API token as callers see it: never its secret or its hash.
type Token struct {
	// ID identifies the token in lists, logs and admin events ("tok_…").
	ID string `json:"id"`
	// Name says what the token is for.
	Name string `json:"name"`
	// Role is what the token may do; at most its creator's (the console
	// checks it: Role.AtMost).
	Role Role `json:"role"`
	// Projects limits the token to these project ids; empty: all projects.
	Projects []string `json:"projects,omitempty"`
	// CreatedBy is who made the token, an admin event's actor
	// ("console:<email>").
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt is when the token stops working; zero: never.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// RevokedAt is when the token was revoked; zero: it was not.
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	// LastUsedAt is its last successful use, recorded at most once a minute;
	// zero: never used.
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// CanSee reports whether the token may see the project id.
func (t Token) CanSee(projectID string) bool { return canSee(t.Projects, projectID) }

// tokenRecord is a token as stored in the tokens bucket, under its id.
type tokenRecord struct {
	Token
	// SecretSHA256 is the hex SHA-256 of the token's 32 secret bytes.
	SecretSHA256 string `json:"secretSha256"`
}

// TokenSpec is what CreateToken makes.
type TokenSpec struct {
	// Name says what the token is for: 1 to MaxTokenNameBytes bytes of text
	// without control characters; required. It is stored scrubbed of
	// secrets (redact.String): a key pasted into it is not kept.
	Name string
	// Role is the token's; required.
	Role Role
	// Projects limits the token to these project ids; empty: all projects.
	Projects []string
	// CreatedBy is who makes it (an admin event's actor); required.
	CreatedBy string
	// ExpiresAt, when set, is when the token stops working; it must be in
	// the future.
	ExpiresAt time.Time
}

// CreateToken makes an API token and returns it with the token itself,
// which no one can get again; ErrInvalid when the spec is not acceptable.
func (s *Store) CreateToken(ctx context.Context, spec TokenSpec) (Token, string, error) {
	now := s.now()
	name := redact.String(strings.TrimSpace(spec.Name))
	if err := checkText("token name", name, MaxTokenNameBytes); err != nil {
		return Token{}, "", err
	}
	if err := checkText("token creator", spec.CreatedBy, MaxActorBytes); err != nil {
		return Token{}, "", err
	}
	if !spec.Role.Valid() {
		return Token{}, "", fmt.Errorf("%w: role %q: use owner, admin or security", ErrInvalid, spec.Role)
	}
	projects, err := normalizeProjects(spec.Projects)
	if err != nil {
		return Token{}, "", err
	}
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
		return Token{}, "", fmt.Errorf("%w: token expiry: must be in the future", ErrInvalid)
	}
	id, secret, err := newTokenParts()
	if err != nil {
		return Token{}, "", err
	}
	sum := sha256.Sum256(secret[:])
	r := tokenRecord{
		Token: Token{
			ID: tokenID(id), Name: name, Role: spec.Role, Projects: projects,
			CreatedBy: spec.CreatedBy, CreatedAt: now,
		},
		SecretSHA256: hex.EncodeToString(sum[:]),
	}
	if !spec.ExpiresAt.IsZero() {
		r.ExpiresAt = spec.ExpiresAt.UTC().Round(0)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return Token{}, "", fmt.Errorf("encode token: %w", err)
	}
	if _, err := s.tokens.Create(ctx, r.ID, b); err != nil {
		return Token{}, "", fmt.Errorf("store token: %w", err)
	}
	return r.view(), formatToken(id, secret), nil
}

func (r *tokenRecord) view() Token {
	t := r.Token
	t.Projects = slices.Clone(t.Projects)
	return t
}

// Authenticate returns the token a caller presented; ErrBadToken, the same
// for every reason, when it is malformed, fails its checksum, is unknown,
// has the wrong secret, is revoked or has expired. It records the use at
// most once a minute.
func (s *Store) Authenticate(ctx context.Context, token string) (Token, error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return Token{}, ErrBadToken
	}
	key := tokenID(id)
	r, rev, err := getJSON[tokenRecord](ctx, s.tokens, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Token{}, ErrBadToken
	}
	if err != nil {
		return Token{}, fmt.Errorf("read token: %w", err)
	}
	sum := sha256.Sum256(secret[:])
	want, err := hex.DecodeString(r.SecretSHA256)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return Token{}, ErrBadToken
	}
	now := s.now()
	if !r.RevokedAt.IsZero() || !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) {
		return Token{}, ErrBadToken
	}
	if r.LastUsedAt.IsZero() || now.Sub(r.LastUsedAt) >= TouchEvery {
		r.LastUsedAt = now
		s.touch(ctx, s.tokens, key, rev, r, "token", r.ID)
	}
	return r.view(), nil
}

// Token returns the token with the id; ErrNotFound when there is none.
func (s *Store) Token(ctx context.Context, id string) (Token, error) {
	if !validTokenID(id) {
		return Token{}, fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	r, _, err := getJSON[tokenRecord](ctx, s.tokens, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("read token: %w", err)
	}
	return r.view(), nil
}

// Tokens lists every token, revoked and expired ones included, oldest
// first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	keys, err := listKeys(ctx, s.tokens)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]Token, 0, len(keys))
	for _, k := range keys {
		r, _, err := getJSON[tokenRecord](ctx, s.tokens, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, r.view())
	}
	slices.SortFunc(out, func(a, b Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// RevokeToken revokes a token for good; ErrNotFound when there is none.
// Revoking a revoked token changes nothing.
func (s *Store) RevokeToken(ctx context.Context, id string) (Token, error) {
	if !validTokenID(id) {
		return Token{}, fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	r, err := modify(ctx, s.tokens, id, accountRetries, func(r *tokenRecord, found bool) error {
		if !found {
			return fmt.Errorf("token %s: %w", id, ErrNotFound)
		}
		if !r.RevokedAt.IsZero() {
			return errUnchanged
		}
		r.RevokedAt = s.now()
		return nil
	})
	if err != nil {
		return Token{}, fmt.Errorf("revoke token: %w", err)
	}
	return r.view(), nil
}

// ValidTokenFormat reports whether s has an API token's form and its
// checksum matches, as a secret scanner checks it offline. It says nothing
// of whether the token exists.
func ValidTokenFormat(s string) bool {
	_, _, ok := parseToken(s)
	return ok
}

// newTokenParts makes a token's id and secret from crypto/rand.
func newTokenParts() (id [tokenIDBytes]byte, secret [tokenSecretBytes]byte, err error) {
	if _, err = rand.Read(id[:]); err != nil {
		return id, secret, fmt.Errorf("token id: %w", err)
	}
	if _, err = rand.Read(secret[:]); err != nil {
		return id, secret, fmt.Errorf("token secret: %w", err)
	}
	return id, secret, nil
}

// tokenID is the public id of a token's id bytes.
func tokenID(id [tokenIDBytes]byte) string {
	return TokenIDPrefix + strings.ToLower(tokenIDEncoding.EncodeToString(id[:]))
}

var tokenIDLen = len(TokenIDPrefix) + tokenIDEncoding.EncodedLen(tokenIDBytes)

// validTokenID reports whether s has a token id's shape (and so is a
// valid KV key).
func validTokenID(s string) bool {
	rest, ok := strings.CutPrefix(s, TokenIDPrefix)
	if !ok || len(s) != tokenIDLen {
		return false
	}
	_, err := tokenIDEncoding.DecodeString(strings.ToUpper(rest))
	return err == nil && rest == strings.ToLower(rest)
}

// formatToken writes a token: the prefix, the payload, its checksum.
func formatToken(id [tokenIDBytes]byte, secret [tokenSecretBytes]byte) string {
	payload := make([]byte, 0, tokenIDBytes+tokenSecretBytes)
	payload = append(append(payload, id[:]...), secret[:]...)
	digits := base62(new(big.Int).SetBytes(payload), tokenPayloadDigits)
	return TokenPrefix + digits + tokenChecksum(digits)
}

// parseToken reads a token written by formatToken; ok is false for
// anything else, a checksum that does not match included.
func parseToken(s string) (id [tokenIDBytes]byte, secret [tokenSecretBytes]byte, ok bool) {
	rest, found := strings.CutPrefix(s, TokenPrefix)
	if !found || len(s) != TokenLen {
		return id, secret, false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(base62Digits, rest[i]) < 0 {
			return id, secret, false
		}
	}
	digits, sum := rest[:tokenPayloadDigits], rest[tokenPayloadDigits:]
	if tokenChecksum(digits) != sum {
		return id, secret, false
	}
	n, parsed := new(big.Int).SetString(digits, 62)
	if !parsed || n.BitLen() > 8*(tokenIDBytes+tokenSecretBytes) {
		return id, secret, false
	}
	var payload [tokenIDBytes + tokenSecretBytes]byte
	n.FillBytes(payload[:])
	copy(id[:], payload[:tokenIDBytes])
	copy(secret[:], payload[tokenIDBytes:])
	return id, secret, true
}

// tokenChecksum is the CRC32 (IEEE) of a token's payload digits, in
// tokenChecksumDigits base62 digits.
func tokenChecksum(digits string) string {
	return base62(new(big.Int).SetUint64(uint64(crc32.ChecksumIEEE([]byte(digits)))), tokenChecksumDigits)
}

// base62 writes n in base 62, left-padded with zeros to width digits.
func base62(n *big.Int, width int) string {
	s := n.Text(62)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// checkText checks a short label: not empty, at most max bytes of valid
// text without control characters.
func checkText(what, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s: required", ErrInvalid, what)
	case len(s) > max:
		return fmt.Errorf("%w: %s: use at most %d bytes", ErrInvalid, what, max)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%w: %s: use text without control characters", ErrInvalid, what)
	}
	return nil
}

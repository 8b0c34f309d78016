package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/redact"
)

// Session is a console session as callers see it. Its secret is not in
// it: SignIn returns that once, and the store keeps only its SHA-256.
type Session struct {
	// Fingerprint identifies the session in logs and admin events without
	// revealing it (redact.Fingerprint of the secret).
	Fingerprint string `json:"fingerprint"`
	// Email is the signed-in account's.
	Email      string    `json:"email"`
	CreatedAt  time.Time `json:"createdAt"`
	LastSeenAt time.Time `json:"lastSeenAt"`
	// ExpiresAt is when the session ends however much it is used
	// (Config.SessionAbsolute after its sign-in); unused, it ends sooner.
	ExpiresAt time.Time `json:"expiresAt"`
	// ClientIP and UserAgent are the sign-in's, as the console saw them
	// (the user agent scrubbed of secrets: redact.String).
	ClientIP  string `json:"clientIp"`
	UserAgent string `json:"userAgent"`
}

// sessionRecord is a session as stored in the sessions bucket, under the
// hex SHA-256 of its secret.
type sessionRecord struct {
	Email      string    `json:"email"`
	CreatedAt  time.Time `json:"createdAt"`
	LastSeenAt time.Time `json:"lastSeenAt"`
	ClientIP   string    `json:"clientIp"`
	UserAgent  string    `json:"userAgent"`
	// Epoch is the account's session epoch at sign-in
	// (accountRecord.SessionEpoch).
	Epoch uint64 `json:"sessionEpoch"`
}

// Session secrets: 256 bits from crypto/rand in unpadded base64url.
const (
	sessionSecretBytes = 32
	maxClientIPBytes   = 64
)

var sessionSecretLen = base64.RawURLEncoding.EncodedLen(sessionSecretBytes)

// newSessionSecret makes a session secret and its key in the sessions
// bucket.
func newSessionSecret() (secret, key string, err error) {
	b := make([]byte, sessionSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("session secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, sessionKey(secret), nil
}

// sessionKey is the sessions bucket's key of a secret: its hex SHA-256.
func sessionKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// validSessionSecret reports whether s has a session secret's shape.
func validSessionSecret(s string) bool {
	if len(s) != sessionSecretLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

func (r *sessionRecord) view(secret string, absolute time.Duration) Session {
	return Session{
		Fingerprint: redact.Fingerprint(secret),
		Email:       r.Email,
		CreatedAt:   r.CreatedAt,
		LastSeenAt:  r.LastSeenAt,
		ExpiresAt:   r.CreatedAt.Add(absolute),
		ClientIP:    r.ClientIP,
		UserAgent:   r.UserAgent,
	}
}

// SignIn checks an email and password and starts a session: it returns the
// session and its secret, which the console hands to the browser (a
// cookie) and which no one can get again.
//
// A refusal is a *ThrottledError (errors.Is ErrThrottled) when the email or
// the client address is locked, before any password hashing; otherwise a
// *SignInError (errors.Is ErrBadCredentials) for an unknown email, a wrong
// password or a disabled account alike, each after one argon2id
// verification, saying whether this failure locked the email or the
// address. Nothing in either depends on whether the account exists.
//
// Every attempt is counted as a failure before its password is checked, so
// that attempts racing each other are refused once enough were counted; a
// success takes its count back: it clears the email's counter and removes
// its one failure from the address's (an attacker holding one account
// cannot so wipe an address's failures).
func (s *Store) SignIn(ctx context.Context, email, password, clientIP, userAgent string) (Session, string, error) {
	now := s.now()
	// A malformed email has no account; it is throttled and checked like
	// any other, so that nothing tells it apart.
	e, err := NormalizeEmail(email)
	if err != nil {
		e = strings.ToLower(strings.TrimSpace(email))
	}
	t := s.cfg.Throttle
	emailKey, addrKey := accountThrottleKey(e), addressThrottleKey(clientIP)
	if err := s.throttled(ctx, now, emailKey, addrKey); err != nil {
		return Session{}, "", err
	}
	accountLock, err := s.reserve(ctx, now, emailKey, t.accountLimit())
	if err != nil {
		return Session{}, "", err
	}
	addressLock, err := s.reserve(ctx, now, addrKey, t.addressLimit())
	if err != nil {
		return Session{}, "", err
	}
	r, ok, err := s.checkPassword(ctx, e, password)
	if err != nil {
		return Session{}, "", fmt.Errorf("sign in: %w", err)
	}
	if !ok {
		return Session{}, "", &SignInError{
			AccountLocked: accountLock > 0,
			AddressLocked: addressLock > 0,
			LockedFor:     max(accountLock, addressLock),
		}
	}
	if err := s.clearCounter(ctx, emailKey); err != nil {
		return Session{}, "", fmt.Errorf("sign in: %w", err)
	}
	if err := s.forgive(ctx, now, addrKey, t.addressLimit(), addressLock); err != nil {
		return Session{}, "", fmt.Errorf("sign in: %w", err)
	}
	if weakHash(r.PasswordHash) {
		s.rehash(ctx, r, password)
	}
	return s.startSession(ctx, r, now, clientIP, userAgent)
}

// rehash stores the password of a sign-in hashed with today's parameters,
// in place of the weaker hash r holds, unless the hash changed meanwhile;
// the account's sessions go on. A failure only leaves the old hash.
func (s *Store) rehash(ctx context.Context, r accountRecord, password string) {
	h, err := s.hash(ctx, password)
	if err == nil {
		_, err = modify(ctx, s.accounts, accountKey(r.Email), accountRetries, func(cur *accountRecord, found bool) error {
			if !found || cur.PasswordHash != r.PasswordHash {
				return errUnchanged
			}
			cur.PasswordHash = h
			return nil
		})
	}
	if err != nil {
		s.log.Warn().Err(err).Str("account", r.Email).Msg("cannot store the password hashed with today's parameters")
	}
}

// startSession stores a new session of the account r.
func (s *Store) startSession(ctx context.Context, r accountRecord, now time.Time, clientIP, userAgent string) (Session, string, error) {
	secret, key, err := newSessionSecret()
	if err != nil {
		return Session{}, "", err
	}
	rec := sessionRecord{
		Email:      r.Email,
		CreatedAt:  now,
		LastSeenAt: now,
		ClientIP:   bound(strings.TrimSpace(clientIP), maxClientIPBytes),
		UserAgent:  bound(redact.String(userAgent), events.MaxUserAgentBytes),
		Epoch:      r.SessionEpoch,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return Session{}, "", fmt.Errorf("encode session: %w", err)
	}
	if _, err := s.sessions.Create(ctx, key, b); err != nil {
		return Session{}, "", fmt.Errorf("store session: %w", err)
	}
	return rec.view(secret, s.cfg.SessionAbsolute), secret, nil
}

// Session returns the live session a secret names and its account;
// ErrNoSession when the secret names none: unknown or signed out, unused
// for Config.SessionIdle, older than Config.SessionAbsolute, its account
// gone or disabled, or every session of the account ended since it began.
// It records the use at most once a minute.
func (s *Store) Session(ctx context.Context, secret string) (Session, Account, error) {
	if !validSessionSecret(secret) {
		return Session{}, Account{}, ErrNoSession
	}
	key := sessionKey(secret)
	rec, rev, err := getJSON[sessionRecord](ctx, s.sessions, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, Account{}, ErrNoSession
	}
	if err != nil {
		return Session{}, Account{}, fmt.Errorf("read session: %w", err)
	}
	now := s.now()
	if now.Sub(rec.LastSeenAt) >= s.cfg.SessionIdle || now.Sub(rec.CreatedAt) >= s.cfg.SessionAbsolute {
		s.dropSession(ctx, key)
		return Session{}, Account{}, ErrNoSession
	}
	acct, err := s.record(ctx, rec.Email)
	if errors.Is(err, ErrNotFound) {
		s.dropSession(ctx, key)
		return Session{}, Account{}, ErrNoSession
	}
	if err != nil {
		return Session{}, Account{}, fmt.Errorf("read session's account: %w", err)
	}
	if acct.Disabled || acct.SessionEpoch != rec.Epoch {
		s.dropSession(ctx, key)
		return Session{}, Account{}, ErrNoSession
	}
	if now.Sub(rec.LastSeenAt) >= TouchEvery {
		rec.LastSeenAt = now
		s.touch(ctx, s.sessions, key, rev, rec, "session", redact.Fingerprint(secret))
	}
	return rec.view(secret, s.cfg.SessionAbsolute), acct.view(), nil
}

// SignOut ends the session a secret names; ending one that is already over
// is no error.
func (s *Store) SignOut(ctx context.Context, secret string) error {
	if !validSessionSecret(secret) {
		return nil
	}
	key := sessionKey(secret)
	if _, err := s.sessions.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	if err := s.sessions.Delete(ctx, key); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// dropSession deletes a session found over; the bucket's TTL removes what
// a failure here leaves.
func (s *Store) dropSession(ctx context.Context, key string) {
	if err := s.sessions.Delete(ctx, key); err != nil {
		s.log.Debug().Err(err).Msg("cannot delete a session that is over")
	}
}

// touch records a last use: written at the revision read, so that a
// concurrent touch or sign-out wins; a failure only loses the time.
func (s *Store) touch(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64, v any, what, fingerprint string) {
	b, err := json.Marshal(v)
	if err == nil {
		_, err = kv.Update(ctx, key, b, rev)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		s.log.Warn().Err(err).Str(what, fingerprint).Msgf("cannot record the %s's last use", what)
	}
}

// bound cuts s to at most n bytes of valid UTF-8, at a character boundary.
func bound(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

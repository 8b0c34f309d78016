package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Account is a console account as callers see it: never its password hash.
type Account struct {
	// Email is the account's identity, normalised (NormalizeEmail).
	Email string `json:"email"`
	// Role is what the account may do.
	Role Role `json:"role"`
	// Projects limits the account to these project ids; empty: all
	// projects.
	Projects []string `json:"projects,omitempty"`
	// Disabled accounts cannot sign in and have no session.
	Disabled          bool      `json:"disabled"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	PasswordChangedAt time.Time `json:"passwordChangedAt"`
	// SessionsValidAfter is when the account's sessions were last all
	// ended (a password change, disabling, EndSessions): every session
	// made before it is over.
	SessionsValidAfter time.Time `json:"sessionsValidAfter"`
}

// CanSee reports whether the account may see the project id.
func (a Account) CanSee(projectID string) bool { return canSee(a.Projects, projectID) }

// accountRecord is an account as stored in the accounts bucket.
type accountRecord struct {
	Email              string    `json:"email"`
	Role               Role      `json:"role"`
	Projects           []string  `json:"projects,omitempty"`
	PasswordHash       string    `json:"passwordHash"`
	Disabled           bool      `json:"disabled"`
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`
	PasswordChangedAt  time.Time `json:"passwordChangedAt"`
	SessionsValidAfter time.Time `json:"sessionsValidAfter"`
	// SessionEpoch counts the times every session of the account was ended;
	// a session holds the epoch it was made in and ends when the account's
	// moves on. It is exact where comparing times is not: two console
	// instances' clocks differ, and one tick may hold a change and a
	// sign-in.
	SessionEpoch uint64 `json:"sessionEpoch"`
}

func (r *accountRecord) view() Account {
	return Account{
		Email:              r.Email,
		Role:               r.Role,
		Projects:           slices.Clone(r.Projects),
		Disabled:           r.Disabled,
		CreatedAt:          r.CreatedAt,
		UpdatedAt:          r.UpdatedAt,
		PasswordChangedAt:  r.PasswordChangedAt,
		SessionsValidAfter: r.SessionsValidAfter,
	}
}

// endSessions ends every session of the account at now.
func (r *accountRecord) endSessions(now time.Time) {
	r.SessionEpoch++
	r.SessionsValidAfter = now
	r.UpdatedAt = now
}

// accountRetries bounds the compare-and-set retries of an account change.
const accountRetries = 5

// CreateAccount creates an account; ErrExists when the email has one,
// ErrInvalid when the email, the role, the projects or the password are not
// acceptable.
func (s *Store) CreateAccount(ctx context.Context, email string, role Role, projects []string, password string) (Account, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, err
	}
	if !role.Valid() {
		return Account{}, fmt.Errorf("%w: role %q: use owner, admin or security", ErrInvalid, role)
	}
	if projects, err = normalizeProjects(projects); err != nil {
		return Account{}, err
	}
	if err := CheckPassword(email, password); err != nil {
		return Account{}, err
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	now := s.now()
	r := accountRecord{
		Email: email, Role: role, Projects: projects, PasswordHash: hash,
		CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now, SessionsValidAfter: now,
	}
	_, err = modify(ctx, s.accounts, accountKey(email), accountRetries, func(v *accountRecord, found bool) error {
		if found {
			return fmt.Errorf("account %s: %w", email, ErrExists)
		}
		*v = r
		return nil
	})
	if err != nil {
		return Account{}, fmt.Errorf("create account: %w", err)
	}
	return r.view(), nil
}

// record reads the account of a normalised email; ErrNotFound when there
// is none.
func (s *Store) record(ctx context.Context, email string) (accountRecord, error) {
	r, _, err := getJSON[accountRecord](ctx, s.accounts, accountKey(email))
	if errors.Is(err, jetstream.ErrKeyNotFound) || err == nil && r.Email != email {
		return accountRecord{}, fmt.Errorf("account %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return accountRecord{}, fmt.Errorf("read account: %w", err)
	}
	return r, nil
}

// Account returns the account of email; ErrNotFound when there is none.
func (s *Store) Account(ctx context.Context, email string) (Account, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	r, err := s.record(ctx, e)
	if err != nil {
		return Account{}, err
	}
	return r.view(), nil
}

// Accounts lists every account, sorted by email.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	keys, err := listKeys(ctx, s.accounts)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]Account, 0, len(keys))
	for _, k := range keys {
		r, _, err := getJSON[accountRecord](ctx, s.accounts, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, r.view())
	}
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Email, b.Email) })
	return out, nil
}

// listKeys lists a bucket's keys, each once.
func listKeys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	kl, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// AccountChange is what UpdateAccount changes: the fields set.
type AccountChange struct {
	// Role, when set, becomes the account's role.
	Role *Role
	// Projects, when set, becomes the account's project list (empty: all
	// projects).
	Projects *[]string
	// Disabled, when set, disables or enables the account. Disabling ends
	// every session of the account at once.
	Disabled *bool
}

// UpdateAccount changes an account's role, projects or disabled flag;
// ErrNotFound, or ErrInvalid for a role or projects not acceptable.
func (s *Store) UpdateAccount(ctx context.Context, email string, c AccountChange) (Account, error) {
	var projects []string
	if c.Role != nil && !c.Role.Valid() {
		return Account{}, fmt.Errorf("%w: role %q: use owner, admin or security", ErrInvalid, *c.Role)
	}
	if c.Projects != nil {
		var err error
		if projects, err = normalizeProjects(*c.Projects); err != nil {
			return Account{}, err
		}
	}
	return s.changeAccount(ctx, email, "update account", func(r *accountRecord, now time.Time) error {
		if c.Role != nil {
			r.Role = *c.Role
		}
		if c.Projects != nil {
			r.Projects = projects
		}
		if c.Disabled != nil {
			if *c.Disabled && !r.Disabled {
				r.endSessions(now)
			}
			r.Disabled = *c.Disabled
		}
		r.UpdatedAt = now
		return nil
	})
}

// SetPassword gives an account a new password (an owner's reset, or the
// CLI's one-time password) and ends every session of the account;
// ErrNotFound, or ErrInvalid for a password not following the policy.
func (s *Store) SetPassword(ctx context.Context, email, password string) (Account, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if err := CheckPassword(e, password); err != nil {
		return Account{}, err
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return Account{}, fmt.Errorf("set password: %w", err)
	}
	return s.changeAccount(ctx, e, "set password", func(r *accountRecord, now time.Time) error {
		r.PasswordHash = hash
		r.PasswordChangedAt = now
		r.endSessions(now)
		return nil
	})
}

// ChangePassword is an account holder's own change: it checks the current
// password, as a sign-in does (throttled per email; a *SignInError or a
// *ThrottledError when refused), sets the next one and ends every session
// of the account. The console then signs the holder in again with the new
// password.
func (s *Store) ChangePassword(ctx context.Context, email, current, next string) (Account, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, &SignInError{}
	}
	if err := CheckPassword(e, next); err != nil {
		return Account{}, err
	}
	now := s.now()
	key, l := accountThrottleKey(e), s.cfg.Throttle.accountLimit()
	lock, err := s.reserve(ctx, now, key, l)
	if err != nil {
		return Account{}, err
	}
	r, ok, err := s.checkPassword(ctx, e, current)
	if err != nil {
		return Account{}, err
	}
	if !ok {
		return Account{}, &SignInError{AccountLocked: lock > 0, LockedFor: lock}
	}
	if err := s.clearCounter(ctx, key); err != nil {
		return Account{}, err
	}
	hash, err := s.hash(ctx, next)
	if err != nil {
		return Account{}, fmt.Errorf("change password: %w", err)
	}
	return s.changeAccount(ctx, e, "change password", func(cur *accountRecord, now time.Time) error {
		if cur.PasswordHash != r.PasswordHash {
			return fmt.Errorf("change password: %w", ErrConflict) // changed meanwhile
		}
		cur.PasswordHash = hash
		cur.PasswordChangedAt = now
		cur.endSessions(now)
		return nil
	})
}

// EndSessions ends every session of an account at once ("sign out
// everywhere").
func (s *Store) EndSessions(ctx context.Context, email string) (Account, error) {
	return s.changeAccount(ctx, email, "end sessions", func(r *accountRecord, now time.Time) error {
		r.endSessions(now)
		return nil
	})
}

// changeAccount applies change to the account of email with
// compare-and-set; ErrNotFound when there is none.
func (s *Store) changeAccount(ctx context.Context, email, what string, change func(r *accountRecord, now time.Time) error) (Account, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return Account{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	r, err := modify(ctx, s.accounts, accountKey(e), accountRetries, func(r *accountRecord, found bool) error {
		if !found || r.Email != e {
			return fmt.Errorf("account %s: %w", e, ErrNotFound)
		}
		return change(r, s.now())
	})
	if err != nil {
		return Account{}, fmt.Errorf("%s: %w", what, err)
	}
	return r.view(), nil
}

// checkPassword runs exactly one argon2id verification whether or not the
// account of the normalised email exists: against its hash, or against the
// dummy hash. ok is true only for an existing, enabled account whose
// password matches.
func (s *Store) checkPassword(ctx context.Context, email, password string) (accountRecord, bool, error) {
	r, err := s.record(ctx, email)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return accountRecord{}, false, err
	}
	hash := s.dummyHash
	if known {
		hash = r.PasswordHash
	}
	if len(password) > MaxPasswordBytes {
		// No account has such a password; hash a bounded one instead, so the
		// attempt still costs one verification.
		password = password[:MaxPasswordBytes]
		known = false
	}
	match, err := s.verify(ctx, hash, password)
	if err != nil {
		// Only a damaged stored hash: say so to the operator, refuse like
		// any wrong password to the user.
		s.log.Error().Err(err).Str("account", email).Msg("cannot verify the account's password")
		return accountRecord{}, false, nil
	}
	return r, known && match && !r.Disabled, nil
}

package account

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means no account, or no API token, has the name given.
	ErrNotFound = errors.New("not found")
	// ErrExists means an account with the email exists already.
	ErrExists = errors.New("exists already")
	// ErrInvalid means an email, a role, a project list, a token's name or a
	// password is not acceptable; the message says what to fix.
	ErrInvalid = errors.New("invalid")
	// ErrConflict means a record kept changing concurrently while it was
	// being changed, beyond the retries; try again.
	ErrConflict = errors.New("changed concurrently, try again")
	// ErrBadCredentials means a sign-in (or a password change) was refused:
	// the account is unknown, the password wrong or the account disabled.
	// The three are one error on purpose, and take the same time.
	ErrBadCredentials = errors.New("wrong email or password")
	// ErrThrottled means a sign-in was refused before its password was
	// checked, because of too many failures for the account or the client
	// address; the error is a *ThrottledError saying when to try again.
	ErrThrottled = errors.New("too many failed sign-ins, try again later")
	// ErrBadToken means an API token was refused: malformed, bad checksum,
	// unknown, wrong secret, revoked or expired, all alike.
	ErrBadToken = errors.New("invalid API token")
	// ErrNoSession means a session secret names no live session: unknown,
	// signed out, idle or past its lifetime, ended with all the account's
	// sessions, or its account is disabled or gone.
	ErrNoSession = errors.New("no such session, sign in again")
)

// ThrottledError is the error of a sign-in refused by the throttle
// (errors.Is(err, ErrThrottled)). It is the same for known and unknown
// emails.
type ThrottledError struct {
	// RetryAfter is how long until an attempt may be made again.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s (in %s)", ErrThrottled.Error(), e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// SignInError is the error of a sign-in whose password was checked and
// refused (errors.Is(err, ErrBadCredentials)). Its message is
// ErrBadCredentials' whatever the cause; it only adds what the throttle did
// with the failure, alike for known and unknown emails.
type SignInError struct {
	// AccountLocked reports that this failure locked the email: the next
	// attempts for it are refused for LockedFor (the console records an
	// account.locked admin event).
	AccountLocked bool
	// AddressLocked reports that this failure locked the client address.
	AddressLocked bool
	// LockedFor is the longer of the locks this failure started; zero
	// when it started none.
	LockedFor time.Duration
}

func (e *SignInError) Error() string { return ErrBadCredentials.Error() }

// Unwrap makes errors.Is(err, ErrBadCredentials) hold.
func (e *SignInError) Unwrap() error { return ErrBadCredentials }

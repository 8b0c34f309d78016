package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
)

// cookieName is the session cookie's name: __Host- prefixed when Secure,
// so that browsers keep it to this host, path / and HTTPS.
func (c *Console) cookieName() string {
	if c.secure {
		return "__Host-hissuno_session"
	}
	return "hissuno_session"
}

// sessionCookie is the Set-Cookie of a new session: HttpOnly,
// SameSite=Strict, Secure unless on loopback HTTP, no Domain, path /, kept
// until the session's end by the console's clock (the one its sessions
// follow).
func (c *Console) sessionCookie(secret string, expires time.Time) string {
	ck := &http.Cookie{
		Name:     c.cookieName(),
		Value:    secret,
		Path:     "/",
		HttpOnly: true,
		Secure:   c.secure,
		SameSite: http.SameSiteStrictMode,
		MaxAge:   max(int(expires.Sub(c.cfg.Clock()).Seconds()), 1),
	}
	return ck.String()
}

// clearedCookie is the Set-Cookie that removes the session cookie.
func (c *Console) clearedCookie() string {
	ck := &http.Cookie{Name: c.cookieName(), Value: "", Path: "/", HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode, MaxAge: -1}
	return ck.String()
}

// Me is who is signed in.
type Me struct {
	// Actor is how admin events name you.
	Actor string `json:"actor" example:"console:ada@example.com"`
	// Email is the account's; empty for an API token.
	Email string `json:"email,omitempty"`
	// TokenID is the API token's id; empty for an account.
	TokenID string `json:"tokenId,omitempty"`
	Role    string `json:"role" enum:"owner,admin,security"`
	// Projects limits what you may see; empty: every project.
	Projects []string `json:"projects"`
	// ExpiresAt is when the session ends at the latest (sessions also end
	// after being idle); absent for an API token.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

type signInInput struct {
	Body struct {
		Email    string `json:"email" maxLength:"254" doc:"The account's email."`
		Password string `json:"password" maxLength:"256" doc:"Its password."`
	}
}

type meOutput struct {
	SetCookie string `header:"Set-Cookie"`
	Body      Me
}

type signOutOutput struct {
	SetCookie string `header:"Set-Cookie"`
}

type changePasswordInput struct {
	Body struct {
		Current string `json:"currentPassword" maxLength:"256"`
		New     string `json:"newPassword" minLength:"12" maxLength:"256" doc:"At least 12 characters."`
	}
}

func (c *Console) registerSession(api huma.API) {
	register(api, huma.Operation{
		OperationID: "sign-in", Method: http.MethodPost, Path: APIPrefix + "/session", Tags: []string{"Session"},
		Summary: "Sign in",
		Description: "Checks an email and password and starts a session: the answer sets the session cookie (HttpOnly, SameSite=Strict, Secure). " +
			"A wrong password and an unknown email get the same 401. Repeated failures for one email or from one address are throttled: 429 with Retry-After.",
		Errors: []int{http.StatusUnauthorized, http.StatusTooManyRequests},
	}, permPublic, func(ctx context.Context, _ *principal, in *signInInput) (*meOutput, error) {
		cl := clientFrom(ctx)
		tried := normalEmail(in.Body.Email)
		sess, secret, err := c.accounts.SignIn(ctx, in.Body.Email, in.Body.Password, cl.ip, cl.userAgent)
		var throttled *account.ThrottledError
		var failed *account.SignInError
		switch {
		case errors.As(err, &throttled):
			return nil, tooMany(throttled.RetryAfter)
		case errors.As(err, &failed):
			_ = c.record(ctx, accountEvent{kind: events.AdminSignInFailed, actor: events.ActorAnonymous, account: tried, client: cl})
			if failed.AccountLocked || failed.AddressLocked {
				why := "too many failed sign-ins for this email"
				if !failed.AccountLocked {
					why = "too many failed sign-ins from this address"
				}
				_ = c.record(ctx, accountEvent{kind: events.AdminLocked, actor: events.ActorAnonymous, account: tried,
					reason: why + "; locked for " + failed.LockedFor.Round(time.Second).String(), client: cl})
			}
			return nil, huma.Error401Unauthorized("wrong email or password")
		case errors.Is(err, account.ErrBadCredentials):
			_ = c.record(ctx, accountEvent{kind: events.AdminSignInFailed, actor: events.ActorAnonymous, account: tried, client: cl})
			return nil, huma.Error401Unauthorized("wrong email or password")
		case err != nil:
			return nil, c.internal("sign in", err)
		}
		acc, err := c.accounts.Account(ctx, sess.Email)
		if err != nil {
			_ = c.accounts.SignOut(ctx, secret)
			return nil, c.internal("read the account signed in", err)
		}
		if err := c.record(ctx, accountEvent{kind: events.AdminSignedIn, actor: events.ActorConsole + acc.Email, account: acc.Email, client: cl}); err != nil {
			// A sign-in the audit does not show does not happen.
			_ = c.accounts.SignOut(ctx, secret)
			return nil, huma.Error503ServiceUnavailable("the sign-in could not be recorded in the audit; try again shortly")
		}
		return &meOutput{SetCookie: c.sessionCookie(secret, sess.ExpiresAt), Body: me(acc, sess)}, nil
	})

	register(api, huma.Operation{
		OperationID: "get-session", Method: http.MethodGet, Path: APIPrefix + "/session", Tags: []string{"Session"},
		Summary: "Who is signed in",
	}, permSignedIn, func(ctx context.Context, p *principal, _ *struct{}) (*meOutput, error) {
		me := Me{Actor: p.actor, Role: string(p.role), Projects: nonNil(p.projects)}
		if p.token {
			me.TokenID = p.account
		} else {
			me.Email = p.account
			if s, _, err := c.accounts.Session(ctx, p.session); err == nil {
				me.ExpiresAt = &s.ExpiresAt
			}
		}
		return &meOutput{Body: me}, nil
	})

	register(api, huma.Operation{
		OperationID: "sign-out", Method: http.MethodDelete, Path: APIPrefix + "/session", Tags: []string{"Session"},
		Summary: "Sign out", Description: "Ends the session at once and clears its cookie.", DefaultStatus: http.StatusNoContent,
	}, permAccount, func(ctx context.Context, p *principal, _ *struct{}) (*signOutOutput, error) {
		if err := c.accounts.SignOut(ctx, p.session); err != nil && !errors.Is(err, account.ErrNoSession) {
			return nil, c.internal("sign out", err)
		}
		_ = c.record(ctx, accountEvent{kind: events.AdminSignedOut, actor: p.actor, account: p.account, client: p.client})
		return &signOutOutput{SetCookie: c.clearedCookie()}, nil
	})

	register(api, huma.Operation{
		OperationID: "change-password", Method: http.MethodPut, Path: APIPrefix + "/session/password", Tags: []string{"Session"},
		Summary: "Change your password",
		Description: "Checks the current password, sets the new one and ends every session of the account, this one included; the answer starts a new one. " +
			"A wrong current password counts as a failed sign-in of the account: repeated, it locks the account's sign-ins and changes (429 with Retry-After).",
		Errors: []int{http.StatusUnprocessableEntity, http.StatusTooManyRequests},
	}, permAccount, func(ctx context.Context, p *principal, in *changePasswordInput) (*meOutput, error) {
		_, err := c.accounts.ChangePassword(ctx, p.account, in.Body.Current, in.Body.New)
		var throttled *account.ThrottledError
		var failed *account.SignInError
		switch {
		case errors.As(err, &throttled):
			return nil, tooMany(throttled.RetryAfter)
		case errors.As(err, &failed):
			// A guess of the password from a signed-in session (a stolen
			// cookie, an unlocked screen) is a failed sign-in.
			_ = c.record(ctx, accountEvent{kind: events.AdminSignInFailed, actor: p.actor, account: p.account, reason: "wrong current password on a password change", client: p.client})
			if failed.AccountLocked {
				_ = c.record(ctx, accountEvent{kind: events.AdminLocked, actor: p.actor, account: p.account,
					reason: "too many wrong current passwords on a password change; locked for " + failed.LockedFor.Round(time.Second).String(), client: p.client})
			}
			return nil, huma.Error422UnprocessableEntity("the current password is wrong")
		case errors.Is(err, account.ErrBadCredentials):
			return nil, huma.Error422UnprocessableEntity("the current password is wrong")
		case errors.Is(err, account.ErrInvalid):
			return nil, huma.Error422UnprocessableEntity(err.Error())
		case err != nil:
			return nil, c.internal("change password", err)
		}
		_ = c.record(ctx, accountEvent{kind: events.AdminPasswordChanged, actor: p.actor, account: p.account, reason: "every session of the account ended", client: p.client})
		sess, secret, err := c.accounts.SignIn(ctx, p.account, in.Body.New, p.ip, p.userAgent)
		if err != nil {
			return nil, c.internal("sign in after a password change", err)
		}
		acc, err := c.accounts.Account(ctx, sess.Email)
		if err != nil {
			return nil, c.internal("read the account signed in", err)
		}
		_ = c.record(ctx, accountEvent{kind: events.AdminSignedIn, actor: p.actor, account: p.account, client: p.client})
		return &meOutput{SetCookie: c.sessionCookie(secret, sess.ExpiresAt), Body: me(acc, sess)}, nil
	})
}

// me describes a signed-in account.
func me(acc account.Account, sess account.Session) Me {
	expires := sess.ExpiresAt
	return Me{Actor: events.ActorConsole + acc.Email, Email: acc.Email, Role: string(acc.Role), Projects: nonNil(acc.Projects), ExpiresAt: &expires}
}

// tooMany is the 429 of a throttled sign-in, with Retry-After.
func tooMany(after time.Duration) error {
	secs := max(int(after.Round(time.Second)/time.Second), 1)
	return &retryError{
		ErrorModel: huma.ErrorModel{Status: http.StatusTooManyRequests, Title: http.StatusText(http.StatusTooManyRequests),
			Detail: "too many failed sign-ins; try again in " + strconv.Itoa(secs) + " s"},
		after: secs,
	}
}

// retryError is a problem answer with a Retry-After header.
type retryError struct {
	huma.ErrorModel
	after int
}

func (e *retryError) GetHeaders() http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(e.after)}}
}

// internal logs a failure of the machine's and answers 500 without its
// details.
func (c *Console) internal(what string, err error) error {
	c.log.Error().Err(err).Str("operation", what).Msg("console request failed")
	return huma.Error500InternalServerError(what + " failed; the console's log says why")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// normalEmail is an email as the audit records a tried one: normalised,
// or "(not an email)" for anything else (a password typed into the email
// field must not reach the audit).
func normalEmail(s string) string {
	if e, err := account.NormalizeEmail(s); err == nil {
		return e
	}
	return "(not an email)"
}

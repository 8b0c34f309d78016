package console_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/account"
)

// TestSessionsEndAtOnce ends sessions every way there is and replays the
// cookies they had, as a thief who copied one would: each is refused on
// the very next request. Signing out ends that session only; a password
// change ends every session of the account, the changing one's too (its
// old cookie is refused), and the answer starts a new one; an owner
// disabling the account or resetting its password ends them all, and
// enabling it again brings none back. A change of role or projects needs
// no new session: it holds from the next request, as the role is read at
// each one.
func TestSessionsEndAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	id, _ := owner.createProject(t, "Shop", nil)

	// twoSessions makes an account signed in from two browsers, and
	// returns them with their cookies.
	twoSessions := func(t *testing.T, email string, role account.Role) (a, b *client, cookieA, cookieB string) {
		t.Helper()
		a = e.signIn(t, email, role)
		b = e.browser(t)
		b.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": a.password}).want(t, http.StatusOK)
		return a, b, a.session(t), b.session(t)
	}
	signIn := func(t *testing.T, email, password string) int {
		t.Helper()
		return e.browser(t).do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password}).status
	}
	alive := func(t *testing.T, what, cookie string, want bool) {
		t.Helper()
		status := map[bool]int{true: http.StatusOK, false: http.StatusUnauthorized}[want]
		if r := e.withCookie(e.cookieName(), cookie).do(t, http.MethodGet, "/api/v1/session", nil); r.status != status {
			t.Fatalf("%s: answered %d, want %d", what, r.status, status)
		}
		if !want {
			// Nor may it change anything.
			e.withCookie(e.cookieName(), cookie).do(t, http.MethodPatch, "/api/v1/projects/"+id, map[string]any{"requireToken": true}).
				want(t, http.StatusUnauthorized)
		}
	}

	t.Run("sign-out ends that session only", func(t *testing.T) {
		t.Parallel()
		a, _, cookieA, cookieB := twoSessions(t, "signout@example.com", account.RoleAdmin)
		a.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusNoContent)
		alive(t, "the signed-out session", cookieA, false)
		alive(t, "the other session", cookieB, true)
		a.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	})

	t.Run("a password change ends every session, the changing one's too", func(t *testing.T) {
		t.Parallel()
		a, _, cookieA, cookieB := twoSessions(t, "change@example.com", account.RoleAdmin)
		const next = "a brand new password for change@"
		r := a.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": a.password, "newPassword": next}).want(t, http.StatusOK)
		if _, ck := r.setCookie(t, e.cookieName()); ck == nil || ck.Value == cookieA || ck.Value == "" {
			t.Fatalf("the change's answer starts no new session: %v", r.header.Values("Set-Cookie"))
		}
		alive(t, "the changing session's old cookie", cookieA, false)
		alive(t, "the account's other session", cookieB, false)
		alive(t, "the session the change started", a.session(t), true)
		if s := signIn(t, "change@example.com", a.password); s != http.StatusUnauthorized {
			t.Errorf("the old password signs in: %d", s)
		}
		if s := signIn(t, "change@example.com", next); s != http.StatusOK {
			t.Errorf("the new password does not sign in: %d", s)
		}
	})

	t.Run("a wrong current password ends nothing", func(t *testing.T) {
		t.Parallel()
		a, _, cookieA, cookieB := twoSessions(t, "wrongcurrent@example.com", account.RoleAdmin)
		a.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": "not the password at all", "newPassword": "a brand new password here"}).
			want(t, http.StatusUnprocessableEntity)
		alive(t, "the session", cookieA, true)
		alive(t, "the other session", cookieB, true)
	})

	t.Run("an owner disabling the account ends every session", func(t *testing.T) {
		t.Parallel()
		a, _, cookieA, cookieB := twoSessions(t, "disabled@example.com", account.RoleAdmin)
		owner.do(t, http.MethodPatch, "/api/v1/accounts/disabled@example.com", map[string]any{"disabled": true}).want(t, http.StatusOK)
		alive(t, "a session", cookieA, false)
		alive(t, "the other session", cookieB, false)
		if s := signIn(t, "disabled@example.com", a.password); s != http.StatusUnauthorized {
			t.Errorf("a disabled account signs in: %d", s)
		}
		owner.do(t, http.MethodPatch, "/api/v1/accounts/disabled@example.com", map[string]any{"disabled": false}).want(t, http.StatusOK)
		alive(t, "a session after enabling again", cookieA, false)
		alive(t, "the other session after enabling again", cookieB, false)
		if s := signIn(t, "disabled@example.com", a.password); s != http.StatusOK {
			t.Errorf("the enabled account does not sign in: %d", s)
		}
	})

	t.Run("an owner resetting the password ends every session", func(t *testing.T) {
		t.Parallel()
		_, _, cookieA, cookieB := twoSessions(t, "reset@example.com", account.RoleAdmin)
		var out struct{ Password string }
		owner.do(t, http.MethodPut, "/api/v1/accounts/reset@example.com/password", map[string]any{}).want(t, http.StatusOK).decode(t, &out)
		alive(t, "a session", cookieA, false)
		alive(t, "the other session", cookieB, false)
		if s := signIn(t, "reset@example.com", out.Password); s != http.StatusOK {
			t.Errorf("the reset password does not sign in: %d", s)
		}
	})

	t.Run("a role or projects change holds from the next request", func(t *testing.T) {
		t.Parallel()
		a := e.signIn(t, "demoted@example.com", account.RoleAdmin)
		a.do(t, http.MethodPatch, "/api/v1/projects/"+id, map[string]any{"requireToken": false, "reason": "still admin"}).want(t, http.StatusOK)
		owner.do(t, http.MethodPatch, "/api/v1/accounts/demoted@example.com", map[string]any{"role": "security"}).want(t, http.StatusOK)
		a.do(t, http.MethodPatch, "/api/v1/projects/"+id, map[string]any{"requireToken": true, "reason": "not admin any more"}).want(t, http.StatusForbidden)
		a.do(t, http.MethodGet, "/api/v1/projects/"+id, nil).want(t, http.StatusOK)
		owner.do(t, http.MethodPatch, "/api/v1/accounts/demoted@example.com", map[string]any{"projects": []string{"proj_other"}}).want(t, http.StatusOK)
		a.do(t, http.MethodGet, "/api/v1/projects/"+id, nil).want(t, http.StatusNotFound)
		var me struct {
			Role     string
			Projects []string
		}
		a.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, &me)
		if me.Role != "security" || len(me.Projects) != 1 || me.Projects[0] != "proj_other" {
			t.Errorf("the session shows %+v after the change", me)
		}
	})
}

// TestSessionLifetimes moves the console's clock: a session used at least
// every 29 minutes lives on, one unused for 30 minutes ends (the idle
// lifetime), and one used all the time ends 12 hours after its sign-in
// however busy it is (the absolute lifetime), as its expiresAt said.
func TestSessionLifetimes(t *testing.T) {
	t.Parallel()
	clock := newManualClock(time.Now())
	e := newEnv(t, withClock(clock.Now))
	me := func(c *client, status int) {
		t.Helper()
		c.do(t, http.MethodGet, "/api/v1/session", nil).want(t, status)
	}

	idle := e.signIn(t, "idle@example.com", account.RoleAdmin)
	for range 3 {
		clock.Advance(account.DefaultSessionIdle - time.Minute)
		me(idle, http.StatusOK)
	}
	clock.Advance(account.DefaultSessionIdle)
	me(idle, http.StatusUnauthorized)
	clock.Advance(-account.DefaultSessionIdle) // gone for good, not just out of time
	me(idle, http.StatusUnauthorized)

	busy := e.signIn(t, "busy@example.com", account.RoleAdmin)
	start := clock.Now()
	var s struct{ ExpiresAt time.Time }
	busy.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, &s)
	if !s.ExpiresAt.Equal(start.Add(account.DefaultSessionAbsolute)) {
		t.Errorf("expiresAt %s, want %s", s.ExpiresAt, start.Add(account.DefaultSessionAbsolute))
	}
	const step = 25 * time.Minute
	for clock.Now().Add(step).Before(start.Add(account.DefaultSessionAbsolute)) {
		clock.Advance(step)
		me(busy, http.StatusOK)
	}
	clock.Advance(start.Add(account.DefaultSessionAbsolute).Sub(clock.Now()))
	me(busy, http.StatusUnauthorized)
}

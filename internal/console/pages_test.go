package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hissuno/widgetauth/internal/account"
)

// TestPagesCarryTheSecurityHeaders asks the console role for every page,
// an asset and an unknown path: each answers with the CSP (no inline
// script or style, no other origin), nosniff, no framing and no referrer;
// the pages are HTML that anyone may load (they hold no data: their
// scripts ask the API, which needs a session).
func TestPagesCarryTheSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	anon := e.browser(t)
	owner := e.signIn(t, "ada@example.com", account.RoleOwner)
	for _, tc := range []struct {
		path, contentType string
		status            int
	}{
		{"/", "text/html; charset=utf-8", http.StatusOK},
		{"/sign-in", "text/html; charset=utf-8", http.StatusOK},
		{"/projects", "text/html; charset=utf-8", http.StatusOK},
		{"/projects/proj_shop/security", "text/html; charset=utf-8", http.StatusOK},
		{"/projects/proj_shop/users", "text/html; charset=utf-8", http.StatusOK},
		{"/projects/proj_shop/users/u-7", "text/html; charset=utf-8", http.StatusOK},
		{"/audit", "text/html; charset=utf-8", http.StatusOK},
		{"/admin-events", "text/html; charset=utf-8", http.StatusOK},
		{"/accounts", "text/html; charset=utf-8", http.StatusOK},
		{"/account", "text/html; charset=utf-8", http.StatusOK},
		{"/static/js/api.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/static/vendor/uplot/uPlot.esm.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/static/css/console.css", "text/css; charset=utf-8", http.StatusOK},
		{"/nope", "text/html; charset=utf-8", http.StatusNotFound},
		{"/api/v1/nope", "application/problem+json", http.StatusNotFound},
	} {
		for name, c := range map[string]*client{"signed out": anon, "signed in": owner} {
			r := c.do(t, http.MethodGet, tc.path, nil).want(t, tc.status)
			if ct := r.header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("%s, GET %s: Content-Type %q, want %q", name, tc.path, ct, tc.contentType)
			}
			for h, want := range map[string]string{
				"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
					"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
				"X-Content-Type-Options": "nosniff",
				"X-Frame-Options":        "DENY",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s, GET %s: %s %q, want %q", name, tc.path, h, got, want)
				}
			}
			if strings.HasPrefix(tc.contentType, "text/html") && strings.Contains(string(r.body), "sk_live_") {
				t.Errorf("GET %s: a page holds a secret key", tc.path)
			}
		}
	}
}

// TestTopByAnUnknownGroupingIsInvalid: /audit/top counts by origin, reason
// or user; anything else is the caller's mistake (422), never a 500.
func TestTopByAnUnknownGroupingIsInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sec := e.signIn(t, "sam@example.com", account.RoleSecurity)
	sec.do(t, http.MethodGet, "/api/v1/audit/top?by=reason", nil).want(t, http.StatusOK)
	for _, by := range []string{"decision", "session"} {
		sec.do(t, http.MethodGet, "/api/v1/audit/top?by="+by, nil).want(t, http.StatusUnprocessableEntity)
	}
}

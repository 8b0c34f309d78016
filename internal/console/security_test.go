package console_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/console"
)

// TestHeadersAndSessionCookie runs the console on loopback HTTP and over
// TLS (with a server clock a year behind the machine's: what lasts follows
// the console's clock) and checks what protects the browser on each.
func TestHeadersAndSessionCookie(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		tls        bool
		cookie     string
		wantSecure bool
	}{
		{name: "loopback http", cookie: "hissuno_session"},
		{name: "tls", tls: true, cookie: "__Host-hissuno_session", wantSecure: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock(time.Now().Add(-365 * 24 * time.Hour))
			opts := []envOption{withClock(clock.Now)}
			if tc.tls {
				opts = append(opts, withTLS(t))
			}
			e := newEnv(t, opts...)
			if got := e.st.Console.SecureCookies(); got != tc.wantSecure {
				t.Fatalf("SecureCookies() = %v, want %v", got, tc.wantSecure)
			}
			t.Run("headers", func(t *testing.T) { t.Parallel(); checkSecurityHeaders(t, e, tc.tls) })
			t.Run("session cookie", func(t *testing.T) { t.Parallel(); checkSessionCookie(t, e, tc.cookie, tc.wantSecure) })
		})
	}
}

// checkSecurityHeaders sends every kind of request (the API signed in and
// not, its errors, unknown paths, a cross-origin refusal, a body too large,
// the health endpoints and the OpenAPI document): every answer carries a
// CSP without inline script that forbids framing, nosniff and
// no-referrer, the API's answers are not cached, and HSTS is sent only
// over TLS.
func checkSecurityHeaders(t *testing.T, e *env, secure bool) {
	owner := e.signIn(t, "headers@example.com", account.RoleOwner)
	anon := e.browser(t)
	huge := append(append([]byte(`{"email":"headers@example.com","password":"`), bytes.Repeat([]byte("x"), console.MaxBodyBytes+1)...), `"}`...)
	for _, rq := range []struct {
		name         string
		c            *client
		method, path string
		body         []byte
		header       []string
		status       int
	}{
		{name: "healthz", c: anon, method: http.MethodGet, path: "/healthz", status: http.StatusOK},
		{name: "readyz", c: anon, method: http.MethodGet, path: "/readyz"},
		{name: "metrics", c: anon, method: http.MethodGet, path: "/metrics", status: http.StatusOK},
		{name: "openapi document", c: anon, method: http.MethodGet, path: "/api/v1/openapi.json", status: http.StatusOK},
		{name: "api signed in", c: owner, method: http.MethodGet, path: "/api/v1/projects", status: http.StatusOK},
		{name: "api not signed in", c: anon, method: http.MethodGet, path: "/api/v1/projects", status: http.StatusUnauthorized},
		{name: "api unknown path", c: owner, method: http.MethodGet, path: "/api/v1/nothing-here", status: http.StatusNotFound},
		{name: "unknown path", c: anon, method: http.MethodGet, path: "/nothing-here", status: http.StatusNotFound},
		{name: "unknown project", c: owner, method: http.MethodGet, path: "/api/v1/projects/proj_none", status: http.StatusNotFound},
		{name: "method not allowed", c: owner, method: http.MethodPut, path: "/api/v1/projects", body: []byte(`{}`), status: http.StatusMethodNotAllowed},
		{name: "malformed body", c: anon, method: http.MethodPost, path: "/api/v1/session", body: []byte(`{"email":`), status: http.StatusBadRequest},
		{name: "wrong password", c: anon, method: http.MethodPost, path: "/api/v1/session", body: []byte(`{"email":"headers@example.com","password":"wrong password!"}`), status: http.StatusUnauthorized},
		{name: "body too large", c: anon, method: http.MethodPost, path: "/api/v1/session", body: huge, status: http.StatusRequestEntityTooLarge},
		{name: "cross-origin refusal", c: owner, method: http.MethodPost, path: "/api/v1/projects", body: []byte(`{"name":"x"}`),
			header: []string{"Sec-Fetch-Site", "cross-site"}, status: http.StatusForbidden},
	} {
		r := rq.c.fetch(t, rq.method, rq.path, rq.body, rq.header...)
		if rq.status != 0 && r.status != rq.status {
			t.Errorf("%s: %s %s answered %d, want %d: %.200s", rq.name, rq.method, rq.path, r.status, rq.status, r.body)
		}
		h := r.header
		csp := h.Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		switch {
		case csp == "":
			t.Errorf("%s: no Content-Security-Policy", rq.name)
		case strings.Contains(csp, "'unsafe-inline'") || strings.Contains(csp, "'unsafe-eval'"):
			t.Errorf("%s: the CSP allows inline script: %s", rq.name, csp)
		case directives["frame-ancestors"] != "'none'":
			t.Errorf("%s: the CSP does not forbid framing: %s", rq.name, csp)
		case directives["script-src"] != "'self'" || directives["default-src"] != "'self'" || directives["object-src"] != "'none'":
			t.Errorf("%s: the CSP allows scripts or plug-ins from elsewhere: %s", rq.name, csp)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s is %q, want %q", rq.name, k, got, want)
			}
		}
		if strings.HasPrefix(rq.path, console.APIPrefix+"/") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q on an API answer, want no-store", rq.name, h.Get("Cache-Control"))
		}
		hsts := h.Get("Strict-Transport-Security")
		if !secure && hsts != "" {
			t.Errorf("%s: HSTS %q on plain HTTP", rq.name, hsts)
		}
		if secure {
			age, err := strconv.Atoi(strings.TrimPrefix(hsts, "max-age="))
			if err != nil || age < 365*24*3600 {
				t.Errorf("%s: HSTS %q over TLS, want max-age of a year at least", rq.name, hsts)
			}
		}
	}
}

// checkSessionCookie signs in and out: the session cookie is HttpOnly,
// SameSite=Strict, path /, without Domain, and lives as long as the
// session by the server's clock; on loopback HTTP it is hissuno_session and
// not Secure (browsers would drop it), over TLS it is
// __Host-hissuno_session and Secure. Its value is a fresh 256-bit secret
// per sign-in; signing out clears it with the same flags. Over TLS the
// console reads the __Host- cookie only: a hissuno_session cookie set
// around the prefix's rules (by a sibling host, over plain HTTP) signs no
// one in.
func checkSessionCookie(t *testing.T, e *env, name string, secure bool) {
	if got := e.doc.Components.SecuritySchemes["session"].Name; got != name {
		t.Errorf("the OpenAPI document names the cookie %q, want %q", got, name)
	}
	pw := e.account(t, "ada@example.com", account.RoleOwner)
	var values []string
	for range 2 {
		c := e.browser(t)
		r := c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": "ada@example.com", "password": pw}).want(t, http.StatusOK)
		line, ck := r.setCookie(t, name)
		if ck == nil {
			t.Fatalf("sign-in sets no %s cookie: %v", name, r.header.Values("Set-Cookie"))
		}
		checkCookieFlags(t, line, ck, secure)
		if want := int(account.DefaultSessionAbsolute / time.Second); ck.MaxAge != want {
			t.Errorf("Max-Age=%d, want the session's lifetime by the server's clock, %d: %s", ck.MaxAge, want, line)
		}
		if len(ck.Value) < 43 { // 256 bits in base64url
			t.Errorf("the session id has %d characters: fewer than 256 bits", len(ck.Value))
		}
		if c.session(t) != ck.Value {
			t.Error("the browser did not keep the cookie")
		}
		values = append(values, ck.Value)
		c.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)

		r = c.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusNoContent)
		line, ck = r.setCookie(t, name)
		if ck == nil || ck.Value != "" || ck.MaxAge >= 0 {
			t.Fatalf("sign-out does not clear the cookie: %q", line)
		}
		checkCookieFlags(t, line, ck, secure)
		if c.session(t) != "" {
			t.Error("the browser still holds the cookie after signing out")
		}
	}
	if values[0] == values[1] {
		t.Error("two sign-ins got the same session id")
	}

	if secure {
		c := e.browser(t)
		c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": "ada@example.com", "password": pw}).want(t, http.StatusOK)
		e.withCookie("hissuno_session", c.session(t)).do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
		e.withCookie(name, c.session(t)).do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)
	}
}

// checkCookieFlags checks the flags every session cookie has: HttpOnly,
// SameSite=Strict, path /, no Domain, Secure as wanted.
func checkCookieFlags(t *testing.T, line string, ck *http.Cookie, secure bool) {
	t.Helper()
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" || ck.Secure != secure {
		t.Errorf("cookie %q: HttpOnly %v, SameSite %v, Path %q, Domain %q, Secure %v; want HttpOnly, Strict, /, no Domain, Secure %v",
			line, ck.HttpOnly, ck.SameSite, ck.Path, ck.Domain, ck.Secure, secure)
	}
	if strings.Contains(strings.ToLower(line), "domain=") {
		t.Errorf("cookie %q has a Domain", line)
	}
}

// TestCrossOriginChangesRefused sends, with a valid session cookie, every
// kind of change a forged page could make: marked cross-site or same-site
// (a sibling host) by Sec-Fetch-Site, or from a foreign or opaque Origin
// without Sec-Fetch-Site (older browsers). Each answers 403 and changes
// nothing: the project, the accounts, the tokens, the sessions are as they
// were. The same changes from the console's own pages, from an Origin that
// is the console's, or from a program with a bearer token and neither
// header, work; so does a cross-site read.
func TestCrossOriginChangesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.signIn(t, "ada@example.com", account.RoleOwner)
	id, _ := owner.createProject(t, "Shop", map[string]any{"origins": []string{"https://shop.example"}})
	var tok struct{ Secret string }
	owner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "ci", "role": "admin"}).want(t, http.StatusCreated).decode(t, &tok)
	other := e.signIn(t, "bob@example.com", account.RoleAdmin)

	// state is everything a forged request could change, as the owner
	// reads it.
	state := func() string {
		t.Helper()
		var b bytes.Buffer
		for _, p := range []string{"/api/v1/projects/" + id, "/api/v1/projects/" + id + "/revocations", "/api/v1/accounts", "/api/v1/tokens"} {
			r := owner.do(t, http.MethodGet, p, nil).want(t, http.StatusOK)
			var v map[string]any
			r.decode(t, &v)
			delete(v, "last24h") // traffic, not settings
			out, _ := json.Marshal(v)
			b.Write(out)
		}
		projects := owner.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK)
		var list struct{ Projects []struct{ ProjectID string } }
		projects.decode(t, &list)
		b.WriteString(strconv.Itoa(len(list.Projects)))
		return b.String()
	}
	before := state()

	forged := []struct {
		name   string
		header http.Header
	}{
		{name: "Sec-Fetch-Site cross-site", header: http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}},
		{name: "Sec-Fetch-Site same-site", header: http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {"https://other.127.0.0.1.nip.io"}}},
		{name: "foreign Origin without Sec-Fetch-Site", header: http.Header{"Origin": {"https://evil.example"}}},
		{name: "opaque Origin without Sec-Fetch-Site", header: http.Header{"Origin": {"null"}}},
	}
	changes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPatch, "/api/v1/projects/" + id, map[string]any{"requireToken": true, "origins": []string{"https://evil.example"}}},
		{http.MethodPost, "/api/v1/projects", map[string]any{"name": "Forged"}},
		{http.MethodPost, "/api/v1/projects/" + id + "/rotate", map[string]any{}},
		{http.MethodPost, "/api/v1/projects/" + id + "/revocations", map[string]any{"userId": "victim"}},
		{http.MethodPost, "/api/v1/tokens", map[string]any{"name": "forged", "role": "owner"}},
		{http.MethodPost, "/api/v1/accounts", map[string]any{"email": "mallory@evil.example", "role": "owner", "password": "mallory's own password"}},
		{http.MethodPatch, "/api/v1/accounts/bob@example.com", map[string]any{"disabled": true}},
		{http.MethodPut, "/api/v1/accounts/bob@example.com/password", map[string]any{"password": "a password mallory knows"}},
		{http.MethodPut, "/api/v1/session/password", map[string]any{"currentPassword": owner.password, "newPassword": "a password mallory knows"}},
		{http.MethodDelete, "/api/v1/session", nil},
		// Signing a victim in as the attacker (login CSRF).
		{http.MethodPost, "/api/v1/session", map[string]any{"email": "bob@example.com", "password": other.password}},
	}
	for _, f := range forged {
		for _, ch := range changes {
			t.Run(f.name+"/"+ch.method+" "+ch.path, func(t *testing.T) {
				r := owner.with(f.header).do(t, ch.method, ch.path, ch.body).want(t, http.StatusForbidden)
				if p := r.problem(t); !strings.Contains(p.Detail, "cross-origin") {
					t.Errorf("refusal: %s", r.body)
				}
				if line, _ := r.setCookie(t, e.cookieName()); line != "" {
					t.Errorf("a refused request set a cookie: %s", line)
				}
			})
		}
	}
	if after := state(); after != before {
		t.Fatalf("forged requests changed something:\nbefore %s\nafter  %s", before, after)
	}
	other.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)
	if !strings.Contains(e.logs.String(), "cross-origin request refused") {
		t.Error("the refusals are not logged")
	}

	// Reads are safe: a cross-site GET is answered (SameSite=Strict keeps
	// a real browser's cookie out of it anyway).
	owner.with(http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}).
		do(t, http.MethodGet, "/api/v1/projects/"+id, nil).want(t, http.StatusOK)

	for _, ok := range []struct {
		name string
		c    *client
		body map[string]any
	}{
		{name: "the console's own page", c: owner, body: map[string]any{"requireToken": true}},
		{name: "the console's own Origin, no Sec-Fetch-Site", c: owner.with(http.Header{"Origin": {e.base}}), body: map[string]any{"origins": []string{"https://a.example"}}},
		{name: "Sec-Fetch-Site none (typed by the user)", c: owner.with(http.Header{"Sec-Fetch-Site": {"none"}}), body: map[string]any{"origins": []string{"https://b.example"}}},
		{name: "a program with a bearer token", c: e.bearer(tok.Secret), body: map[string]any{"requireToken": false, "origins": []string{"https://c.example"}}},
	} {
		var out struct {
			Project struct {
				RequireToken bool
				Origins      []string
			}
		}
		ok.c.do(t, http.MethodPatch, "/api/v1/projects/"+id, ok.body).want(t, http.StatusOK).decode(t, &out)
		p := out.Project
		if want, set := ok.body["requireToken"]; set && p.RequireToken != want {
			t.Errorf("%s: requireToken %v, want %v", ok.name, p.RequireToken, want)
		}
		if want, set := ok.body["origins"]; set && strings.Join(p.Origins, ",") != strings.Join(want.([]string), ",") {
			t.Errorf("%s: origins %v, want %v", ok.name, p.Origins, want)
		}
	}
}

package console_test

// Every endpoint of the API called as a user calls it, through a whole
// stack: each answer's meaning checked, not only its status, and every
// change seen to take effect where it matters (the verifier's decisions,
// the audit).

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/origin"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// apiProject is a project as the API answers it.
type apiProject struct {
	ProjectID    string
	Name         string
	RequireToken bool
	Origins      []string
	KeyVersion   int
	Keys         []struct {
		Version     int
		Fingerprint string
		CreatedAt   time.Time
		GraceUntil  *time.Time
	}
	RevokedUsers int
	Revision     uint64
	Last24h      *struct {
		Decisions, Refused uint64
		RefusalRate        float64
	}
}

// keyAnswer is the answer of a change that made a key.
type keyAnswer struct {
	Project     apiProject
	SecretKey   string
	Confirmed   []string
	Unconfirmed []string
}

// changeAnswer is the answer of a change that made no key.
type changeAnswer struct {
	Project     apiProject
	Confirmed   []string
	Unconfirmed []string
}

// wantConfirmed checks that every verifier of the stack confirmed a change.
func wantConfirmed(t testing.TB, e *env, what string, confirmed, unconfirmed []string) {
	t.Helper()
	if len(confirmed) != len(e.st.Verifiers()) || len(unconfirmed) != 0 {
		t.Errorf("%s: confirmed by %v, unconfirmed %v; want every one of %d verifiers", what, confirmed, unconfirmed, len(e.st.Verifiers()))
	}
}

// TestProjectsAPI: projects listed with their last 24 hours, created with
// their key shown once, read with fingerprints only, changed (origins with
// the CLI's validation), rotated at once and with grace (the new key in
// that answer only), users revoked and lifted with reasons, origins
// tested; each change takes effect on the verifiers' decisions.
func TestProjectsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)

	// Create: the key in this answer, its fingerprint in every later one.
	var created keyAnswer
	owner.do(t, http.MethodPost, "/api/v1/projects", map[string]any{
		"name": "Shop", "projectId": "proj_shop", "origins": []string{"https://Shop.Example.com:443", "*.shop.example.com"}, "reason": "launch",
	}).want(t, http.StatusCreated).decode(t, fresh(&created))
	p, key1 := created.Project, created.SecretKey
	if p.ProjectID != "proj_shop" || p.Name != "Shop" || p.RequireToken || p.KeyVersion != 1 || !strings.HasPrefix(key1, "sk_live_") {
		t.Fatalf("create: %+v", created)
	}
	if want := []string{"https://shop.example.com", "https://*.shop.example.com"}; !sameSet(p.Origins, want) {
		t.Errorf("create: origins %v, want the canonical %v", p.Origins, want)
	}
	if len(p.Keys) != 1 || p.Keys[0].Version != 1 || p.Keys[0].Fingerprint != redact.Fingerprint(key1) || p.Keys[0].GraceUntil != nil {
		t.Errorf("create: keys %+v, want version 1 with the key's fingerprint %s", p.Keys, redact.Fingerprint(key1))
	}
	wantConfirmed(t, e, "create", created.Confirmed, created.Unconfirmed)
	owner.do(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": "Again", "projectId": "proj_shop"}).wantProblem(t, http.StatusConflict)
	blogID, _ := owner.createProject(t, "Blog", nil)

	// The key works at once; its decisions count in the list.
	accepted := e.connect(t, widgetReq{project: "proj_shop", token: token(t, key1, "u-ada", nil), origin: "https://shop.example.com"}, events.OutcomeAccept, "")
	blocked := e.connect(t, widgetReq{project: "proj_shop", origin: "https://evil.example"}, events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed)
	e.waitDecisions(t, accepted.DecisionID, blocked.DecisionID)
	var list struct{ Projects []apiProject }
	r := owner.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK)
	r.decode(t, fresh(&list))
	if len(list.Projects) != 2 || contains(r.body, key1) {
		t.Fatalf("list: %s", r.body)
	}
	for _, lp := range list.Projects {
		switch lp.ProjectID {
		case "proj_shop":
			if lp.Last24h == nil || lp.Last24h.Decisions != 2 || lp.Last24h.Refused != 1 || lp.Last24h.RefusalRate != 0.5 || lp.Keys[0].Fingerprint != redact.Fingerprint(key1) {
				t.Errorf("list: shop %+v, want 2 decisions, 1 refused, rate 0.5", lp)
			}
		case blogID:
			if lp.Last24h == nil || lp.Last24h.Decisions != 0 || lp.Last24h.RefusalRate != 0 {
				t.Errorf("list: blog %+v, want no decisions", lp)
			}
		default:
			t.Errorf("list: unknown project %+v", lp)
		}
	}

	// Get: fingerprints and versions, never the key.
	var got apiProject
	r = owner.do(t, http.MethodGet, "/api/v1/projects/proj_shop", nil).want(t, http.StatusOK)
	r.decode(t, fresh(&got))
	if contains(r.body, key1) || contains(r.body, "sk_live_") || got.KeyVersion != 1 || got.Keys[0].Fingerprint != redact.Fingerprint(key1) || got.Last24h == nil || got.Last24h.Decisions != 2 {
		t.Errorf("get: %s", r.body)
	}
	owner.do(t, http.MethodGet, "/api/v1/projects/proj_nope", nil).wantProblem(t, http.StatusNotFound, "proj_nope")

	// Patch: validated as the CLI validates, then in effect on the
	// verifiers.
	_, cliErr := origin.CanonicalPatterns([]string{"https://shop.example.com/path"})
	if cliErr == nil {
		t.Fatal("the CLI accepts an origin with a path")
	}
	owner.do(t, http.MethodPatch, "/api/v1/projects/proj_shop", map[string]any{"origins": []string{"https://shop.example.com/path"}}).
		wantProblem(t, http.StatusUnprocessableEntity, cliErr.Error())
	owner.do(t, http.MethodPatch, "/api/v1/projects/proj_shop", map[string]any{}).wantProblem(t, http.StatusUnprocessableEntity, "nothing to change")
	var patched changeAnswer
	owner.do(t, http.MethodPatch, "/api/v1/projects/proj_shop", map[string]any{"requireToken": true, "origins": []string{"https://shop.example.com"}, "reason": "tokens from now on"}).
		want(t, http.StatusOK).decode(t, fresh(&patched))
	if !patched.Project.RequireToken || len(patched.Project.Origins) != 1 || patched.Project.Revision <= got.Revision || patched.Project.KeyVersion != 1 {
		t.Errorf("patch: %+v", patched.Project)
	}
	wantConfirmed(t, e, "patch", patched.Confirmed, patched.Unconfirmed)
	e.connect(t, widgetReq{project: "proj_shop", origin: "https://shop.example.com"}, events.OutcomeUnauthorized, events.ReasonTokenRequired)
	e.connect(t, widgetReq{project: "proj_shop", token: token(t, key1, "u-ada", nil), origin: "https://app.shop.example.com"}, events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed)
	owner.do(t, http.MethodPatch, "/api/v1/projects/"+blogID, map[string]any{"origins": []string{}}).want(t, http.StatusOK).decode(t, fresh(&patched))
	if len(patched.Project.Origins) != 0 || patched.Project.RequireToken {
		t.Errorf("patch origins []: %+v, want the list emptied and requireToken kept", patched.Project)
	}

	// Origin check: the verifier's matcher, and why.
	for _, tc := range []struct {
		name, origin, pattern string
		allowed               bool
		reason                events.Reason
		explains              string
	}{
		{"listed", "https://shop.example.com", "https://shop.example.com", true, "", "listed exactly"},
		{"listed with the default port", "https://shop.example.com:443", "https://shop.example.com", true, "", "listed exactly"},
		{"another host", "https://evil.example", "", false, events.ReasonOriginNotAllowed, "https://evil.example"},
		{"http for https", "http://shop.example.com", "", false, events.ReasonOriginNotAllowed, ""},
		{"no origin", "", "", false, events.ReasonOriginMissing, ""},
	} {
		t.Run("origin-check "+tc.name, func(t *testing.T) {
			var v struct {
				Allowed     bool
				Pattern     string
				Reason      string
				Explanation string
			}
			owner.do(t, http.MethodGet, "/api/v1/projects/proj_shop/origin-check"+query("origin", tc.origin), nil).want(t, http.StatusOK).decode(t, fresh(&v))
			if v.Allowed != tc.allowed || v.Pattern != tc.pattern || v.Reason != string(tc.reason) || v.Explanation == "" || !strings.Contains(v.Explanation, tc.explains) {
				t.Errorf("origin %q: %+v, want allowed %v by %q, reason %q, explaining %q", tc.origin, v, tc.allowed, tc.pattern, tc.reason, tc.explains)
			}
		})
	}
	var wild struct {
		Allowed bool
		Pattern string
	}
	owner.do(t, http.MethodGet, "/api/v1/projects/"+blogID+"/origin-check?origin=https://anything.example", nil).want(t, http.StatusOK).decode(t, fresh(&wild))
	if !wild.Allowed || wild.Pattern != "" {
		t.Errorf("origin check on an empty list: %+v, want allowed by no pattern", wild)
	}

	// Rotate at once: the new key in this answer only, the old one refused
	// at once.
	var rot keyAnswer
	owner.do(t, http.MethodPost, "/api/v1/projects/proj_shop/rotate", map[string]any{"reason": "key leaked"}).want(t, http.StatusOK).decode(t, fresh(&rot))
	key2 := rot.SecretKey
	if !strings.HasPrefix(key2, "sk_live_") || key2 == key1 || rot.Project.KeyVersion != 2 || len(rot.Project.Keys) != 1 ||
		rot.Project.Keys[0].Version != 2 || rot.Project.Keys[0].Fingerprint != redact.Fingerprint(key2) {
		t.Fatalf("rotate: %+v", rot)
	}
	wantConfirmed(t, e, "rotate", rot.Confirmed, rot.Unconfirmed)
	e.connect(t, widgetReq{project: "proj_shop", token: token(t, key1, "u-ada", nil), origin: "https://shop.example.com"}, events.OutcomeUnauthorized, events.ReasonTokenBadSignature)
	e.connect(t, widgetReq{project: "proj_shop", token: token(t, key2, "u-ada", nil), origin: "https://shop.example.com"}, events.OutcomeAccept, "")

	// Rotate with grace: the previous key verifies until its grace ends.
	before := time.Now()
	owner.do(t, http.MethodPost, "/api/v1/projects/proj_shop/rotate", map[string]any{"graceSeconds": 3600, "reason": "scheduled"}).want(t, http.StatusOK).decode(t, fresh(&rot))
	key3 := rot.SecretKey
	if rot.Project.KeyVersion != 3 || len(rot.Project.Keys) != 2 || rot.Project.Keys[0].Version != 3 || rot.Project.Keys[0].Fingerprint != redact.Fingerprint(key3) ||
		rot.Project.Keys[1].Version != 2 || rot.Project.Keys[1].GraceUntil == nil {
		t.Fatalf("rotate with grace: %+v", rot.Project)
	}
	if g := *rot.Project.Keys[1].GraceUntil; g.Before(before.Add(time.Hour-time.Minute)) || g.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Errorf("rotate with grace: the previous key's grace ends %s, want an hour from now", g)
	}
	e.connect(t, widgetReq{project: "proj_shop", token: token(t, key2, "u-ada", nil), origin: "https://shop.example.com"}, events.OutcomeAccept, "")
	e.connect(t, widgetReq{project: "proj_shop", token: token(t, key3, "u-ada", nil), origin: "https://shop.example.com"}, events.OutcomeAccept, "")
	owner.do(t, http.MethodPost, "/api/v1/projects/proj_shop/rotate", map[string]any{"graceSeconds": -1}).want(t, http.StatusUnprocessableEntity)
	r = owner.do(t, http.MethodGet, "/api/v1/projects/proj_shop", nil).want(t, http.StatusOK)
	r.decode(t, fresh(&got))
	for _, k := range []string{key1, key2, key3} {
		if contains(r.body, k) {
			t.Errorf("get after rotations shows a key: %s", r.body)
		}
	}
	if got.KeyVersion != 3 || len(got.Keys) != 2 || got.Keys[0].Fingerprint != redact.Fingerprint(key3) || got.Keys[1].Fingerprint != redact.Fingerprint(key2) {
		t.Errorf("get after rotations: %+v", got.Keys)
	}

	// Revocations: a user's tokens refused, then accepted again.
	bob := token(t, key3, "u-bob", nil)
	e.connect(t, widgetReq{project: "proj_shop", token: bob, origin: "https://shop.example.com"}, events.OutcomeAccept, "")
	var revoked changeAnswer
	owner.do(t, http.MethodPost, "/api/v1/projects/proj_shop/revocations", map[string]any{"userId": "u-bob", "reason": "left the company"}).
		want(t, http.StatusOK).decode(t, fresh(&revoked))
	if revoked.Project.RevokedUsers != 1 {
		t.Errorf("revoke: %+v", revoked.Project)
	}
	wantConfirmed(t, e, "revoke", revoked.Confirmed, revoked.Unconfirmed)
	var revs struct {
		Revocations []struct {
			UserID        string
			RevokedBefore time.Time
		}
	}
	owner.do(t, http.MethodGet, "/api/v1/projects/proj_shop/revocations", nil).want(t, http.StatusOK).decode(t, fresh(&revs))
	if len(revs.Revocations) != 1 || revs.Revocations[0].UserID != "u-bob" || time.Since(revs.Revocations[0].RevokedBefore).Abs() > time.Minute {
		t.Errorf("revocations: %+v, want u-bob revoked now", revs)
	}
	e.connect(t, widgetReq{project: "proj_shop", token: bob, origin: "https://shop.example.com"}, events.OutcomeUnauthorized, events.ReasonTokenRevoked)
	owner.do(t, http.MethodDelete, "/api/v1/projects/proj_shop/revocations/u-nobody", nil).wantProblem(t, http.StatusUnprocessableEntity, "not revoked")
	owner.do(t, http.MethodDelete, "/api/v1/projects/proj_shop/revocations/u-bob?reason=came+back", nil).want(t, http.StatusOK).decode(t, fresh(&revoked))
	if revoked.Project.RevokedUsers != 0 {
		t.Errorf("lift: %+v", revoked.Project)
	}
	owner.do(t, http.MethodGet, "/api/v1/projects/proj_shop/revocations", nil).want(t, http.StatusOK).decode(t, fresh(&revs))
	if len(revs.Revocations) != 0 {
		t.Errorf("revocations after the lift: %+v", revs)
	}
	e.connect(t, widgetReq{project: "proj_shop", token: bob, origin: "https://shop.example.com"}, events.OutcomeAccept, "")

	// Every change is in the admin audit, by the console account, with its
	// reason.
	evs := e.waitAdminEvents(t, audit.Filter{ProjectID: "proj_shop"}, 6)
	want := []struct {
		kind, reason, user string
		version            uint32
	}{
		{"user.unrevoked", "came back", "u-bob", 3},
		{"user.revoked", "left the company", "u-bob", 3},
		{"key.rotated", "scheduled", "", 3},
		{"key.rotated", "key leaked", "", 2},
		{"project.updated", "tokens from now on", "", 1},
		{"project.created", "launch", "", 1},
	}
	if len(evs) != len(want) {
		t.Fatalf("admin events of proj_shop: %+v, want %d", evs, len(want))
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Kind != w.kind || ev.Reason != w.reason || ev.UserID != w.user || ev.KeyVersion != w.version || ev.Actor != "console:owner@example.com" || ev.ClientIP != "127.0.0.1" {
			t.Errorf("admin event %d: %+v, want %s by console:owner@example.com from 127.0.0.1, reason %q", i, ev, w.kind, w.reason)
		}
	}
	if evs[2].GraceSeconds != 3600 || evs[2].PreviousKeyVersion != 2 || evs[2].KeyFingerprint != redact.Fingerprint(key3) {
		t.Errorf("the rotation with grace: %+v", evs[2])
	}
}

// apiAccount is an account as the API answers it.
type apiAccount struct {
	Email, Role       string
	Projects          []string
	Disabled          bool
	CreatedAt         time.Time
	UpdatedAt         time.Time
	PasswordChangedAt time.Time
}

// apiToken is an API token as the API answers it.
type apiToken struct {
	ID, Name, Role, CreatedBy        string
	Projects                         []string
	CreatedAt                        time.Time
	ExpiresAt, RevokedAt, LastUsedAt *time.Time
}

// me is the answer of GET /api/v1/session.
type me struct {
	Actor, Email, TokenID, Role string
	Projects                    []string
	ExpiresAt                   *time.Time
}

// signInAs signs a new browser in with an email and password.
func (e *env) signInAs(t testing.TB, email, password string) (*client, me) {
	t.Helper()
	c := e.browser(t)
	var m me
	r := c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password}).want(t, http.StatusOK)
	r.decode(t, &m)
	if r.header.Get("Set-Cookie") == "" {
		t.Fatalf("sign-in as %s set no cookie", email)
	}
	c.password = password
	return c, m
}

// TestAccountsAPI: an owner lists, creates (a one-time password in that
// answer only, unless it gave one), changes and resets the password of
// accounts, whose changes apply to their sessions at once; makes API
// tokens (the token in that answer only) that work as their role, shows
// their last use, and revokes them; every change is an admin event by the
// owner.
func TestAccountsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)

	var accounts struct{ Accounts []apiAccount }
	r := owner.do(t, http.MethodGet, "/api/v1/accounts", nil).want(t, http.StatusOK)
	r.decode(t, &accounts)
	if len(accounts.Accounts) != 1 || accounts.Accounts[0].Email != "owner@example.com" || accounts.Accounts[0].Role != "owner" ||
		len(accounts.Accounts[0].Projects) != 0 || accounts.Accounts[0].Disabled || contains(r.body, owner.password) || contains(r.body, "argon2") {
		t.Fatalf("accounts: %s", r.body)
	}

	// Create: a one-time password made for it, or the one given.
	var made struct {
		Account  apiAccount
		Password string
	}
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "Sec@Example.com", "role": "security", "projects": []string{"proj_a"}}).
		want(t, http.StatusCreated).decode(t, &made)
	if made.Account.Email != "sec@example.com" || made.Account.Role != "security" || !sameSet(made.Account.Projects, []string{"proj_a"}) || len(made.Password) < account.MinPasswordRunes {
		t.Fatalf("create: %+v", made)
	}
	sec, m := e.signInAs(t, "sec@example.com", made.Password)
	if m.Actor != "console:sec@example.com" || m.Role != "security" || !sameSet(m.Projects, []string{"proj_a"}) {
		t.Errorf("the new account signed in: %+v", m)
	}
	const given = "correct horse battery staple"
	r = owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "ops@example.com", "role": "admin", "password": given}).want(t, http.StatusCreated)
	r.decode(t, fresh(&made))
	if made.Password != "" || contains(r.body, given) || made.Account.Role != "admin" {
		t.Errorf("create with a password: %s", r.body)
	}
	ops, _ := e.signInAs(t, "ops@example.com", given)
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "SEC@example.com", "role": "admin"}).wantProblem(t, http.StatusConflict)
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "not an email", "role": "admin"}).wantProblem(t, http.StatusUnprocessableEntity)
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "x@example.com", "role": "root"}).want(t, http.StatusUnprocessableEntity)
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "y@example.com", "role": "admin", "password": "short"}).wantProblem(t, http.StatusUnprocessableEntity, "12")
	r = owner.do(t, http.MethodGet, "/api/v1/accounts", nil).want(t, http.StatusOK)
	r.decode(t, fresh(&accounts))
	if len(accounts.Accounts) != 3 || contains(r.body, given) {
		t.Errorf("accounts after two creations: %s", r.body)
	}

	// Patch: the role and projects apply to the signed-in session at once.
	var changed apiAccount
	owner.do(t, http.MethodPatch, "/api/v1/accounts/sec@example.com", map[string]any{"role": "admin", "projects": []string{}}).want(t, http.StatusOK).decode(t, &changed)
	if changed.Role != "admin" || len(changed.Projects) != 0 || changed.Disabled || !changed.UpdatedAt.After(changed.CreatedAt) {
		t.Errorf("patch: %+v", changed)
	}
	sec.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, fresh(&m))
	if m.Role != "admin" || len(m.Projects) != 0 {
		t.Errorf("the session after the patch: %+v, want role admin on every project", m)
	}
	owner.do(t, http.MethodPatch, "/api/v1/accounts/ops@example.com", map[string]any{"disabled": true}).want(t, http.StatusOK).decode(t, fresh(&changed))
	if !changed.Disabled || changed.Role != "admin" {
		t.Errorf("disable: %+v", changed)
	}
	ops.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	owner.do(t, http.MethodPatch, "/api/v1/accounts/owner@example.com", map[string]any{"disabled": true}).wantProblem(t, http.StatusUnprocessableEntity, "yourself")
	owner.do(t, http.MethodPatch, "/api/v1/accounts/owner@example.com", map[string]any{"role": "admin"}).wantProblem(t, http.StatusUnprocessableEntity, "owner role")
	owner.do(t, http.MethodPatch, "/api/v1/accounts/sec@example.com", map[string]any{}).wantProblem(t, http.StatusUnprocessableEntity, "nothing to change")
	owner.do(t, http.MethodPatch, "/api/v1/accounts/nobody@example.com", map[string]any{"role": "admin"}).wantProblem(t, http.StatusNotFound)

	// Password reset: a one-time password, the old one refused.
	var reset struct {
		Account  apiAccount
		Password string
	}
	owner.do(t, http.MethodPut, "/api/v1/accounts/sec@example.com/password", map[string]any{}).want(t, http.StatusOK).decode(t, &reset)
	if reset.Account.Email != "sec@example.com" || len(reset.Password) < account.MinPasswordRunes || !reset.Account.PasswordChangedAt.After(made.Account.CreatedAt) {
		t.Errorf("reset: %+v", reset)
	}
	sec.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	e.signInAs(t, "sec@example.com", reset.Password)
	r = owner.do(t, http.MethodPut, "/api/v1/accounts/ops@example.com/password", map[string]any{"password": "another long passphrase"}).want(t, http.StatusOK)
	r.decode(t, fresh(&reset))
	if reset.Password != "" || contains(r.body, "another long passphrase") {
		t.Errorf("reset to a given password: %s", r.body)
	}
	owner.do(t, http.MethodPut, "/api/v1/accounts/nobody@example.com/password", map[string]any{}).wantProblem(t, http.StatusNotFound)

	// Tokens: the secret once, then its id, role, expiry and last use.
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var tok struct {
		Token  apiToken
		Secret string
	}
	owner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "ci", "role": "security", "expiresAt": expires}).want(t, http.StatusCreated).decode(t, &tok)
	if !strings.HasPrefix(tok.Secret, account.TokenPrefix) || len(tok.Secret) != account.TokenLen || !strings.HasPrefix(tok.Token.ID, account.TokenIDPrefix) ||
		tok.Token.Name != "ci" || tok.Token.Role != "security" || tok.Token.CreatedBy != "console:owner@example.com" ||
		tok.Token.ExpiresAt == nil || !tok.Token.ExpiresAt.Equal(expires) || tok.Token.RevokedAt != nil || tok.Token.LastUsedAt != nil {
		t.Fatalf("create token: %+v", tok)
	}
	owner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "bad", "role": "god"}).want(t, http.StatusUnprocessableEntity)
	owner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "past", "role": "admin", "expiresAt": time.Now().Add(-time.Hour)}).wantProblem(t, http.StatusUnprocessableEntity)
	ci := e.bearer(tok.Secret)
	ci.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, fresh(&m))
	if m.Actor != "token:"+tok.Token.ID || m.TokenID != tok.Token.ID || m.Email != "" || m.Role != "security" || m.ExpiresAt != nil {
		t.Errorf("the token's session: %+v", m)
	}
	ci.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK)
	var tokens struct{ Tokens []apiToken }
	stacktest.Eventually(t, 10*time.Second, "the token's last use shown", func() error {
		r = owner.do(t, http.MethodGet, "/api/v1/tokens", nil).want(t, http.StatusOK)
		r.decode(t, fresh(&tokens))
		if len(tokens.Tokens) != 1 || tokens.Tokens[0].LastUsedAt == nil {
			return fmt.Errorf("tokens: %s", r.body)
		}
		return nil
	})
	if contains(r.body, tok.Secret) || contains(r.body, tok.Secret[len(account.TokenPrefix):]) || time.Since(*tokens.Tokens[0].LastUsedAt) > time.Minute {
		t.Errorf("tokens: %s", r.body)
	}
	var revoked apiToken
	owner.do(t, http.MethodDelete, "/api/v1/tokens/"+tok.Token.ID, nil).want(t, http.StatusOK).decode(t, &revoked)
	if revoked.ID != tok.Token.ID || revoked.RevokedAt == nil || time.Since(*revoked.RevokedAt) > time.Minute {
		t.Errorf("revoke token: %+v", revoked)
	}
	ci.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	owner.do(t, http.MethodDelete, "/api/v1/tokens/tok_nope", nil).wantProblem(t, http.StatusNotFound)
	owner.do(t, http.MethodGet, "/api/v1/tokens", nil).want(t, http.StatusOK).decode(t, fresh(&tokens))
	if len(tokens.Tokens) != 1 || tokens.Tokens[0].RevokedAt == nil {
		t.Errorf("tokens after the revocation: %+v", tokens)
	}

	// Every change, by the owner, with what it changed.
	evs := e.waitAdminEvents(t, audit.Filter{Actor: "console:owner@example.com"}, 9)
	for _, w := range []struct{ kind, account, reason string }{
		{"account.created", "sec@example.com", "role security, projects proj_a"},
		{"account.created", "ops@example.com", "role admin, every project"},
		{"account.updated", "sec@example.com", "role admin; projects, every project"},
		{"account.updated", "ops@example.com", "disabled: every session ended"},
		{"account.password_changed", "sec@example.com", "reset by an owner"},
		{"account.password_changed", "ops@example.com", "reset by an owner"},
		{"token.created", tok.Token.ID, "ci: role security, every project"},
		{"token.revoked", tok.Token.ID, "ci"},
		{"account.signed_in", "owner@example.com", ""},
	} {
		n := 0
		for _, ev := range evs {
			if ev.Kind == w.kind && ev.Account == w.account && strings.Contains(ev.Reason, w.reason) && ev.ClientIP == "127.0.0.1" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d %s events of %s with the reason %q, want 1: %+v", n, w.kind, w.account, w.reason, evs)
		}
	}
}

// TestSessionAPI: signing in answers who one is and sets the session
// cookie; GET /api/v1/session answers the same; a password change needs
// the current password and starts a new session; signing out ends it; each
// is an admin event of the account.
func TestSessionAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	pw := e.account(t, "ada@example.com", account.RoleAdmin, "proj_a", "proj_b")
	ada, signedIn := e.signInAs(t, "ADA@example.com", pw)
	if signedIn.Actor != "console:ada@example.com" || signedIn.Email != "ada@example.com" || signedIn.Role != "admin" || !sameSet(signedIn.Projects, []string{"proj_a", "proj_b"}) ||
		signedIn.ExpiresAt == nil || signedIn.ExpiresAt.Before(time.Now().Add(account.DefaultSessionAbsolute-time.Minute)) || signedIn.TokenID != "" {
		t.Errorf("sign-in: %+v", signedIn)
	}
	var m me
	ada.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, &m)
	if m.Actor != signedIn.Actor || m.Email != signedIn.Email || m.Role != signedIn.Role || !sameSet(m.Projects, signedIn.Projects) || m.ExpiresAt == nil || !m.ExpiresAt.Equal(*signedIn.ExpiresAt) {
		t.Errorf("session: %+v, want %+v", m, signedIn)
	}
	ada.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": "ada@example.com"}).wantProblem(t, http.StatusUnprocessableEntity, "validation failed")

	// Change the password: the current one checked, the policy applied.
	const next = "a much longer passphrase"
	ada.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": "not it at all", "newPassword": next}).
		wantProblem(t, http.StatusUnprocessableEntity, "current password is wrong")
	ada.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": pw, "newPassword": "short"}).want(t, http.StatusUnprocessableEntity)
	r := ada.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": pw, "newPassword": next}).want(t, http.StatusOK)
	r.decode(t, fresh(&m))
	if m.Email != "ada@example.com" || r.header.Get("Set-Cookie") == "" || contains(r.body, next) {
		t.Errorf("password change: %s %v", r.body, r.header)
	}
	ada.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)
	other, _ := e.signInAs(t, "ada@example.com", next)

	// Sign out: this session ends, the other goes on.
	r = ada.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusNoContent)
	if len(r.body) != 0 || r.header.Get("Set-Cookie") == "" {
		t.Errorf("sign-out: %q, Set-Cookie %q", r.body, r.header.Get("Set-Cookie"))
	}
	ada.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	other.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)

	evs := e.waitAdminEvents(t, audit.Filter{Actor: "console:ada@example.com"}, 6)
	var kinds []string
	for _, ev := range evs {
		if ev.Account != "ada@example.com" || ev.ClientIP != "127.0.0.1" || ev.UserAgent == "" {
			t.Errorf("admin event %+v: want ada's, from 127.0.0.1 with a user agent", ev)
		}
		kinds = append(kinds, ev.Kind)
	}
	// Newest first; the wrong current password counts as a failed sign-in.
	if want := []string{"account.signed_out", "account.signed_in", "account.signed_in", "account.password_changed", "account.sign_in_failed", "account.signed_in"}; !slices.Equal(kinds, want) {
		t.Errorf("ada's admin events: %v, want %v", kinds, want)
	}
}

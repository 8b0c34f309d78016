package console_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// access is who may call an operation, as the roles say: owner
// everything, admin projects, rotation, revocation and the audit, security
// read-only (settings, fingerprints, the audit, admin events).
type access int

const (
	// public: nobody needs to be signed in (signing in).
	public access = iota
	// anyone signed in, account or API token.
	anyone
	// accountsOnly: any signed-in account, never an API token.
	accountsOnly
	// readers: owner, admin and security.
	readers
	// changers: owner and admin.
	changers
	// owners only.
	owners
)

func (a access) allows(c *caller) bool {
	switch a {
	case public, anyone, readers:
		return true
	case accountsOnly:
		return !c.token
	case changers:
		return c.role == account.RoleOwner || c.role == account.RoleAdmin
	case owners:
		return c.role == account.RoleOwner
	}
	return false
}

// caller is an account or an API token of one role, signed in.
type caller struct {
	name  string
	role  account.Role
	token bool
	// actor is how admin events name it; id its email or token id.
	actor, id string
	c         *client
	// fresh is a client of the same kind that an operation may end (sign
	// out, change its password): for an account another account of the
	// role, for a token the token itself.
	fresh func(t testing.TB) *client
}

// roleFixture is what the role table's calls work on: a project with a
// decision, and the owner to prepare what a call changes.
type roleFixture struct {
	e        *env
	owner    *client
	project  string
	decision string
	// missing is set when project does not exist: calls prepare nothing
	// on it.
	missing bool
	n       *atomic.Int64
}

// unique is a name no other call of the test uses.
func (f *roleFixture) unique(prefix string) string {
	return prefix + strconv.FormatInt(f.n.Add(1), 10)
}

// roleOp is one row of the role table: who may call an operation, and a
// call of it as c that succeeds when c may.
type roleOp struct {
	access access
	call   func(t *testing.T, f *roleFixture, c *caller) *resp
}

// roleTable has a row per operation of the OpenAPI document, by
// operationId; TestRoles fails on an operation without one.
var roleTable = map[string]roleOp{
	"sign-in": {public, func(t *testing.T, f *roleFixture, c *caller) *resp {
		email := f.unique("signin-") + "@example.com"
		pw := f.e.account(t, email, c.role)
		return f.e.browser(t).do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": pw})
	}},
	"get-session": {anyone, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/session", nil)
	}},
	"sign-out": {accountsOnly, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.fresh(t).do(t, http.MethodDelete, "/api/v1/session", nil)
	}},
	"change-password": {accountsOnly, func(t *testing.T, f *roleFixture, c *caller) *resp {
		cl := c.fresh(t)
		return cl.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": cl.password, "newPassword": "a new passphrase for " + c.name})
	}},

	"list-projects": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/projects", nil)
	}},
	"create-project": {changers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": f.unique("project ")})
	}},
	"get-project": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/projects/"+f.project, nil)
	}},
	"update-project": {changers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodPatch, "/api/v1/projects/"+f.project, map[string]any{"requireToken": false, "reason": "by " + c.name})
	}},
	"rotate-key": {changers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodPost, "/api/v1/projects/"+f.project+"/rotate", map[string]any{"reason": "by " + c.name})
	}},
	"list-revocations": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/projects/"+f.project+"/revocations", nil)
	}},
	"revoke-user": {changers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodPost, "/api/v1/projects/"+f.project+"/revocations", map[string]any{"userId": f.unique("u-")})
	}},
	"lift-revocation": {changers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		user := f.unique("u-lift-")
		if !f.missing {
			f.owner.do(t, http.MethodPost, "/api/v1/projects/"+f.project+"/revocations", map[string]any{"userId": user}).want(t, http.StatusOK)
		}
		return c.c.do(t, http.MethodDelete, "/api/v1/projects/"+f.project+"/revocations/"+user+"?reason=by+"+string(c.role), nil)
	}},
	"check-origin": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/projects/"+f.project+"/origin-check?origin=https://shop.example", nil)
	}},

	"list-decisions": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/decisions?project="+f.project, nil)
	}},
	"get-decision": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/decisions/"+f.decision, nil)
	}},
	"decision-series": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/series?bucket=minute&project="+f.project, nil)
	}},
	"top-values": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/top?by=reason&project="+f.project, nil)
	}},
	"list-admin-events": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/admin-events?project="+f.project, nil)
	}},
	"list-throttled": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/throttled?project="+f.project, nil)
	}},
	"list-users": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/projects/"+f.project+"/users", nil)
	}},
	"user-history": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/projects/"+f.project+"/users/u-1/decisions", nil)
	}},
	"export-decisions": {readers, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/audit/export?project="+f.project, nil)
	}},

	"list-accounts": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/accounts", nil)
	}},
	"create-account": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": f.unique("new-") + "@example.com", "role": "security"})
	}},
	"update-account": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		email := f.unique("target-") + "@example.com"
		f.e.account(t, email, account.RoleAdmin)
		return c.c.do(t, http.MethodPatch, "/api/v1/accounts/"+email, map[string]any{"role": "security"})
	}},
	"reset-password": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		email := f.unique("target-") + "@example.com"
		f.e.account(t, email, account.RoleAdmin)
		return c.c.do(t, http.MethodPut, "/api/v1/accounts/"+email+"/password", map[string]any{})
	}},
	"list-tokens": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodGet, "/api/v1/tokens", nil)
	}},
	"create-token": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		return c.c.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": f.unique("token "), "role": "security"})
	}},
	"revoke-token": {owners, func(t *testing.T, f *roleFixture, c *caller) *resp {
		tok, _ := f.e.apiToken(t, f.unique("target "), account.RoleSecurity)
		return c.c.do(t, http.MethodDelete, "/api/v1/tokens/"+tok.ID, nil)
	}},
}

// apiToken makes an API token as the owner would, through the store, and
// returns it with its secret.
func (e *env) apiToken(t testing.TB, name string, role account.Role, projects ...string) (account.Token, string) {
	t.Helper()
	tok, secret, err := e.st.Console.Accounts().CreateToken(stacktest.Context(t, 30*time.Second),
		account.TokenSpec{Name: name, Role: role, Projects: projects, CreatedBy: "console:owner@example.com"})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	return tok, secret
}

// successStatus is the 2xx status an operation of the document answers.
func successStatus(t testing.TB, e *env, method, path string) int {
	t.Helper()
	_, op := e.operation(method, fillPath(path))
	if op == nil {
		t.Fatalf("%s %s: not in the document", method, path)
	}
	for code := range op.Responses {
		if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 300 {
			return n
		}
	}
	t.Fatalf("%s %s declares no success", method, path)
	return 0
}

// TestRoles: every operation of the served OpenAPI document called as
// each role, by a signed-in account and by an API token: what the role
// allows works; what it does not answers 403 with a problem saying why,
// and each refusal is an account.access_denied admin event naming the
// caller and the operation, one per refusal. An operation of the document
// without a row in roleTable fails the test.
func TestRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	f := &roleFixture{e: e, owner: e.signIn(t, "owner@example.com", account.RoleOwner), n: &atomic.Int64{}}
	var key string
	f.project, key = f.owner.createProject(t, "Roles", nil)
	f.decision = e.connect(t, widgetReq{project: f.project, token: token(t, key, "u-1", nil), origin: "https://shop.example"}, events.OutcomeAccept, "").DecisionID
	e.waitDecisions(t, f.decision)

	ops := e.servedDoc(t).operations()
	for _, o := range ops {
		if _, ok := roleTable[o.id]; !ok {
			t.Errorf("%s (%s) has no row in the role table: say who may call it", o.id, o)
		}
	}
	for id := range roleTable {
		if !slices.ContainsFunc(ops, func(o docOp) bool { return o.id == id }) {
			t.Errorf("the role table's %s is not an operation of the document", id)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	var callers []*caller
	for _, role := range []account.Role{account.RoleOwner, account.RoleAdmin, account.RoleSecurity} {
		email := string(role) + "-caller@example.com"
		acc := &caller{name: string(role) + " account", role: role, actor: events.ActorConsole + email, id: email, c: e.signIn(t, email, role)}
		acc.fresh = func(t testing.TB) *client { return e.signIn(t, f.unique(string(role)+"-fresh-")+"@example.com", role) }
		tok, secret := e.apiToken(t, string(role)+" caller", role)
		bot := &caller{name: string(role) + " token", role: role, token: true, actor: events.ActorToken + tok.ID, id: tok.ID, c: e.bearer(secret)}
		bot.fresh = func(testing.TB) *client { return bot.c }
		callers = append(callers, acc, bot)
	}
	t.Run("callers", func(t *testing.T) {
		for _, c := range callers {
			testCaller(t, e, f, ops, c)
		}
	})

	// The refused changes changed nothing: only the four callers that may
	// change projects rotated the key, made a project, revoked a user.
	changers := 0
	for _, c := range callers {
		if roleTable["rotate-key"].access.allows(c) {
			changers++
		}
	}
	var p apiProject
	f.owner.do(t, http.MethodGet, "/api/v1/projects/"+f.project, nil).want(t, http.StatusOK).decode(t, &p)
	var list struct{ Projects []apiProject }
	f.owner.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK).decode(t, &list)
	// Each caller had a user revoked by the owner for it to lift; only the
	// changers lifted theirs, and revoked one of their own.
	if changers != 4 || p.KeyVersion != 1+changers || len(list.Projects) != 1+changers || p.RevokedUsers != len(callers) {
		t.Errorf("after the role table: key version %d, %d projects, %d revoked users; want %d, %d, %d",
			p.KeyVersion, len(list.Projects), p.RevokedUsers, 1+changers, 1+changers, len(callers))
	}
}

// testCaller calls every operation as c, in a parallel subtest, and checks
// its answers and the audit of its refusals.
func testCaller(t *testing.T, e *env, f *roleFixture, ops []docOp, c *caller) {
	t.Helper()
	t.Run(c.name, func(t *testing.T) {
		t.Parallel()
		var refused []string
		for _, o := range ops {
			row := roleTable[o.id]
			r := row.call(t, f, c)
			if tmpl, _ := e.operation(r.method, strings.SplitN(r.path, "?", 2)[0]); r.method != o.method || tmpl != o.path {
				t.Fatalf("the row of %s called %s %s", o, r.method, r.path)
			}
			if row.access.allows(c) {
				if want := successStatus(t, e, o.method, o.path); r.status != want {
					t.Errorf("%s as %s: %d, want %d: %s", o, c.name, r.status, want, r.body)
				}
				continue
			}
			why := "your role (" + string(c.role) + ") does not allow this"
			if row.access == accountsOnly {
				why = "API tokens cannot do this"
			}
			if r.status != http.StatusForbidden {
				t.Errorf("%s as %s: %d, want 403: %s", o, c.name, r.status, r.body)
				continue
			}
			r.wantProblem(t, http.StatusForbidden, why)
			refused = append(refused, o.String())
		}

		// Each refusal is in the audit, once, by this caller.
		evs := e.waitAdminEvents(t, audit.Filter{Kind: string(events.AdminAccessDenied), Actor: c.actor}, len(refused))
		var got []string
		for _, ev := range evs {
			route, _, _ := strings.Cut(ev.Reason, ": ")
			got = append(got, route)
			if ev.Account != c.id || ev.ClientIP != "127.0.0.1" || ev.UserAgent == "" {
				t.Errorf("access denied to %s: %+v, want its account %s, address and user agent", c.name, ev, c.id)
			}
		}
		if !sameSet(got, refused) {
			t.Errorf("access denied events of %s: %v, want one per refusal: %v", c.name, got, refused)
		}
		t.Logf("%s: %d operations allowed, %d refused", c.name, len(ops)-len(refused), len(refused))
	})
}

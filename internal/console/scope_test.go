package console_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
)

// How an operation meets projects, for the scoping test; an operation
// whose path has no {projectId} needs an entry in projectScope.
type scopeKind int

const (
	// unscoped: no project involved (the session, accounts, tokens).
	unscoped scopeKind = iota
	// byQuery: ?project= names one; without it, it covers every project
	// the caller may see.
	byQuery
	// byDecision: a decision id, which belongs to a project.
	byDecision
	// listing: lists projects.
	listing
	// creating: makes a project.
	creating
)

var projectScope = map[string]scopeKind{
	"sign-in": unscoped, "get-session": unscoped, "sign-out": unscoped, "change-password": unscoped,
	"list-accounts": unscoped, "create-account": unscoped, "update-account": unscoped, "reset-password": unscoped,
	"list-tokens": unscoped, "create-token": unscoped, "revoke-token": unscoped,
	"list-projects": listing, "create-project": creating,
	"list-decisions": byQuery, "decision-series": byQuery, "top-values": byQuery, "list-admin-events": byQuery, "export-decisions": byQuery,
	"list-throttled": byQuery,
	"get-decision":   byDecision,
}

// TestProjectScoping: an account and an API token limited to project A get
// 404, the answer of a project that does not exist, for project B on every
// operation that names a project (in its path, its query or a decision
// id), each denial recorded as an account.access_denied event; B never
// shows in what they list (projects, decisions, series, top values, admin
// events, exports); they cannot create projects (403, recorded), nor make
// a token that sees B.
func TestProjectScoping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	const a, b = "proj_scope_a", "proj_scope_b"
	keys := map[string]string{}
	decisions := map[string][]string{}
	for _, id := range []string{a, b} {
		var created keyAnswer
		owner.do(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": id, "projectId": id}).want(t, http.StatusCreated).decode(t, &created)
		keys[id] = created.SecretKey
		for _, user := range []string{"u-" + id, "u-both"} {
			d := e.connect(t, widgetReq{project: id, token: token(t, keys[id], user, map[string]string{"project": id}), origin: "https://" + id + ".example"}, events.OutcomeAccept, "")
			decisions[id] = append(decisions[id], d.DecisionID)
		}
		owner.do(t, http.MethodPost, "/api/v1/projects/"+id+"/rotate", map[string]any{"graceSeconds": 3600, "reason": "rotate " + id}).want(t, http.StatusOK)
	}
	e.waitDecisions(t, append(slices.Clone(decisions[a]), decisions[b]...)...)
	e.waitAdminEvents(t, audit.Filter{Kind: "key.rotated"}, 2)

	// Every operation of the document is classified.
	ops := e.servedDoc(t).operations()
	var inPath []docOp
	for _, o := range ops {
		if strings.Contains(o.path, "{projectId}") {
			inPath = append(inPath, o)
		} else if _, ok := projectScope[o.id]; !ok {
			t.Errorf("%s (%s): say in projectScope how it meets projects", o.id, o)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	tok, secret := e.apiToken(t, "limited bot", account.RoleAdmin, a)
	limitedOwnerPW := e.account(t, "scoped-owner@example.com", account.RoleOwner, a)
	limitedOwner, _ := e.signInAs(t, "scoped-owner@example.com", limitedOwnerPW)
	callers := []*caller{
		{name: "account limited to A", role: account.RoleAdmin, actor: "console:scoped@example.com", id: "scoped@example.com", c: e.signIn(t, "scoped@example.com", account.RoleAdmin, a)},
		{name: "token limited to A", role: account.RoleAdmin, token: true, actor: "token:" + tok.ID, id: tok.ID, c: e.bearer(secret)},
	}
	n := &atomic.Int64{}
	for _, c := range callers {
		c.fresh = func(testing.TB) *client { return c.c }
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			denials := 0
			on := func(project, decision string, missing bool) *roleFixture {
				return &roleFixture{e: e, owner: owner, project: project, decision: decision, missing: missing, n: n}
			}
			scoped := slices.Clone(inPath)
			for _, o := range ops {
				if k := projectScope[o.id]; k == byQuery || k == byDecision {
					scoped = append(scoped, o)
				}
			}
			for _, o := range scoped {
				call := roleTable[o.id].call
				// Its own project: the operation works.
				if r := call(t, on(a, decisions[a][0], false), c); r.status/100 != 2 {
					t.Errorf("%s on A: %d %s", o, r.status, r.body)
				}
				// Another's: 404, as a project or decision that does not exist.
				other := call(t, on(b, decisions[b][0], false), c).wantProblem(t, http.StatusNotFound)
				none := call(t, on("proj_nope", "dec_att_nope", true), c).wantProblem(t, http.StatusNotFound)
				if want := strings.NewReplacer("proj_nope", b, "dec_att_nope", decisions[b][0]).Replace(none.Detail); other.Detail != want {
					t.Errorf("%s on B: %q; on a project that does not exist: %q; want the same answer", o, other.Detail, none.Detail)
				}
				denials += 2 // B, and the project it cannot know does not exist
				if projectScope[o.id] == byDecision {
					denials-- // an unknown decision is of no project
				}
			}

			// What it lists never shows B.
			for _, path := range []string{
				"/api/v1/projects", "/api/v1/audit/decisions", "/api/v1/audit/series?bucket=minute&split=reason", "/api/v1/audit/top?by=user",
				"/api/v1/audit/top?by=origin", "/api/v1/audit/admin-events", "/api/v1/projects/" + a + "/users", "/api/v1/audit/throttled",
			} {
				r := c.c.do(t, http.MethodGet, path, nil).want(t, http.StatusOK)
				if contains(r.body, b) {
					t.Errorf("GET %s shows project B: %s", path, r.body)
				}
			}
			var list struct{ Projects []apiProject }
			c.c.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK).decode(t, &list)
			if len(list.Projects) != 1 || list.Projects[0].ProjectID != a {
				t.Errorf("projects: %+v, want A only", list.Projects)
			}
			if got := ids(c.c.decisions(t, "")); !sameSet(got, decisions[a]) {
				t.Errorf("decisions: %v, want A's %v", got, decisions[a])
			}
			if got := ids(c.c.decisions(t, query("user", "u-both"))); !sameSet(got, decisions[a][1:]) {
				t.Errorf("decisions of a user of both projects: %v, want A's %v", got, decisions[a][1:])
			}
			var top struct{ Items []audit.Stat }
			c.c.do(t, http.MethodGet, "/api/v1/audit/top?by=user", nil).want(t, http.StatusOK).decode(t, &top)
			if len(top.Items) != 2 || top.Items[0].Count != 1 || top.Items[1].Count != 1 {
				t.Errorf("top users: %+v, want A's two users once each", top.Items)
			}
			evs := c.c.adminEvents(t, "")
			kinds := map[string]bool{}
			for _, ev := range evs {
				kinds[ev.Kind] = true
				if ev.ProjectID != a {
					t.Errorf("admin event %+v: not of A", ev)
				}
			}
			if !kinds["project.created"] || !kinds["key.rotated"] {
				t.Errorf("admin events: %+v, want A's creation and rotation among them", evs)
			}
			for _, format := range []string{"csv", "json"} {
				out := c.c.export(t, query("format", format))
				if got := ids(out.records); !sameSet(got, decisions[a]) {
					t.Errorf("%s export: %v, want A's %v", format, got, decisions[a])
				}
			}

			// It cannot make a project, which no limit would cover.
			c.c.do(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": "mine"}).wantProblem(t, http.StatusForbidden, "limited to some projects")
			denials++

			got := e.waitAdminEvents(t, audit.Filter{Kind: string(events.AdminAccessDenied), Actor: c.actor}, denials)
			aboutB := 0
			for _, ev := range got {
				if strings.Contains(ev.Reason, b) {
					aboutB++
				}
			}
			if len(got) != denials || aboutB != len(scoped) {
				t.Errorf("%d access denied events of %s (%d about B), want %d (%d about B): %+v", len(got), c.name, aboutB, denials, len(scoped), got)
			}
		})
	}

	// An owner limited to A makes tokens that see A at most.
	var made struct{ Token apiToken }
	limitedOwner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "a bot", "role": "security"}).want(t, http.StatusCreated).decode(t, &made)
	if !slices.Equal(made.Token.Projects, []string{a}) {
		t.Errorf("a limited owner's token sees %v, want A only", made.Token.Projects)
	}
	limitedOwner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "b bot", "role": "security", "projects": []string{b}}).
		wantProblem(t, http.StatusUnprocessableEntity, fmt.Sprintf("cannot see project %s", b))
}

package console_test

// TestConsoleInABrowser: the console's pages in Debian's chromium
// (browsertest/driver.mjs) against a real stack with ClickHouse, as an
// owner and a security account would use them, every figure checked
// against the widget API, the CLI or ClickHouse. Each run saves a
// screenshot of every page, and of the main dialogs, at 1366×768 and at
// 390×844 in artifacts/console/ at the repository root.

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// The browser's time zone: half an hour off any whole-hour zone, so that
// a time the pages convert the wrong way shows.
const (
	browserZone   = "Asia/Kolkata"
	browserOffset = 5*time.Hour + 30*time.Minute
)

// The sizes every page is checked and shot at.
var sizes = []struct{ width, height int }{{1366, 768}, {390, 844}}

// changeControls are the testids of every control that changes
// something, none of which a security account may meet.
var changeControls = []string{
	"create-project", "require-token-switch", "add-origin-input", "add-origin-submit", "origin-remove",
	"rotate-button", "revoke-user", "revoke-submit", "lift-revocation",
	"add-account", "create-token", "account-edit", "account-disable", "account-enable", "account-reset-password", "token-revoke",
}

// consoleArtifacts is artifacts/console at the repository root, emptied
// of earlier screenshots.
func consoleArtifacts(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "artifacts", "console"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return dir
}

// fingerprint is a key's fingerprint as the console shows it.
func fingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:16]
}

// count reads a number the pages show grouped ("1,234").
func shownCount(t *testing.T, s string) uint64 {
	t.Helper()
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		t.Fatalf("%q is not a count", s)
	}
	return n
}

// auditStats runs `hissuno audit stats --format json` against the env's
// ClickHouse and returns its groups' counts.
func auditStats(t *testing.T, e *env, args ...string) map[string]uint64 {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"audit", "stats", "--clickhouse", e.dsn, "--format", "json"}, args...)
	if code := cli.Run(cli.Env{Ctx: stacktest.Context(t, time.Minute), Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}, args); code != 0 {
		t.Fatalf("hissuno %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	by := "decision"
	for i, a := range args {
		if a == "--by" && i+1 < len(args) {
			by = args[i+1]
		}
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("audit stats line %q: %v", line, err)
		}
		key, _ := row[by].(string)
		n, _ := row["count"].(float64)
		out[key] = uint64(n)
	}
	return out
}

// step runs one step of the scenario as a subtest; the scenario stops at
// the first step that fails, since the next ones build on it.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	start := time.Now()
	ok := t.Run(name, fn)
	t.Logf("%s: %s", name, time.Since(start).Round(10*time.Millisecond))
	if !ok {
		t.FailNow()
	}
}

func TestConsoleInABrowser(t *testing.T) {
	needBrowser(t)
	began := time.Now()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	art := consoleArtifacts(t)
	const (
		ownerEmail = "owner@dev.hissuno.test"
		secEmail   = "sec@example.com"
		projectID  = "proj_shop"
		siteOrigin = "https://shop.example"
	)
	ownerPW := e.account(t, ownerEmail, account.RoleOwner)
	secPW := e.account(t, secEmail, account.RoleSecurity)
	ownerAPI, _ := e.signInAs(t, ownerEmail, ownerPW)
	b := startChrome(t)
	t.Logf("chromium %s, stack up in %s", b.Version, time.Since(began).Round(10*time.Millisecond))
	owner := b.newTab(t, "owner", e.base, tabOptions{width: 1366, height: 768, timezone: browserZone, clipboard: true})
	security := b.newTab(t, "security", e.base, tabOptions{width: 1366, height: 768, timezone: browserZone})
	t.Cleanup(func() {
		// What the pages broke after the last step that looked.
		owner.in(t).problems()
		security.in(t).problems()
	})

	// Every widget decision the test makes, to wait for in the audit.
	var decisionIDs []string
	connect := func(t *testing.T, w widgetReq, want events.Outcome, reason events.Reason) connectAnswer {
		t.Helper()
		if w.project == "" {
			w.project = projectID
		}
		if w.origin == "" {
			w.origin = siteOrigin
		}
		a := e.connect(t, w, want, reason)
		decisionIDs = append(decisionIDs, a.DecisionID)
		return a
	}
	var key, newKey, revokedToken string

	step(t, "sign in", func(t *testing.T) {
		p := owner.in(t)
		// Signed out, a page sends the browser to sign in, to come back.
		p.do("goto", map[string]any{"url": e.base + "/projects", "noSettle": true})
		p.waitURL(`/sign-in\?next=%2Fprojects$`)
		p.settle()
		p.fill(tid("sign-in-email"), ownerEmail)
		p.fill(tid("sign-in-password"), "not the password at all")
		p.click(tid("sign-in-submit"))
		if msg := p.waitTextOf(tid("sign-in-error"), "Wrong email or password"); !strings.Contains(msg, "try again") {
			t.Errorf("a wrong password says %q, not what to do", msg)
		}
		if p.attr(tid("sign-in-password"), "aria-invalid") != "true" {
			t.Error("the password field is not marked invalid")
		}
		p.fill(tid("sign-in-password"), ownerPW)
		p.click(tid("sign-in-submit"))
		p.waitURL(`/projects$`)
		p.settle()
		if role := p.text(tid("whoami-role")); role != "owner" {
			t.Errorf("whoami-role %q, want owner", role)
		}
		if r := p.attr("body", "data-role"); r != "owner" {
			t.Errorf("body[data-role] %q", r)
		}
		if who := p.text(tid("whoami")); !strings.Contains(who, ownerEmail) {
			t.Errorf("whoami %q", who)
		}
		p.waitFor(tid("state-empty"))
		p.problems()
		p.checkTheChecks()
	})

	step(t, "create a project and see its key once", func(t *testing.T) {
		p := owner.in(t)
		p.click(tid("create-project"))
		p.waitFor(tid("create-project-dialog"))
		p.fill(tid("new-project-name"), "Shop")
		p.fill(tid("new-project-id"), projectID)
		p.fill(tid("new-project-origins"), siteOrigin)
		p.fill(tid("new-project-reason"), "e2e: a new shop")
		p.click(tid("create-project-dialog") + " " + tid("dialog-submit"))
		p.waitFor(tid("secret-key-dialog"))
		key = p.value(tid("secret-value"))
		if !strings.HasPrefix(key, "sk_live_") {
			t.Fatalf("the secret key dialog shows %q", key)
		}
		if id := p.text(tid("new-project-id-value")); id != projectID {
			t.Errorf("new-project-id-value %q", id)
		}
		if w := p.text(tid("secret-key-dialog")); !strings.Contains(w, "Never expose it in client-side code") {
			t.Errorf("the key's dialog lacks the docs' warning: %q", w)
		}
		p.accessible("the new key's dialog")
		p.shotView(art, "projects-new-key-dialog")
		p.click(tid("secret-copy"))
		p.waitTextOf(tid("secret-copied"), "Copied")
		var clip string
		p.eval("navigator.clipboard.readText()", &clip)
		if clip != key {
			t.Errorf("the clipboard holds %d characters, not the key", len(clip))
		}
		p.click(tid("dialog-done"))
		p.waitGone(tid("secret-key-dialog"))
		p.waitFor(`[data-testid="project-row"][data-project-id="` + projectID + `"]`)
		if strings.Contains(p.everything(), key) {
			t.Error("the projects page still holds the key after its dialog closed")
		}
		p.reload()
		p.waitFor(`[data-testid="project-row"][data-project-id="` + projectID + `"]`)
		if strings.Contains(p.everything(), key) {
			t.Error("the projects page shows the key after a reload")
		}
		p.click(`[data-project-id="` + projectID + `"] ` + tid("project-link"))
		p.waitURL(`/projects/` + projectID + `/security$`)
		p.settle()
		for range 2 {
			if v := p.text(tid("key-version")); v != "v1" {
				t.Errorf("key-version %q, want v1", v)
			}
			if fp := p.text(tid("key-fingerprint")); fp != fingerprint(key) {
				t.Errorf("key-fingerprint %q, want %q", fp, fingerprint(key))
			}
			if strings.Contains(p.everything(), key) {
				t.Error("the security page shows the key")
			}
			p.reload()
		}
		// The key works: a token it signs is accepted.
		connect(t, widgetReq{token: token(t, key, "u-1", map[string]string{"name": "Ada"}), userID: "u-1", userAgent: "e2e-browser/1"}, events.OutcomeAccept, "")
		p.problems()
	})

	step(t, "require widget token", func(t *testing.T) {
		p := owner.in(t)
		// Two visitors without a token, whom the switch would now refuse.
		for _, ua := range []string{"visitor-a/1", "visitor-b/1"} {
			connect(t, widgetReq{userAgent: ua}, events.OutcomeAccept, "")
		}
		e.waitDecisions(t, decisionIDs...)
		p.reload()
		if c := p.attr(tid("require-token-switch"), "aria-checked"); c != "false" {
			t.Fatalf("the switch is %q before switching it on", c)
		}
		p.waitTextOf(tid("require-token-stats"), "2 connections (2 users)")
		// By keyboard: Space on the switch asks, Escape leaves it as it was.
		p.focus(tid("require-token-switch"))
		p.press("Space")
		p.waitFor(tid("require-token-dialog"))
		p.trapsFocus(tid("require-token-dialog"), "require-token-switch")
		if c := p.attr(tid("require-token-switch"), "aria-checked"); c != "false" {
			t.Fatalf("the switch is %q after Escape", c)
		}
		p.click(tid("require-token-switch"))
		p.waitFor(tid("require-token-dialog"))
		preview := p.waitTextOf(tid("require-token-preview"), "would now be refused")
		if !strings.Contains(preview, "2 connections (2 users) came without a valid token") {
			t.Errorf("the preview says %q, want 2 connections of 2 users", preview)
		}
		p.accessible("the require-token dialog")
		p.shotView(art, "security-require-token-dialog")
		p.fill(tid("require-token-reason"), "e2e: going live")
		p.click(tid("require-token-dialog") + " " + tid("dialog-submit"))
		p.waitGone(tid("require-token-dialog"))
		if c := p.attr(tid("require-token-switch"), "aria-checked"); c != "true" {
			t.Errorf("the switch is %q after switching it on", c)
		}
		checkConfirmed(t, e, p, tid("change-result"))
		if s := p.text(tid("require-token-status")); !strings.Contains(s, "token_required") {
			t.Errorf("require-token-status %q", s)
		}
		a := connect(t, widgetReq{userAgent: "visitor-a/1"}, events.OutcomeUnauthorized, events.ReasonTokenRequired)
		if a.status != http.StatusUnauthorized {
			t.Errorf("a tokenless connect answered %d, want 401", a.status)
		}
		p.reload()
		if c := p.attr(tid("require-token-switch"), "aria-checked"); c != "true" {
			t.Errorf("the switch is %q after a reload", c)
		}
		p.problems()
	})

	step(t, "origins", func(t *testing.T) {
		p := owner.in(t)
		const bad = "https://shop.example/checkout"
		p.fill(tid("add-origin-input"), bad)
		p.click(tid("add-origin-submit"))
		shown := p.waitTextOf(tid("add-origin-error"), "shop.example/checkout")
		api := ownerAPI.do(t, http.MethodPatch, "/api/v1/projects/"+projectID, map[string]any{"origins": []string{siteOrigin, bad}})
		detail := api.wantProblem(t, http.StatusUnprocessableEntity).Detail
		if shown == "" || !strings.Contains(shown, detail) {
			t.Errorf("the page says %q for %s; the API says %q", shown, bad, detail)
		}
		if p.attr(tid("add-origin-input"), "aria-invalid") != "true" {
			t.Error("the origin field is not marked invalid")
		}
		p.shot(art, "security-origin-error")
		p.fill(tid("add-origin-input"), "*.shop.example")
		p.fill(tid("add-origin-reason"), "e2e: subdomains")
		p.click(tid("add-origin-submit"))
		p.waitFor(`[data-testid="origin-item"]:nth-child(2)`)
		got := p.attrs(tid("origin-item"), "data-origin")
		if len(got) != 2 || got[0] != siteOrigin || !strings.Contains(got[1], "*.shop.example") {
			t.Errorf("origins %q", got)
		}
		if s := p.text(tid("add-origin-error")); s != "" {
			t.Errorf("add-origin-error after a good origin: %q", s)
		}
		for _, tc := range []struct {
			origin, verdict string
			allowed         bool
		}{
			{"https://evil.example", "Refused", false},
			{"https://checkout.shop.example", "Allowed", true},
		} {
			p.fill(tid("origin-test-input"), tc.origin)
			p.click(tid("origin-test-submit"))
			p.waitTextOf(tid("origin-test-result"), tc.origin)
			result := p.text(tid("origin-test-result"))
			var want struct {
				Allowed     bool
				Reason      string
				Explanation string
			}
			ownerAPI.do(t, http.MethodGet, "/api/v1/projects/"+projectID+"/origin-check"+query("origin", tc.origin), nil).want(t, http.StatusOK).decode(t, &want)
			if want.Allowed != tc.allowed || !strings.Contains(result, tc.verdict) || !strings.Contains(result, want.Reason) ||
				p.text(tid("origin-test-explanation")) != want.Explanation {
				t.Errorf("tester for %s shows %q; the API answers %+v", tc.origin, result, want)
			}
		}
		p.shot(art, "security-origin-test")
		// The verifiers agree with the tester.
		connect(t, widgetReq{origin: "https://evil.example", userAgent: "e2e-browser/1"}, events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed)
		p.problems()
	})

	step(t, "rotate the key", func(t *testing.T) {
		p := owner.in(t)
		old := token(t, key, "u-1", map[string]string{"name": "Ada"})
		p.click(tid("rotate-button"))
		p.waitFor(tid("rotate-dialog"))
		if c := p.text(tid("rotate-consequence")); !strings.Contains(c, "Every token signed with the current key stops working at once") {
			t.Errorf("rotate-consequence %q", c)
		}
		p.check(tid("rotate-grace"))
		if c := p.text(tid("rotate-consequence")); !strings.Contains(c, "stops working in 1 h") {
			t.Errorf("with grace, rotate-consequence %q", c)
		}
		p.accessible("the rotate dialog")
		p.shotView(art, "security-rotate-dialog")
		p.check(tid("rotate-immediate"))
		p.fill(tid("rotate-reason"), "e2e: rotation")
		p.click(tid("rotate-dialog") + " " + tid("dialog-submit"))
		p.waitFor(tid("secret-key-dialog"))
		newKey = p.value(tid("secret-value"))
		if !strings.HasPrefix(newKey, "sk_live_") || newKey == key {
			t.Fatalf("the rotated key's dialog shows %q", newKey)
		}
		checkConfirmed(t, e, p, tid("secret-key-dialog"))
		p.accessible("the rotated key's dialog")
		p.shotView(art, "security-new-key-dialog")
		p.click(tid("dialog-done"))
		p.waitGone(tid("secret-key-dialog"))
		checkConfirmed(t, e, p, tid("change-result"))
		if v := p.text(tid("key-version")); v != "v2" {
			t.Errorf("key-version %q after rotating", v)
		}
		if fp := p.text(tid("key-fingerprint")); fp != fingerprint(newKey) {
			t.Errorf("key-fingerprint %q, want the new key's %q", fp, fingerprint(newKey))
		}
		if n := p.count(tid("grace-keys")); n != 0 {
			t.Errorf("an immediate rotation lists %d grace keys", n)
		}
		p.reload()
		if all := p.everything(); strings.Contains(all, newKey) || strings.Contains(all, key) {
			t.Error("the security page shows a key after a reload")
		}
		a := connect(t, widgetReq{token: old, userID: "u-1", userAgent: "e2e-browser/1"}, events.OutcomeUnauthorized, events.ReasonTokenBadSignature)
		if a.status != http.StatusUnauthorized {
			t.Errorf("a token of the old key answered %d, want 401", a.status)
		}
		connect(t, widgetReq{token: token(t, newKey, "u-2", map[string]string{"name": "Grace"}), userID: "u-2", userAgent: "e2e-browser/1"}, events.OutcomeAccept, "")
		p.problems()
	})

	step(t, "revoke a user and lift it", func(t *testing.T) {
		p := owner.in(t)
		now := time.Now()
		before := stacktest.Mint(t, newKey, widgettoken.Claims{UserID: "u-7", IssuedAt: now.Add(-time.Minute), Expires: now.Add(time.Hour)})
		revokedToken = before
		p.fill(tid("revoke-user"), "u-7")
		p.fill(tid("revoke-reason"), "e2e: laptop stolen")
		p.click(tid("revoke-submit"))
		p.waitFor(tid("revoke-dialog"))
		p.accessible("the revoke dialog")
		p.click(tid("revoke-dialog") + " " + tid("dialog-submit"))
		p.waitFor(`[data-testid="revocation-row"][data-user-id="u-7"]`)
		checkConfirmed(t, e, p, tid("change-result"))
		p.shot(art, "security-revoked")
		connect(t, widgetReq{token: before, userID: "u-7", userAgent: "e2e-browser/1"}, events.OutcomeUnauthorized, events.ReasonTokenRevoked)
		p.click(`[data-user-id="u-7"] ` + tid("lift-revocation"))
		p.waitFor(tid("lift-dialog"))
		p.fill(tid("lift-reason"), "e2e: laptop found")
		p.click(tid("lift-dialog") + " " + tid("dialog-submit"))
		p.waitGone(tid("revocation-row"))
		p.waitFor(tid("revocations") + " " + tid("state-empty"))
		connect(t, widgetReq{token: before, userID: "u-7", userAgent: "e2e-browser/1"}, events.OutcomeAccept, "")
		p.problems()
	})

	// The audit holds every decision from here on.
	step(t, "users", func(t *testing.T) {
		e.waitDecisions(t, decisionIDs...)
		p := owner.in(t)
		p.goTo("/projects/" + projectID + "/users")
		// The list is as of the request's whole second: a user who
		// connected within it shows on the next look.
		var got []string
		for deadline := time.Now().Add(10 * time.Second); ; p.reload() {
			got = p.attrs(tid("user-row"), "data-user-id")
			if strings.Join(got, ",") == "u-7,u-2,u-1" || time.Now().After(deadline) {
				break
			}
		}
		if strings.Join(got, ",") != "u-7,u-2,u-1" {
			t.Errorf("identified users %q, want u-7, u-2, u-1 (last seen first)", got)
		}
		// Accepted without a token: the two visitors before the switch.
		if a := p.text(tid("anonymous-count")); !strings.Contains(a, "2 anonymous connections from about 2 visitors") {
			t.Errorf("anonymous-count %q", a)
		}
		// A refusal records no user, so a per-user count of refusals would
		// read 0 beside u-7, whose revoked token was just refused.
		if n := p.count(`[data-testid="user-row"] td[data-label="Refused"]`); n != 0 {
			t.Errorf("the users list has a Refused column, always 0 (%d cells)", n)
		}
		var lines float64
		p.eval(`(() => { const r = document.createRange(); r.selectNodeContents(document.querySelector('label[for="users-range"]')); return new Set([...r.getClientRects()].map((c) => Math.round(c.top))).size; })()`, &lines)
		if lines != 1 {
			t.Errorf("the range's label \"Seen in\" takes %.0f lines", lines)
		}
		if m := p.text(`[data-user-id="u-1"]`); !strings.Contains(m, "Ada") {
			t.Errorf("u-1's row lacks its metadata: %q", m)
		}
		p.click(`[data-user-id="u-7"] ` + tid("user-link"))
		p.waitURL(`/users/u-7$`)
		p.settle()
		rows := p.attrs(tid("history-table")+" "+tid("decision-row"), "data-decision")
		// A refusal records no user (decision.schema.json), not even
		// token_revoked's: the history is the accept after the lift.
		if strings.Join(rows, ",") != "accept" {
			t.Errorf("u-7's history %q, want its accept after the lift", rows)
		}
		p.problems()
	})

	step(t, "audit explorer", func(t *testing.T) {
		p := owner.in(t)
		// The projects list's last 24 hours, as the CLI counts them.
		p.goTo("/projects")
		day := auditStats(t, e, "--project", projectID, "--since", "24h")
		var dayTotal uint64
		for _, n := range day {
			dayTotal += n
		}
		row := `[data-project-id="` + projectID + `"] `
		if n := shownCount(t, p.text(row+tid("decisions-24h"))); n != dayTotal {
			t.Errorf("the projects list shows %d decisions in 24 h; hissuno audit stats --since 24h: %d", n, dayTotal)
		}
		wantRate := fmt.Sprintf("%d refused of %d", dayTotal-day[string(events.OutcomeAccept)], dayTotal)
		if title := p.attr(row+tid("refusal-rate"), "title"); title != wantRate || !strings.HasSuffix(p.text(row+tid("refusal-rate")), "%") {
			t.Errorf("the refusal rate says %q (%q); hissuno audit stats: %s", p.text(row+tid("refusal-rate")), title, wantRate)
		}
		// A custom range in the browser's zone, whole seconds.
		since := began.Add(-2 * time.Minute).Truncate(time.Second)
		until := time.Now().Add(2 * time.Minute).Truncate(time.Second)
		local := func(tm time.Time) string { return tm.UTC().Add(browserOffset).Format("2006-01-02T15:04:05") }
		p.goTo("/audit")
		p.choose(tid("filter-range"), "custom")
		p.fill(tid("filter-since"), local(since))
		p.fill(tid("filter-until"), local(until))
		p.choose(tid("filter-project"), projectID)
		p.click(tid("filter-apply"))
		p.waitURL(`project=` + projectID)
		p.settle()
		checkRangeReadable(t, p)
		u, err := url.Parse(p.url())
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		for name, want := range map[string]time.Time{"since": since, "until": until} {
			got, err := time.Parse(time.RFC3339, q.Get(name))
			if err != nil || !got.Equal(want) {
				t.Errorf("the address's %s is %q, want %s (the custom range typed in %s)", name, q.Get(name), want.UTC().Format(time.RFC3339), browserZone)
			}
		}
		flags := []string{"--project", projectID, "--since", rfc3339(since), "--until", rfc3339(until)}
		checkTotals := func(t *testing.T, what string, extra ...string) uint64 {
			t.Helper()
			stats := auditStats(t, e, append(flags, extra...)...)
			var total uint64
			for _, n := range stats {
				total += n
			}
			accepted := stats[string(events.OutcomeAccept)]
			got := map[string]uint64{
				"decisions": shownCount(t, p.text(tid("total-decisions"))),
				"accepted":  shownCount(t, p.text(tid("total-accepted"))),
				"refused":   shownCount(t, p.text(tid("total-refused"))),
			}
			want := map[string]uint64{"decisions": total, "accepted": accepted, "refused": total - accepted}
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("%s: the chart's %s %d, hissuno audit stats %s: %d", what, k, got[k], strings.Join(extra, " "), want[k])
				}
			}
			return total
		}
		total := checkTotals(t, "every decision")
		if total != uint64(len(decisionIDs)) {
			t.Errorf("the stats count %d decisions; the test made %d", total, len(decisionIDs))
		}
		if rate := p.text(tid("total-refusal-rate")); !strings.Contains(rate, "%") {
			t.Errorf("total-refusal-rate %q", rate)
		}
		// Top reasons: the same counts as the CLI's --by reason.
		var top [][2]string
		p.eval(`[...document.querySelectorAll('[data-testid="top-reasons-list"] [data-testid="top-item"]')].map((li) => [li.dataset.key, li.querySelector('.bar-count').textContent])`, &top)
		byReason := auditStats(t, e, append(flags, "--by", "reason")...)
		if len(top) != len(byReason) {
			t.Errorf("top reasons %v, hissuno audit stats --by reason %v", top, byReason)
		}
		for _, kv := range top {
			if n := shownCount(t, kv[1]); byReason[kv[0]] != n {
				t.Errorf("top reason %s: %d, hissuno audit stats --by reason: %d", kv[0], n, byReason[kv[0]])
			}
		}
		if o := p.texts(tid("top-origins-list") + " " + tid("top-item")); len(o) == 0 || !strings.Contains(strings.Join(o, " "), "https://evil.example") {
			t.Errorf("top refused origins %q lack https://evil.example", o)
		}
		if n := p.count(tid("decision-row")); uint64(n) != total {
			t.Errorf("%d decision rows, want %d", n, total)
		}
		p.shot(art, "audit-custom-range")

		// Export the filtered set.
		csvPath := filepath.Join(t.TempDir(), "decisions.csv")
		var dl struct {
			URL string `json:"url"`
		}
		p.decode("download", map[string]any{"sel": tid("export-csv"), "path": csvPath}, &dl)
		raw, err := os.ReadFile(csvPath)
		if err != nil {
			t.Fatal(err)
		}
		records, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
		if err != nil {
			t.Fatalf("the export is not CSV: %v", err)
		}
		if len(records) < 1 || uint64(len(records)-1) != total {
			t.Errorf("the CSV export has %d rows after its header, want %d (%s)", len(records)-1, total, dl.URL)
		}
		// Every row is one of the test's decisions, each once.
		made := map[string]bool{}
		for _, id := range decisionIDs {
			made[id] = true
		}
		if len(records) > 0 && (len(records[0]) == 0 || records[0][0] != "decisionId") {
			t.Fatalf("the CSV header %q does not start with decisionId", records[0])
		}
		for _, r := range records[1:] {
			if !made[r[0]] {
				t.Errorf("the CSV export holds %q, not a decision of the test, or twice", r[0])
			}
			delete(made, r[0])
		}

		// Refusals only, split by reason.
		p.choose(tid("filter-decision"), string(events.OutcomeUnauthorized))
		p.click(tid("filter-apply"))
		p.waitURL(`decision=unauthorized`)
		p.settle()
		checkTotals(t, "unauthorized only", "--decision", string(events.OutcomeUnauthorized))
		p.click(`label[for="split-reason"]`)
		p.waitURL(`split=reason`)
		p.settle()
		checkTotals(t, "unauthorized only, by reason", "--decision", string(events.OutcomeUnauthorized))
		p.shot(art, "audit-by-reason")

		// A decision's every field.
		p.click(tid("decision-details"))
		p.waitFor(tid("decision-dialog") + " " + tid("decision-fields"))
		fields := p.text(tid("decision-dialog"))
		for _, want := range []string{"token_revoked", fingerprint(revokedToken), "e2e-browser/1", "127.0.0.1", "UTC)"} {
			if !strings.Contains(fields, want) {
				t.Errorf("the newest refusal's details lack %q:\n%s", want, fields)
			}
		}
		if !strings.Contains(p.url(), "detail=") {
			t.Errorf("the open decision is not in the address: %s", p.url())
		}
		p.accessible("the decision dialog")
		p.press("Escape")
		p.waitGone(tid("decision-dialog"))
		p.problems()
	})

	step(t, "live view", func(t *testing.T) {
		p := owner.in(t)
		p.goTo("/audit?range=1h&project=" + projectID)
		before := shownCount(t, p.text(tid("total-decisions")))
		p.click(tid("live-toggle"))
		if pressed := p.attr(tid("live-toggle"), "aria-pressed"); pressed != "true" {
			t.Fatalf("live-toggle aria-pressed %q", pressed)
		}
		a := connect(t, widgetReq{origin: "https://evil.example", userAgent: "e2e-browser/1"}, events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed)
		e.waitDecisions(t, a.DecisionID)
		p.do("waitText", map[string]any{"sel": tid("live-status"), "contains": "1 new decision", "timeout": 20000})
		p.waitFor(`[data-testid="decision-row"][data-decision-id="` + a.DecisionID + `"]`)
		if after := shownCount(t, p.text(tid("total-decisions"))); after != before+1 {
			t.Errorf("live: %d decisions, then %d; want one more", before, after)
		}
		p.click(tid("live-toggle"))
		p.waitTextOf(tid("live-status"), "Live view off")
		p.problems()
	})

	step(t, "admin events", func(t *testing.T) {
		p := owner.in(t)
		e.waitAdminEvents(t, audit.Filter{Kind: string(events.AdminUserUnrevoked), ProjectID: projectID}, 1)
		p.goTo("/admin-events")
		rotated := `[data-testid="event-row"][data-kind="key.rotated"]`
		p.waitFor(rotated)
		if actor := p.text(rotated + " " + tid("event-actor")); actor != "console:"+ownerEmail {
			t.Errorf("the rotation's actor %q", actor)
		}
		if row := p.text(rotated); !strings.Contains(row, "e2e: rotation") || !strings.Contains(row, "v1 → v2") {
			t.Errorf("the rotation's row %q lacks its reason or versions", row)
		}
		for _, kind := range []string{"project.created", "project.updated", "user.revoked", "user.unrevoked", "account.signed_in", "account.sign_in_failed"} {
			if p.count(`[data-testid="event-row"][data-kind="`+kind+`"]`) == 0 {
				t.Errorf("no %s event listed", kind)
			}
		}
		p.click(rotated + " " + tid("event-details"))
		p.waitFor(tid("event-dialog"))
		if d := p.text(tid("event-dialog")); !strings.Contains(d, "e2e: rotation") {
			t.Errorf("the rotation's details lack its reason: %q", d)
		}
		p.press("Escape")
		p.waitGone(tid("event-dialog"))
		p.problems()
	})

	step(t, "accounts and API tokens", func(t *testing.T) {
		p := owner.in(t)
		p.goTo("/accounts")
		row := `[data-testid="account-row"][data-email="` + secEmail + `"]`
		if r := p.text(row + " " + tid("account-role")); r != "security" {
			t.Errorf("%s's role %q", secEmail, r)
		}
		p.click(tid("create-token"))
		p.waitFor(tid("create-token-dialog"))
		p.fill("#new-token-name", "siem")
		p.click(tid("create-token-dialog") + " " + tid("dialog-submit"))
		p.waitFor(tid("api-token-dialog"))
		secret := p.value(tid("secret-value"))
		if !strings.HasPrefix(secret, "hst_") {
			t.Fatalf("the API token dialog shows %q", secret)
		}
		p.accessible("the API token dialog")
		p.shotView(art, "accounts-api-token-dialog")
		p.click(tid("dialog-done"))
		p.waitGone(tid("api-token-dialog"))
		e.bearer(secret).do(t, http.MethodGet, "/api/v1/projects/"+projectID, nil).want(t, http.StatusOK)
		p.reload()
		if strings.Contains(p.everything(), secret) {
			t.Error("the accounts page shows the API token after a reload")
		}
		p.waitFor(tid("token-row"))
		if used := p.text(tid("token-row") + ` td[data-label="Last used"]`); used == "never" || used == "" {
			t.Errorf("the token's last use reads %q after it was used", used)
		}
		p.click(tid("token-revoke"))
		p.waitFor(tid("revoke-token-dialog"))
		p.click(tid("revoke-token-dialog") + " " + tid("dialog-submit"))
		p.waitTextOf(tid("token-row"), "revoked")
		e.bearer(secret).do(t, http.MethodGet, "/api/v1/projects/"+projectID, nil).want(t, http.StatusUnauthorized)
		p.problems()
	})

	step(t, "your account", func(t *testing.T) {
		p := owner.in(t)
		p.goTo("/account")
		if who := p.text(tid("account-who")); !strings.Contains(who, ownerEmail) || !strings.Contains(who, "owner") {
			t.Errorf("account-who %q", who)
		}
		p.fill(tid("current-password"), ownerPW)
		p.fill(tid("new-password"), "a new password, long enough")
		p.fill(tid("repeat-password"), "a new password, not the same")
		p.click(tid("password-submit"))
		if msg := p.waitTextOf(tid("password-error"), "differ"); !strings.Contains(msg, "type the same one twice") {
			t.Errorf("password-error %q", msg)
		}
		p.problems()
	})

	step(t, "every page at both sizes", func(t *testing.T) {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%dx%d", size.width, size.height), func(t *testing.T) {
				p := owner.in(t)
				p.resize(size.width, size.height)
				tour(t, p, art, projectID)
			})
		}
		owner.in(t).resize(1366, 768)
	})

	step(t, "a security account changes nothing", func(t *testing.T) {
		p := security.in(t)
		p.goTo("/sign-in")
		p.fill(tid("sign-in-email"), secEmail)
		p.fill(tid("sign-in-password"), secPW)
		p.click(tid("sign-in-submit"))
		p.waitURL(`/projects$`)
		p.settle()
		if r := p.attr("body", "data-role"); r != "security" {
			t.Fatalf("body[data-role] %q", r)
		}
		pages := []struct{ name, path string }{
			{"projects", "/projects"},
			{"security", "/projects/" + projectID + "/security"},
			{"users", "/projects/" + projectID + "/users"},
			{"user", "/projects/" + projectID + "/users/u-1"},
			{"audit", "/audit?project=" + projectID},
			{"admin-events", "/admin-events"},
			{"accounts", "/accounts"},
		}
		for _, pg := range pages {
			p.goTo(pg.path)
			for _, c := range changeControls {
				if n := p.count(tid(c)); n != 0 {
					t.Errorf("%s shows a security account %d %s", pg.path, n, c)
				}
			}
			if n := p.count(".button-danger, .button-primary:not([data-testid=filter-apply]):not([data-testid=event-filter-apply])"); n != 0 {
				var labels []string
				p.eval(`[...document.querySelectorAll('.button-danger, .button-primary')].map((b) => b.dataset.testid || b.textContent)`, &labels)
				t.Errorf("%s shows a security account buttons that change things: %q", pg.path, labels)
			}
			p.shot(art, "security-role-"+pg.name)
		}
		if !p.visibleNow(tid("accounts-denied")) {
			t.Error("/accounts does not tell a security account that only owners manage accounts")
		}
		p.goTo("/projects/" + projectID + "/security")
		if s := p.text(tid("require-token-status")); !strings.Contains(s, "On") {
			t.Errorf("a security account does not see that the token is required: %q", s)
		}
		if fp := p.text(tid("key-fingerprint")); fp != fingerprint(newKey) {
			t.Errorf("a security account sees the fingerprint %q", fp)
		}

		// The API refuses it, whatever the page shows, and audits it.
		var res struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		p.eval(`fetch('/api/v1/projects/`+projectID+`', {method: 'PATCH', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({requireToken: false, reason: 'security tries'})}).then(async (r) => ({status: r.status, body: await r.text()}))`, &res)
		if res.Status != http.StatusForbidden {
			t.Errorf("PATCH from a security account's page: %d %s, want 403", res.Status, res.Body)
		}
		var pr apiProject
		ownerAPI.do(t, http.MethodGet, "/api/v1/projects/"+projectID, nil).want(t, http.StatusOK).decode(t, &pr)
		if !pr.RequireToken {
			t.Error("a security account's refused PATCH switched Require widget token off")
		}
		denied := e.waitAdminEvents(t, audit.Filter{Kind: string(events.AdminAccessDenied), Actor: "console:" + secEmail}, 1)
		if d := denied[0]; d.Account != secEmail || !strings.Contains(d.Reason, "PATCH") || !strings.Contains(d.UserAgent, "Chrome") || d.ClientIP != "127.0.0.1" {
			t.Errorf("access denied event %+v, want the account, the PATCH, chromium's user agent and address", d)
		}
		p.problems()
	})

	step(t, "a cross-site form post", func(t *testing.T) {
		p := owner.in(t)
		target := e.base + "/api/v1/projects"
		// A text/plain form that makes a JSON body, the classic way round a
		// JSON API's CSRF defences.
		page := `<!doctype html><html><head><title>Win a prize</title></head><body><h1>Win a prize</h1>` +
			`<form id="f" method="POST" action="` + target + `" enctype="text/plain">` +
			`<input type="hidden" name='{"name":"Forged","projectId":"proj_forged","x":"' value='"}'></form>` +
			`<script>document.getElementById("f").submit()</script></body></html>`
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, page)
		}))
		t.Cleanup(evil.Close)
		_, port, _ := strings.Cut(strings.TrimPrefix(evil.URL, "http://"), ":")
		for _, from := range []struct {
			name, url string
			// cookie: SameSite=Strict lets the session cookie go along
			// from a page of the same site (127.0.0.1, another port), not
			// from another site.
			cookie bool
		}{
			{"same site, another port", evil.URL, true},
			{"another site", "http://localhost:" + port, false},
		} {
			var got struct {
				Status       int    `json:"status"`
				Cookie       string `json:"cookie"`
				SecFetchSite string `json:"secFetchSite"`
				Origin       string `json:"origin"`
				Body         string `json:"body"`
			}
			p.decode("formPost", map[string]any{"url": from.url, "target": target}, &got)
			t.Logf("%s: %d, Sec-Fetch-Site %s, Origin %s, cookie sent %v: %s", from.name, got.Status, got.SecFetchSite, got.Origin, got.Cookie != "", got.Body)
			if from.cookie && !strings.Contains(got.Cookie, e.cookieName()+"=") {
				t.Errorf("%s: the browser sent no session cookie (%q), so the post proves less than it should", from.name, got.Cookie)
			}
			if got.Status != http.StatusForbidden && got.Status != http.StatusUnauthorized {
				t.Errorf("%s: the forged post answered %d %s", from.name, got.Status, got.Body)
			}
			if from.cookie && got.Status != http.StatusForbidden {
				t.Errorf("%s: with the session cookie the forged post answered %d, want 403", from.name, got.Status)
			}
		}
		ownerAPI.do(t, http.MethodGet, "/api/v1/projects/proj_forged", nil).want(t, http.StatusNotFound)
		var list struct{ Projects []struct{ ProjectID string } }
		ownerAPI.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK).decode(t, &list)
		if len(list.Projects) != 1 {
			t.Errorf("after the forged posts there are %d projects: %+v", len(list.Projects), list.Projects)
		}
		// The owner is still signed in.
		p.goTo("/projects")
		if r := p.attr("body", "data-role"); r != "owner" {
			t.Errorf("after the forged posts the owner's page has role %q", r)
		}
		p.problems()
	})

	t.Logf("the whole run: %s; screenshots in %s", time.Since(began).Round(100*time.Millisecond), art)
}

// visibleNow reports whether the element of sel is visible.
func (tb *tab) visibleNow(sel string) bool {
	tb.t.Helper()
	var v bool
	tb.decode("visible", map[string]any{"sel": sel}, &v)
	return v
}

// checkRangeReadable checks that the custom range's date and time
// inputs are wide enough to show what they hold: their value as the
// locale writes it (with seconds), in their font, plus their padding and
// the calendar button.
func checkRangeReadable(t *testing.T, p *tab) {
	t.Helper()
	var fields []struct {
		ID     string  `json:"id"`
		Width  float64 `json:"width"`
		Needed float64 `json:"needed"`
		Text   string  `json:"text"`
	}
	p.eval(`[...document.querySelectorAll('[data-custom-range] input')].map((i) => {
		const cs = getComputedStyle(i);
		const ctx = document.createElement('canvas').getContext('2d');
		ctx.font = cs.font;
		const text = new Date(i.value).toLocaleString(undefined, {year: 'numeric', month: '2-digit', day: '2-digit', hour: 'numeric', minute: '2-digit', second: '2-digit'});
		const needed = ctx.measureText(text).width + parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight) + 2 * parseFloat(cs.borderLeftWidth) + 32;
		return {id: i.id, width: i.getBoundingClientRect().width, needed, text};
	})`, &fields)
	if len(fields) != 2 {
		t.Fatalf("custom range inputs: %+v", fields)
	}
	for _, f := range fields {
		if f.Width < f.Needed {
			t.Errorf("at %d px #%s is %.0f px wide, too narrow to show %q (%.0f px)", p.width, f.ID, f.Width, f.Text, f.Needed)
		}
	}
}

// checkConfirmed checks that the confirmation inside sel names every
// verifier of the stack and none unconfirmed.
func checkConfirmed(t *testing.T, e *env, p *tab, sel string) {
	t.Helper()
	c := p.waitTextOf(sel+" "+tid("confirmed"), "Confirmed by")
	n := len(e.st.Verifiers())
	if !strings.Contains(c, fmt.Sprintf("Confirmed by %d verifier", n)) {
		t.Errorf("%s says %q; the stack has %d verifiers", sel, c, n)
	}
	if k := p.count(sel + " " + tid("unconfirmed")); k != 0 {
		t.Errorf("%s names unconfirmed verifiers: %q", sel, p.text(sel+" "+tid("unconfirmed")))
	}
}

// tour visits every page and opens the main dialogs at the tab's size:
// axe finds nothing serious, nothing scrolls sideways, a dialog keeps
// focus and Escape closes it; each is shot.
func tour(t *testing.T, p *tab, art, projectID string) {
	pages := []struct {
		name, path string
		// ready waits for what loads after the page's parts (charts).
		ready func()
	}{
		{name: "sign-in", path: "/sign-in"},
		{name: "projects", path: "/projects", ready: func() { p.waitFor(".sparkline canvas") }},
		{name: "security", path: "/projects/" + projectID + "/security"},
		{name: "users", path: "/projects/" + projectID + "/users"},
		{name: "user", path: "/projects/" + projectID + "/users/u-7"},
		{name: "audit", path: "/audit?project=" + projectID, ready: func() { p.waitFor(tid("chart") + " canvas") }},
		{name: "audit-custom-range", path: "/audit?project=" + projectID + "&since=" + url.QueryEscape(rfc3339(time.Now().Add(-time.Hour))) + "&until=" + url.QueryEscape(rfc3339(time.Now())),
			ready: func() { p.waitFor(tid("chart") + " canvas"); checkRangeReadable(t, p) }},
		{name: "admin-events", path: "/admin-events"},
		{name: "accounts", path: "/accounts"},
		{name: "account", path: "/account"},
		{name: "not-found", path: "/no-such-page"},
	}
	for _, pg := range pages {
		status := p.goTo(pg.path)
		if pg.name == "not-found" {
			if status != http.StatusNotFound {
				t.Errorf("%s answered %d", pg.path, status)
			}
		} else if status != http.StatusOK {
			t.Errorf("%s answered %d", pg.path, status)
		}
		if pg.ready != nil {
			pg.ready()
		}
		p.noSideScroll(pg.path)
		p.accessible(pg.path)
		p.shot(art, pg.name)
	}
	dialogs := []struct {
		name, path, opener, dialog string
	}{
		{name: "create-project-dialog", path: "/projects", opener: "create-project", dialog: "create-project-dialog"},
		{name: "require-token-dialog", path: "/projects/" + projectID + "/security", opener: "require-token-switch", dialog: "require-token-dialog"},
		{name: "rotate-dialog", path: "/projects/" + projectID + "/security", opener: "rotate-button", dialog: "rotate-dialog"},
		{name: "decision-dialog", path: "/audit?project=" + projectID, opener: "decision-details", dialog: "decision-dialog"},
		{name: "event-dialog", path: "/admin-events", opener: "event-details", dialog: "event-dialog"},
		{name: "add-account-dialog", path: "/accounts", opener: "add-account", dialog: "add-account-dialog"},
	}
	for _, d := range dialogs {
		p.goTo(d.path)
		p.click(tid(d.opener))
		p.waitFor(tid(d.dialog))
		p.settle()
		p.noSideScroll(d.name)
		p.accessible(d.name)
		p.shotView(art, d.name)
		p.trapsFocus(tid(d.dialog), d.opener)
	}
	p.problems()
}

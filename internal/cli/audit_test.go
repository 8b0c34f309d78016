package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// testClickHouse is HISSUNO_TEST_CLICKHOUSE as the test binary started
// with: package variables are set before TestMain, which clears every
// HISSUNO_ variable so that the flags' defaults do not depend on the shell.
var testClickHouse = os.Getenv("HISSUNO_TEST_CLICKHOUSE")

var restoreTestClickHouse sync.Once

// auditClickHouse is stacktest.ClickHouse with the variable TestMain
// cleared put back (no flag reads it).
func auditClickHouse(t *testing.T) string {
	t.Helper()
	restoreTestClickHouse.Do(func() {
		if testClickHouse != "" {
			os.Setenv("HISSUNO_TEST_CLICKHOUSE", testClickHouse)
		}
	})
	return stacktest.ClickHouse(t)
}

// closedClickHouse is a ClickHouse DSN nothing listens on.
const closedClickHouse = "clickhouse://127.0.0.1:1/default"

// auditStack is a whole stack whose auditor copies into a fresh database.
func auditStack(t *testing.T) (*stack.Stack, string) {
	t.Helper()
	dsn := auditClickHouse(t)
	// A generous ingress deadline: a loaded test machine must not turn a
	// slow decision into a 503.
	st := stacktest.Start(t, stack.Config{ClickHouseDSN: dsn, Auditor: auditor.Config{BatchWait: 50 * time.Millisecond}, IngressDeadline: 20 * time.Second})
	return st, dsn
}

// createProject creates a project with `hissuno project create --json` and
// returns its id and secret key.
func createProject(t *testing.T, st *stack.Stack, flags ...string) (string, string) {
	t.Helper()
	r := run(t, append(append([]string{"project", "create", "--name", "x", "--json"}, stacktest.NATSArgs(t, st, events.SourceAdmin)...), flags...)...)
	if r.code != 0 {
		t.Fatalf("project create\n%s", r)
	}
	var out struct {
		ProjectID string `json:"projectId"`
		SecretKey string `json:"secretKey"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.ProjectID == "" || !strings.HasPrefix(out.SecretKey, "sk_live_") {
		t.Fatalf("project create --json: %v\n%s", err, r)
	}
	return out.ProjectID, out.SecretKey
}

// mintToken is what a customer's backend does: an HS256 JWT with the
// secret key as the raw HMAC key.
func mintToken(t testing.TB, key, userID string) string {
	t.Helper()
	return stacktest.Mint(t, key, widgettoken.For(userID, map[string]string{"plan": "pro"}, time.Now(), 24*time.Hour))
}

// fingerprint is how a token appears in the audit: 16 hex digits of its
// SHA-256.
func fingerprint(tok string) string {
	if tok == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:8])
}

// widgetRequest is one POST /v1/widget/connect and what its decision must
// record.
type widgetRequest struct {
	projectID, token, userID, origin string
	bearer                           bool // the token in an Authorization header, not the body

	wantStatus                                                 int
	wantDecision, wantReason, wantSession, wantUser, wantClaim string
	wantKeyVersion                                             uint32

	status     int
	decisionID string
}

// send posts the request to the stack's ingress and records the answer.
func (w *widgetRequest) send(client *http.Client, st *stack.Stack) error {
	body := map[string]any{"projectId": w.projectID}
	if w.token != "" && !w.bearer {
		body["widgetToken"] = w.token
	}
	if w.userID != "" {
		body["userId"] = w.userID
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, "http://"+st.HTTPAddr+"/v1/widget/connect", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if w.origin != "" {
		req.Header.Set("Origin", w.origin)
	}
	if w.token != "" && w.bearer {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Decision   string `json:"decision"`
		DecisionID string `json:"decisionId"`
		Reason     string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("status %d, body not JSON: %w", resp.StatusCode, err)
	}
	w.status, w.decisionID = resp.StatusCode, out.DecisionID
	if resp.StatusCode != w.wantStatus || out.Decision != w.wantDecision || out.Reason != w.wantReason || out.DecisionID == "" {
		return fmt.Errorf("answered %d %+v, want %d %s %s", resp.StatusCode, out, w.wantStatus, w.wantDecision, w.wantReason)
	}
	return nil
}

// sendAll posts every request, concurrently.
func sendAll(t *testing.T, st *stack.Stack, reqs []*widgetRequest) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	jobs := make(chan *widgetRequest)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				if err := w.send(client, st); err != nil {
					t.Errorf("POST %s token=%v origin=%q: %v", w.projectID, w.token != "", w.origin, err)
				}
			}
		}()
	}
	for _, w := range reqs {
		jobs <- w
	}
	close(jobs)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// openClickHouse connects to the test database, closed with the test.
func openClickHouse(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := audit.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open ClickHouse: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// chCount runs a query returning one number; false when it failed (the
// table may not exist yet).
func chCount(conn driver.Conn, q string, args ...any) (uint64, bool) {
	n, err := countRows(conn, q, args...)
	return n, err == nil
}

// countRows runs a count query, with the error that stopped it.
func countRows(conn driver.Conn, q string, args ...any) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// waitDecisions waits until ClickHouse holds n decisions.
func waitDecisions(t *testing.T, conn driver.Conn, n int) {
	t.Helper()
	stacktest.Eventually(t, time.Minute, fmt.Sprintf("%d decisions in ClickHouse", n), func() error {
		got, err := countRows(conn, "SELECT count() FROM hissuno_decisions FINAL")
		if err != nil {
			return err
		}
		if got < uint64(n) {
			return fmt.Errorf("%d of %d decisions stored", got, n)
		}
		return nil
	})
}

// rowsAsText reads every row of a table, raw (without FINAL), every column
// turned to text.
func rowsAsText(t *testing.T, conn driver.Conn, table string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cols, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ?", table)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for cols.Next() {
		var name, typ string
		if err := cols.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(typ, "Array") {
			parts = append(parts, "arrayStringConcat("+name+", ' ')")
		} else {
			parts = append(parts, "toString("+name+")")
		}
	}
	cols.Close()
	if len(parts) < 10 {
		t.Fatalf("table %s has %d columns", table, len(parts))
	}
	rows, err := conn.Query(ctx, "SELECT concat("+strings.Join(parts, ", ' | ', ")+") FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestAuditEndToEnd(t *testing.T) {
	t.Parallel()
	st, dsn := auditStack(t)
	id, key := createProject(t, st, "--origin", "https://a.example.com", "--origin", "https://b.example.com")
	wrongKey := "sk_live_" + strings.Repeat("Wr0ngKey", 5) + "abc"

	const n = 300
	var reqs []*widgetRequest
	var tokens []string
	for i := range n {
		w := &widgetRequest{projectID: id, origin: "https://a.example.com"}
		user := fmt.Sprintf("user-%03d", i)
		switch i % 6 {
		case 0: // a valid token, sometimes as a Bearer header
			w.token, w.bearer = mintToken(t, key, user), i%12 == 0
			w.wantStatus, w.wantDecision, w.wantSession, w.wantUser, w.wantKeyVersion = 200, "accept", "authenticated", user, 1
		case 1: // a valid token and another userId claimed by the client
			w.token, w.userID, w.origin = mintToken(t, key, user), "claimed-"+user, "https://b.example.com"
			w.wantStatus, w.wantDecision, w.wantSession, w.wantUser, w.wantClaim, w.wantKeyVersion = 200, "accept", "authenticated", user, "claimed-"+user, 1
		case 2: // signed with another key
			w.token = mintToken(t, wrongKey, user)
			w.wantStatus, w.wantDecision, w.wantReason = 401, "unauthorized", "token_bad_signature"
		case 3: // no such project
			w.projectID, w.token = fmt.Sprintf("nope-%d", i%5), mintToken(t, key, user)
			w.wantStatus, w.wantDecision, w.wantReason = 401, "unauthorized", "unknown_project"
		case 4: // anonymous
			w.userID, w.origin = "anon-"+user, "https://b.example.com"
			w.wantStatus, w.wantDecision, w.wantSession, w.wantUser = 200, "accept", "anonymous", "anon-"+user
		case 5: // a valid token from an origin not allowed
			w.token, w.origin = mintToken(t, key, user), "https://evil.example"
			w.wantStatus, w.wantDecision, w.wantReason = 403, "origin_blocked", "origin_not_allowed"
		}
		if w.token != "" {
			tokens = append(tokens, w.token)
		}
		reqs = append(reqs, w)
	}
	sendAll(t, st, reqs)

	conn := openClickHouse(t, dsn)
	waitDecisions(t, conn, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for q, want := range map[string]uint64{
		"SELECT count() FROM hissuno_decisions FINAL":          n,
		"SELECT uniqExact(decision_id) FROM hissuno_decisions": n,
	} {
		if got, ok := chCount(conn, q); !ok || got != want {
			t.Errorf("%s = %d (%v), want %d", q, got, ok, want)
		}
	}

	recs, err := audit.Decisions(ctx, conn, audit.Filter{Since: time.Now().Add(-time.Hour), Limit: 10 * n})
	if err != nil {
		t.Fatalf("Decisions: %v", err)
	}
	byID := map[string][]audit.Record{}
	for _, r := range recs {
		byID[r.DecisionID] = append(byID[r.DecisionID], r)
	}
	if len(recs) != n {
		t.Errorf("Decisions returned %d records, want %d", len(recs), n)
	}
	for _, w := range reqs {
		got := byID[w.decisionID]
		if len(got) != 1 {
			t.Errorf("decision %s is in the audit %d times, want once", w.decisionID, len(got))
			continue
		}
		r := got[0]
		if r.ProjectID != w.projectID || r.Decision != w.wantDecision || r.Reason != w.wantReason || r.Session != w.wantSession ||
			r.UserID != w.wantUser || r.ClaimedUserID != w.wantClaim || r.KeyVersion != w.wantKeyVersion || r.Origin != w.origin ||
			r.TokenFingerprint != fingerprint(w.token) || r.UserVerified != (w.wantSession == "authenticated") {
			t.Errorf("decision %s recorded as\n%+v\nwant project %s decision %s reason %q session %q user %q claimed %q key v%d origin %q fingerprint %q",
				w.decisionID, r, w.projectID, w.wantDecision, w.wantReason, w.wantSession, w.wantUser, w.wantClaim, w.wantKeyVersion, w.origin, fingerprint(w.token))
		}
		if time.Since(r.Time) > 10*time.Minute || time.Until(r.Time) > time.Minute {
			t.Errorf("decision %s at %s, want about now", w.decisionID, r.Time)
		}
	}

	// No raw token, no part of one, no key, anywhere in the table.
	hexFP := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, r := range recs {
		if r.TokenFingerprint != "" && !hexFP.MatchString(r.TokenFingerprint) {
			t.Errorf("token fingerprint %q is not 16 hex digits", r.TokenFingerprint)
		}
	}
	forbidden := []string{"sk_live_", key, wrongKey}
	for _, tok := range tokens {
		forbidden = append(forbidden, tok)
		forbidden = append(forbidden, strings.Split(tok, ".")...)
	}
	slices.Sort(forbidden)
	forbidden = slices.Compact(forbidden)
	rows := rowsAsText(t, conn, "hissuno_decisions")
	if len(rows) < n {
		t.Fatalf("%d raw rows, want at least %d", len(rows), n)
	}
	for _, row := range rows {
		for _, f := range forbidden {
			if strings.Contains(strings.ToLower(row), strings.ToLower(f)) {
				t.Errorf("an audit row holds a secret (%.12s…):\n%s", f, row)
			}
		}
	}

	// The project's creation is in the admin events, without its key.
	var adm []audit.AdminRecord
	stacktest.Eventually(t, 30*time.Second, "the project.created admin event in ClickHouse", func() error {
		adm, err = audit.AdminEvents(ctx, conn, audit.Filter{ProjectID: id})
		if err != nil {
			return err
		}
		if len(adm) == 0 {
			return errors.New("no admin event of the project stored")
		}
		return nil
	})
	if len(adm) != 1 || adm[0].Kind != string(events.AdminProjectCreated) || adm[0].KeyVersion != 1 ||
		!hexFP.MatchString(adm[0].KeyFingerprint) || adm[0].KeyFingerprint != fingerprint(key) ||
		!slices.Equal(adm[0].Origins, []string{"https://a.example.com", "https://b.example.com"}) {
		t.Errorf("admin events of the project: %+v", adm)
	}
	for _, row := range rowsAsText(t, conn, "hissuno_admin_events") {
		if strings.Contains(row, "sk_live_") || strings.Contains(row, key[len("sk_live_"):]) {
			t.Errorf("an admin event row holds a secret key:\n%s", row)
		}
	}
}

// auditFixture is a stack with a project and seven decisions in
// ClickHouse: three authenticated accepts (alice, bob, carol), one anonymous
// (visitor), two bad signatures and one blocked origin.
type auditFixture struct {
	st        *stack.Stack
	dsn       string
	projectID string
	key       string
	reqs      []*widgetRequest
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	st, dsn := auditStack(t)
	id, key := createProject(t, st, "--origin", "https://a.example.com")
	const origin = "https://a.example.com"
	f := &auditFixture{st: st, dsn: dsn, projectID: id, key: key}
	for _, u := range []string{"alice", "bob", "carol"} {
		f.reqs = append(f.reqs, &widgetRequest{projectID: id, token: mintToken(t, key, u), origin: origin,
			wantStatus: 200, wantDecision: "accept", wantSession: "authenticated", wantUser: u, wantKeyVersion: 1})
	}
	f.reqs = append(f.reqs, &widgetRequest{projectID: id, userID: "visitor", origin: origin,
		wantStatus: 200, wantDecision: "accept", wantSession: "anonymous", wantUser: "visitor"})
	for _, u := range []string{"mallory", "trudy"} {
		f.reqs = append(f.reqs, &widgetRequest{projectID: id, token: mintToken(t, "sk_live_not-the-key", u), origin: origin,
			wantStatus: 401, wantDecision: "unauthorized", wantReason: "token_bad_signature"})
	}
	f.reqs = append(f.reqs, &widgetRequest{projectID: id, origin: "https://evil.example",
		wantStatus: 403, wantDecision: "origin_blocked", wantReason: "origin_not_allowed"})
	// One after the other, so that "newest first" has a known answer.
	client := &http.Client{Timeout: 20 * time.Second}
	for _, w := range f.reqs {
		if err := w.send(client, st); err != nil {
			t.Fatalf("POST: %v", err)
		}
	}
	waitDecisions(t, openClickHouse(t, dsn), len(f.reqs))
	return f
}

// jsonLines decodes stdout as one JSON object a line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestAuditQuery(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	ch := []string{"--clickhouse", f.dsn}
	all := make([]string, len(f.reqs))
	for i, w := range f.reqs {
		all[len(f.reqs)-1-i] = w.decisionID // newest first
	}
	jsonFields := []string{"decisionId", "time", "projectId", "decision", "reason", "session", "userId", "claimedUserId", "origin", "tokenFingerprint", "keyVersion"}

	tests := []struct {
		name string
		args []string
		want []string // decision ids, in order
	}{
		{name: "everything", args: nil, want: all},
		{name: "since 1h", args: []string{"--since", "1h"}, want: all},
		{name: "since 7d", args: []string{"--since", "7d"}, want: all},
		{name: "since a date", args: []string{"--since", "2000-01-01"}, want: all},
		{name: "since far back", args: []string{"--since", "20000d"}, want: all},
		{name: "since 1970", args: []string{"--since", "1970-01-01"}, want: all},
		{name: "until long ago", args: []string{"--since", "2000-01-01", "--until", "2000-01-02"}, want: nil},
		{name: "limit 2", args: []string{"--limit", "2"}, want: all[:2]},
		{name: "reason", args: []string{"--reason", "token_bad_signature"}, want: []string{f.reqs[5].decisionID, f.reqs[4].decisionID}},
		{name: "decision", args: []string{"--decision", "origin_blocked"}, want: []string{f.reqs[6].decisionID}},
		{name: "user", args: []string{"--user", "bob"}, want: []string{f.reqs[1].decisionID}},
		{name: "origin", args: []string{"--origin", "https://evil.example"}, want: []string{f.reqs[6].decisionID}},
		{name: "project", args: []string{"--project", f.projectID, "--decision", "accept", "--limit", "3"}, want: all[3:6]},
		{name: "other project", args: []string{"--project", "someone-else"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, append(append([]string{"audit", "query", "--format", "json"}, ch...), tt.args...)...)
			if r.code != 0 {
				t.Fatalf("audit query\n%s", r)
			}
			objs := jsonLines(t, r.stdout)
			var got []string
			for _, o := range objs {
				got = append(got, fmt.Sprint(o["decisionId"]))
				for _, k := range jsonFields {
					if _, ok := o[k]; !ok {
						t.Errorf("a JSON line has no %q: %v", k, o)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("decisions\n got %v\nwant %v", got, tt.want)
			}
		})
	}

	t.Run("json fields", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query", "--format", "json", "--user", "alice"}, ch...)...)
		objs := jsonLines(t, r.stdout)
		if r.code != 0 || len(objs) != 1 {
			t.Fatalf("audit query --user alice\n%s", r)
		}
		o, w := objs[0], f.reqs[0]
		want := map[string]any{"decisionId": w.decisionID, "projectId": f.projectID, "decision": "accept", "reason": "",
			"session": "authenticated", "userId": "alice", "claimedUserId": "", "origin": "https://a.example.com",
			"tokenFingerprint": fingerprint(w.token), "keyVersion": 1.0}
		for k, v := range want {
			if o[k] != v {
				t.Errorf("%s = %v, want %v", k, o[k], v)
			}
		}
		if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(o["time"])); err != nil || time.Since(ts) > 10*time.Minute {
			t.Errorf("time %v (%v), want an RFC 3339 time of about now", o["time"], err)
		}
	})

	t.Run("csv", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query", "--format", "csv"}, ch...)...)
		if r.code != 0 {
			t.Fatalf("audit query --format csv\n%s", r)
		}
		recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil {
			t.Fatalf("not CSV: %v\n%s", err, r.stdout)
		}
		if len(recs) != 1+len(all) {
			t.Fatalf("%d CSV records, want a header and %d rows", len(recs), len(all))
		}
		header := recs[0]
		for _, k := range jsonFields {
			if !slices.Contains(header, k) {
				t.Errorf("the CSV header has no %q: %v", k, header)
			}
		}
		col := slices.Index(header, "decisionId")
		for i, rec := range recs[1:] {
			if len(rec) != len(header) || rec[col] != all[i] {
				t.Errorf("CSV row %d: %v, want decision %s", i, rec, all[i])
			}
		}
	})

	t.Run("table", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query"}, ch...)...)
		if r.code != 0 {
			t.Fatalf("audit query\n%s", r)
		}
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 1+len(all) {
			t.Fatalf("%d lines, want a header and %d rows:\n%s", len(lines), len(all), r.stdout)
		}
		checkAligned(t, lines, []string{"TIME", "PROJECT", "DECISION", "REASON", "SESSION", "USER", "CLAIMED", "ORIGIN", "KEY", "TOKEN", "DECISION ID"})
		for i, line := range lines[1:] {
			if !strings.HasSuffix(line, all[i]) {
				t.Errorf("row %d does not end with decision %s: %q", i, all[i], line)
			}
		}
		if !strings.Contains(lines[1], "origin_blocked") || !strings.Contains(lines[1], "https://evil.example") {
			t.Errorf("the newest row is not the blocked origin: %q", lines[1])
		}
	})

	t.Run("table without matches", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query", "--user", "nobody"}, ch...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "no decisions match") {
			t.Errorf("audit query --user nobody\n%s", r)
		}
	})

	t.Run("admin", func(t *testing.T) {
		t.Parallel()
		var r result
		stacktest.Eventually(t, 30*time.Second, "the admin event in ClickHouse", func() error {
			r = run(t, append([]string{"audit", "query", "--admin", "--format", "json"}, ch...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "project.created") {
				return fmt.Errorf("audit query --admin shows no project.created: %s", r)
			}
			return nil
		})
		objs := jsonLines(t, r.stdout)
		if len(objs) != 1 || objs[0]["kind"] != "project.created" || objs[0]["projectId"] != f.projectID || objs[0]["keyFingerprint"] != fingerprint(f.key) {
			t.Errorf("audit query --admin --format json:\n%s", r.stdout)
		}
		for _, format := range []string{"table", "csv", "json"} {
			r := run(t, append([]string{"audit", "query", "--admin", "--format", format}, ch...)...)
			if r.code != 0 || !strings.Contains(r.stdout, f.projectID) || !strings.Contains(r.stdout, "project.created") {
				t.Errorf("audit query --admin --format %s\n%s", format, r)
			}
			if strings.Contains(r.stdout, "sk_live_") {
				t.Errorf("audit query --admin --format %s shows a secret key\n%s", format, r)
			}
		}
		r = run(t, append([]string{"audit", "query", "--admin", "--format", "csv"}, ch...)...)
		if !strings.HasPrefix(r.stdout, "eventId,time,kind,") {
			t.Errorf("admin CSV without its header:\n%s", r.stdout)
		}
	})

	t.Run("output holds no secret", func(t *testing.T) {
		t.Parallel()
		for _, format := range []string{"table", "json", "csv"} {
			r := run(t, append([]string{"audit", "query", "--format", format}, ch...)...)
			for _, w := range f.reqs {
				if w.token != "" && strings.Contains(r.stdout, strings.Split(w.token, ".")[2]) {
					t.Errorf("--format %s shows a token", format)
				}
			}
			if strings.Contains(r.stdout, "sk_live_") {
				t.Errorf("--format %s shows a key", format)
			}
		}
	})
}

// checkAligned checks that every column of a table starts at the same
// position on every line as its header.
func checkAligned(t *testing.T, lines []string, headers []string) {
	t.Helper()
	var starts []int
	for _, h := range headers {
		i := strings.Index(lines[0], h)
		if i < 0 || (len(starts) > 0 && i <= starts[len(starts)-1]) {
			t.Fatalf("header %q not in order in %q", h, lines[0])
		}
		starts = append(starts, i)
	}
	for _, line := range lines[1:] {
		for j, s := range starts {
			if len(line) <= s || line[s] == ' ' || (j > 0 && line[s-1] != ' ') {
				t.Errorf("column %s does not start at %d in\n%q\n%q", headers[j], s, lines[0], line)
				break
			}
		}
	}
}

func TestAuditStats(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	ch := []string{"--clickhouse", f.dsn}
	// By hour as ClickHouse (in UTC) counts them, from the decisions' times.
	recs, err := audit.Decisions(context.Background(), openClickHouse(t, f.dsn), audit.Filter{Since: time.Now().Add(-time.Hour)})
	if err != nil || len(recs) != len(f.reqs) {
		t.Fatalf("Decisions: %d, %v", len(recs), err)
	}
	byHour := map[string]uint64{}
	for _, r := range recs {
		byHour[r.Time.UTC().Format("2006-01-02 15:00")]++
	}
	tests := []struct {
		name string
		args []string
		want map[string]uint64
	}{
		{name: "default by decision", args: nil, want: map[string]uint64{"accept": 4, "unauthorized": 2, "origin_blocked": 1}},
		{name: "by decision", args: []string{"--by", "decision"}, want: map[string]uint64{"accept": 4, "unauthorized": 2, "origin_blocked": 1}},
		{name: "by reason", args: []string{"--by", "reason"}, want: map[string]uint64{"(accept)": 4, "token_bad_signature": 2, "origin_not_allowed": 1}},
		{name: "by origin", args: []string{"--by", "origin"}, want: map[string]uint64{"https://a.example.com": 6, "https://evil.example": 1}},
		{name: "by user", args: []string{"--by", "user"}, want: map[string]uint64{"alice": 1, "bob": 1, "carol": 1, "visitor": 1, "(none)": 3}},
		{name: "by hour", args: []string{"--by", "hour"}, want: byHour},
		{name: "with filters", args: []string{"--by", "reason", "--project", f.projectID, "--decision", "unauthorized", "--since", "1h"}, want: map[string]uint64{"token_bad_signature": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// JSON: one object a line, the grouping's name as the key.
			by := "decision"
			if i := slices.Index(tt.args, "--by"); i >= 0 {
				by = tt.args[i+1]
			}
			r := run(t, append(append([]string{"audit", "stats", "--format", "json"}, ch...), tt.args...)...)
			if r.code != 0 {
				t.Fatalf("audit stats --format json\n%s", r)
			}
			got := map[string]uint64{}
			for _, o := range jsonLines(t, r.stdout) {
				n, _ := o["count"].(float64)
				got[fmt.Sprint(o[by])] = uint64(n)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("json: got %v, want %v\n%s", got, tt.want, r.stdout)
			}

			// Table: KEY COUNT lines and a total.
			r = run(t, append(append([]string{"audit", "stats"}, ch...), tt.args...)...)
			if r.code != 0 {
				t.Fatalf("audit stats\n%s", r)
			}
			lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			if !strings.Contains(lines[0], strings.ToUpper(by)) || !strings.Contains(lines[0], "COUNT") {
				t.Errorf("header %q", lines[0])
			}
			got = map[string]uint64{}
			var total uint64
			for _, line := range lines[1:] {
				fields := strings.Fields(line)
				n, err := strconv.ParseUint(fields[len(fields)-1], 10, 64)
				if err != nil {
					t.Fatalf("line %q does not end with a count", line)
				}
				key := strings.Join(fields[:len(fields)-1], " ")
				if key == "total" {
					total = n
					continue
				}
				got[key] = n
			}
			var want uint64
			for _, n := range tt.want {
				want += n
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || total != want {
				t.Errorf("table: got %v total %d, want %v total %d\n%s", got, total, tt.want, want, r.stdout)
			}
		})
	}
}

func TestAuditErrors(t *testing.T) {
	t.Parallel()
	dsn := []string{"--clickhouse", closedClickHouse}
	tests := []struct {
		name  string
		args  []string
		noDSN bool     // the args name their own --clickhouse
		want  []string // in stderr
	}{
		{name: "bad --by", args: []string{"audit", "stats", "--by", "project"}, want: []string{`--by "project"`, "decision, reason, origin, user or hour"}},
		{name: "bad --reason", args: []string{"audit", "query", "--reason", "expired"}, want: []string{`--reason "expired"`, "not a reason code", "token_expired"}},
		{name: "bad --reason in stats", args: []string{"audit", "stats", "--reason", "nope"}, want: []string{`--reason "nope"`, "not a reason code"}},
		{name: "bad --since", args: []string{"audit", "query", "--since", "yesterday"}, want: []string{"--since", `"yesterday"`, "24h", "2026-11-01"}},
		{name: "negative --since", args: []string{"audit", "query", "--since", "-1h"}, want: []string{"--since"}},
		{name: "bad --until", args: []string{"audit", "query", "--until", "soon"}, want: []string{"--until", `"soon"`}},
		{name: "--since days overflowing", args: []string{"audit", "query", "--since", "9999999999999d"}, want: []string{"--since", `"9999999999999d"`, "1970-01-01"}},
		{name: "--since days beyond int64", args: []string{"audit", "query", "--since", "99999999999999999999d"}, want: []string{"--since", "1970-01-01"}},
		{name: "--since days before 1970", args: []string{"audit", "query", "--since", "50000d"}, want: []string{"--since", `"50000d"`, "1970-01-01"}},
		{name: "--since hours overflowing", args: []string{"audit", "query", "--since", "9999999999h"}, want: []string{"--since", `"9999999999h"`, "1970-01-01"}},
		{name: "--since a date before 1970", args: []string{"audit", "query", "--since", "1969-12-31"}, want: []string{"--since", `"1969-12-31"`, "1970-01-01", "2106-02-07"}},
		{name: "--until a date after 2106", args: []string{"audit", "query", "--until", "2200-01-01"}, want: []string{"--until", `"2200-01-01"`, "1970-01-01", "2106-02-07"}},
		{name: "--until days overflowing", args: []string{"audit", "query", "--until", "9999999999999d"}, want: []string{"--until", "1970-01-01"}},
		{name: "stats --since days overflowing", args: []string{"audit", "stats", "--since", "9999999999999d"}, want: []string{"--since", "1970-01-01"}},
		{name: "admin --since days overflowing", args: []string{"audit", "query", "--admin", "--since", "9999999999999d"}, want: []string{"--since", "1970-01-01"}},
		{name: "bad --decision", args: []string{"audit", "query", "--decision", "deny"}, want: []string{`--decision "deny"`, "accept, unauthorized or origin_blocked"}},
		{name: "bad --format", args: []string{"audit", "query", "--format", "xml"}, want: []string{`--format "xml"`, "table, json or csv"}},
		{name: "bad stats --format", args: []string{"audit", "stats", "--format", "csv"}, want: []string{`--format "csv"`, "table or json"}},
		{name: "bad --limit", args: []string{"audit", "query", "--limit", "0"}, want: []string{"--limit"}},
		{name: "query unreachable", args: []string{"audit", "query"}, want: []string{"unreachable", "127.0.0.1:1", "--clickhouse", "HISSUNO_CLICKHOUSE_DSN"}},
		{name: "stats unreachable", args: []string{"audit", "stats", "--by", "reason"}, want: []string{"unreachable", "127.0.0.1:1", "--clickhouse"}},
		{name: "admin unreachable", args: []string{"audit", "query", "--admin"}, want: []string{"unreachable", "--clickhouse"}},
		{name: "migrate unreachable", args: []string{"audit", "migrate"}, want: []string{"unreachable", "127.0.0.1:1", "--clickhouse"}},
		{name: "bad DSN", args: []string{"audit", "query", "--clickhouse", "http://[::1"}, noDSN: true, want: []string{"ClickHouse DSN", "clickhouse://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := slices.Clone(tt.args)
			if !tt.noDSN {
				args = append(args, dsn...)
			}
			r := run(t, args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\n%s", r.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q\n%s", w, r)
				}
			}
			if r.stdout != "" {
				t.Errorf("a failing command printed on stdout\n%s", r)
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 30, 0, 0, time.UTC)
	epoch := time.Unix(0, 0).UTC()
	daysSince1970 := int(now.Sub(epoch) / (24 * time.Hour))
	tests := []struct {
		name string
		in   string
		want time.Time
		// err is a part of the error; "" for none.
		err string
	}{
		{name: "hours", in: "24h", want: now.Add(-24 * time.Hour)},
		{name: "minutes", in: "90m", want: now.Add(-90 * time.Minute)},
		{name: "days", in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{name: "zero", in: "0d", want: now},
		{name: "zero alone", in: "0", want: now},
		{name: "hours and minutes", in: "1h30m", want: now.Add(-90 * time.Minute)},
		{name: "a date", in: "2026-11-01", want: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{name: "RFC 3339", in: "2026-11-01T10:00:00Z", want: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)},
		{name: "the first second", in: "1970-01-01", want: epoch},
		{name: "the last second", in: "2106-02-07T06:28:15Z", want: time.Unix(1<<32-1, 0).UTC()},
		{name: "days back to 1970", in: strconv.Itoa(daysSince1970) + "d", want: now.Add(-time.Duration(daysSince1970) * 24 * time.Hour)},
		{name: "days before 1970", in: strconv.Itoa(daysSince1970+1) + "d", err: "1970-01-01"},
		{name: "days overflowing a duration", in: "9999999999999d", err: "1970-01-01"},
		{name: "days beyond int64", in: "99999999999999999999d", err: "1970-01-01"},
		{name: "hours before 1970", in: "500000h", err: "1970-01-01"},
		{name: "hours overflowing a duration", in: "9999999999h", err: "1970-01-01"},
		{name: "a second before 1970", in: "1969-12-31T23:59:59Z", err: "2106-02-07"},
		{name: "a second after 2106", in: "2106-02-07T06:28:16Z", err: "1970-01-01"},
		{name: "year 9999", in: "9999-12-31", err: "2106-02-07"},
		{name: "negative", in: "-1h", err: "neither a duration"},
		{name: "words", in: "yesterday", err: "neither a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseWhen(tt.in, now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseWhen(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("parseWhen(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestAuditMigrate(t *testing.T) {
	t.Parallel()
	dsn := auditClickHouse(t)
	r := run(t, "audit", "migrate", "--clickhouse", dsn)
	if r.code != 0 {
		t.Fatalf("audit migrate\n%s", r)
	}
	if want := "applied 0001_decisions.sql\napplied 0002_admin_events.sql\napplied 0003_admin_event_context.sql\napplied 0004_throttled.sql\napplied 0005_merge_duplicates.sql\n"; r.stdout != want {
		t.Errorf("first audit migrate printed %q, want %q", r.stdout, want)
	}
	for range 2 {
		r = run(t, "audit", "migrate", "--clickhouse", dsn)
		if r.code != 0 || !strings.Contains(r.stdout, "up to date") || strings.Contains(r.stdout, "applied") {
			t.Errorf("audit migrate again: want \"up to date\"\n%s", r)
		}
	}
	// The tables exist and are empty: query works and finds nothing.
	r = run(t, "audit", "query", "--format", "json", "--clickhouse", dsn)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("audit query after migrate\n%s", r)
	}
	// A cluster the server does not know: say how to find its name.
	r = run(t, "audit", "migrate", "--clickhouse", dsn, "--cluster", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, `no cluster "nope"`) || !strings.Contains(r.stderr, "system.clusters") {
		t.Errorf("audit migrate --cluster nope on one server\n%s", r)
	}
	// Before any migration, the query says what to do.
	r = run(t, "audit", "query", "--clickhouse", auditClickHouse(t))
	if r.code != 1 || !strings.Contains(r.stderr, "hissuno audit migrate") {
		t.Errorf("audit query on an empty database\n%s", r)
	}
}

// tail runs `hissuno audit tail` until the test ends or stop is called.
type tail struct {
	stdout, stderr stacktest.SyncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// shows is nil once the tail printed s, else an error saying what it
// printed so far.
func (tl *tail) shows(s string) error {
	out := tl.stdout.String()
	if strings.Contains(out, s) {
		return nil
	}
	return fmt.Errorf("%q is not in the %d lines it printed (stderr: %q)", s, strings.Count(out, "\n"), tl.stderr.String())
}

// said is nil once the tail wrote s to its stderr, else an error quoting
// what it wrote there.
func (tl *tail) said(s string) error {
	if msg := tl.stderr.String(); !strings.Contains(msg, s) {
		return fmt.Errorf("its stderr says %q, not %q", msg, s)
	}
	return nil
}

func startTail(t *testing.T, args ...string) *tail {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tail{cancel: cancel, done: make(chan int, 1)}
	go func() {
		tl.done <- Run(Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &tl.stdout, Stderr: &tl.stderr}, append([]string{"audit", "tail"}, args...))
	}()
	t.Cleanup(func() { tl.stop(t) })
	return tl
}

// stop ends the tail and returns its exit code.
func (tl *tail) stop(t *testing.T) int {
	t.Helper()
	tl.cancel()
	select {
	case code := <-tl.done:
		tl.done <- code
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("audit tail did not stop within 10 s of its context's end")
		return -1
	}
}

func TestAuditTail(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{}) // tail reads JetStream, no ClickHouse needed
	id, key := createProject(t, st)
	all := startTail(t, append([]string{"--format", "json"}, stacktest.NATSArgs(t, st, "audit")...)...)
	mine := startTail(t, append([]string{"--format", "json", "--project", id}, stacktest.NATSArgs(t, st, "audit")...)...)
	client := &http.Client{Timeout: 20 * time.Second}

	// The tails follow new decisions only: send until both show one.
	stacktest.Eventually(t, 30*time.Second, "audit tail following", func() error {
		w := &widgetRequest{projectID: id, userID: "warmup", wantStatus: 200, wantDecision: "accept"}
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
		if err := all.shows("decisionId"); err != nil {
			return fmt.Errorf("audit tail: %w", err)
		}
		if err := mine.shows("decisionId"); err != nil {
			return fmt.Errorf("audit tail --project: %w", err)
		}
		return nil
	})

	reqs := []*widgetRequest{
		{projectID: id, token: mintToken(t, key, "alice"), wantStatus: 200, wantDecision: "accept"},
		{projectID: id, token: mintToken(t, "sk_live_wrong", "eve"), wantStatus: 401, wantDecision: "unauthorized", wantReason: "token_bad_signature"},
		{projectID: "other-project", userID: "x", wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"},
		{projectID: id, userID: "visitor", wantStatus: 200, wantDecision: "accept"},
	}
	for _, w := range reqs {
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
	}
	seen := func(tl *tail) map[string]events.Decision {
		out := map[string]events.Decision{}
		for _, line := range strings.Split(strings.TrimSpace(tl.stdout.String()), "\n") {
			var d events.Decision
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("tail printed a line that is not a JSON decision: %q", line)
			}
			out[d.DecisionID] = d
		}
		return out
	}
	stacktest.Eventually(t, 30*time.Second, "every decision in the tail", func() error {
		got := seen(all)
		for _, w := range reqs {
			if _, ok := got[w.decisionID]; !ok {
				return fmt.Errorf("the tail shows %d decisions, not %s (to %s)", len(got), w.decisionID, w.projectID)
			}
		}
		return nil
	})
	got := seen(all)
	for _, w := range reqs {
		d := got[w.decisionID]
		if d.ProjectID != w.projectID || string(d.Decision) != w.wantDecision || string(d.Reason) != w.wantReason || d.TokenFingerprint != fingerprint(w.token) {
			t.Errorf("tail shows %+v for a request to %s (want %s %s)", d, w.projectID, w.wantDecision, w.wantReason)
		}
	}
	for _, w := range reqs {
		if w.token != "" && strings.Contains(all.stdout.String(), strings.Split(w.token, ".")[2]) {
			t.Errorf("audit tail printed a raw token")
		}
	}

	// --project: the other project's decision never shows; wait until the
	// last of ours has, so that the other one had its chance.
	stacktest.Eventually(t, 30*time.Second, "the project's decisions in its tail", func() error {
		got := seen(mine)
		if _, ok := got[reqs[3].decisionID]; !ok {
			return fmt.Errorf("the tail shows %d decisions, not %s", len(got), reqs[3].decisionID)
		}
		return nil
	})
	for _, d := range seen(mine) {
		if d.ProjectID != id {
			t.Errorf("audit tail --project %s shows a decision of %s", id, d.ProjectID)
		}
	}

	if code := all.stop(t); code != 0 {
		t.Errorf("audit tail exited %d after its context ended\n%s", code, all.stderr.String())
	}
	if code := mine.stop(t); code != 0 {
		t.Errorf("audit tail --project exited %d\n%s", code, mine.stderr.String())
	}
	if strings.Contains(all.stderr.String(), "following") {
		t.Errorf("--format json wrote the table banner on stderr: %q", all.stderr.String())
	}
}

func TestAuditTailTable(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	tl := startTail(t, stacktest.NATSArgs(t, st, "audit")...)
	stacktest.Eventually(t, 30*time.Second, "the banner", func() error {
		return tl.said("following decisions live")
	})
	client := &http.Client{Timeout: 20 * time.Second}
	stacktest.Eventually(t, 30*time.Second, "a decision in the table tail", func() error {
		w := &widgetRequest{projectID: "tail-table", wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"}
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
		out := tl.stdout.String()
		if !strings.Contains(out, "unknown_project") || !strings.Contains(out, "tail-table") {
			return fmt.Errorf("the tail printed no unknown_project line of tail-table in %d lines", strings.Count(out, "\n"))
		}
		return nil
	})
	if code := tl.stop(t); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestAuditTailWhileTheAuditorStores: with an auditor storing decisions in
// ClickHouse, each of which then leaves the decisions stream (interest
// retention), audit tail still shows every one, and the stream ends empty.
func TestAuditTailWhileTheAuditorStores(t *testing.T) {
	t.Parallel()
	st, dsn := auditStack(t)
	conn := openClickHouse(t, dsn)
	tl := startTail(t, append([]string{"--format", "json"}, stacktest.NATSArgs(t, st, "audit")...)...)
	client := &http.Client{Timeout: 20 * time.Second}
	var sent []*widgetRequest
	send := func(w *widgetRequest) {
		t.Helper()
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, w)
	}
	stacktest.Eventually(t, 30*time.Second, "audit tail following", func() error {
		send(&widgetRequest{projectID: "tail-stored", wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"})
		return tl.shows("decisionId")
	})
	for i := range 20 {
		send(&widgetRequest{projectID: fmt.Sprintf("tail-stored-%d", i), wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"})
	}
	last := sent[len(sent)-1].decisionID
	stacktest.Eventually(t, 30*time.Second, "the last decision in ClickHouse and in the tail", func() error {
		n, err := countRows(conn, "SELECT count() FROM hissuno_decisions FINAL WHERE decision_id = ?", last)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("ClickHouse holds %s %d times", last, n)
		}
		return tl.shows(last)
	})
	// Everything after the tail's first line was both shown and stored.
	out := tl.stdout.String()
	first := -1
	for i, w := range sent {
		if strings.Contains(out, w.decisionID) {
			first = i
			break
		}
	}
	for _, w := range sent[first:] {
		if !strings.Contains(out, w.decisionID) {
			t.Errorf("audit tail did not show %s", w.decisionID)
		}
		if n, ok := chCount(conn, "SELECT count() FROM hissuno_decisions FINAL WHERE decision_id = ?", w.decisionID); !ok || n != 1 {
			t.Errorf("ClickHouse holds %s %d times", w.decisionID, n)
		}
	}
	nc := stacktest.ConnectAs(t, st, stacktest.Superuser)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var held uint64
	stacktest.Eventually(t, 30*time.Second, "the decisions stream empty once the auditor stored them", func() error {
		s, err := js.Stream(context.Background(), events.StreamDecisions)
		if err != nil {
			return err
		}
		if held = s.CachedInfo().State.Msgs; held != 0 {
			return fmt.Errorf("the stream holds %d decisions", held)
		}
		return nil
	})
	if code := tl.stop(t); code != 0 {
		t.Errorf("audit tail exited %d\n%s", code, tl.stderr.String())
	}
}

// TestAuditTailOnAReplicatedStream: on a three-node cluster, with the
// decisions stream at three replicas and interest retention, audit tail
// follows decisions (an ordered consumer, with its single replica, would be
// refused by such a stream).
func TestAuditTailOnAReplicatedStream(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow: a three-node cluster; run without -short")
	}
	c := stacktest.StartCluster(t, 3)
	nc, err := bus.Connect(bus.ConnConfig{URL: c.URLs(), Name: "tail-test"}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.Ensure(ctx, js, bus.Topology{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	tl := startTail(t, "--format", "json", "--nats", c.URLs())
	i := 0
	stacktest.Eventually(t, 30*time.Second, "a decision in the tail of the replicated stream", func() error {
		if code := len(tl.done); code > 0 {
			t.Fatalf("audit tail stopped: %s", tl.stderr.String())
		}
		i++
		id := fmt.Sprintf("dec_replicated_%d", i)
		if _, err := js.Publish(ctx, events.SubjectDecisions, []byte(`{"decisionId":"`+id+`","projectId":"p"}`)); err != nil {
			t.Fatal(err)
		}
		if err := tl.shows("dec_replicated_"); err != nil {
			return fmt.Errorf("%d decisions published: %w", i, err)
		}
		return nil
	})
	if code := tl.stop(t); code != 0 {
		t.Errorf("audit tail exited %d\n%s", code, tl.stderr.String())
	}
}

// TestAuditTailBehindHoldsNoStoredDecision: a tail that cannot keep up
// (a slow terminal) is interest on the decisions stream and would hold
// decisions the auditor has already stored; the auditor removes those it
// stored more than StoredGrace ago from under it, the tail says it skipped
// some, and goes on following.
func TestAuditTailBehindHoldsNoStoredDecision(t *testing.T) {
	t.Parallel()
	dsn := auditClickHouse(t)
	st := stacktest.Start(t, stack.Config{ClickHouseDSN: dsn, IngressDeadline: 20 * time.Second,
		Auditor: auditor.Config{BatchWait: 50 * time.Millisecond, BacklogEvery: 100 * time.Millisecond, StoredGrace: time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tail{cancel: cancel, done: make(chan int, 1)}
	slow := &slowWriter{w: &tl.stdout, delay: 20 * time.Millisecond}
	go func() {
		tl.done <- Run(Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: slow, Stderr: &tl.stderr}, append([]string{"audit", "tail", "--format", "json"}, stacktest.NATSArgs(t, st, "audit")...))
	}()
	t.Cleanup(func() { tl.stop(t) })
	client := &http.Client{Timeout: 20 * time.Second}
	stacktest.Eventually(t, 30*time.Second, "audit tail following", func() error {
		w := &widgetRequest{projectID: "tail-slow", wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"}
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
		return tl.shows("decisionId")
	})
	// Far more than the slow tail shows in the time they take to store.
	var reqs []*widgetRequest
	for i := range 1200 {
		reqs = append(reqs, &widgetRequest{projectID: fmt.Sprintf("tail-slow-%d", i), wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"})
	}
	sendAll(t, st, reqs)
	conn := openClickHouse(t, dsn)
	waitDecisions(t, conn, len(reqs))
	nc := stacktest.ConnectAs(t, st, stacktest.Superuser)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 30*time.Second, "the decisions stream empty, the tail far behind", func() error {
		s, err := js.Stream(context.Background(), events.StreamDecisions)
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("the stream holds %d decisions", n)
		}
		return nil
	})
	if shown := strings.Count(tl.stdout.String(), "tail-slow-"); shown >= len(reqs) {
		t.Fatalf("the slow tail showed all %d decisions already: it was not behind", shown)
	}
	// It says what it skipped, and still follows.
	stacktest.Eventually(t, time.Minute, "a new decision in the tail after it skipped", func() error {
		w := &widgetRequest{projectID: "tail-after-skip", wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"}
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
		return tl.shows("tail-after-skip")
	})
	if !strings.Contains(tl.stderr.String(), "decisions, already stored, were skipped") {
		t.Errorf("the tail did not say it skipped decisions: %q", tl.stderr.String())
	}
}

// slowWriter is a terminal that takes delay to show each line.
type slowWriter struct {
	w     *stacktest.SyncBuffer
	delay time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.delay) // the terminal's pace, not a wait for a condition
	return s.w.Write(p)
}

func TestAuditTailWithoutNATS(t *testing.T) {
	t.Parallel()
	r := run(t, "audit", "tail", "--nats", closedNATS)
	if r.code != 1 || !strings.Contains(r.stderr, "NATS") {
		t.Errorf("audit tail without NATS\n%s", r)
	}
}

// TestAuditStatsTotalCountsEveryGroup: `audit stats` shares the query's
// --limit (default 100) and applies it to the groups, so that over more
// than 100 users (or hours, origins) it prints 100 of them and a total
// that leaves the rest out. The contract of `audit stats` has no --limit.
func TestAuditStatsTotalCountsEveryGroup(t *testing.T) {
	t.Parallel()
	st, dsn := auditStack(t)
	id, _ := createProject(t, st)
	const users = 130
	var reqs []*widgetRequest
	for i := range users {
		reqs = append(reqs, &widgetRequest{projectID: id, userID: fmt.Sprintf("visitor-%03d", i), wantStatus: 200, wantDecision: "accept"})
	}
	sendAll(t, st, reqs)
	waitDecisions(t, openClickHouse(t, dsn), users)
	r := run(t, "audit", "stats", "--by", "user", "--clickhouse", dsn)
	if r.code != 0 {
		t.Fatalf("audit stats --by user\n%s", r)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	last := strings.Fields(lines[len(lines)-1])
	if len(lines) != 1+users+1 || last[0] != "total" || last[1] != strconv.Itoa(users) {
		t.Errorf("audit stats --by user over %d users: %d lines, last %q; want %d users and total %d", users, len(lines), lines[len(lines)-1], users, users)
	}
}

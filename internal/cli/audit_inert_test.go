package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/inert"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// checkInertLines fails when out holds, on any of its lines, a byte or rune
// a terminal must not get raw, and returns its lines.
func checkInertLines(t *testing.T, what, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, line := range lines {
		if r, ok := inert.Raw(line); ok {
			t.Errorf("%s: line %d holds %q raw: %q", what, i+1, r, line)
		}
	}
	return lines
}

// TestAuditOutputInert puts hostile strings into the audit through the
// pipeline (widgets' userIds and projectIds, an admin's --reason) and reads
// them back with every format of `audit query`, `audit query --admin`,
// `audit stats` and `audit tail`: a table prints one line a record with
// them escaped, JSON escapes them and decodes to them, CSV quotes them and
// reads back to them.
func TestAuditOutputInert(t *testing.T) {
	t.Parallel()
	st, dsn := auditStack(t)
	const hostileReason = "ops\n\x1b[2J"
	id, _ := createProject(t, st, "--reason", hostileReason)
	ch := []string{"--clickhouse", dsn}
	tailTable := startTail(t, append([]string{"--project", id}, stacktest.NATSArgs(t, st, "audit")...)...)
	tailJSON := startTail(t, append([]string{"--project", id, "--format", "json"}, stacktest.NATSArgs(t, st, "audit")...)...)

	// The tails follow new decisions only: send until both show one.
	client := &http.Client{Timeout: 20 * time.Second}
	warmups := 0
	stacktest.Eventually(t, 30*time.Second, "audit tail following", func() error {
		warmups++
		w := &widgetRequest{projectID: id, userID: "warmup", wantStatus: 200, wantDecision: "accept"}
		if err := w.send(client, st); err != nil {
			t.Fatal(err)
		}
		if err := tailTable.shows("warmup"); err != nil {
			return fmt.Errorf("%d warmups: the table tail: %w", warmups, err)
		}
		if err := tailJSON.shows("warmup"); err != nil {
			return fmt.Errorf("%d warmups: the JSON tail: %w", warmups, err)
		}
		return nil
	})

	var reqs []*widgetRequest
	for _, v := range stacktest.HostileValues {
		reqs = append(reqs, &widgetRequest{projectID: id, userID: v, wantStatus: 200, wantDecision: "accept"})
	}
	// An unknown projectId is stored as sent, too (a projectId is at most 64
	// bytes).
	reqs = append(reqs, &widgetRequest{projectID: stacktest.HostileProjectID, wantStatus: 401, wantDecision: "unauthorized", wantReason: "unknown_project"})
	for _, w := range reqs {
		if err := w.send(client, st); err != nil {
			t.Fatalf("POST userId %q: %v", w.userID, err)
		}
	}
	conn := openClickHouse(t, dsn)
	waitDecisions(t, conn, warmups+len(reqs))
	ours := warmups + len(stacktest.HostileValues) // the project's decisions

	t.Run("query table", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query", "--project", id, "--limit", "1000"}, ch...)...)
		if r.code != 0 {
			t.Fatalf("audit query\n%s", r)
		}
		lines := checkInertLines(t, "audit query", r.stdout)
		if len(lines) != 1+ours {
			t.Errorf("%d lines, want a header and %d rows, one a decision:\n%s", len(lines), ours, r.stdout)
		}
		for _, v := range stacktest.HostileValues {
			if !strings.Contains(r.stdout, inert.Text(v)) {
				t.Errorf("no row shows %q as %q:\n%s", v, inert.Text(v), r.stdout)
			}
		}
		r = run(t, append([]string{"audit", "query", "--user", stacktest.HostileUserID}, ch...)...)
		lines = checkInertLines(t, "audit query --user", r.stdout)
		if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], `x\n2026-12-02 00:00:00.000  proj_demo  accept … authenticated  ceo …\x1b[31m`) {
			t.Errorf("audit query --user %q: want a header and one row showing it escaped\n%s", stacktest.HostileUserID, r)
		}
		r = run(t, append([]string{"audit", "query", "--project", stacktest.HostileProjectID}, ch...)...)
		lines = checkInertLines(t, "audit query --project", r.stdout)
		if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "unknown_project") {
			t.Errorf("audit query --project %q: want a header and one row\n%s", stacktest.HostileProjectID, r)
		}
	})

	t.Run("query json", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query", "--project", id, "--limit", "1000", "--format", "json"}, ch...)...)
		if r.code != 0 {
			t.Fatalf("audit query --format json\n%s", r)
		}
		lines := checkInertLines(t, "audit query --format json", r.stdout)
		var users []string
		for _, line := range lines {
			var rec struct {
				UserID string `json:"userId"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("line %q is not JSON: %v", line, err)
			}
			users = append(users, rec.UserID)
		}
		if len(lines) != ours {
			t.Errorf("%d JSON lines, want %d", len(lines), ours)
		}
		for _, v := range stacktest.HostileValues {
			if !slices.Contains(users, v) {
				t.Errorf("no JSON line decodes to userId %q; got %q", v, users)
			}
		}
	})

	t.Run("query csv", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "query", "--project", id, "--limit", "1000", "--format", "csv"}, ch...)...)
		if r.code != 0 {
			t.Fatalf("audit query --format csv\n%s", r)
		}
		recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil || len(recs) != 1+ours {
			t.Fatalf("CSV: %d records (%v), want a header and %d\n%q", len(recs), err, ours, r.stdout)
		}
		col := slices.Index(recs[0], "userId")
		var users []string
		for _, rec := range recs[1:] {
			users = append(users, rec[col])
		}
		for _, v := range stacktest.HostileValues {
			if !slices.Contains(users, v) {
				t.Errorf("no CSV record reads back userId %q; got %q", v, users)
			}
			if _, hostile := inert.Raw(v); hostile && !strings.Contains(r.stdout, `,"`+strings.ReplaceAll(v, `"`, `""`)+`",`) {
				t.Errorf("userId %q is not quoted in the CSV:\n%q", v, r.stdout)
			}
		}
	})

	t.Run("admin", func(t *testing.T) {
		t.Parallel()
		var r result
		admin := append([]string{"audit", "query", "--admin", "--project", id}, ch...)
		stacktest.Eventually(t, 30*time.Second, "the admin event in ClickHouse", func() error {
			r = run(t, admin...)
			if !strings.Contains(r.stdout, "project.created") {
				return fmt.Errorf("audit query --admin shows no project.created: %s", r)
			}
			return nil
		})
		lines := checkInertLines(t, "audit query --admin", r.stdout)
		if len(lines) != 2 || !strings.Contains(lines[1], inert.Text(hostileReason)) {
			t.Errorf("audit query --admin: want a header and one row showing the reason as %q\n%s", inert.Text(hostileReason), r.stdout)
		}
		r = run(t, append(admin, "--format", "json")...)
		lines = checkInertLines(t, "audit query --admin --format json", r.stdout)
		var ev struct {
			Reason string `json:"reason"`
		}
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev.Reason != hostileReason {
			t.Errorf("audit query --admin --format json: want one line decoding to reason %q\n%s", hostileReason, r.stdout)
		}
		r = run(t, append(admin, "--format", "csv")...)
		recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil || len(recs) != 2 || recs[1][slices.Index(recs[0], "reason")] != hostileReason {
			t.Errorf("audit query --admin --format csv: want the reason %q back (%v)\n%q", hostileReason, err, r.stdout)
		}
	})

	t.Run("stats", func(t *testing.T) {
		t.Parallel()
		r := run(t, append([]string{"audit", "stats", "--by", "user", "--project", id}, ch...)...)
		if r.code != 0 {
			t.Fatalf("audit stats\n%s", r)
		}
		lines := checkInertLines(t, "audit stats", r.stdout)
		if groups := len(stacktest.HostileValues) + 1; len(lines) != 1+groups+1 {
			t.Errorf("%d lines, want a header, %d groups and a total:\n%s", len(lines), groups, r.stdout)
		}
		r = run(t, append([]string{"audit", "stats", "--by", "user", "--project", id, "--format", "json"}, ch...)...)
		lines = checkInertLines(t, "audit stats --format json", r.stdout)
		var users []string
		for _, line := range lines {
			var s map[string]any
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatalf("line %q is not JSON: %v", line, err)
			}
			users = append(users, fmt.Sprint(s["user"]))
		}
		for _, v := range stacktest.HostileValues {
			if !slices.Contains(users, v) {
				t.Errorf("no stats line decodes to user %q; got %q", v, users)
			}
		}
	})

	t.Run("tail", func(t *testing.T) {
		t.Parallel()
		// Decisions come in order: once the last shows, all have.
		last := reqs[len(stacktest.HostileValues)-1]
		stacktest.Eventually(t, 30*time.Second, "every decision in both tails", func() error {
			if err := tailJSON.shows(last.decisionID); err != nil {
				return fmt.Errorf("the JSON tail: %w", err)
			}
			if err := tailTable.shows(inert.Text(last.userID)); err != nil {
				return fmt.Errorf("the table tail: %w", err)
			}
			return nil
		})
		table := tailTable.stdout.String()
		row := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}  accept `)
		rows := 0
		for _, line := range checkInertLines(t, "audit tail", table) {
			if !row.MatchString(line) {
				t.Errorf("audit tail printed a line that is no decision of its own: %q", line)
			}
			if !strings.Contains(line, "warmup") {
				rows++
			}
		}
		if rows != len(stacktest.HostileValues) {
			t.Errorf("audit tail printed %d lines for %d decisions:\n%s", rows, len(stacktest.HostileValues), table)
		}
		for _, v := range stacktest.HostileValues {
			if !strings.Contains(table, inert.Text(v)) {
				t.Errorf("audit tail does not show %q as %q:\n%s", v, inert.Text(v), table)
			}
		}
		var users []string
		for _, line := range checkInertLines(t, "audit tail --format json", tailJSON.stdout.String()) {
			var d struct {
				UserID string `json:"userId"`
			}
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("audit tail --format json printed %q: %v", line, err)
			}
			users = append(users, d.UserID)
		}
		for _, v := range stacktest.HostileValues {
			if !slices.Contains(users, v) {
				t.Errorf("no audit tail JSON line decodes to userId %q", v)
			}
		}
	})
}

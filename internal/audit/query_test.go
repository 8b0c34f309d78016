package audit_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// fixtureBase is the hour the fixture's decisions start in: three hours
// ago, so that they fall in the default time range.
func fixtureBase() time.Time { return time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour) }

// fixture is a known set of decisions over two hours, several projects,
// outcomes, reasons, users and origins. Times carry microseconds and two
// decisions share a second.
func fixture(base time.Time) []events.Decision {
	type spec struct {
		project, decision, reason, session, user, claimed, origin string
	}
	specs := []spec{
		{"p_a", "accept", "", "authenticated", "u1", "", "https://a.example"},
		{"p_a", "accept", "", "authenticated", "u2", "someone", "https://a.example"},
		{"p_a", "unauthorized", "token_bad_signature", "", "", "", "https://a.example"},
		{"p_a", "unauthorized", "token_expired", "", "", "", "https://b.example"},
		{"p_a", "origin_blocked", "origin_not_allowed", "", "", "", "https://evil.example"},
		{"p_a", "accept", "", "anonymous", "v9", "", "https://b.example"},
		{"p_b", "accept", "", "authenticated", "u1", "", "https://shop.example"},
		{"p_b", "unauthorized", "token_bad_signature", "", "", "", "https://shop.example"},
		{"p_b", "origin_blocked", "origin_missing", "", "", "", ""},
		{"p_b", "accept", "", "authenticated", "u3", "", "https://shop.example"},
		{"p_nope", "unauthorized", "unknown_project", "", "", "", "https://a.example"},
		{"p_a", "accept", "", "authenticated", "u1", "", "https://a.example"},
		{"p_a", "unauthorized", "token_bad_signature", "", "", "", "https://a.example"},
	}
	var out []events.Decision
	for i, s := range specs {
		at := base.Add(time.Duration(i)*11*time.Minute + time.Duration(i*1234+1)*time.Microsecond)
		if i == len(specs)-1 {
			// Same second as the one before, a few hundred µs later.
			at = out[i-1].Time.Add(300 * time.Microsecond)
		}
		attempt := fmt.Sprintf("att_fixture_%02d", i)
		d := events.Decision{
			SchemaVersion: events.SchemaVersion, DecisionID: events.DecisionIDFor(attempt), AttemptID: attempt,
			Time: at, ReceivedAt: at.Add(-2 * time.Millisecond), ProjectID: s.project,
			Decision: events.Outcome(s.decision), Reason: events.Reason(s.reason), Session: events.Session(s.session),
			UserID: s.user, UserVerified: s.session == "authenticated", ClaimedUserID: s.claimed, Origin: s.origin,
			Verifier: "verifier-1", Ingress: "ingress-1", LatencyMicros: 2000, ClientIP: "198.51.100.9", UserAgent: "test/1",
		}
		if s.session == "authenticated" {
			d.KeyVersion = 2
			d.UserMetadata = map[string]string{"plan": "pro"}
		}
		if s.session == "authenticated" || strings.HasPrefix(s.reason, "token_") || s.reason == "unknown_project" {
			d.TokenFingerprint = fmt.Sprintf("%016x", 0xabc000+i)
		}
		if s.reason != "" {
			d.Message = "refused: " + s.reason
		}
		out = append(out, d)
	}
	return out
}

// decisionRows are ds as the auditor makes them into rows.
func decisionRows(t testing.TB, ds []events.Decision) [][]any {
	t.Helper()
	var rows [][]any
	for _, d := range ds {
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		row, err := audit.DecisionsTable.Row(events.SubjectDecisions, body)
		if err != nil {
			t.Fatalf("decisionRow: %v", err)
		}
		rows = append(rows, row)
	}
	return rows
}

// insertDecisions stores decisions in one batch, as the auditor does a
// batch delivered for the first time; twice, it stores copies, as
// auditors before migration 0005 did a batch delivered again.
func insertDecisions(t testing.TB, conn driver.Conn, ds []events.Decision) {
	t.Helper()
	if err := audit.Insert(stacktest.Context(t, 30*time.Second), conn, audit.DecisionsTable, decisionRows(t, ds)); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

// redeliverDecisions stores decisions stored already as the auditor does
// a batch JetStream delivered again (audit.InsertMissing), and checks that
// it left every one out.
func redeliverDecisions(t testing.TB, conn driver.Conn, ds []events.Decision) {
	t.Helper()
	skipped, err := audit.InsertMissing(stacktest.Context(t, 30*time.Second), conn, audit.DecisionsTable, decisionRows(t, ds))
	if err != nil {
		t.Fatalf("insert a redelivered batch: %v", err)
	}
	if skipped != len(ds) {
		t.Fatalf("a redelivered batch of %d stored decisions: %d left out as stored, want all", len(ds), skipped)
	}
}

// matching is what a query with f must return from ds: newest first, at
// most the limit.
func matching(ds []events.Decision, f audit.Filter) []string {
	until := f.Until
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	var sel []events.Decision
	for _, d := range ds {
		sec := d.Time.Truncate(time.Second) // ClickHouse compares whole seconds
		if sec.Before(f.Since.Truncate(time.Second)) || !sec.Before(until.Truncate(time.Second)) {
			continue
		}
		if (f.ProjectID != "" && d.ProjectID != f.ProjectID) || (f.Decision == audit.DecisionRefused && d.Decision == events.OutcomeAccept) ||
			(f.Decision != "" && f.Decision != audit.DecisionRefused && string(d.Decision) != f.Decision) ||
			(f.Reason != "" && string(d.Reason) != f.Reason) || (f.UserID != "" && d.UserID != f.UserID) ||
			(f.Origin != "" && d.Origin != f.Origin) || (f.Session != "" && string(d.Session) != f.Session) ||
			(f.Projects != nil && !slices.Contains(f.Projects, d.ProjectID)) {
			continue
		}
		sel = append(sel, d)
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].Time.After(sel[j].Time) })
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var ids []string
	for i, d := range sel {
		if i == limit {
			break
		}
		ids = append(ids, d.DecisionID)
	}
	return ids
}

// expectedStats computes Stats from the fixture as the query should.
func expectedStats(ds []events.Decision, by audit.Group) []audit.Stat {
	counts := map[string]uint64{}
	for _, d := range ds {
		var k string
		switch by {
		case audit.ByDecision:
			k = string(d.Decision)
		case audit.ByReason:
			k = cmpOr(string(d.Reason), "(accept)")
		case audit.ByOrigin:
			k = cmpOr(d.Origin, "(none)")
		case audit.ByUser:
			k = cmpOr(d.UserID, "(none)")
		case audit.ByHour:
			k = d.Time.Format("2006-01-02 15:00")
		}
		counts[k]++
	}
	var out []audit.Stat
	for k, n := range counts {
		out = append(out, audit.Stat{Key: k, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if by != audit.ByHour && out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func ids(recs []audit.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.DecisionID)
	}
	return out
}

func TestQueryDecisions(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	base := fixtureBase()
	ds := fixture(base)
	insertDecisions(t, conn, ds)

	tests := []struct {
		name   string
		filter audit.Filter
		want   int // how many the fixture holds, as a check of the test itself
	}{
		{name: "no filter", filter: audit.Filter{}, want: len(ds)},
		{name: "default range", filter: audit.Filter{Since: time.Now().Add(-24 * time.Hour)}, want: len(ds)},
		{name: "project", filter: audit.Filter{ProjectID: "p_a"}, want: 8},
		{name: "other project", filter: audit.Filter{ProjectID: "p_b"}, want: 4},
		{name: "unknown project id", filter: audit.Filter{ProjectID: "p_nope"}, want: 1},
		{name: "no such project", filter: audit.Filter{ProjectID: "p_zzz"}, want: 0},
		{name: "since", filter: audit.Filter{Since: base.Add(60 * time.Minute)}, want: 7},
		{name: "until", filter: audit.Filter{Until: base.Add(60 * time.Minute)}, want: 6},
		{name: "since and until", filter: audit.Filter{Since: base.Add(30 * time.Minute), Until: base.Add(90 * time.Minute)}, want: 6},
		{name: "range before everything", filter: audit.Filter{Since: base.Add(-48 * time.Hour), Until: base.Add(-47 * time.Hour)}, want: 0},
		{name: "since far in the past", filter: audit.Filter{Since: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)}, want: len(ds)},
		{name: "until far in the future", filter: audit.Filter{Until: time.Date(2110, 1, 1, 0, 0, 0, 0, time.UTC)}, want: len(ds)},
		{name: "since in the past, until far in the future", filter: audit.Filter{Since: base.Add(-time.Hour), Until: time.Date(2110, 1, 1, 0, 0, 0, 0, time.UTC)}, want: len(ds)},
		{name: "decision", filter: audit.Filter{Decision: "unauthorized"}, want: 5},
		{name: "decision accept", filter: audit.Filter{Decision: "accept"}, want: 6},
		{name: "every refusal", filter: audit.Filter{Decision: audit.DecisionRefused}, want: len(ds) - 6},
		{name: "reason", filter: audit.Filter{Reason: "token_bad_signature"}, want: 3},
		{name: "user", filter: audit.Filter{UserID: "u1"}, want: 3},
		{name: "anonymous user", filter: audit.Filter{UserID: "v9"}, want: 1},
		{name: "origin", filter: audit.Filter{Origin: "https://shop.example"}, want: 3},
		{name: "project and decision", filter: audit.Filter{ProjectID: "p_a", Decision: "accept"}, want: 4},
		{name: "project, user and origin", filter: audit.Filter{ProjectID: "p_b", UserID: "u1", Origin: "https://shop.example"}, want: 1},
		{name: "limit", filter: audit.Filter{Limit: 3}, want: 3},
		{name: "limit with a filter", filter: audit.Filter{ProjectID: "p_a", Limit: 2}, want: 2},
		{name: "session authenticated", filter: audit.Filter{Session: "authenticated"}, want: 5},
		{name: "session anonymous", filter: audit.Filter{Session: "anonymous"}, want: 1},
		{name: "session and user", filter: audit.Filter{Session: "authenticated", UserID: "v9"}, want: 0},
		{name: "projects nil does not restrict", filter: audit.Filter{Projects: nil}, want: len(ds)},
		{name: "projects, one", filter: audit.Filter{Projects: []string{"p_b"}}, want: 4},
		{name: "projects, two", filter: audit.Filter{Projects: []string{"p_b", "p_nope"}}, want: 5},
		{name: "projects, one unknown", filter: audit.Filter{Projects: []string{"p_zzz"}}, want: 0},
		{name: "projects empty matches nothing", filter: audit.Filter{Projects: []string{}}, want: 0},
		{name: "projects and a project in them", filter: audit.Filter{ProjectID: "p_a", Projects: []string{"p_a", "p_b"}}, want: 8},
		{name: "projects and a project outside them", filter: audit.Filter{ProjectID: "p_a", Projects: []string{"p_b"}}, want: 0},
		{name: "projects with a quote", filter: audit.Filter{Projects: []string{"p_a' OR 1 = 1 OR '"}}, want: 0},
		{name: "admin filters do not apply", filter: audit.Filter{ProjectID: "p_b", Kind: "project.created", Actor: "nobody"}, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := matching(ds, tt.filter)
			if len(want) != tt.want {
				t.Fatalf("the fixture holds %d matches, the test expects %d: fix the test", len(want), tt.want)
			}
			recs, err := audit.Decisions(stacktest.Context(t, 30*time.Second), conn, tt.filter)
			if err != nil {
				t.Fatalf("Decisions: %v", err)
			}
			if got := ids(recs); !slices.Equal(got, want) {
				t.Errorf("Decisions(%+v)\n got %v\nwant %v", tt.filter, got, want)
			}
			for i := 1; i < len(recs); i++ {
				if recs[i].Time.After(recs[i-1].Time) {
					t.Errorf("not newest first: %s (%s) after %s (%s)", recs[i].DecisionID, recs[i].Time, recs[i-1].DecisionID, recs[i-1].Time)
				}
			}
		})
	}

	t.Run("every field", func(t *testing.T) {
		t.Parallel()
		recs, err := audit.Decisions(stacktest.Context(t, 30*time.Second), conn, audit.Filter{UserID: "u2"})
		if err != nil || len(recs) != 1 {
			t.Fatalf("Decisions: %d records, %v", len(recs), err)
		}
		d := ds[1]
		want := audit.Record{
			DecisionID: d.DecisionID, AttemptID: d.AttemptID, Time: d.Time.Truncate(time.Microsecond), ProjectID: d.ProjectID,
			Decision: string(d.Decision), Reason: "", Message: "", Session: "authenticated", UserID: "u2", UserVerified: true,
			UserMetadata: map[string]string{"plan": "pro"}, ClaimedUserID: "someone", Origin: "https://a.example",
			TokenFingerprint: d.TokenFingerprint, KeyVersion: 2, Verifier: "verifier-1", Ingress: "ingress-1",
			LatencyMicros: 2000, ClientIP: "198.51.100.9", UserAgent: "test/1",
		}
		got := recs[0]
		if !got.Time.Equal(want.Time) {
			t.Errorf("time %s, want %s (to the microsecond)", got.Time, want.Time)
		}
		got.Time = want.Time
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("record\n got %+v\nwant %+v", got, want)
		}
		b, _ := json.Marshal(got)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		for _, k := range []string{"decisionId", "time", "projectId", "decision", "reason", "session", "userId", "claimedUserId", "origin", "tokenFingerprint", "keyVersion"} {
			if _, ok := m[k]; !ok {
				t.Errorf("the record's JSON has no %q: %s", k, b)
			}
		}
	})
}

func TestQueryDefaultLimit(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	now := time.Now().UTC()
	var ds []events.Decision
	for i := range 130 {
		ds = append(ds, stacktest.SampleDecision("bulk", i, now.Add(-time.Duration(i)*time.Second)))
	}
	insertDecisions(t, conn, ds)
	ctx := stacktest.Context(t, 30*time.Second)
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{name: "default", limit: 0, want: 100},
		{name: "negative is the default", limit: -1, want: 100},
		{name: "smaller", limit: 7, want: 7},
		{name: "larger than the data", limit: 1000, want: 130},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := audit.Decisions(ctx, conn, audit.Filter{Since: now.Add(-time.Hour), Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.want {
				t.Fatalf("%d records, want %d", len(recs), tt.want)
			}
			// The newest ones: decision i was made i seconds ago.
			for i, r := range recs {
				if r.DecisionID != ds[i].DecisionID {
					t.Fatalf("record %d is %s, want %s (newest first)", i, r.DecisionID, ds[i].DecisionID)
				}
			}
		})
	}
}

func TestQueryStats(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	for _, by := range audit.Groups {
		t.Run(string(by), func(t *testing.T) {
			t.Parallel()
			got, err := audit.Stats(stacktest.Context(t, 30*time.Second), conn, audit.Filter{}, by)
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			if want := expectedStats(ds, by); !slices.Equal(got, want) {
				t.Errorf("Stats by %s\n got %v\nwant %v", by, got, want)
			}
		})
	}
	t.Run("with a filter", func(t *testing.T) {
		t.Parallel()
		got, err := audit.Stats(stacktest.Context(t, 30*time.Second), conn, audit.Filter{ProjectID: "p_a", Decision: "unauthorized"}, audit.ByReason)
		if err != nil {
			t.Fatal(err)
		}
		want := []audit.Stat{{Key: "token_bad_signature", Count: 2}, {Key: "token_expired", Count: 1}}
		if !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("projects empty counts nothing", func(t *testing.T) {
		t.Parallel()
		got, err := audit.Stats(stacktest.Context(t, 30*time.Second), conn, audit.Filter{Projects: []string{}}, audit.ByDecision)
		if err != nil || len(got) != 0 {
			t.Errorf("Stats with no project allowed: %v, %v; want nothing", got, err)
		}
	})
	t.Run("unknown grouping", func(t *testing.T) {
		t.Parallel()
		_, err := audit.Stats(stacktest.Context(t, 30*time.Second), conn, audit.Filter{}, "project")
		if err == nil || !strings.Contains(err.Error(), "decision, reason, origin, user or hour") {
			t.Errorf("Stats by project: %v, want an error naming the groupings", err)
		}
	})
}

// selected are the decisions of ds f selects (f.Limit aside).
func selected(ds []events.Decision, f audit.Filter) []events.Decision {
	f.Limit = len(ds) + 1
	want := matching(ds, f)
	return slices.DeleteFunc(slices.Clone(ds), func(d events.Decision) bool { return !slices.Contains(want, d.DecisionID) })
}

// TestRedeliveredBatchesCountedOnce stores a batch, then the batch again
// and part of it a third time as the auditor stores a batch JetStream
// delivered again: the table holds each decision once, and every question
// (read without FINAL) shows and counts each once.
func TestRedeliveredBatchesCountedOnce(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_admin_events")
	base := fixtureBase()
	ds := fixture(base)
	insertDecisions(t, conn, ds)
	redeliverDecisions(t, conn, ds)
	redeliverDecisions(t, conn, ds[3:9])
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_decisions"); n != uint64(len(ds)) {
		t.Fatalf("%d rows stored, want %d: a redelivered batch stored copies", n, len(ds))
	}
	ctx := stacktest.Context(t, 30*time.Second)
	filters := []audit.Filter{
		{}, {ProjectID: "p_a"}, {Projects: []string{"p_a", "p_nope"}}, {Decision: "unauthorized"}, {Decision: audit.DecisionRefused},
		{Reason: "token_bad_signature"}, {UserID: "u1"}, {Origin: "https://a.example"}, {Session: "authenticated"},
		{Since: base.Add(40 * time.Minute)}, {Since: base.Add(-time.Hour), Until: base.Add(time.Hour)}, {Limit: 2},
	}
	for _, f := range filters {
		recs, err := audit.Decisions(ctx, conn, f)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(recs), matching(ds, f); !slices.Equal(got, want) {
			t.Errorf("Decisions(%+v)\n got %v\nwant %v", f, got, want)
		}
		n := 0
		if _, err := audit.ExportDecisions(ctx, conn, f, 1000, func(audit.Record) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if want := len(selected(ds, f)); n != want {
			t.Errorf("ExportDecisions(%+v) exported %d, want %d", f, n, want)
		}
		if f.Limit != 0 {
			continue
		}
		for _, by := range audit.Groups {
			got, err := audit.Stats(ctx, conn, f, by)
			if err != nil {
				t.Fatal(err)
			}
			if want := expectedStats(selected(ds, f), by); !slices.Equal(got, want) {
				t.Errorf("Stats(%+v) by %s\n got %v\nwant %v", f, by, got, want)
			}
		}
	}

	adm := adminFixture(base)
	insertAdmin(t, conn, adm)
	redeliverAdmin(t, conn, adm)
	redeliverAdmin(t, conn, adm[1:3])
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_admin_events"); n != uint64(len(adm)) {
		t.Fatalf("%d admin events stored, want %d: a redelivered batch stored copies", n, len(adm))
	}
	recs, err := audit.AdminEvents(ctx, conn, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(adm) {
		t.Errorf("AdminEvents shows %d events, want %d (each once)", len(recs), len(adm))
	}
}

// TestListingsDropCopies stores batches twice as auditors before
// migration 0005 did (copies the merges had not removed yet): a listing
// still shows each decision and admin event once.
func TestListingsDropCopies(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_admin_events")
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	insertDecisions(t, conn, ds)
	insertDecisions(t, conn, ds[3:9])
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_decisions"); n != uint64(2*len(ds)+6) {
		t.Fatalf("%d raw rows, want %d: the duplicates were merged before the test could look", n, 2*len(ds)+6)
	}
	ctx := stacktest.Context(t, 30*time.Second)
	for _, f := range []audit.Filter{{}, {ProjectID: "p_a"}, {Reason: "token_bad_signature"}, {UserID: "u1"}} {
		recs, err := audit.Decisions(ctx, conn, f)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(recs), matching(ds, f); !slices.Equal(got, want) {
			t.Errorf("Decisions(%+v) with copies stored\n got %v\nwant %v", f, got, want)
		}
		var exported []string
		if _, err := audit.ExportDecisions(ctx, conn, f, 1000, func(r audit.Record) error { exported = append(exported, r.DecisionID); return nil }); err != nil {
			t.Fatal(err)
		}
		f.Limit = 1000
		if want := matching(ds, f); !slices.Equal(exported, want) {
			t.Errorf("ExportDecisions(%+v) with copies stored\n got %v\nwant %v", f, exported, want)
		}
	}

	adm := adminFixture(fixtureBase())
	insertAdmin(t, conn, adm)
	insertAdmin(t, conn, adm)
	recs, err := audit.AdminEvents(ctx, conn, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(adm) {
		t.Errorf("AdminEvents with copies stored shows %d events, want %d (each once)", len(recs), len(adm))
	}
}

// adminFixture is a project's life: created, key rotated with a grace
// period, a user revoked; and another project created.
func adminFixture(base time.Time) []events.AdminEvent {
	yes := true
	grace := base.Add(40 * time.Minute)
	revoked := base.Add(50 * time.Minute)
	return []events.AdminEvent{
		{SchemaVersion: 1, EventID: "adm_1", CommandID: "cmd_1", Kind: events.AdminProjectCreated, Actor: "ann@host",
			Time: base.Add(10*time.Minute + 5*time.Microsecond), ProjectID: "p_a", Name: "Shop", RequireToken: &yes,
			Origins: []string{"https://a.example", "*.shop.example"}, KeyVersion: 1, KeyFingerprint: "00112233aabbccdd", Revision: 3},
		{SchemaVersion: 1, EventID: "adm_2", CommandID: "cmd_2", Kind: events.AdminKeyRotated, Actor: "ann@host",
			Time: base.Add(30 * time.Minute), ProjectID: "p_a", KeyVersion: 2, PreviousKeyVersion: 1,
			KeyFingerprint: "4455667788990011", GraceSeconds: 600, GraceUntil: &grace, Revision: 4},
		{SchemaVersion: 1, EventID: "adm_3", CommandID: "cmd_3", Kind: events.AdminUserRevoked, Actor: "bob@host",
			Time: base.Add(50 * time.Minute), ProjectID: "p_a", KeyVersion: 2, UserID: "u1", RevokedBefore: &revoked, Revision: 5},
		{SchemaVersion: 1, EventID: "adm_4", CommandID: "cmd_4", Kind: events.AdminProjectCreated, Actor: "bob@host",
			Time: base.Add(70 * time.Minute), ProjectID: "p_b", Name: "Blog", KeyVersion: 1, KeyFingerprint: "ffeeddccbbaa9988", Revision: 6},
	}
}

// adminRows are es as the auditor makes them into rows.
func adminRows(t testing.TB, es []events.AdminEvent) [][]any {
	t.Helper()
	var rows [][]any
	for _, e := range es {
		body, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		row, err := audit.AdminTable.Row(e.Kind.Subject(), body)
		if err != nil {
			t.Fatalf("adminRow: %v", err)
		}
		rows = append(rows, row)
	}
	return rows
}

// insertAdmin is insertDecisions for admin events.
func insertAdmin(t testing.TB, conn driver.Conn, es []events.AdminEvent) {
	t.Helper()
	if err := audit.Insert(stacktest.Context(t, 30*time.Second), conn, audit.AdminTable, adminRows(t, es)); err != nil {
		t.Fatalf("insert admin events: %v", err)
	}
}

// redeliverAdmin is redeliverDecisions for admin events.
func redeliverAdmin(t testing.TB, conn driver.Conn, es []events.AdminEvent) {
	t.Helper()
	skipped, err := audit.InsertMissing(stacktest.Context(t, 30*time.Second), conn, audit.AdminTable, adminRows(t, es))
	if err != nil {
		t.Fatalf("insert a redelivered batch of admin events: %v", err)
	}
	if skipped != len(es) {
		t.Fatalf("a redelivered batch of %d stored admin events: %d left out as stored, want all", len(es), skipped)
	}
}

func TestQueryAdminEvents(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	base := fixtureBase()
	adm := adminFixture(base)
	insertAdmin(t, conn, adm)
	ctx := stacktest.Context(t, 30*time.Second)
	tests := []struct {
		name   string
		filter audit.Filter
		want   []string
	}{
		{name: "all, newest first", filter: audit.Filter{}, want: []string{"adm_4", "adm_3", "adm_2", "adm_1"}},
		{name: "project", filter: audit.Filter{ProjectID: "p_a"}, want: []string{"adm_3", "adm_2", "adm_1"}},
		{name: "user", filter: audit.Filter{UserID: "u1"}, want: []string{"adm_3"}},
		{name: "since", filter: audit.Filter{Since: base.Add(40 * time.Minute)}, want: []string{"adm_4", "adm_3"}},
		{name: "until", filter: audit.Filter{Since: base.Add(-time.Hour), Until: base.Add(40 * time.Minute)}, want: []string{"adm_2", "adm_1"}},
		{name: "limit", filter: audit.Filter{Limit: 1}, want: []string{"adm_4"}},
		{name: "decision filters do not apply", filter: audit.Filter{ProjectID: "p_b", Decision: "accept", Reason: "token_expired", Origin: "x", Session: "anonymous"}, want: []string{"adm_4"}},
		{name: "kind", filter: audit.Filter{Kind: "project.created"}, want: []string{"adm_4", "adm_1"}},
		{name: "kind and project", filter: audit.Filter{Kind: "project.created", ProjectID: "p_a"}, want: []string{"adm_1"}},
		{name: "unknown kind", filter: audit.Filter{Kind: "project.deleted"}, want: nil},
		{name: "actor", filter: audit.Filter{Actor: "bob@host"}, want: []string{"adm_4", "adm_3"}},
		{name: "actor and kind", filter: audit.Filter{Actor: "ann@host", Kind: "key.rotated"}, want: []string{"adm_2"}},
		{name: "projects", filter: audit.Filter{Projects: []string{"p_b"}}, want: []string{"adm_4"}},
		{name: "projects nil does not restrict", filter: audit.Filter{Projects: nil, Limit: 2}, want: []string{"adm_4", "adm_3"}},
		{name: "projects empty matches nothing", filter: audit.Filter{Projects: []string{}}, want: nil},
		{name: "projects and a project outside them", filter: audit.Filter{ProjectID: "p_a", Projects: []string{"p_b"}}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := audit.AdminEvents(ctx, conn, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.EventID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("AdminEvents(%+v) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		recs, err := audit.AdminEvents(ctx, conn, audit.Filter{ProjectID: "p_a"})
		if err != nil || len(recs) != 3 {
			t.Fatalf("AdminEvents: %d, %v", len(recs), err)
		}
		byID := map[string]audit.AdminRecord{}
		for _, r := range recs {
			byID[r.EventID] = r
		}
		created, rotated, revoked := byID["adm_1"], byID["adm_2"], byID["adm_3"]
		if created.Kind != "project.created" || created.Name != "Shop" || !created.RequireToken ||
			!slices.Equal(created.Origins, []string{"https://a.example", "*.shop.example"}) || created.KeyVersion != 1 ||
			created.KeyFingerprint != "00112233aabbccdd" || created.Actor != "ann@host" || created.Revision != 3 ||
			!created.Time.Equal(adm[0].Time) || created.GraceUntil != nil || created.RevokedBefore != nil {
			t.Errorf("created: %+v", created)
		}
		if rotated.Kind != "key.rotated" || rotated.KeyVersion != 2 || rotated.PreviousKeyVersion != 1 || rotated.GraceSeconds != 600 ||
			rotated.GraceUntil == nil || !rotated.GraceUntil.Equal(*adm[1].GraceUntil) || len(rotated.Origins) != 0 {
			t.Errorf("rotated: %+v", rotated)
		}
		if revoked.Kind != "user.revoked" || revoked.UserID != "u1" || revoked.RevokedBefore == nil || !revoked.RevokedBefore.Equal(*adm[2].RevokedBefore) {
			t.Errorf("revoked: %+v", revoked)
		}
	})
}

func TestQueryWithoutTables(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.ClickHouseConn(t)
	_, err := audit.Decisions(stacktest.Context(t, 30*time.Second), conn, audit.Filter{})
	if err == nil || !strings.Contains(err.Error(), "hissuno audit migrate") {
		t.Errorf("Decisions before any migration: %v, want an error that says to run `hissuno audit migrate`", err)
	}
}

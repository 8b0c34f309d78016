package audit_test

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// pageOrder is the ids of ds in the order pages and exports list them:
// time (to the microsecond, as stored) and id, descending.
func pageOrder(ds []events.Decision) []string {
	s := slices.Clone(ds)
	slices.SortFunc(s, func(a, b events.Decision) int {
		if c := b.Time.Truncate(time.Microsecond).Compare(a.Time.Truncate(time.Microsecond)); c != 0 {
			return c
		}
		return strings.Compare(b.DecisionID, a.DecisionID)
	})
	out := make([]string, len(s))
	for i, d := range s {
		out[i] = d.DecisionID
	}
	return out
}

// readPages reads every page of DecisionsPage with f, calling between with
// the last record of each page but the last, and returns the ids in the
// order the pages gave them.
func readPages(t *testing.T, conn driver.Conn, f audit.Filter, between func(page int, last audit.Record)) []string {
	t.Helper()
	ctx := stacktest.Context(t, 60*time.Second)
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("more than 1000 pages: the cursor does not move")
		}
		p, err := audit.DecisionsPage(ctx, conn, f, cursor)
		if err != nil {
			t.Fatalf("DecisionsPage page %d: %v", page, err)
		}
		if p.Records == nil {
			t.Fatalf("page %d: nil records, want an empty list", page)
		}
		if f.Limit > 0 && len(p.Records) > f.Limit {
			t.Fatalf("page %d: %d records, more than the limit %d", page, len(p.Records), f.Limit)
		}
		got = append(got, ids(p.Records)...)
		if p.Next == "" {
			return got
		}
		if len(p.Records) == 0 {
			t.Fatalf("page %d is empty but has a next cursor", page)
		}
		if between != nil {
			between(page, p.Records[len(p.Records)-1])
		}
		cursor = p.Next
	}
}

// withID is d with another decision id.
func withID(d events.Decision, id string) events.Decision {
	d.DecisionID = id
	return d
}

func TestDecisionsPageWhileInserting(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	var stored []events.Decision
	for i := range 230 {
		// Three decisions a second, two of them in the same microsecond,
		// which their ids order.
		us := 500 + 400*(i%3/2)
		stored = append(stored, stacktest.SampleDecision("page", i, base.Add(time.Duration(i/3)*time.Second+time.Duration(us)*time.Microsecond)))
	}
	insertDecisions(t, conn, stored)

	want := slices.Clone(stored)
	shown := map[string]bool{} // decisions stored between pages that no page may show
	got := readPages(t, conn, audit.Filter{Limit: 40}, func(page int, last audit.Record) {
		at := func(tm time.Time, id string) events.Decision {
			return withID(stacktest.SampleDecision("late", page, tm), id)
		}
		// Stored late, sorting after the cursor: an hour older than any
		// other, and in the cursor's microsecond with a smaller id.
		after := []events.Decision{
			at(base.Add(-time.Hour-time.Duration(page)*time.Second), fmt.Sprintf("dec_old_%02d", page)),
			at(last.Time, last.DecisionID[:len(last.DecisionID)-1]),
		}
		// Sorting before it: a newer decision, one a microsecond after the
		// cursor, one in its microsecond with a larger id.
		before := []events.Decision{
			at(time.Now(), fmt.Sprintf("dec_new_%02d", page)),
			at(last.Time.Add(time.Microsecond), fmt.Sprintf("dec_next_%02d", page)),
			at(last.Time, last.DecisionID+"~"),
		}
		insertDecisions(t, conn, append(slices.Clone(after), before...))
		want = append(want, after...)
		for _, d := range before {
			shown[d.DecisionID] = false
		}
	})
	wantIDs := pageOrder(want)
	if len(slices.Compact(slices.Sorted(slices.Values(wantIDs)))) != len(wantIDs) {
		t.Fatal("the test stores two decisions with one id: fix the test")
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("pages, with decisions stored between them\n got %d: %v\nwant %d: %v", len(got), got, len(wantIDs), wantIDs)
	}
	for _, id := range got {
		if _, ok := shown[id]; ok {
			t.Errorf("%s, stored between pages before the cursor, was shown", id)
		}
	}
	if len(shown) < 5*3 {
		t.Errorf("only %d decisions stored between pages: the test did not page", len(shown))
	}
}

func TestDecisionsPage(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	pick := func(f func(events.Decision) bool) []events.Decision {
		var out []events.Decision
		for _, d := range ds {
			if f(d) {
				out = append(out, d)
			}
		}
		return out
	}
	tests := []struct {
		name   string
		filter audit.Filter
		want   []events.Decision
	}{
		{name: "all, one page", filter: audit.Filter{}, want: ds},
		{name: "all, pages of 1", filter: audit.Filter{Limit: 1}, want: ds},
		{name: "all, pages of 4", filter: audit.Filter{Limit: 4}, want: ds},
		{name: "pages that end with the last", filter: audit.Filter{Limit: len(ds)}, want: ds},
		{name: "pages that end one before the last", filter: audit.Filter{Limit: len(ds) - 1}, want: ds},
		{name: "a project", filter: audit.Filter{ProjectID: "p_a", Limit: 3}, want: pick(func(d events.Decision) bool { return d.ProjectID == "p_a" })},
		{name: "a user's history", filter: audit.Filter{ProjectID: "p_a", UserID: "u1", Limit: 1},
			want: pick(func(d events.Decision) bool { return d.ProjectID == "p_a" && d.UserID == "u1" })},
		{name: "a user's history everywhere", filter: audit.Filter{UserID: "u1", Limit: 2}, want: pick(func(d events.Decision) bool { return d.UserID == "u1" })},
		{name: "a user's verified history", filter: audit.Filter{UserID: "v9", Session: "authenticated"}, want: nil},
		{name: "an anonymous visitor's history", filter: audit.Filter{UserID: "v9", Session: "anonymous"}, want: pick(func(d events.Decision) bool { return d.UserID == "v9" })},
		{name: "projects", filter: audit.Filter{Projects: []string{"p_b", "p_nope"}, Limit: 2},
			want: pick(func(d events.Decision) bool { return d.ProjectID == "p_b" || d.ProjectID == "p_nope" })},
		{name: "no project allowed", filter: audit.Filter{Projects: []string{}}, want: nil},
		{name: "refusals", filter: audit.Filter{Decision: "unauthorized", Limit: 2}, want: pick(func(d events.Decision) bool { return d.Decision == "unauthorized" })},
		{name: "a time range", filter: audit.Filter{Since: ds[3].Time, Until: ds[8].Time, Limit: 2}, want: ds[3:8]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := readPages(t, conn, tt.filter, nil)
			if want := pageOrder(tt.want); !slices.Equal(got, want) {
				t.Errorf("pages of %+v\n got %v\nwant %v", tt.filter, got, want)
			}
		})
	}

	t.Run("the records are Decisions'", func(t *testing.T) {
		t.Parallel()
		ctx := stacktest.Context(t, 30*time.Second)
		p, err := audit.DecisionsPage(ctx, conn, audit.Filter{UserID: "u2"}, "")
		if err != nil || len(p.Records) != 1 || p.Next != "" {
			t.Fatalf("DecisionsPage: %+v, %v", p, err)
		}
		recs, err := audit.Decisions(ctx, conn, audit.Filter{UserID: "u2"})
		if err != nil || len(recs) != 1 {
			t.Fatalf("Decisions: %v, %v", recs, err)
		}
		if fmt.Sprintf("%+v", p.Records[0]) != fmt.Sprintf("%+v", recs[0]) {
			t.Errorf("DecisionsPage's record\n%+v\nDecisions'\n%+v", p.Records[0], recs[0])
		}
	})
}

func TestDecisionsPageSize(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	now := time.Now().UTC()
	var ds []events.Decision
	for i := range audit.MaxPage + 30 {
		ds = append(ds, stacktest.SampleDecision("size", i, now.Add(-time.Duration(i)*time.Millisecond)))
	}
	insertDecisions(t, conn, ds)
	ctx := stacktest.Context(t, 30*time.Second)
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{name: "default", limit: 0, want: audit.DefaultPage},
		{name: "negative is the default", limit: -5, want: audit.DefaultPage},
		{name: "smaller", limit: 7, want: 7},
		{name: "the most", limit: audit.MaxPage, want: audit.MaxPage},
		{name: "more than the most", limit: 5000, want: audit.MaxPage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := audit.DecisionsPage(ctx, conn, audit.Filter{Limit: tt.limit}, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) != tt.want || p.Next == "" {
				t.Errorf("limit %d: %d records, next %q; want %d and a next page", tt.limit, len(p.Records), p.Next, tt.want)
			}
		})
	}
}

func TestDecisionsPageNeverShowsDuplicates(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_admin_events")
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	insertDecisions(t, conn, ds)
	insertDecisions(t, conn, ds[2:9])
	// More copies of the two newest than a page reads ahead (twice its
	// size): the page reads further rather than come up short.
	order := pageOrder(ds)
	newest := slices.DeleteFunc(slices.Clone(ds), func(d events.Decision) bool { return d.DecisionID != order[0] && d.DecisionID != order[1] })
	for range 8 {
		insertDecisions(t, conn, newest)
	}
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_decisions"); n != uint64(2*len(ds)+7+16) {
		t.Fatalf("%d raw rows, want %d: the duplicates were merged before the test could look", n, 2*len(ds)+7+16)
	}
	for _, limit := range []int{1, 3, 100} {
		if got, want := readPages(t, conn, audit.Filter{Limit: limit}, nil), pageOrder(ds); !slices.Equal(got, want) {
			t.Errorf("pages of %d with duplicates stored\n got %v\nwant %v", limit, got, want)
		}
	}
	adm := adminFixture(fixtureBase())
	insertAdmin(t, conn, adm)
	insertAdmin(t, conn, adm)
	if got := readAdminPages(t, conn, audit.Filter{Limit: 1}, nil); !slices.Equal(got, []string{"adm_4", "adm_3", "adm_2", "adm_1"}) {
		t.Errorf("admin pages with duplicates stored: %v", got)
	}
}

func TestBadCursor(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	ctx := stacktest.Context(t, 30*time.Second)
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	insertAdmin(t, conn, adminFixture(fixtureBase()))
	decisions, err := audit.DecisionsPage(ctx, conn, audit.Filter{Limit: 1}, "")
	if err != nil || decisions.Next == "" {
		t.Fatalf("DecisionsPage: %+v, %v", decisions, err)
	}
	admin, err := audit.AdminEventsPage(ctx, conn, audit.Filter{Limit: 1}, "")
	if err != nil || admin.Next == "" {
		t.Fatalf("AdminEventsPage: %+v, %v", admin, err)
	}
	users, err := audit.Users(ctx, conn, audit.Filter{Limit: 1}, "")
	if err != nil || users.Next == "" {
		t.Fatalf("Users: %+v, %v", users, err)
	}
	queries := map[string]func(cursor string) error{
		"DecisionsPage": func(c string) error {
			_, err := audit.DecisionsPage(ctx, conn, audit.Filter{}, c)
			return err
		},
		"AdminEventsPage": func(c string) error {
			_, err := audit.AdminEventsPage(ctx, conn, audit.Filter{}, c)
			return err
		},
		"Users": func(c string) error {
			_, err := audit.Users(ctx, conn, audit.Filter{}, c)
			return err
		},
	}
	own := map[string]string{"DecisionsPage": decisions.Next, "AdminEventsPage": admin.Next, "Users": users.Next}
	bad := []struct {
		name   string
		cursor string
	}{
		{name: "not base64url", cursor: "not a cursor!"},
		{name: "a quote", cursor: "'"},
		{name: "cut short", cursor: decisions.Next[:3]},
		{name: "SQL", cursor: "1' OR '1'='1"},
	}
	for query, run := range queries {
		t.Run(query, func(t *testing.T) {
			if err := run(own[query]); err != nil {
				t.Errorf("%s with its own cursor: %v", query, err)
			}
			for other, c := range own {
				if other == query {
					continue
				}
				if err := run(c); !errors.Is(err, audit.ErrBadCursor) {
					t.Errorf("%s with %s's cursor: %v, want ErrBadCursor", query, other, err)
				}
			}
			for _, b := range bad {
				err := run(b.cursor)
				if !errors.Is(err, audit.ErrBadCursor) {
					t.Errorf("%s with a cursor %s: %v, want ErrBadCursor", query, b.name, err)
				} else if !strings.Contains(err.Error(), "none for the first page") {
					t.Errorf("%s with a bad cursor: %q does not say what to pass", query, err)
				}
			}
		})
	}
}

// readAdminPages is readPages for AdminEventsPage.
func readAdminPages(t *testing.T, conn driver.Conn, f audit.Filter, between func(page int, last audit.AdminRecord)) []string {
	t.Helper()
	ctx := stacktest.Context(t, 60*time.Second)
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("more than 1000 pages: the cursor does not move")
		}
		p, err := audit.AdminEventsPage(ctx, conn, f, cursor)
		if err != nil {
			t.Fatalf("AdminEventsPage page %d: %v", page, err)
		}
		if p.Events == nil || (f.Limit > 0 && len(p.Events) > f.Limit) {
			t.Fatalf("page %d: %d events (nil: %t), limit %d", page, len(p.Events), p.Events == nil, f.Limit)
		}
		for _, e := range p.Events {
			got = append(got, e.EventID)
		}
		if p.Next == "" {
			return got
		}
		if between != nil {
			between(page, p.Events[len(p.Events)-1])
		}
		cursor = p.Next
	}
}

// adminOrder is the ids of es in the order pages list them.
func adminOrder(es []events.AdminEvent) []string {
	s := slices.Clone(es)
	slices.SortFunc(s, func(a, b events.AdminEvent) int {
		if c := b.Time.Truncate(time.Microsecond).Compare(a.Time.Truncate(time.Microsecond)); c != 0 {
			return c
		}
		return strings.Compare(b.EventID, a.EventID)
	})
	var out []string
	for _, e := range s {
		out = append(out, e.EventID)
	}
	return out
}

func TestAdminEventsPage(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	base := fixtureBase()
	adm := adminFixture(base)
	// Thirty more: updates of p_b, every other one by another actor, three
	// a second (two in one microsecond).
	for i := range 30 {
		adm = append(adm, events.AdminEvent{SchemaVersion: 1, EventID: fmt.Sprintf("adm_u%02d", i), CommandID: fmt.Sprintf("cmd_u%02d", i),
			Kind: events.AdminProjectUpdated, Actor: []string{"nats:admin", "console:ada@example.com"}[i%2],
			Time: base.Add(90*time.Minute + time.Duration(i/3)*time.Second + time.Duration(7+i%3/2)*time.Microsecond), ProjectID: "p_b", KeyVersion: 1})
	}
	insertAdmin(t, conn, adm)
	order := func(keep func(events.AdminEvent) bool) []string {
		var sel []events.AdminEvent
		for _, e := range adm {
			if keep(e) {
				sel = append(sel, e)
			}
		}
		return adminOrder(sel)
	}
	all := func(events.AdminEvent) bool { return true }
	tests := []struct {
		name   string
		filter audit.Filter
		want   []string
	}{
		{name: "all, one page", filter: audit.Filter{}, want: order(all)},
		{name: "all, pages of 1", filter: audit.Filter{Limit: 1}, want: order(all)},
		{name: "all, pages of 7", filter: audit.Filter{Limit: 7}, want: order(all)},
		{name: "kind", filter: audit.Filter{Kind: "project.updated", Limit: 4}, want: order(func(e events.AdminEvent) bool { return e.Kind == events.AdminProjectUpdated })},
		{name: "actor", filter: audit.Filter{Actor: "console:ada@example.com", Limit: 4}, want: order(func(e events.AdminEvent) bool { return e.Actor == "console:ada@example.com" })},
		{name: "projects", filter: audit.Filter{Projects: []string{"p_a"}, Limit: 2}, want: order(func(e events.AdminEvent) bool { return e.ProjectID == "p_a" })},
		{name: "no project allowed", filter: audit.Filter{Projects: []string{}}, want: nil},
		{name: "user", filter: audit.Filter{UserID: "u1"}, want: []string{"adm_3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := readAdminPages(t, conn, tt.filter, nil); !slices.Equal(got, tt.want) {
				t.Errorf("admin pages of %+v\n got %v\nwant %v", tt.filter, got, tt.want)
			}
		})
	}

	t.Run("while storing", func(t *testing.T) {
		t.Parallel()
		_, conn := stacktest.MigratedClickHouse(t)
		insertAdmin(t, conn, adm)
		want := slices.Clone(adm)
		got := readAdminPages(t, conn, audit.Filter{Limit: 5}, func(page int, last audit.AdminRecord) {
			newer := events.AdminEvent{SchemaVersion: 1, EventID: fmt.Sprintf("adm_new_%02d", page), CommandID: "cmd_new", Kind: events.AdminKeyRotated,
				Actor: "nats:admin", Time: time.Now().UTC(), ProjectID: "p_a", KeyVersion: 3}
			older := newer
			older.EventID, older.Time = fmt.Sprintf("adm_old_%02d", page), base.Add(-time.Hour-time.Duration(page)*time.Second)
			insertAdmin(t, conn, []events.AdminEvent{newer, older})
			want = append(want, older)
		})
		wantIDs := adminOrder(want)
		if !slices.Equal(got, wantIDs) {
			t.Errorf("admin pages, with events stored between them\n got %v\nwant %v", got, wantIDs)
		}
	})
}

func TestDecision(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	base := fixtureBase()
	ds := fixture(base)
	// Ids of the ingress's form, which carry the time their attempt was
	// received: decided 20 ms after it, and (a verifier's clock two days
	// behind) two days before it.
	timed := func(received, decided time.Time) events.Decision {
		d := stacktest.SampleDecision("timed", 0, decided)
		d.AttemptID = events.NewAttemptID(received)
		d.DecisionID = events.DecisionIDFor(d.AttemptID)
		return d
	}
	onTime := timed(base.Add(time.Hour), base.Add(time.Hour+20*time.Millisecond))
	behind := timed(base.Add(time.Hour), base.Add(time.Hour-48*time.Hour))
	ds = append(ds, onTime, behind)
	insertDecisions(t, conn, ds)
	insertDecisions(t, conn, ds[:4]) // stored twice
	ctx := stacktest.Context(t, 30*time.Second)
	recs, err := audit.Decisions(ctx, conn, audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]audit.Record{}
	for _, r := range recs {
		byID[r.DecisionID] = r
	}
	tests := []struct {
		name     string
		id       string
		projects []string
		found    bool
	}{
		{name: "any project", id: ds[1].DecisionID, found: true},
		{name: "stored twice", id: ds[0].DecisionID, found: true},
		{name: "its project allowed", id: ds[1].DecisionID, projects: []string{"p_b", "p_a"}, found: true},
		{name: "another project's", id: ds[1].DecisionID, projects: []string{"p_b"}},
		{name: "no project allowed", id: ds[1].DecisionID, projects: []string{}},
		{name: "missing", id: "dec_att_missing"},
		{name: "empty id", id: ""},
		{name: "an id with a quote", id: "dec_' OR 1 = 1 OR '"},
		{name: "an id of the ingress's form", id: onTime.DecisionID, found: true},
		{name: "an id of the ingress's form, its project allowed", id: onTime.DecisionID, projects: []string{onTime.ProjectID}, found: true},
		{name: "decided over a day before its attempt's time, outside the bound", id: behind.DecisionID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := audit.Decision(ctx, conn, tt.id, tt.projects)
			switch {
			case !tt.found && !errors.Is(err, audit.ErrNotFound):
				t.Errorf("Decision(%q, %q) = %+v, %v; want ErrNotFound", tt.id, tt.projects, r, err)
			case tt.found && err != nil:
				t.Errorf("Decision(%q, %q): %v", tt.id, tt.projects, err)
			case tt.found && fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", byID[tt.id]):
				t.Errorf("Decision(%q)\n got %+v\nwant %+v (as Decisions reads it)", tt.id, r, byID[tt.id])
			}
		})
	}
}

// expectedSeries is Series computed from ds.
func expectedSeries(ds []events.Decision, f audit.Filter, bucket audit.Bucket, split audit.Split) []audit.Point {
	counts := map[audit.Point]uint64{}
	for _, d := range ds {
		sec := d.Time.Truncate(time.Second)
		if sec.Before(f.Since.Truncate(time.Second)) || !sec.Before(f.Until.Truncate(time.Second)) || (f.ProjectID != "" && d.ProjectID != f.ProjectID) {
			continue
		}
		k := string(d.Decision)
		if split == audit.SplitReason {
			k = cmpOr(string(d.Reason), audit.KeyAccept)
		}
		counts[audit.Point{Time: d.Time.Truncate(bucket.Width()), Key: k}]++
	}
	var out []audit.Point
	for p, n := range counts {
		p.Count = n
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b audit.Point) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

func TestSeries(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	base := fixtureBase()
	ds := fixture(base)
	insertDecisions(t, conn, ds)
	redeliverDecisions(t, conn, ds) // delivered again: stored and counted once
	ctx := stacktest.Context(t, 30*time.Second)
	ranges := []struct {
		name   string
		filter audit.Filter
	}{
		{name: "all", filter: audit.Filter{Since: base.Add(-time.Hour), Until: base.Add(5 * time.Hour)}},
		{name: "a project", filter: audit.Filter{ProjectID: "p_b", Since: base.Add(-time.Hour), Until: base.Add(5 * time.Hour)}},
		{name: "a range inside an hour", filter: audit.Filter{Since: base.Add(20 * time.Minute), Until: base.Add(95*time.Minute + 30*time.Second)}},
	}
	for _, r := range ranges {
		for _, bucket := range audit.Buckets {
			for _, split := range audit.Splits {
				t.Run(fmt.Sprintf("%s by %s and %s", r.name, bucket, split), func(t *testing.T) {
					t.Parallel()
					got, err := audit.Series(ctx, conn, r.filter, bucket, split)
					if err != nil {
						t.Fatal(err)
					}
					want := expectedSeries(ds, r.filter, bucket, split)
					if len(want) == 0 {
						t.Fatal("the fixture has no decision in the range: fix the test")
					}
					if !slices.EqualFunc(got, want, func(a, b audit.Point) bool { return a.Time.Equal(b.Time) && a.Key == b.Key && a.Count == b.Count }) {
						t.Errorf("Series\n got %v\nwant %v", got, want)
					}
					for _, p := range got {
						if p.Time.Location() != time.UTC {
							t.Errorf("point at %s, not in UTC", p.Time)
						}
					}
				})
			}
		}
	}

	until := base // whole minutes
	bounds := []struct {
		name   string
		bucket audit.Bucket
		since  time.Time
		until  time.Time
		ok     bool
	}{
		{name: "the most minutes", bucket: audit.BucketMinute, since: until.Add(-audit.MaxBuckets * time.Minute), until: until, ok: true},
		{name: "a minute too many", bucket: audit.BucketMinute, since: until.Add(-(audit.MaxBuckets + 1) * time.Minute), until: until},
		{name: "a second into a bucket too many", bucket: audit.BucketMinute, since: until.Add(-audit.MaxBuckets * time.Minute), until: until.Add(time.Second)},
		{name: "six days of minutes", bucket: audit.BucketMinute, since: until.Add(-6 * 24 * time.Hour), until: until, ok: true},
		{name: "a week of minutes", bucket: audit.BucketMinute, since: until.Add(-7 * 24 * time.Hour), until: until},
		{name: "a year of hours", bucket: audit.BucketHour, since: until.Add(-365 * 24 * time.Hour), until: until, ok: true},
		{name: "two years of hours", bucket: audit.BucketHour, since: until.Add(-2 * 365 * 24 * time.Hour), until: until},
		{name: "since 1970 in days", bucket: audit.BucketDay},
		{name: "an empty range", bucket: audit.BucketMinute, since: until, until: until, ok: true},
	}
	for _, b := range bounds {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			_, err := audit.Series(ctx, conn, audit.Filter{Since: b.since, Until: b.until}, b.bucket, audit.SplitDecision)
			switch {
			case b.ok && err != nil:
				t.Errorf("Series: %v", err)
			case !b.ok && !errors.Is(err, audit.ErrTooManyBuckets):
				t.Errorf("Series: %v, want ErrTooManyBuckets", err)
			case !b.ok && !strings.Contains(err.Error(), "pick a coarser bucket or a narrower range"):
				t.Errorf("Series: %q does not say what to do", err)
			}
		})
	}
	t.Run("unknown bucket or split", func(t *testing.T) {
		t.Parallel()
		if _, err := audit.Series(ctx, conn, audit.Filter{Since: base}, "week", audit.SplitDecision); err == nil || !strings.Contains(err.Error(), "minute, hour or day") {
			t.Errorf("Series by week: %v", err)
		}
		if _, err := audit.Series(ctx, conn, audit.Filter{Since: base}, audit.BucketHour, "origin"); err == nil || !strings.Contains(err.Error(), "decision or reason") {
			t.Errorf("Series split by origin: %v", err)
		}
	})
}

func TestTop(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	ctx := stacktest.Context(t, 30*time.Second)
	for _, by := range []audit.Group{audit.ByOrigin, audit.ByReason, audit.ByUser} {
		for _, f := range []audit.Filter{{}, {ProjectID: "p_a"}, {Projects: []string{}}} {
			all, err := audit.Stats(ctx, conn, f, by)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 2, 3, 0, 100} {
				t.Run(fmt.Sprintf("%s %d of %+v", by, n, f), func(t *testing.T) {
					got, err := audit.Top(ctx, conn, f, by, n)
					if err != nil {
						t.Fatal(err)
					}
					want := all[:min(cmp0(n, audit.DefaultTop), len(all))]
					if !slices.Equal(got, want) {
						t.Errorf("Top %d by %s\n got %v\nwant %v (Stats' first)", n, by, got, want)
					}
				})
			}
		}
	}
	t.Run("none and accept count like any key", func(t *testing.T) {
		got, err := audit.Top(ctx, conn, audit.Filter{}, audit.ByUser, 1)
		if err != nil || len(got) != 1 || got[0] != (audit.Stat{Key: audit.KeyNone, Count: 7}) {
			t.Errorf("top user: %v, %v; want the 7 decisions without a user", got, err)
		}
		got, err = audit.Top(ctx, conn, audit.Filter{}, audit.ByReason, 1)
		if err != nil || len(got) != 1 || got[0] != (audit.Stat{Key: audit.KeyAccept, Count: 6}) {
			t.Errorf("top reason: %v, %v; want the 6 accepts", got, err)
		}
	})
	t.Run("other groupings", func(t *testing.T) {
		for _, by := range []audit.Group{audit.ByDecision, audit.ByHour, "project"} {
			if _, err := audit.Top(ctx, conn, audit.Filter{}, by, 3); err == nil || !strings.Contains(err.Error(), "origin, reason or user") {
				t.Errorf("Top by %s: %v, want an error naming the groupings", by, err)
			}
		}
	})
}

func cmp0(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// usersFixture is the fixture and, for p_a's u1, a later accept with other
// metadata, then a refusal of a token that named it (what a verifier
// recording token_revoked's user would store), then an anonymous visitor
// claiming to be it; and anonymous visitors from two browsers at one
// address.
func usersFixture(base time.Time) []events.Decision {
	ds := fixture(base)
	u1 := ds[0]
	later := withID(u1, "dec_u1_later")
	later.Time, later.UserMetadata = base.Add(150*time.Minute), map[string]string{"plan": "team"}
	refused := withID(u1, "dec_u1_refused")
	refused.Time, refused.Decision, refused.Reason, refused.Session, refused.UserMetadata = base.Add(160*time.Minute), "unauthorized", "token_revoked", "", nil
	claimed := withID(ds[5], "dec_claims_u1")
	claimed.Time, claimed.UserID = base.Add(170*time.Minute), "u1"
	ds = append(ds, later, refused, claimed)
	for i, ua := range []string{"a/1", "a/1", "b/2"} {
		d := withID(ds[5], fmt.Sprintf("dec_anon_%d", i))
		d.Time, d.ClientIP, d.UserAgent, d.UserID = base.Add(time.Duration(171+i)*time.Minute), "203.0.113.1", ua, ""
		ds = append(ds, d)
	}
	return ds
}

// expectedUsers is Users computed from ds.
func expectedUsers(ds []events.Decision, project string) []audit.User {
	type key struct{ project, user string }
	users := map[key]*audit.User{}
	latest := map[key]time.Time{}
	for _, d := range ds {
		if d.UserID == "" || !d.UserVerified || (project != "" && d.ProjectID != project) {
			continue
		}
		k := key{d.ProjectID, d.UserID}
		at := d.Time.Truncate(time.Microsecond)
		u := users[k]
		if u == nil {
			u = &audit.User{ProjectID: d.ProjectID, UserID: d.UserID, FirstSeen: at, LastSeen: at}
			users[k] = u
		}
		u.FirstSeen, u.LastSeen = minTime(u.FirstSeen, at), maxTime(u.LastSeen, at)
		if d.Decision != "accept" {
			u.Refused++
			continue
		}
		u.Connections++
		if at.After(latest[k]) {
			latest[k], u.Metadata = at, d.UserMetadata
		}
	}
	var out []audit.User
	for _, u := range users {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b audit.User) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		if c := strings.Compare(b.ProjectID, a.ProjectID); c != 0 {
			return c
		}
		return strings.Compare(b.UserID, a.UserID)
	})
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func sameUsers(got, want []audit.User) bool {
	return slices.EqualFunc(got, want, func(a, b audit.User) bool {
		return a.ProjectID == b.ProjectID && a.UserID == b.UserID && maps.Equal(a.Metadata, b.Metadata) &&
			a.FirstSeen.Equal(b.FirstSeen) && a.LastSeen.Equal(b.LastSeen) && a.Connections == b.Connections && a.Refused == b.Refused
	})
}

// readUsers reads every page of Users with f, calling between after each
// page but the last.
func readUsers(t *testing.T, conn driver.Conn, f audit.Filter, between func()) []audit.User {
	t.Helper()
	ctx := stacktest.Context(t, 60*time.Second)
	var got []audit.User
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("more than 1000 pages: the cursor does not move")
		}
		p, err := audit.Users(ctx, conn, f, cursor)
		if err != nil {
			t.Fatalf("Users page %d: %v", page, err)
		}
		if p.Users == nil || (f.Limit > 0 && len(p.Users) > f.Limit) {
			t.Fatalf("page %d: %d users (nil: %t), limit %d", page, len(p.Users), p.Users == nil, f.Limit)
		}
		got = append(got, p.Users...)
		if p.Next == "" {
			return got
		}
		if between != nil {
			between()
		}
		cursor = p.Next
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	base := fixtureBase()
	ds := usersFixture(base)
	insertDecisions(t, conn, ds)
	redeliverDecisions(t, conn, ds[:8]) // delivered again: stored and counted once

	tests := []struct {
		name   string
		filter audit.Filter
		want   []audit.User
	}{
		{name: "all", filter: audit.Filter{}, want: expectedUsers(ds, "")},
		{name: "all, pages of 1", filter: audit.Filter{Limit: 1}, want: expectedUsers(ds, "")},
		{name: "all, pages of 2", filter: audit.Filter{Limit: 2}, want: expectedUsers(ds, "")},
		{name: "a project", filter: audit.Filter{ProjectID: "p_a"}, want: expectedUsers(ds, "p_a")},
		{name: "a project's, pages of 1", filter: audit.Filter{ProjectID: "p_b", Limit: 1}, want: expectedUsers(ds, "p_b")},
		{name: "projects", filter: audit.Filter{Projects: []string{"p_b"}}, want: expectedUsers(ds, "p_b")},
		{name: "no project allowed", filter: audit.Filter{Projects: []string{}}, want: nil},
		{name: "until before the latest", filter: audit.Filter{ProjectID: "p_a", Until: base.Add(155 * time.Minute)}, want: expectedUsers(ds[:len(ds)-5], "p_a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := readUsers(t, conn, tt.filter, nil); !sameUsers(got, tt.want) {
				t.Errorf("Users(%+v)\n got %+v\nwant %+v", tt.filter, got, tt.want)
			}
		})
	}

	t.Run("p_a's u1", func(t *testing.T) {
		t.Parallel()
		got := readUsers(t, conn, audit.Filter{ProjectID: "p_a", UserID: "u1"}, nil)
		want := audit.User{ProjectID: "p_a", UserID: "u1", Metadata: map[string]string{"plan": "team"},
			FirstSeen: ds[0].Time.Truncate(time.Microsecond), LastSeen: base.Add(160 * time.Minute), Connections: 3, Refused: 1}
		if !sameUsers(got, []audit.User{want}) {
			t.Errorf("u1 of p_a: %+v, want %+v (the anonymous visitor claiming it not counted)", got, want)
		}
	})

	t.Run("as of the first page", func(t *testing.T) {
		_, conn := stacktest.MigratedClickHouse(t)
		insertDecisions(t, conn, ds)
		want := expectedUsers(ds, "")
		n := 0
		got := readUsers(t, conn, audit.Filter{Limit: 1}, func() {
			// The user listed last seen again, and a new user: neither
			// moves the listing.
			again := withID(ds[9], fmt.Sprintf("dec_again_%d", n))
			again.Time = time.Now().UTC()
			fresh := withID(ds[9], fmt.Sprintf("dec_fresh_%d", n))
			fresh.Time, fresh.UserID = again.Time, fmt.Sprintf("u_fresh_%d", n)
			insertDecisions(t, conn, []events.Decision{again, fresh})
			n++
		})
		if !sameUsers(got, want) {
			t.Errorf("Users, with decisions stored between pages\n got %+v\nwant %+v", got, want)
		}
		if n < 3 {
			t.Errorf("%d pages: the test did not page", n+1)
		}
	})
}

func TestAnonymous(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	ds := usersFixture(fixtureBase())
	insertDecisions(t, conn, ds)
	redeliverDecisions(t, conn, ds) // delivered again: stored and counted once
	ctx := stacktest.Context(t, 30*time.Second)
	tests := []struct {
		name   string
		filter audit.Filter
		want   audit.AnonymousStats
	}{
		// v9 and the visitor claiming u1 share an address and a browser;
		// two more browsers at another address.
		{name: "all", filter: audit.Filter{}, want: audit.AnonymousStats{Connections: 5, Visitors: 3}},
		{name: "a project", filter: audit.Filter{ProjectID: "p_a"}, want: audit.AnonymousStats{Connections: 5, Visitors: 3}},
		{name: "a project without anonymous sessions", filter: audit.Filter{ProjectID: "p_b"}, want: audit.AnonymousStats{}},
		{name: "no project allowed", filter: audit.Filter{Projects: []string{}}, want: audit.AnonymousStats{}},
		{name: "a user", filter: audit.Filter{UserID: "v9"}, want: audit.AnonymousStats{Connections: 1, Visitors: 1}},
		{name: "authenticated sessions", filter: audit.Filter{Session: "authenticated"}, want: audit.AnonymousStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := audit.Anonymous(ctx, conn, tt.filter)
			if err != nil || got != tt.want {
				t.Errorf("Anonymous(%+v) = %+v, %v; want %+v", tt.filter, got, err, tt.want)
			}
		})
	}
}

func TestProjectCounts(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	base := fixtureBase()
	ds := fixture(base)
	insertDecisions(t, conn, ds)
	redeliverDecisions(t, conn, ds) // delivered again: stored and counted once
	ctx := stacktest.Context(t, 30*time.Second)
	expect := func(since time.Time, projects []string) map[string]audit.Counts {
		out := map[string]audit.Counts{}
		for _, p := range projects {
			out[p] = audit.Counts{}
		}
		for _, d := range ds {
			if d.Time.Truncate(time.Second).Before(since.Truncate(time.Second)) || (projects != nil && !slices.Contains(projects, d.ProjectID)) {
				continue
			}
			c := out[d.ProjectID]
			c.Decisions++
			if d.Decision != "accept" {
				c.Refused++
			}
			out[d.ProjectID] = c
		}
		return out
	}
	tests := []struct {
		name     string
		since    time.Time
		projects []string
		want     map[string]audit.Counts
	}{
		{name: "every project", since: base.Add(-time.Hour), want: map[string]audit.Counts{"p_a": {8, 4}, "p_b": {4, 2}, "p_nope": {1, 1}}},
		{name: "since", since: ds[6].Time, want: expect(ds[6].Time, nil)},
		{name: "some", since: base.Add(-time.Hour), projects: []string{"p_b", "p_none"}, want: map[string]audit.Counts{"p_b": {4, 2}, "p_none": {}}},
		{name: "none", since: base.Add(-time.Hour), projects: []string{}, want: map[string]audit.Counts{}},
		{name: "the last day", since: time.Now().Add(-24 * time.Hour), projects: []string{"p_a"}, want: expect(time.Now().Add(-24*time.Hour), []string{"p_a"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := audit.ProjectCounts(ctx, conn, tt.since, tt.projects)
			if err != nil || !maps.Equal(got, tt.want) {
				t.Errorf("ProjectCounts(%s, %q) = %v, %v; want %v", tt.since, tt.projects, got, err, tt.want)
			}
		})
	}
}

func TestExportDecisions(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	ds := fixture(fixtureBase())
	insertDecisions(t, conn, ds)
	ctx := stacktest.Context(t, 30*time.Second)
	all := pageOrder(ds)
	errStop := errors.New("stop")
	tests := []struct {
		name    string
		filter  audit.Filter
		bound   int
		stopAt  int // each refuses the record at this index; -1 never
		want    []string
		wantErr error
	}{
		{name: "all", bound: 100, stopAt: -1, want: all},
		{name: "exactly the bound", bound: len(ds), stopAt: -1, want: all},
		{name: "truncated", bound: 5, stopAt: -1, want: all[:5], wantErr: audit.ErrTruncated},
		{name: "Limit does not apply", filter: audit.Filter{Limit: 2}, bound: 100, stopAt: -1, want: all},
		{name: "a filter", filter: audit.Filter{UserID: "u1"}, bound: 100, stopAt: -1, want: pageOrder([]events.Decision{ds[0], ds[6], ds[11]})},
		{name: "no project allowed", filter: audit.Filter{Projects: []string{}}, bound: 100, stopAt: -1, want: nil},
		{name: "each stops it", bound: 100, stopAt: 3, want: all[:3], wantErr: errStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			n, err := audit.ExportDecisions(ctx, conn, tt.filter, tt.bound, func(r audit.Record) error {
				if len(got) == tt.stopAt {
					return errStop
				}
				got = append(got, r.DecisionID)
				return nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("ExportDecisions: %v, want %v", err, tt.wantErr)
			}
			if n != len(got) || !slices.Equal(got, tt.want) {
				t.Errorf("ExportDecisions = %d\n got %v\nwant %v", n, got, tt.want)
			}
		})
	}
	t.Run("a bound of 0", func(t *testing.T) {
		t.Parallel()
		if _, err := audit.ExportDecisions(ctx, conn, audit.Filter{}, 0, func(audit.Record) error { return nil }); err == nil {
			t.Error("ExportDecisions with a bound of 0: no error")
		}
	})
	t.Run("the connection still serves after a stopped export", func(t *testing.T) {
		t.Parallel()
		for range 5 {
			if _, err := audit.ExportDecisions(ctx, conn, audit.Filter{}, 100, func(audit.Record) error { return errStop }); !errors.Is(err, errStop) {
				t.Fatalf("ExportDecisions: %v", err)
			}
			if recs, err := audit.Decisions(ctx, conn, audit.Filter{}); err != nil || len(recs) != len(ds) {
				t.Fatalf("Decisions after a stopped export: %d, %v", len(recs), err)
			}
		}
	})
}

// TestExportDecisionsMemory exports 100,000 decisions and checks that the
// heap grows far less than the records would take if kept. Not parallel: it
// measures the heap, which tests running beside it would grow.
func TestExportDecisionsMemory(t *testing.T) {
	_, conn := stacktest.MigratedClickHouse(t)
	const total, batch = 100_000, 10_000
	start := time.Now().UTC().Add(-2 * time.Hour)
	began := time.Now()
	for from := 0; from < total; from += batch {
		ds := make([]events.Decision, 0, batch)
		for i := from; i < from+batch; i++ {
			ds = append(ds, stacktest.SampleDecision("export", i, start.Add(time.Duration(i)*time.Millisecond)))
		}
		insertDecisions(t, conn, ds)
	}
	t.Logf("stored %d decisions in %s", total, time.Since(began).Round(time.Millisecond))
	ctx := stacktest.Context(t, 120*time.Second)
	f := audit.Filter{Since: start.Add(-time.Minute)}

	// Streamed: the heap's peak, sampled every 1000 records, over what it
	// held before.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline, peak := ms.HeapAlloc, ms.HeapAlloc
	began = time.Now()
	var prev audit.Record
	seen := 0
	n, err := audit.ExportDecisions(ctx, conn, f, total, func(r audit.Record) error {
		if seen > 0 && (r.Time.After(prev.Time) || r.Time.Equal(prev.Time) && r.DecisionID >= prev.DecisionID) {
			return fmt.Errorf("%s (%s) after %s (%s): not newest first, or twice", r.DecisionID, r.Time, prev.DecisionID, prev.Time)
		}
		if r.UserAgent == "" || r.ProjectID == "" || r.Verifier == "" {
			return fmt.Errorf("%s: fields missing: %+v", r.DecisionID, r)
		}
		prev = r
		if seen++; seen%1000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return nil
	})
	if err != nil || n != total || seen != total {
		t.Fatalf("ExportDecisions = %d (each saw %d), %v; want %d", n, seen, err, total)
	}
	streamed := peak - baseline
	t.Logf("streamed %d decisions in %s; heap peak %.1f MiB over the baseline", n, time.Since(began).Round(time.Millisecond), mib(streamed))

	// Kept: what the same records take when accumulated, after a GC.
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline = ms.HeapAlloc
	var kept []audit.Record
	if _, err := audit.ExportDecisions(ctx, conn, f, total, func(r audit.Record) error {
		kept = append(kept, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	accumulated := ms.HeapAlloc - min(baseline, ms.HeapAlloc)
	t.Logf("the %d records kept take %.1f MiB", len(kept), mib(accumulated))
	unique := map[string]bool{}
	for _, r := range kept {
		unique[r.DecisionID] = true
	}
	if len(unique) != total {
		t.Errorf("%d distinct decisions exported, want %d", len(unique), total)
	}
	runtime.KeepAlive(kept)

	// Streaming holds a few blocks of rows (about 12 MiB measured, most of
	// it garbage the GC has not collected yet); without a bound on the
	// block size, the driver's 65,536-row blocks took 110 MiB.
	const bound = 32 << 20
	if streamed > bound {
		t.Errorf("the heap grew by %.1f MiB while streaming %d decisions, over %.0f MiB: the export keeps rows", mib(streamed), total, mib(bound))
	}
	if accumulated <= bound {
		t.Errorf("keeping the records takes %.1f MiB, within the %.0f MiB bound: the test proves nothing", mib(accumulated), mib(bound))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

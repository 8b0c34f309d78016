package audit_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// spreadFixture is n decisions, one every 7 hours back from now over
// months, of three projects: every fifth refused, the others accepted for
// 40 users (several of two projects at once), so that the newest of any
// filter lie in windows of every size the listings try (an hour, then
// eight times more each time) and the whole range.
func spreadFixture(now time.Time, n int) []events.Decision {
	base := fixture(now)[0]
	out := make([]events.Decision, 0, n)
	for i := range n {
		d := withID(base, fmt.Sprintf("dec_spread_%04d", i))
		d.Time = now.Add(-time.Duration(i)*7*time.Hour - time.Duration(i*37+1)*time.Microsecond)
		d.ProjectID = []string{"p_a", "p_b", "p_c"}[i%3]
		d.UserID = fmt.Sprintf("u%d", i%40)
		if i%5 == 4 {
			d.Decision, d.Reason, d.Session, d.UserID, d.UserVerified = "unauthorized", "token_expired", "", "", false
		}
		out = append(out, d)
	}
	return out
}

// TestListingsReadWindows checks the listings over every project, which
// look for their newest rows in windows at the end of the range, against
// the whole range read at once: the same rows in the same order, each once
// though stored twice, on every page, whatever window holds them.
func TestListingsReadWindows(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	now := time.Now().UTC().Add(-time.Minute)
	ds := spreadFixture(now, 400) // 400 × 7 h: 117 days
	insertDecisions(t, conn, ds)
	// Copies stored as an auditor older than InsertMissing stored a batch
	// delivered again: the listings drop them, whichever window they are in.
	insertDecisions(t, conn, ds[:3])
	insertDecisions(t, conn, ds[150:160])

	refused := slices.DeleteFunc(slices.Clone(ds), func(d events.Decision) bool { return d.Decision == "accept" })
	year := now.Add(-365 * 24 * time.Hour)
	tests := []struct {
		name   string
		filter audit.Filter
		want   []events.Decision
	}{
		{name: "everything, pages of 100", filter: audit.Filter{Limit: 100}, want: ds},
		{name: "everything, pages of 7", filter: audit.Filter{Limit: 7}, want: ds},
		{name: "a year, pages of 250", filter: audit.Filter{Since: year, Limit: 250}, want: ds},
		{name: "refused, pages of 30", filter: audit.Filter{Decision: "unauthorized", Limit: 30}, want: refused},
		{name: "a user over every project", filter: audit.Filter{UserID: "u3", Limit: 4}, want: slices.DeleteFunc(slices.Clone(ds), func(d events.Decision) bool { return d.UserID != "u3" })},
		{name: "the last 10 days", filter: audit.Filter{Since: now.Add(-240 * time.Hour)}, want: slices.DeleteFunc(slices.Clone(ds), func(d events.Decision) bool { return d.Time.Before(now.Add(-240 * time.Hour)) })},
		{name: "until 50 days ago", filter: audit.Filter{Until: now.Add(-50 * 24 * time.Hour), Limit: 20}, want: slices.DeleteFunc(slices.Clone(ds), func(d events.Decision) bool { return !d.Time.Before(now.Add(-50 * 24 * time.Hour)) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, want := readPages(t, conn, tt.filter, nil), pageOrder(tt.want); !slices.Equal(got, want) {
				t.Errorf("pages of %+v\n got %d %v\nwant %d %v", tt.filter, len(got), got, len(want), want)
			}
			f := tt.filter
			f.Limit = 100
			recs, err := audit.Decisions(stacktest.Context(t, 30*time.Second), conn, f)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ids(recs), pageOrder(tt.want)[:min(100, len(tt.want))]; !slices.Equal(got, want) {
				t.Errorf("Decisions(%+v)\n got %v\nwant %v", f, got, want)
			}
		})
	}
}

// TestUsersFirstPageReadsWindows checks the first page of users over every
// project, found in windows at the end of the range, against the users
// counted over all of it, for page sizes the windows hold at once, after
// growing, and never.
func TestUsersFirstPageReadsWindows(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	now := time.Now().UTC().Add(-time.Minute)
	ds := spreadFixture(now, 400)
	// u7 of p_b seen again in the last minutes, refused once: first on the
	// page, its counts and first-seen from months before.
	again := withID(ds[7], "dec_u7_again")
	again.Time, again.ProjectID = now.Add(30*time.Second), "p_b"
	refusal := withID(again, "dec_u7_refused")
	refusal.Time, refusal.Decision, refusal.Reason, refusal.Session = now.Add(20*time.Second), "unauthorized", "token_revoked", ""
	ds = append(ds, again, refusal)
	insertDecisions(t, conn, ds)
	all := expectedUsers(ds, "")
	for _, limit := range []int{1, 3, 10, 50, len(all), 500} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			p, err := audit.Users(stacktest.Context(t, 30*time.Second), conn, audit.Filter{Limit: limit}, "")
			if err != nil {
				t.Fatal(err)
			}
			want := all[:min(limit, len(all))]
			if !sameUsers(p.Users, want) {
				t.Errorf("first page of %d\n got %+v\nwant %+v", limit, p.Users, want)
			}
			if (p.Next != "") != (limit < len(all)) {
				t.Errorf("first page of %d of %d users: next cursor %q", limit, len(all), p.Next)
			}
			if limit >= len(all) {
				return
			}
			if rest := readUsers(t, conn, audit.Filter{Limit: limit}, nil); !sameUsers(rest, all) {
				t.Errorf("every page of %d\n got %+v\nwant %+v", limit, rest, all)
			}
		})
	}
}

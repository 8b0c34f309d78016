package console_test

// The audit endpoints over decisions the stack really made: widget
// connections sent through its ingress, judged by its verifier, stored by
// its auditor in ClickHouse; a few older decisions stored directly, for
// the time filters and buckets.

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// stream sends a GET and hands its body to read as it arrives, for the
// exports: the status and content type are checked against the OpenAPI
// document (their CSV and JSON lines have no schema), and the trailers are
// returned once the body is read.
func (c *client) stream(t testing.TB, path string, read func(io.Reader) error) (*resp, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(stacktest.Context(t, 5*time.Minute), http.MethodGet, c.e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	hc := *c.hc
	hc.Timeout = 0
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	r := &resp{method: http.MethodGet, path: path, status: res.StatusCode, header: res.Header}
	if res.StatusCode != http.StatusOK {
		if r.body, err = io.ReadAll(res.Body); err != nil {
			t.Fatal(err)
		}
		c.e.conform(t, r)
		return r, nil
	}
	c.e.conform(t, r)
	if _, op := c.e.operation(http.MethodGet, strings.SplitN(path, "?", 2)[0]); op != nil {
		ct := strings.TrimSpace(strings.SplitN(res.Header.Get("Content-Type"), ";", 2)[0])
		if op.Responses["200"] == nil || op.Responses["200"].Content[ct] == nil {
			t.Errorf("GET %s answered %s, which its OpenAPI operation does not declare", path, ct)
		}
	}
	if err := read(res.Body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r, res.Trailer
}

// exported is an export read whole: its records and what it said.
type exported struct {
	records   []audit.Record // JSON: every field; CSV: the CSV's columns
	truncated string
	header    http.Header
}

// export downloads an export of the query (format included) and parses
// it: a CSV's header must be audit.CSVHeader(), a JSON line one record.
func (c *client) export(t testing.TB, q string) exported {
	t.Helper()
	var out exported
	r, trailer := c.stream(t, "/api/v1/audit/export"+q, func(body io.Reader) error {
		if strings.Contains(q, "format=json") {
			sc := bufio.NewScanner(body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var rec audit.Record
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					return fmt.Errorf("line %q: %w", sc.Text(), err)
				}
				out.records = append(out.records, rec)
			}
			return sc.Err()
		}
		rows, err := csv.NewReader(body).ReadAll()
		if err != nil {
			return err
		}
		if len(rows) == 0 || !slices.Equal(rows[0], audit.CSVHeader()) {
			return fmt.Errorf("CSV header %v, want %v", rows[:min(1, len(rows))], audit.CSVHeader())
		}
		for _, row := range rows[1:] {
			out.records = append(out.records, audit.Record{DecisionID: row[0], ProjectID: row[2], Decision: row[3], Reason: row[4], UserID: row[6], Origin: row[8]})
		}
		return nil
	})
	r.want(t, http.StatusOK)
	out.header, out.truncated = r.header, trailer.Get("X-Hissuno-Truncated")
	if e := trailer.Get("X-Hissuno-Error"); e != "" {
		t.Errorf("export %s: error trailer %q", q, e)
	}
	return out
}

// TestAuditAPI: every audit endpoint over real decisions: the decision
// list under each filter, one decision by id, the series by minute, hour
// and day split by decision and by reason, the top origins, reasons and
// users, the admin events with their verified actors and reasons, a
// project's identified users and anonymous visitors, a user's history, and
// the CSV and JSON exports.
func TestAuditAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(50*time.Millisecond))
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	shop, key := owner.createProject(t, "Shop", map[string]any{"origins": []string{"https://shop.example.com", "*.shop.example.com"}})
	blog, _ := owner.createProject(t, "Blog", nil)
	const site, sub, evil = "https://shop.example.com", "https://app.shop.example.com", "https://evil.example"
	ada := map[string]string{"plan": "pro", "email": "ada@shop.example.com"}
	adaToken := token(t, key, "u-ada", ada)

	// The decisions, oldest first, and what each must record.
	type made struct {
		id, decision, reason, session, user, origin, fingerprint, userAgent string
	}
	var all []made
	send := func(w widgetReq, outcome events.Outcome, reason events.Reason, session, user string) {
		t.Helper()
		a := e.connect(t, w, outcome, reason)
		fp := ""
		if w.token != "" {
			fp = redact.Fingerprint(w.token)
		}
		all = append(all, made{a.DecisionID, string(outcome), string(reason), session, user, w.origin, fp, w.userAgent})
	}
	send(widgetReq{project: shop, token: adaToken, origin: site, userAgent: "Firefox/1"}, events.OutcomeAccept, "", "authenticated", "u-ada")
	send(widgetReq{project: shop, token: adaToken, origin: sub, userAgent: "Firefox/1"}, events.OutcomeAccept, "", "authenticated", "u-ada")
	send(widgetReq{project: shop, token: token(t, key, "u-bob", map[string]string{"plan": "free"}), origin: site, userAgent: "Safari/2"}, events.OutcomeAccept, "", "authenticated", "u-bob")
	send(widgetReq{project: shop, userID: "visitor-1", origin: site, userAgent: "UA-A"}, events.OutcomeAccept, "", "anonymous", "visitor-1")
	send(widgetReq{project: shop, userID: "visitor-2", origin: site, userAgent: "UA-B"}, events.OutcomeAccept, "", "anonymous", "visitor-2")
	send(widgetReq{project: shop, token: token(t, "sk_live_not-the-key-of-this-project-000000", "u-eve", nil), origin: site, userAgent: "curl/8"}, events.OutcomeUnauthorized, events.ReasonTokenBadSignature, "", "")
	send(widgetReq{project: shop, origin: evil, userAgent: "curl/8"}, events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed, "", "")
	blogDecision := e.connect(t, widgetReq{project: blog, userID: "reader", origin: "https://blog.example"}, events.OutcomeAccept, "")
	stored := []string{blogDecision.DecisionID}
	for _, m := range all {
		stored = append(stored, m.id)
	}
	e.waitDecisions(t, stored...)

	// Three older decisions of the shop, two hours before this hour.
	old := time.Now().UTC().Truncate(time.Hour).Add(-2*time.Hour + 10*time.Minute)
	var olds []events.Decision
	for i, reason := range []events.Reason{"", "", events.ReasonTokenExpired} {
		d := stacktest.SampleDecision("old", i, old.Add(time.Duration(i)*time.Second))
		d.ProjectID, d.Origin, d.Reason, d.UserMetadata = shop, site, reason, nil
		if reason == "" {
			d.Decision, d.Session, d.UserID, d.UserVerified = events.OutcomeAccept, events.SessionAuthenticated, "u-old", true
		} else {
			d.Decision, d.Session, d.UserID, d.UserVerified = events.OutcomeUnauthorized, "", "", false
		}
		olds = append(olds, d)
	}
	e.insertDecisions(t, olds...)
	oldIDs := []string{olds[2].DecisionID, olds[1].DecisionID, olds[0].DecisionID}
	recent := func(pick func(made) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if pick(all[i]) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	every := func(made) bool { return true }

	t.Run("decisions", func(t *testing.T) {
		recs := owner.decisions(t, query("project", shop))
		if want := append(recent(every), oldIDs...); !slices.Equal(ids(recs), want) {
			t.Fatalf("decisions of the shop: %v, want newest first %v", ids(recs), want)
		}
		for i, m := range all {
			r := recs[len(all)-1-i]
			if r.Decision != m.decision || r.Reason != m.reason || r.Session != m.session || r.UserID != m.user || r.Origin != m.origin ||
				r.TokenFingerprint != m.fingerprint || r.UserAgent != m.userAgent || r.ProjectID != shop || r.ClientIP != "127.0.0.1" || r.Verifier == "" || r.Ingress == "" {
				t.Errorf("decision %s: %+v, want %+v", m.id, r, m)
			}
		}
		if r := recs[len(all)-1]; !r.UserVerified || r.KeyVersion != 1 || r.UserMetadata["email"] != ada["email"] || r.UserMetadata["plan"] != "pro" {
			t.Errorf("ada's first decision: %+v, want her verified metadata and key version 1", r)
		}
		if r := recs[len(all)-4]; r.UserVerified || r.Session != "anonymous" {
			t.Errorf("an anonymous decision: %+v, want its user unverified", r)
		}
		for _, tc := range []struct {
			name string
			q    string
			want []string
		}{
			{"every project", query(), append(append([]string{blogDecision.DecisionID}, recent(every)...), oldIDs...)},
			{"project blog", query("project", blog), []string{blogDecision.DecisionID}},
			{"since after the old ones", query("project", shop, "since", rfc3339(old.Add(time.Minute))), recent(every)},
			{"until before the recent ones", query("project", shop, "since", rfc3339(old.Add(-time.Minute)), "until", rfc3339(old.Add(time.Minute))), oldIDs},
			{"since and until around the second old one", query("project", shop, "since", rfc3339(old.Add(time.Second)), "until", rfc3339(old.Add(2*time.Second))), oldIDs[1:2]},
			{"decision origin_blocked", query("project", shop, "decision", "origin_blocked"), recent(func(m made) bool { return m.decision == "origin_blocked" })},
			{"decision unauthorized", query("project", shop, "decision", "unauthorized"), append(recent(func(m made) bool { return m.decision == "unauthorized" }), oldIDs[0])},
			{"reason token_bad_signature", query("reason", "token_bad_signature"), recent(func(m made) bool { return m.reason == "token_bad_signature" })},
			{"user u-ada", query("user", "u-ada"), recent(func(m made) bool { return m.user == "u-ada" })},
			{"origin of the subdomain", query("origin", sub), recent(func(m made) bool { return m.origin == sub })},
			{"session anonymous", query("project", shop, "session", "anonymous"), recent(func(m made) bool { return m.session == "anonymous" })},
			{"session authenticated", query("project", shop, "session", "authenticated"), append(recent(func(m made) bool { return m.session == "authenticated" }), oldIDs[1:]...)},
			{"every filter at once", query("project", shop, "since", rfc3339(old.Add(time.Minute)), "until", rfc3339(time.Now().Add(time.Minute)),
				"decision", "accept", "user", "u-ada", "origin", site, "session", "authenticated"), recent(func(m made) bool { return m.user == "u-ada" && m.origin == site })},
			{"nothing matches", query("user", "u-nobody"), nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := ids(owner.decisions(t, tc.q)); !slices.Equal(got, tc.want) {
					t.Errorf("decisions%s: %v, want %v", tc.q, got, tc.want)
				}
			})
		}
		// A page at a time: the cursor continues where the page ended.
		var page audit.Page
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions"+query("project", shop, "limit", "4"), nil).want(t, http.StatusOK).decode(t, fresh(&page))
		if len(page.Records) != 4 || page.Next == "" {
			t.Fatalf("a page of 4: %d records, next %q", len(page.Records), page.Next)
		}
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions"+query("project", shop, "limit", "4", "cursor", "garbage"), nil).wantProblem(t, http.StatusUnprocessableEntity, "cursor")
		e.waitAdminEvents(t, audit.Filter{}, 2)
		var adminPage audit.AdminPage
		owner.do(t, http.MethodGet, "/api/v1/audit/admin-events?limit=1", nil).want(t, http.StatusOK).decode(t, fresh(&adminPage))
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions"+query("cursor", adminPage.Next), nil).wantProblem(t, http.StatusUnprocessableEntity, "cursor")
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions"+query("since", rfc3339(time.Now()), "until", rfc3339(time.Now().Add(-time.Hour))), nil).
			wantProblem(t, http.StatusUnprocessableEntity, "until must be after since")
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions?decision=maybe", nil).want(t, http.StatusUnprocessableEntity)
	})

	t.Run("one decision", func(t *testing.T) {
		var rec audit.Record
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions/"+all[0].id, nil).want(t, http.StatusOK).decode(t, fresh(&rec))
		listed := owner.decisions(t, query("user", "u-ada"))
		if len(listed) != 2 || !equalRecords(rec, listed[1]) {
			t.Errorf("decision %s: %+v, want it as listed: %+v", all[0].id, rec, listed)
		}
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions/"+olds[2].DecisionID, nil).want(t, http.StatusOK).decode(t, fresh(&rec))
		if rec.DecisionID != olds[2].DecisionID || rec.Reason != "token_expired" || !rec.Time.Equal(olds[2].Time) {
			t.Errorf("old decision: %+v", rec)
		}
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions/dec_att_nope", nil).wantProblem(t, http.StatusNotFound, "dec_att_nope")
	})

	t.Run("series", func(t *testing.T) {
		since := old.Add(-time.Hour)
		for _, tc := range []struct {
			bucket, split string
			width         time.Duration
			keys          []string
		}{
			{"minute", "decision", time.Minute, []string{"accept", "origin_blocked", "unauthorized"}},
			{"hour", "reason", time.Hour, []string{audit.KeyAccept, "origin_not_allowed", "token_bad_signature", "token_expired"}},
			{"day", "decision", 24 * time.Hour, []string{"accept", "origin_blocked", "unauthorized"}},
			{"hour", "", time.Hour, []string{"accept", "origin_blocked", "unauthorized"}},
		} {
			t.Run(tc.bucket+" by "+tc.split, func(t *testing.T) {
				var s struct {
					Bucket, Split string
					Since, Until  time.Time
					Points        []audit.Point
				}
				owner.do(t, http.MethodGet, "/api/v1/audit/series"+query("project", shop, "since", rfc3339(since), "bucket", tc.bucket, "split", tc.split), nil).
					want(t, http.StatusOK).decode(t, fresh(&s))
				if s.Bucket != tc.bucket || s.Split != or(tc.split, "decision") || !s.Since.Equal(since) || time.Since(s.Until).Abs() > time.Minute {
					t.Errorf("series: %s by %s from %s to %s", s.Bucket, s.Split, s.Since, s.Until)
				}
				var total uint64
				keys := map[string]bool{}
				oldBucket := old.Truncate(tc.width)
				var inOld uint64
				for _, p := range s.Points {
					total += p.Count
					keys[p.Key] = true
					if !p.Time.Equal(p.Time.Truncate(tc.width)) || p.Time.Before(since.Truncate(tc.width)) {
						t.Errorf("point %+v: not the start of a %s bucket in the range", p, tc.bucket)
					}
					if p.Time.Equal(oldBucket) {
						inOld += p.Count
					}
				}
				if n := uint64(len(all) + len(olds)); total != n {
					t.Errorf("series counts %d decisions, want %d: %+v", total, n, s.Points)
				}
				if !sameSet(mapKeys(keys), tc.keys) {
					t.Errorf("series keys %v, want %v", mapKeys(keys), tc.keys)
				}
				if tc.width < 24*time.Hour && inOld != 3 {
					t.Errorf("the bucket of %s counts %d, want the 3 old decisions: %+v", oldBucket, inOld, s.Points)
				}
			})
		}
		owner.do(t, http.MethodGet, "/api/v1/audit/series"+query("since", rfc3339(time.Now().Add(-30*24*time.Hour)), "bucket", "minute"), nil).
			wantProblem(t, http.StatusUnprocessableEntity, "coarser bucket")
	})

	t.Run("top", func(t *testing.T) {
		for _, tc := range []struct {
			by, n string
			want  []audit.Stat
		}{
			{"origin", "", []audit.Stat{{Key: site, Count: 8}, {Key: sub, Count: 1}, {Key: evil, Count: 1}}},
			{"reason", "", []audit.Stat{{Key: audit.KeyAccept, Count: 7}, {Key: "origin_not_allowed", Count: 1}, {Key: "token_bad_signature", Count: 1}, {Key: "token_expired", Count: 1}}},
			{"user", "2", []audit.Stat{{Key: audit.KeyNone, Count: 3}, {Key: "u-ada", Count: 2}}},
		} {
			t.Run(tc.by, func(t *testing.T) {
				var top struct {
					By    string
					Items []audit.Stat
				}
				owner.do(t, http.MethodGet, "/api/v1/audit/top"+query("project", shop, "since", rfc3339(old.Add(-time.Hour)), "by", tc.by, "n", tc.n), nil).
					want(t, http.StatusOK).decode(t, fresh(&top))
				if top.By != tc.by || !slices.Equal(top.Items, tc.want) {
					t.Errorf("top by %s: %+v, want %+v", tc.by, top, tc.want)
				}
			})
		}
		// The document offers only what the audit counts: by decision was
		// offered and answered 500.
		owner.do(t, http.MethodGet, "/api/v1/audit/top?by=decision", nil).wantProblem(t, http.StatusUnprocessableEntity, "validation failed")
	})

	t.Run("admin events", func(t *testing.T) {
		// A change by an API token, with a reason.
		var tok struct {
			Token  struct{ ID string }
			Secret string
		}
		owner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "deploy bot", "role": "admin"}).want(t, http.StatusCreated).decode(t, fresh(&tok))
		bot := e.bearer(tok.Secret)
		bot.do(t, http.MethodPost, "/api/v1/projects/"+blog+"/rotate", map[string]any{"reason": "quarterly rotation"}).want(t, http.StatusOK)
		e.waitAdminEvents(t, audit.Filter{ProjectID: blog, Kind: "key.rotated"}, 1)

		evs := owner.adminEvents(t, query("project", blog))
		if len(evs) != 2 || evs[0].Kind != "key.rotated" || evs[0].Actor != "token:"+tok.Token.ID || evs[0].Reason != "quarterly rotation" || evs[0].KeyVersion != 2 ||
			evs[1].Kind != "project.created" || evs[1].Actor != "console:owner@example.com" || evs[1].Name != "Blog" {
			t.Errorf("admin events of the blog: %+v, want its rotation by token:%s and its creation by console:owner@example.com", evs, tok.Token.ID)
		}
		if !strings.HasPrefix(tok.Token.ID, "tok_") {
			t.Errorf("token id %q", tok.Token.ID)
		}
		byActor := owner.adminEvents(t, query("actor", "token:"+tok.Token.ID))
		if len(byActor) != 1 || byActor[0].EventID != evs[0].EventID {
			t.Errorf("admin events by the token: %+v", byActor)
		}
		e.waitAdminEvents(t, audit.Filter{Kind: "token.created"}, 1)
		created := owner.adminEvents(t, query("kind", "token.created"))
		if len(created) != 1 || created[0].Actor != "console:owner@example.com" || created[0].Account != tok.Token.ID || !strings.Contains(created[0].Reason, "deploy bot") {
			t.Errorf("token.created events: %+v", created)
		}
		signIns := owner.adminEvents(t, query("kind", "account.signed_in", "since", rfc3339(time.Now().Add(-time.Hour)), "until", rfc3339(time.Now().Add(time.Minute))))
		if len(signIns) != 1 || signIns[0].Actor != "console:owner@example.com" || signIns[0].Account != "owner@example.com" || signIns[0].ClientIP != "127.0.0.1" {
			t.Errorf("sign-ins: %+v", signIns)
		}
		if got := owner.adminEvents(t, query("since", rfc3339(time.Now().Add(time.Hour)))); len(got) != 0 {
			t.Errorf("admin events of the future: %+v", got)
		}
		var page audit.AdminPage
		owner.do(t, http.MethodGet, "/api/v1/audit/admin-events?limit=1", nil).want(t, http.StatusOK).decode(t, fresh(&page))
		if len(page.Events) != 1 || page.Next == "" {
			t.Fatalf("a page of one admin event: %+v", page)
		}
		var next audit.AdminPage
		owner.do(t, http.MethodGet, "/api/v1/audit/admin-events"+query("limit", "1", "cursor", page.Next), nil).want(t, http.StatusOK).decode(t, fresh(&next))
		if len(next.Events) != 1 || next.Events[0].EventID == page.Events[0].EventID {
			t.Errorf("the second page: %+v after %+v", next, page)
		}
	})

	t.Run("users", func(t *testing.T) {
		type usersAnswer struct {
			Users     []audit.User
			Next      string
			Anonymous audit.AnonymousStats
		}
		var u usersAnswer
		users := func(path string) {
			t.Helper()
			owner.do(t, http.MethodGet, path, nil).want(t, http.StatusOK).decode(t, fresh(&u))
		}
		// The listing is as of the second it is asked in: the users seen in
		// this second show from the next.
		stacktest.Eventually(t, 5*time.Second, "the users seen in the last second listed", func() error {
			users("/api/v1/projects/" + shop + "/users")
			if len(u.Users) != 3 {
				return fmt.Errorf("%d users listed", len(u.Users))
			}
			return nil
		})
		if u.Next != "" || u.Users[0].UserID != "u-bob" || u.Users[1].UserID != "u-ada" || u.Users[2].UserID != "u-old" {
			t.Fatalf("users: %+v, want u-bob, u-ada, u-old (last seen first)", u)
		}
		a := u.Users[1]
		if a.Connections != 2 || a.Metadata["email"] != ada["email"] || a.ProjectID != shop || a.FirstSeen.After(a.LastSeen) || time.Since(a.LastSeen) > time.Minute {
			t.Errorf("ada: %+v", a)
		}
		if u.Users[0].Metadata["plan"] != "free" || u.Users[2].Connections != 2 || !u.Users[2].LastSeen.Before(old.Add(time.Minute)) {
			t.Errorf("bob and the old user: %+v", u.Users)
		}
		if u.Anonymous != (audit.AnonymousStats{Connections: 2, Visitors: 2}) {
			t.Errorf("anonymous: %+v, want 2 connections by 2 visitors", u.Anonymous)
		}
		owner.do(t, http.MethodGet, "/api/v1/projects/"+shop+"/users?limit=2", nil).want(t, http.StatusOK).decode(t, fresh(&u))
		if len(u.Users) != 2 || u.Next == "" {
			t.Fatalf("a page of 2 users: %+v", u)
		}
		owner.do(t, http.MethodGet, "/api/v1/projects/"+shop+"/users"+query("limit", "2", "cursor", u.Next), nil).want(t, http.StatusOK).decode(t, fresh(&u))
		if len(u.Users) != 1 || u.Users[0].UserID != "u-old" || u.Next != "" {
			t.Errorf("the second page of users: %+v", u)
		}
		owner.do(t, http.MethodGet, "/api/v1/projects/"+shop+"/users"+query("since", rfc3339(old.Add(time.Minute))), nil).want(t, http.StatusOK).decode(t, fresh(&u))
		if len(u.Users) != 2 {
			t.Errorf("users since the old ones: %+v", u.Users)
		}
		users("/api/v1/projects/" + blog + "/users")
		if len(u.Users) != 0 || u.Anonymous != (audit.AnonymousStats{Connections: 1, Visitors: 1}) {
			t.Errorf("the blog's visitors: %+v", u)
		}
		owner.do(t, http.MethodGet, "/api/v1/projects/proj_nope/users", nil).wantProblem(t, http.StatusNotFound, "proj_nope")
	})

	t.Run("user history", func(t *testing.T) {
		var page audit.Page
		owner.do(t, http.MethodGet, "/api/v1/projects/"+shop+"/users/u-ada/decisions", nil).want(t, http.StatusOK).decode(t, fresh(&page))
		if want := recent(func(m made) bool { return m.user == "u-ada" }); !slices.Equal(ids(page.Records), want) {
			t.Errorf("ada's history: %v, want %v", ids(page.Records), want)
		}
		owner.do(t, http.MethodGet, "/api/v1/projects/"+shop+"/users/u-ada/decisions?limit=1", nil).want(t, http.StatusOK).decode(t, fresh(&page))
		first := page.Records[0].DecisionID
		owner.do(t, http.MethodGet, "/api/v1/projects/"+shop+"/users/u-ada/decisions"+query("limit", "1", "cursor", page.Next), nil).want(t, http.StatusOK).decode(t, fresh(&page))
		if len(page.Records) != 1 || page.Records[0].DecisionID == first || page.Records[0].DecisionID != all[0].id {
			t.Errorf("ada's history, page 2: %+v", page)
		}
		owner.do(t, http.MethodGet, "/api/v1/projects/"+blog+"/users/u-ada/decisions", nil).want(t, http.StatusOK).decode(t, fresh(&page))
		if len(page.Records) != 0 {
			t.Errorf("ada on the blog: %+v", page.Records)
		}
	})

	t.Run("export", func(t *testing.T) {
		since := rfc3339(old.Add(-time.Hour))
		want := append(recent(every), oldIDs...)
		csvOut := owner.export(t, query("project", shop, "since", since))
		if !slices.Equal(ids(csvOut.records), want) || csvOut.truncated != "false" {
			t.Errorf("CSV export: %v (truncated %q), want %v", ids(csvOut.records), csvOut.truncated, want)
		}
		if ct, cd := csvOut.header.Get("Content-Type"), csvOut.header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || !strings.HasPrefix(cd, `attachment; filename="hissuno-decisions-`) || !strings.HasSuffix(cd, `.csv"`) {
			t.Errorf("CSV export: Content-Type %q, Content-Disposition %q", ct, cd)
		}
		if r := csvOut.records[0]; r.Decision != "origin_blocked" || r.Reason != "origin_not_allowed" || r.Origin != evil || r.ProjectID != shop {
			t.Errorf("CSV export's first row: %+v", r)
		}
		jsonOut := owner.export(t, query("project", shop, "since", since, "format", "json"))
		if !slices.Equal(ids(jsonOut.records), want) || jsonOut.truncated != "false" || jsonOut.header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("JSON export: %v (truncated %q, %s), want %v", ids(jsonOut.records), jsonOut.truncated, jsonOut.header.Get("Content-Type"), want)
		}
		listed := owner.decisions(t, query("project", shop, "since", since))
		for i := range min(len(listed), len(jsonOut.records)) {
			if !equalRecords(listed[i], jsonOut.records[i]) {
				t.Errorf("JSON export's record %d: %+v, listed %+v", i, jsonOut.records[i], listed[i])
			}
		}
		accepts := owner.export(t, query("project", shop, "since", since, "decision", "accept", "format", "json"))
		if len(accepts.records) != 7 {
			t.Errorf("export of the accepts: %d records, want 7", len(accepts.records))
		}
		bounded := owner.export(t, query("project", shop, "since", since, "max", "2"))
		if !slices.Equal(ids(bounded.records), want[:2]) || bounded.truncated != "true" {
			t.Errorf("export of at most 2: %v (truncated %q), want %v and truncated", ids(bounded.records), bounded.truncated, want[:2])
		}
	})
}

// equalRecords compares two records field by field (times by instant).
func equalRecords(a, b audit.Record) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errors.Join(errA, errB) == nil && string(ja) == string(jb)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

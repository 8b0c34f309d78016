package console_test

// Helpers of the API tests: widget connections through the stack's
// ingress, waits for the audit to hold them, and the audit read through
// internal/audit.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// auditWait bounds every wait for the audit: an auditor stores a batch
// within its batch wait, ClickHouse answers in milliseconds.
const auditWait = 30 * time.Second

// withBatchWait makes the auditor store what it has after d, so that the
// tests wait less for their decisions and admin events.
func withBatchWait(d time.Duration) envOption {
	return func(c *stack.Config) { c.Auditor.BatchWait = d }
}

// widgetReq is one widget connection attempt, POST /v1/widget/connect, as
// the widget sends it.
type widgetReq struct {
	project, token, userID, origin, userAgent string
}

// connectAnswer is the ingress's answer to a widget.
type connectAnswer struct {
	status     int
	Decision   string `json:"decision"`
	DecisionID string `json:"decisionId"`
	Reason     string `json:"reason"`
}

// connect sends a widget's connection attempt through the stack's ingress
// and returns the answer; it fails the test unless the answer is the
// decision want (and, for a refusal, its reason).
func (e *env) connect(t testing.TB, w widgetReq, want events.Outcome, reason events.Reason) connectAnswer {
	t.Helper()
	a, err := e.tryConnect(stacktest.Context(t, 30*time.Second), w, want, reason)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryConnect is connect returning its failure, for goroutines.
func (e *env) tryConnect(ctx context.Context, w widgetReq, want events.Outcome, reason events.Reason) (connectAnswer, error) {
	body := map[string]any{"projectId": w.project}
	if w.token != "" {
		body["widgetToken"] = w.token
	}
	if w.userID != "" {
		body["userId"] = w.userID
	}
	b, err := json.Marshal(body)
	if err != nil {
		return connectAnswer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.st.HTTPAddr+ingress.ConnectPath, bytes.NewReader(b))
	if err != nil {
		return connectAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if w.origin != "" {
		req.Header.Set("Origin", w.origin)
	}
	if w.userAgent != "" {
		req.Header.Set("User-Agent", w.userAgent)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return connectAnswer{}, fmt.Errorf("connect: %w", err)
	}
	defer res.Body.Close()
	a := connectAnswer{status: res.StatusCode}
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		return connectAnswer{}, fmt.Errorf("connect: status %d, answer not JSON: %w", res.StatusCode, err)
	}
	if a.Decision != string(want) || a.Reason != string(reason) || a.DecisionID == "" {
		return a, fmt.Errorf("connect %+v: answered %d %+v, want %s %s", w, res.StatusCode, a, want, reason)
	}
	return a, nil
}

// waitDecisions waits until ClickHouse holds every decision of ids.
func (e *env) waitDecisions(t testing.TB, ids ...string) {
	t.Helper()
	stacktest.Eventually(t, auditWait, fmt.Sprintf("%d decisions stored", len(ids)), func() error {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		n := stacktest.Count(t, e.ch, "SELECT count() FROM hissuno_decisions FINAL WHERE decision_id IN (?"+strings.Repeat(", ?", len(ids)-1)+")", args...)
		if n != uint64(len(ids)) {
			return fmt.Errorf("%d of %d stored", n, len(ids))
		}
		return nil
	})
}

// waitAdminEvents waits until the audit holds at least n admin events
// matching f, and returns them, newest first.
func (e *env) waitAdminEvents(t testing.TB, f audit.Filter, n int) []audit.AdminRecord {
	t.Helper()
	if f.Since.IsZero() {
		f.Since = time.Now().Add(-time.Hour)
	}
	f.Limit = audit.MaxPage
	var got []audit.AdminRecord
	stacktest.Eventually(t, auditWait, fmt.Sprintf("%d admin events %+v stored", n, f), func() error {
		var err error
		got, err = audit.AdminEvents(stacktest.Context(t, 30*time.Second), e.ch, f)
		if err != nil {
			return err
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d stored", len(got), n)
		}
		return nil
	})
	return got
}

// insertDecisions stores decisions in ClickHouse as the auditor does, in
// one batch, for what the ingress cannot make (decisions of the past).
func (e *env) insertDecisions(t testing.TB, ds ...events.Decision) {
	t.Helper()
	rows := make([][]any, 0, len(ds))
	for _, d := range ds {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		row, err := audit.DecisionsTable.Row(events.SubjectDecisions, b)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if err := audit.Insert(stacktest.Context(t, 30*time.Second), e.ch, audit.DecisionsTable, rows); err != nil {
		t.Fatalf("insert decisions: %v", err)
	}
}

// query is a URL query of key, value pairs, "?" included; empty values are
// left out.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Add(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// rfc3339 formats a time as the API's query parameters take it.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// decisions lists every decision matching the query (every page).
func (c *client) decisions(t testing.TB, q string) []audit.Record {
	t.Helper()
	var all []audit.Record
	cursor := ""
	for {
		path := "/api/v1/audit/decisions" + q
		if cursor != "" {
			path += map[bool]string{true: "&", false: "?"}[q != ""] + "cursor=" + url.QueryEscape(cursor)
		}
		var page audit.Page
		c.do(t, http.MethodGet, path, nil).want(t, http.StatusOK).decode(t, &page)
		all = append(all, page.Records...)
		if page.Next == "" {
			return all
		}
		cursor = page.Next
	}
}

// adminEvents lists the admin events matching the query (one page of at
// most 1,000).
func (c *client) adminEvents(t testing.TB, q string) []audit.AdminRecord {
	t.Helper()
	var page audit.AdminPage
	c.do(t, http.MethodGet, "/api/v1/audit/admin-events"+q, nil).want(t, http.StatusOK).decode(t, &page)
	return page.Events
}

// ids are the decision ids of records, in order.
func ids(rs []audit.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.DecisionID
	}
	return out
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// wantProblem checks an error answer: the status and an RFC 9457 problem
// body saying it, with a detail that contains every one of details.
func (r *resp) wantProblem(t testing.TB, status int, details ...string) problem {
	t.Helper()
	r.want(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s: %d answered as %q, want application/problem+json", r.method, r.path, status, ct)
	}
	p := r.problem(t)
	if p.Status != status || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Errorf("%s %s: problem %+v, want status %d titled %q with a detail", r.method, r.path, p, status, http.StatusText(status))
	}
	for _, d := range details {
		if !strings.Contains(p.Detail, d) {
			t.Errorf("%s %s: problem detail %q does not say %q", r.method, r.path, p.Detail, d)
		}
	}
	return p
}

// fresh zeroes *v and returns v, to decode an answer into a variable used
// before: decoding merges into what is there (an omitted field would keep
// the previous answer's value).
func fresh[T any](v *T) *T {
	var zero T
	*v = zero
	return v
}

// token mints a widget token of user, issued a minute ago, valid an hour.
func token(t testing.TB, key, user string, metadata map[string]string) string {
	t.Helper()
	return stacktest.Mint(t, key, widgettoken.For(user, metadata, time.Now().Add(-time.Minute), time.Hour))
}

// mapKeys are the keys of m, in no order.
func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/events"
)

// The reads an admin console makes of the audit: pages of decisions and
// admin events, one decision. Each shows a decision stored twice (a
// redelivered batch) once: it reads with FINAL, or reads one row.

// Page sizes: DefaultPage when Filter.Limit is not set, never more than
// MaxPage.
const (
	DefaultPage = 100
	MaxPage     = 1000
)

func pageSize(n int) int {
	if n <= 0 {
		return DefaultPage
	}
	return min(n, MaxPage)
}

// Page is a page of decisions, newest first.
type Page struct {
	// Records are the page's decisions; empty, never nil, when none.
	Records []Record `json:"records"`
	// Next is the cursor of the following page; "" on the last.
	Next string `json:"next,omitempty"`
}

// AdminPage is a page of admin events, newest first.
type AdminPage struct {
	// Events are the page's admin events; empty, never nil, when none.
	Events []AdminRecord `json:"events"`
	// Next is the cursor of the following page; "" on the last.
	Next string `json:"next,omitempty"`
}

// listing is a table read page by page in the order (time, time_us, id)
// descending.
type listing[T any] struct {
	what     string // in errors
	table    string
	columns  string
	id       string // the column that orders rows of one microsecond
	kind     byte   // of its cursors
	scan     func(driver.Rows) (T, error)
	position func(T) position
}

var decisionPages = listing[Record]{
	what: "decisions", table: "hissuno_decisions", columns: DecisionColumns, id: "decision_id", kind: cursorDecisions,
	scan:     scanRecord,
	position: func(r Record) position { return positionOf(r.Time, r.DecisionID) },
}

var adminPages = listing[AdminRecord]{
	what: "admin events", table: "hissuno_admin_events", columns: AdminColumns, id: "event_id", kind: cursorAdmin,
	scan:     scanAdminRecord,
	position: func(r AdminRecord) position { return positionOf(r.Time, r.EventID) },
}

// page reads the rows c selects after cursor: up to limit of them, and the
// cursor of the next page when there are more (it reads one more to know).
func (l listing[T]) page(ctx context.Context, conn driver.Conn, c *conds, cursor string, limit int) ([]T, string, error) {
	if cursor != "" {
		p, err := parsePosition(cursor, l.kind)
		if err != nil {
			return nil, "", badCursor(l.what, err)
		}
		p.after(c, l.id)
	}
	n := pageSize(limit)
	q := "SELECT " + l.columns + " FROM " + l.table + " FINAL" + c.String() +
		" ORDER BY time DESC, time_us DESC, " + l.id + " DESC LIMIT ?"
	rows, err := conn.Query(ctx, q, append(c.args, n+1)...)
	if err != nil {
		return nil, "", queryError(err)
	}
	out, err := collect(rows, l.what, l.scan)
	if err != nil {
		return nil, "", err
	}
	if len(out) <= n {
		if out == nil {
			out = []T{}
		}
		return out, "", nil
	}
	out = out[:n]
	return out, l.position(out[n-1]).cursor(l.kind), nil
}

// DecisionsPage returns a page of the decisions matching f, each once,
// newest first by (time, time_us, decision_id) descending: up to f.Limit
// (DefaultPage when not set, at most MaxPage) decisions after cursor, ""
// for the first page. Page.Next is the cursor of the following page.
//
// Pages are by keyset: a page holds the decisions strictly after the last
// one of the page before, so decisions stored in between never shift or
// repeat a decision across pages. A decision stored late, with an earlier
// time, shows on a later page when it sorts after the cursor, and on none
// when it sorts before. A cursor is opaque (the last decision's time and
// id); a malformed one, or another query's, is ErrBadCursor. A user's connection
// history is DecisionsPage with Filter.ProjectID and Filter.UserID (and
// Filter.Session authenticated for the verified ones only).
func DecisionsPage(ctx context.Context, conn driver.Conn, f Filter, cursor string) (Page, error) {
	recs, next, err := decisionPages.page(ctx, conn, f.decisions(), cursor, f.Limit)
	if err != nil {
		return Page{}, err
	}
	return Page{Records: recs, Next: next}, nil
}

// AdminEventsPage is DecisionsPage for the admin events matching f, in the
// order (time, time_us, event_id) descending.
func AdminEventsPage(ctx context.Context, conn driver.Conn, f Filter, cursor string) (AdminPage, error) {
	recs, next, err := adminPages.page(ctx, conn, f.admin(), cursor, f.Limit)
	if err != nil {
		return AdminPage{}, err
	}
	return AdminPage{Events: recs, Next: next}, nil
}

// ErrNotFound means no decision has the id, or none in the projects
// allowed.
var ErrNotFound = errors.New("not found")

// decisionIDSlack is how long before the time its attempt id carries a
// decision is looked for. A verifier decides after the ingress received
// the attempt, so only the skew of their clocks makes a decision earlier.
const decisionIDSlack = 24 * time.Hour

// Decision returns the decision with the id, in one of projects as
// Filter.Projects restricts (nil: any project; empty: none, so
// ErrNotFound), so that an account limited to some projects cannot read
// the others' decisions: ErrNotFound says the same whether the decision is
// missing or another project's.
//
// The table is ordered by project first, so a lookup by id alone scans;
// the projects bound it when given, and an id of the ingress's form carries
// the time its attempt was received: only the partitions and parts from a
// day before it are read. A decision whose verifier's clock ran more than
// a day behind its ingress's is not found. The row is read without FINAL:
// the copies of a decision stored twice are identical, and one is read.
func Decision(ctx context.Context, conn driver.Conn, id string, projects []string) (Record, error) {
	if id == "" || (projects != nil && len(projects) == 0) {
		return Record{}, fmt.Errorf("decision %.100q: %w", id, ErrNotFound)
	}
	c := &conds{}
	c.add("decision_id = ?", id)
	c.in("project_id", projects)
	if attempt, ok := strings.CutPrefix(id, events.DecisionIDFor("")); ok {
		if t, ok := events.AttemptTime(attempt); ok {
			c.add("time >= toDateTime(?)", dateTimeSeconds(t.Add(-decisionIDSlack)))
		}
	}
	rows, err := conn.Query(ctx, "SELECT "+DecisionColumns+" FROM hissuno_decisions"+c.String()+" LIMIT 1", c.args...)
	if err != nil {
		return Record{}, queryError(err)
	}
	recs, err := collect(rows, "decision", scanRecord)
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 {
		return Record{}, fmt.Errorf("decision %.100q: %w", id, ErrNotFound)
	}
	return recs[0], nil
}

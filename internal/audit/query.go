package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/hissuno/widgetauth/events"
)

// Filter selects audit records. Zero fields do not filter. Decision
// queries honour every field but Kind and Actor; admin-event queries honour
// ProjectID, Projects, Since, Until, UserID, Kind and Actor.
type Filter struct {
	// ProjectID restricts to one project.
	ProjectID string
	// Projects restricts to these projects, for an account limited to
	// some: nil does not restrict, an empty (non-nil) slice matches
	// nothing. With ProjectID too, both apply.
	Projects []string
	// Since and Until bound the time, to the second: Since included, Until
	// excluded; a zero Until is a minute from now.
	Since time.Time
	Until time.Time
	// Decision is an outcome (events.Outcome*), or DecisionRefused for
	// every outcome but accept.
	Decision string
	// Reason is a refusal reason (events.Reason*).
	Reason string
	// Session is the session of an accept: events.SessionAuthenticated or
	// events.SessionAnonymous (a refusal has none).
	Session string
	// UserID is the decision's user (a verified one in an authenticated
	// session, the client's in an anonymous one) or the admin event's.
	UserID string
	// Origin is the request's Origin header, verbatim.
	Origin string
	// Kind is an admin event's kind (events.Admin*).
	Kind string
	// Actor is an admin event's actor, exactly as stored
	// ("nats:admin", "console:ada@example.com").
	Actor string
	// Limit bounds the rows returned; default 100.
	Limit int
}

// conds is a WHERE clause being built: conditions joined by AND, every
// value bound (a ? and an argument), never spliced into the SQL.
type conds struct {
	sql  []string
	args []any
	// since and until are the time range the clause selects, DateTime
	// seconds, until excluded (both 0 when it has none): the newest rows
	// are looked for in windows at its end first (window).
	since, until int64
	// narrow is whether it selects some projects or one user only: few
	// rows, or narrow ranges of the primary index, read without windows
	// (which would only add queries: a user's month over every project
	// took 0.21 s at once, 0.46 s in five windows).
	narrow bool
}

// clone is a copy of c that conditions can be added to.
func (c *conds) clone() *conds {
	d := *c
	d.sql, d.args = slices.Clone(c.sql), slices.Clone(c.args)
	return &d
}

// Windows: the newest rows of a long range are looked for in the last hour
// of it first, then in a range eight times longer, and so on (window).
const (
	firstWindow  = 3600
	windowGrowth = 8
)

// window is c restricted to the last w seconds of its range, and whether
// that covers the whole range (then it is c itself). ClickHouse reads only
// the window's granules, so that the newest hundred decisions of a month
// over every project read an hour of it when it holds them (issue 16: 1.3 s
// to 0.13 s for 20 M decisions); a growth of eight costs at most a seventh
// more than reading the range at once when it does not.
func (c *conds) window(w int64) (*conds, bool) {
	if c.narrow || c.until == 0 || c.until-w <= c.since {
		return c, true
	}
	d := c.clone()
	d.add("time >= toDateTime(?)", c.until-w)
	return d, false
}

// add appends a condition and the values of its placeholders.
func (c *conds) add(cond string, args ...any) {
	c.sql = append(c.sql, cond)
	c.args = append(c.args, args...)
}

// eq restricts col to v, unless v is empty.
func (c *conds) eq(col, v string) {
	if v != "" {
		c.add(col+" = ?", v)
	}
}

// in restricts col to vs: nil does not restrict, an empty slice matches
// nothing.
func (c *conds) in(col string, vs []string) {
	switch {
	case vs == nil:
	case len(vs) == 0:
		c.add("0")
	default:
		args := make([]any, len(vs))
		for i, v := range vs {
			args[i] = v
		}
		c.add(col+" IN ("+strings.Repeat("?, ", len(vs)-1)+"?)", args...)
	}
}

// String is the clause, with a leading space.
func (c *conds) String() string { return " WHERE " + strings.Join(c.sql, " AND ") }

// common is the part of the clause every audit table shares: the time
// range and the project.
func (f Filter) common() *conds {
	since, until := f.span()
	c := &conds{since: since, until: until}
	c.add("time >= toDateTime(?)", since)
	c.add("time < toDateTime(?)", until)
	c.eq("project_id", f.ProjectID)
	c.in("project_id", f.Projects)
	c.narrow = f.ProjectID != "" || f.Projects != nil || f.UserID != ""
	return c
}

// span is the time range as DateTime seconds: Since included, Until
// excluded, a zero Until a minute from now.
func (f Filter) span() (since, until int64) {
	u := f.Until
	if u.IsZero() {
		u = time.Now().Add(time.Minute)
	}
	return dateTimeSeconds(f.Since), dateTimeSeconds(u)
}

// DecisionRefused as Filter.Decision selects every refusal: unauthorized
// and origin_blocked.
const DecisionRefused = "refused"

// decisions is the clause selecting decisions.
func (f Filter) decisions() *conds {
	c := f.common()
	if f.Decision == DecisionRefused {
		c.add("decision != ?", string(events.OutcomeAccept))
	} else {
		c.eq("decision", f.Decision)
	}
	c.eq("reason", f.Reason)
	c.eq("user_id", f.UserID)
	c.eq("origin", f.Origin)
	c.eq("session", f.Session)
	return c
}

// admin is the clause selecting admin events: the decision fields do not
// apply.
func (f Filter) admin() *conds {
	c := f.common()
	c.eq("user_id", f.UserID)
	c.eq("kind", f.Kind)
	c.eq("actor", f.Actor)
	return c
}

// dateTimeSeconds is t as the seconds a ClickHouse DateTime holds (an
// unsigned 32-bit count from 1970): earlier times, the zero time included,
// are 1970 and later ones 2106. ClickHouse would wrap them instead, so that
// a zero Since (year 1) became 2042 and matched nothing.
func dateTimeSeconds(t time.Time) int64 {
	return min(max(t.Unix(), 0), math.MaxUint32)
}

// Record is one decision as security teams see it. The JSON field names are
// the public contract of `hissuno audit query --format json`; userMetadata
// is null when the decision recorded none (nullable in the console's
// OpenAPI document).
type Record struct {
	DecisionID       string            `json:"decisionId"`
	AttemptID        string            `json:"attemptId"`
	Time             time.Time         `json:"time"`
	ProjectID        string            `json:"projectId"`
	Decision         string            `json:"decision"`
	Reason           string            `json:"reason"`
	Message          string            `json:"message"`
	Session          string            `json:"session"`
	UserID           string            `json:"userId"`
	UserVerified     bool              `json:"userVerified"`
	UserMetadata     map[string]string `json:"userMetadata" nullable:"true"`
	ClaimedUserID    string            `json:"claimedUserId"`
	Origin           string            `json:"origin"`
	TokenFingerprint string            `json:"tokenFingerprint"`
	KeyVersion       uint32            `json:"keyVersion"`
	SkewSeconds      int64             `json:"skewSeconds"`
	Verifier         string            `json:"verifier"`
	Ingress          string            `json:"ingress"`
	LatencyMicros    uint64            `json:"latencyMicros"`
	ClientIP         string            `json:"clientIp"`
	UserAgent        string            `json:"userAgent"`
}

// Decisions returns decisions matching f, each once, newest first by
// (time, time_us, decision_id) descending, as DecisionsPage orders them.
func Decisions(ctx context.Context, conn driver.Conn, f Filter) ([]Record, error) {
	return decisionPages.newest(ctx, conn, f.decisions(), limit(f.Limit))
}

// scanRecord reads a row of DecisionColumns.
func scanRecord(rows driver.Rows) (Record, error) {
	var r Record
	var t, received time.Time
	var us uint32
	var verified uint8
	var meta string
	if err := rows.Scan(&r.DecisionID, &r.AttemptID, &t, &us, &received, &r.ProjectID, &r.Decision, &r.Reason, &r.Message, &r.Session,
		&r.UserID, &verified, &meta, &r.ClaimedUserID, &r.Origin, &r.TokenFingerprint, &r.KeyVersion, &r.SkewSeconds,
		&r.Verifier, &r.Ingress, &r.LatencyMicros, &r.ClientIP, &r.UserAgent); err != nil {
		return Record{}, err
	}
	r.Time = t.UTC().Add(time.Duration(us) * time.Microsecond)
	r.UserVerified = verified == 1
	r.UserMetadata = metadata(meta)
	return r, nil
}

// metadata decodes a user_metadata column: nil when empty (or, which the
// auditor never stores, not a JSON object of strings).
func metadata(s string) map[string]string {
	if s == "" {
		return nil
	}
	var m map[string]string
	_ = json.Unmarshal([]byte(s), &m)
	return m
}

// collect reads every row with scan, closing rows; what names the rows in
// an error.
func collect[T any](rows driver.Rows, what string, scan func(driver.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// Group names what Stats counts by.
type Group string

// The groupings of `hissuno audit stats --by`.
const (
	ByDecision Group = "decision"
	ByReason   Group = "reason"
	ByOrigin   Group = "origin"
	ByUser     Group = "user"
	ByHour     Group = "hour"
)

// Groups lists every grouping.
var Groups = []Group{ByDecision, ByReason, ByOrigin, ByUser, ByHour}

// Stat is one group's count.
type Stat struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

// Stats counts decisions matching f by group, each decision once. Every
// group is returned unless f.Limit is set.
func Stats(ctx context.Context, conn driver.Conn, f Filter, by Group) ([]Stat, error) {
	expr, ok := groupKeys[by]
	if !ok {
		return nil, fmt.Errorf("--by %q: use decision, reason, origin, user or hour", by)
	}
	return groupStats(ctx, conn, "count()", "hissuno_decisions", expr, by == ByHour, f.decisions(), f.Limit, "stats")
}

// groupStats runs SELECT key, measure FROM table WHERE c GROUP BY key: the
// largest first (in time order for an hourly key), at most limit groups
// (all when limit is 0). what names the rows in an error.
func groupStats(ctx context.Context, conn driver.Conn, measure, table string, key groupKey, hourly bool, c *conds, limit int, what string) ([]Stat, error) {
	order := "n DESC, k"
	if hourly {
		order = "k"
	}
	q := "SELECT " + key.show + " AS k, " + measure + " AS n FROM " + table + c.String() + " GROUP BY " + key.group + " ORDER BY " + order
	args := c.args
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, queryError(err)
	}
	return collect(rows, what, func(rows driver.Rows) (Stat, error) {
		var s Stat
		err := rows.Scan(&s.Key, &s.Count)
		return s, err
	})
}

// The keys that stand for an empty value in a grouping: KeyAccept for the
// reason of an accept, KeyNone for a decision without an origin or a user.
const (
	KeyAccept = "(accept)"
	KeyNone   = "(none)"
)

// groupKey is a grouping's key in SQL: what rows are grouped by, and the
// key shown, an expression of it computed once a group rather than once a
// row (grouping 20 M decisions by the user_id column rather than by
// the if() that shows an empty one as (none)) took 1.1 s instead of 1.3 s).
type groupKey struct{ group, show string }

// sameKey is a key shown as it is grouped.
func sameKey(expr string) groupKey { return groupKey{group: expr, show: expr} }

// groupKeys is each grouping's key.
var groupKeys = map[Group]groupKey{
	ByDecision: sameKey("decision"),
	ByReason:   {group: "reason", show: "if(reason = '', '" + KeyAccept + "', reason)"},
	ByOrigin:   {group: "origin", show: "if(origin = '', '" + KeyNone + "', origin)"},
	ByUser:     {group: "user_id", show: "if(user_id = '', '" + KeyNone + "', user_id)"},
	ByHour:     {group: "toStartOfHour(time)", show: "formatDateTime(toStartOfHour(time), '%Y-%m-%d %H:00')"},
}

// AdminRecord is one admin event as security teams see it.
type AdminRecord struct {
	EventID            string     `json:"eventId"`
	CommandID          string     `json:"commandId"`
	Time               time.Time  `json:"time"`
	Kind               string     `json:"kind"`
	Actor              string     `json:"actor"`
	ProjectID          string     `json:"projectId"`
	Name               string     `json:"name"`
	RequireToken       bool       `json:"requireToken"`
	Origins            []string   `json:"origins"`
	KeyVersion         uint32     `json:"keyVersion"`
	PreviousKeyVersion uint32     `json:"previousKeyVersion"`
	KeyFingerprint     string     `json:"keyFingerprint"`
	GraceSeconds       int64      `json:"graceSeconds"`
	GraceUntil         *time.Time `json:"graceUntil"`
	UserID             string     `json:"userId"`
	RevokedBefore      *time.Time `json:"revokedBefore"`
	Revision           uint64     `json:"revision"`
	Reason             string     `json:"reason"`
	Account            string     `json:"account"`
	ClientIP           string     `json:"clientIp"`
	UserAgent          string     `json:"userAgent"`
}

// AdminEvents returns admin events matching f (projects, time range, user,
// kind, actor), newest first, each once.
func AdminEvents(ctx context.Context, conn driver.Conn, f Filter) ([]AdminRecord, error) {
	return adminPages.newest(ctx, conn, f.admin(), limit(f.Limit))
}

// scanAdminRecord reads a row of AdminColumns.
func scanAdminRecord(rows driver.Rows) (AdminRecord, error) {
	var r AdminRecord
	var t, grace, revoked time.Time
	var us uint32
	var requireToken uint8
	if err := rows.Scan(&r.EventID, &r.CommandID, &r.Kind, &r.Actor, &t, &us, &r.ProjectID, &r.Name, &requireToken, &r.Origins,
		&r.KeyVersion, &r.PreviousKeyVersion, &r.KeyFingerprint, &r.GraceSeconds, &grace, &r.UserID, &revoked, &r.Revision,
		&r.Reason, &r.Account, &r.ClientIP, &r.UserAgent); err != nil {
		return AdminRecord{}, err
	}
	r.Time = t.UTC().Add(time.Duration(us) * time.Microsecond)
	r.RequireToken = requireToken == 1
	r.GraceUntil = timeOrNil(grace)
	r.RevokedBefore = timeOrNil(revoked)
	return r, nil
}

// timeOrNil is a DateTime column that is 1970 when unset (timeOrZero's
// zero) as a time, or nil.
func timeOrNil(t time.Time) *time.Time {
	if t.Unix() <= 0 {
		return nil
	}
	u := t.UTC()
	return &u
}

func limit(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}

// codeUnknownTable is ClickHouse's UNKNOWN_TABLE exception.
const codeUnknownTable = 60

// ErrNotMigrated means the audit tables do not exist yet.
var ErrNotMigrated = errors.New("the audit tables do not exist yet")

func queryError(err error) error {
	var exc *clickhouse.Exception
	if errors.As(err, &exc) && exc.Code == codeUnknownTable {
		return fmt.Errorf("%w: run `hissuno audit migrate` or start the auditor: %w", ErrNotMigrated, err)
	}
	return fmt.Errorf("audit query: %w", err)
}

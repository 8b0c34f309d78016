package audit

import (
	"context"
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

// The reads an admin console makes of the audit: pages of decisions and
// admin events, one decision, time series, top lists, users and per-project
// figures, and a streamed export. None reads with FINAL (which merges every
// part of the range first, 25–130× slower over a month of decisions): the
// auditor never stores a row twice (it looks up a redelivered batch's rows
// before inserting them), so the counts are plain count()s; and the
// listings still drop a copy should one be there (a row of an older
// auditor not merged yet, or of an auditor cut off from NATS whose insert
// landed after AckWait, DESIGN.md): pages keep the first of identical
// neighbours (listing.newest), the export and the admin events read
// LIMIT 1 BY their id, one decision reads one row.

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
	// small is whether the table holds few rows (admin events: a few a
	// day), read whole in one query rather than in two narrow ones.
	small bool
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
	small:    true,
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
	out, err := l.newest(ctx, conn, c, n+1)
	if err != nil {
		return nil, "", err
	}
	if len(out) <= n {
		return out, "", nil
	}
	out = out[:n]
	return out, l.position(out[n-1]).cursor(l.kind), nil
}

// newest reads the n newest rows c selects, each once, in the order (time,
// time_us, id) descending; an empty slice, never nil, when there are none.
//
// A small table's rows are read in one query (newestWhole). Other tables
// are read without FINAL, which on ClickHouse merges every part of the
// range before it can sort (a second for a day of a million decisions):
// first the narrow (time, time_us, id, project) of twice as many rows as it needs,
// dropping the copies a redelivered batch stored (identical rows, so
// neighbours in that order; it reads more when copies leave it short), then
// the whole rows of those ids alone, through the primary index: their
// projects and range of time.
func (l listing[T]) newest(ctx context.Context, conn driver.Conn, c *conds, n int) ([]T, error) {
	order := " ORDER BY time DESC, time_us DESC, " + l.id + " DESC"
	if l.small {
		return l.newestWhole(ctx, conn, c, n, order)
	}
	var keys []position
	var projects []string
	// The newest are looked for in windows at the end of the range
	// (conds.window), each eight times the last.
	for w := int64(firstWindow); ; w *= windowGrowth {
		wc, whole := c.window(w)
		for want := 2 * n; ; want *= 4 {
			q := "SELECT toUInt32(time), time_us, " + l.id + ", project_id FROM " + l.table + wc.String() + order + " LIMIT ?"
			rows, err := conn.Query(ctx, q, append(wc.args, want)...)
			if err != nil {
				return nil, queryError(err)
			}
			read := 0
			keys, projects, err = collectDistinct(rows, l.what, n, &read)
			if err != nil {
				return nil, err
			}
			if len(keys) == n || read < want {
				break
			}
		}
		if len(keys) == n || whole {
			break
		}
	}
	if len(keys) == 0 {
		return []T{}, nil
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.id
	}
	whole := c.clone()
	whole.add("time >= toDateTime(?) AND time <= toDateTime(?)", keys[len(keys)-1].sec, keys[0].sec)
	// The projects first: the primary index then reads only their rows
	// (one project's, for a user's history over a month).
	whole.in("project_id", projects)
	whole.in(l.id, ids)
	rows, err := conn.Query(ctx, "SELECT "+l.columns+" FROM "+l.table+whole.String()+order, whole.args...)
	if err != nil {
		return nil, queryError(err)
	}
	all, err := collect(rows, l.what, l.scan)
	if err != nil {
		return nil, err
	}
	return l.distinct(all, len(keys)), nil
}

// distinct is up to n of rows, in their order, a copy dropped as the
// neighbour it is in that order.
func (l listing[T]) distinct(rows []T, n int) []T {
	out := make([]T, 0, min(n, len(rows)))
	for _, r := range rows {
		if len(out) == n {
			break
		}
		if p := l.position(r); len(out) == 0 || p != l.position(out[len(out)-1]) {
			out = append(out, r)
		}
	}
	return out
}

// newestWhole is newest in one query of whole rows: twice as many as it
// needs, a copy dropped as the neighbour it is in that order (LIMIT 1 BY
// would sort every row of the range, not only the first ones: 17 ms
// against 7 for a month of 10,000 admin events), more read when copies
// leave it short.
func (l listing[T]) newestWhole(ctx context.Context, conn driver.Conn, c *conds, n int, order string) ([]T, error) {
	for want := 2 * n; ; want *= 4 {
		rows, err := conn.Query(ctx, "SELECT "+l.columns+" FROM "+l.table+c.String()+order+" LIMIT ?", append(c.args, want)...)
		if err != nil {
			return nil, queryError(err)
		}
		all, err := collect(rows, l.what, l.scan)
		if err != nil {
			return nil, err
		}
		out := l.distinct(all, n)
		if len(out) == n || len(all) < want {
			return out, nil
		}
	}
}

// collectDistinct reads (seconds, microseconds, id, project) rows into
// positions, dropping a row equal to the one before it, until it holds n,
// and the projects of those; read counts the rows read.
func collectDistinct(rows driver.Rows, what string, n int, read *int) ([]position, []string, error) {
	defer rows.Close()
	var out []position
	var projects []string
	seen := map[string]bool{}
	for rows.Next() {
		var sec, us uint32
		var id, project string
		if err := rows.Scan(&sec, &us, &id, &project); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", what, err)
		}
		*read++
		p := position{sec: int64(sec), us: us, id: id}
		if len(out) > 0 && out[len(out)-1] == p {
			continue
		}
		if len(out) == n {
			break
		}
		out = append(out, p)
		if !seen[project] {
			seen[project] = true
			projects = append(projects, project)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, queryError(err)
	}
	return out, projects, nil
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

// Bucket is the width of a Series point, in UTC.
type Bucket string

// The buckets of Series.
const (
	BucketMinute Bucket = "minute"
	BucketHour   Bucket = "hour"
	BucketDay    Bucket = "day"
)

// Buckets lists every bucket, finest first.
var Buckets = []Bucket{BucketMinute, BucketHour, BucketDay}

// Width is the bucket's length; 0 for an unknown bucket.
func (b Bucket) Width() time.Duration {
	switch b {
	case BucketMinute:
		return time.Minute
	case BucketHour:
		return time.Hour
	case BucketDay:
		return 24 * time.Hour
	}
	return 0
}

// bucketStarts is the SQL of the start of each bucket holding time, as
// seconds (the driver never reads it in a time zone of its own).
var bucketStarts = map[Bucket]string{
	BucketMinute: "toUInt32(toStartOfMinute(time, 'UTC'))",
	BucketHour:   "toUInt32(toStartOfHour(time, 'UTC'))",
	BucketDay:    "toUInt32(toStartOfDay(time, 'UTC'))",
}

// Split is what a Series counts separately in each bucket.
type Split string

// The splits of Series: by outcome, or by reason (KeyAccept for accepts,
// as Stats names them).
const (
	SplitDecision Split = "decision"
	SplitReason   Split = "reason"
)

// Splits lists every split.
var Splits = []Split{SplitDecision, SplitReason}

var splitKeys = map[Split]string{
	SplitDecision: groupKeys[ByDecision].show,
	SplitReason:   groupKeys[ByReason].show,
}

// MaxBuckets bounds the buckets in a Series' range.
const MaxBuckets = 10_000

// ErrTooManyBuckets means a Series' range holds more than MaxBuckets
// buckets.
var ErrTooManyBuckets = errors.New("too many buckets")

// Point is the count of one key in one bucket of a Series.
type Point struct {
	// Time is the start of the bucket, UTC.
	Time time.Time `json:"time"`
	// Key is the decision or the reason.
	Key string `json:"key"`
	// Count is how many decisions the bucket holds with the key.
	Count uint64 `json:"count"`
}

// Series counts the decisions matching f in buckets of time (UTC), each
// key of split apart, sorted by time then key. Only the buckets and keys
// that hold decisions are returned: the caller fills the gaps, with
// bucket.Width() steps from the bucket holding f.Since to the one before
// f.Until (the first and last buckets count only the part of them in the
// range). A range of more than MaxBuckets buckets is ErrTooManyBuckets, a
// zero Since (1970) too whatever the bucket: set one.
func Series(ctx context.Context, conn driver.Conn, f Filter, bucket Bucket, split Split) ([]Point, error) {
	start, ok := bucketStarts[bucket]
	if !ok {
		return nil, fmt.Errorf("series bucket %q: use minute, hour or day", bucket)
	}
	key, ok := splitKeys[split]
	if !ok {
		return nil, fmt.Errorf("series split %q: use decision or reason", split)
	}
	since, until := f.span()
	if w := int64(bucket.Width() / time.Second); until > since {
		if n := (until-1)/w - since/w + 1; n > MaxBuckets {
			return nil, fmt.Errorf("%w: %s to %s holds %d %s buckets, at most %d: pick a coarser bucket or a narrower range",
				ErrTooManyBuckets, time.Unix(since, 0).UTC().Format(time.RFC3339), time.Unix(until, 0).UTC().Format(time.RFC3339), n, bucket, MaxBuckets)
		}
	}
	c := f.decisions()
	q := "SELECT " + start + " AS b, " + key + " AS k, count() AS n FROM hissuno_decisions" + c.String() + " GROUP BY b, k ORDER BY b, k"
	rows, err := conn.Query(ctx, q, c.args...)
	if err != nil {
		return nil, queryError(err)
	}
	return collect(rows, "series", func(rows driver.Rows) (Point, error) {
		var p Point
		var b uint32
		err := rows.Scan(&b, &p.Key, &p.Count)
		p.Time = time.Unix(int64(b), 0).UTC()
		return p, err
	})
}

// Top sizes: DefaultTop when n is not set, never more than MaxTop.
const (
	DefaultTop = 10
	MaxTop     = 1000
)

// Top returns the n groups (DefaultTop when n is 0 or less, at most MaxTop)
// of the most decisions matching f, by origin, reason or user: Stats' first
// n, with its keys (KeyNone groups the decisions without an origin or a
// user, KeyAccept the accepts' empty reason, and counts like any other key)
// and its order (most first, ties by key).
func Top(ctx context.Context, conn driver.Conn, f Filter, by Group, n int) ([]Stat, error) {
	switch by {
	case ByOrigin, ByReason, ByUser:
	default:
		return nil, fmt.Errorf("top by %q: use origin, reason or user", by)
	}
	if n <= 0 {
		n = DefaultTop
	}
	f.Limit = min(n, MaxTop)
	return Stats(ctx, conn, f, by)
}

// User is an identified user of a project: one a verified token named.
type User struct {
	ProjectID string `json:"projectId"`
	UserID    string `json:"userId"`
	// Metadata is the userMetadata of the user's latest accepted
	// connection; null when it had none.
	Metadata  map[string]string `json:"metadata" nullable:"true"`
	FirstSeen time.Time         `json:"firstSeen"`
	LastSeen  time.Time         `json:"lastSeen"`
	// Connections counts the user's accepted connections.
	Connections uint64 `json:"connections"`
	// Refused counts the user's refused attempts. A refusal records no user
	// today (not even token_revoked's, whose token was verified), so it is
	// 0 until the verifier records one.
	Refused uint64 `json:"refused"`
}

// UsersPage is a page of users, last seen first.
type UsersPage struct {
	// Users are the page's users; empty, never nil, when none.
	Users []User `json:"users"`
	// Next is the cursor of the following page; "" on the last.
	Next string `json:"next,omitempty"`
}

// decisionMicros is a decision's time in microseconds since 1970.
const decisionMicros = "toUInt64(time) * 1000000 + time_us"

// Users returns a page of the identified users of the decisions matching
// f: the (project, user id) pairs of decisions whose user a token
// verified (user_verified, an authenticated session for an accept;
// anonymous visitors' client-given ids are not users), with the latest
// userMetadata, first and last seen, accepted connections and refusals, in
// the order (last seen, project, user id) descending. Up to f.Limit
// (DefaultPage when not set, at most MaxPage) users after cursor, "" for
// the first page; UsersPage.Next is the cursor of the following page.
//
// The listing is as of the first page: every page counts only the
// decisions before the second the first page was asked at (or f.Until if
// earlier), so a user seen again between pages is neither moved nor shown
// twice. A
// decision stored late with an earlier time can still move its user. Each
// page aggregates every decision in the range, so a long range is slow.
func Users(ctx context.Context, conn driver.Conn, f Filter, cursor string) (UsersPage, error) {
	var at userPosition
	if cursor != "" {
		var err error
		if at, err = parseUserPosition(cursor); err != nil {
			return UsersPage{}, badCursor("users", err)
		}
	} else {
		at.asOf = time.Now().Unix()
		if !f.Until.IsZero() {
			at.asOf = min(at.asOf, dateTimeSeconds(f.Until))
		}
	}
	f.Until = time.Unix(at.asOf, 0)
	c := f.decisions()
	c.add("user_id != ''")
	c.add("user_verified = 1")
	n := pageSize(f.Limit)
	var cands *userCandidates
	if cursor == "" {
		// The first page: its users are those seen last, found in windows
		// at the end of the range (newestUsers), then counted over all of it.
		var err error
		if cands, err = newestUsers(ctx, conn, c, n+1); err != nil {
			return UsersPage{}, err
		}
		if cands != nil {
			c.in("project_id", cands.projects)
			c.in("user_id", cands.users)
		}
	}
	accept := string(events.OutcomeAccept)
	args := append([]any{accept, accept, accept}, c.args...)
	q := "SELECT project_id, user_id, argMaxIf(user_metadata, " + decisionMicros + ", decision = ?) AS meta, " +
		"min(" + decisionMicros + ") AS first_us, max(" + decisionMicros + ") AS last_us, " +
		"countIf(decision = ?) AS accepted, countIf(decision != ?) AS refused " +
		"FROM hissuno_decisions" + c.String() + " GROUP BY project_id, user_id"
	if cursor != "" {
		q += " HAVING last_us < ? OR (last_us = ? AND (project_id < ? OR (project_id = ? AND user_id < ?)))"
		args = append(args, at.lastUS, at.lastUS, at.project, at.project, at.user)
	}
	q += " ORDER BY last_us DESC, project_id DESC, user_id DESC LIMIT ?"
	limit := n + 1
	if cands != nil {
		// The candidates' projects and ids may also pair as users that are
		// not candidates (a user id of two projects): read them all, keep the
		// candidates.
		limit = math.MaxInt32
	}
	rows, err := conn.Query(ctx, q, append(args, limit)...)
	if err != nil {
		return UsersPage{}, queryError(err)
	}
	users, err := collect(rows, "users", func(rows driver.Rows) (User, error) {
		var u User
		var meta string
		var first, last uint64
		if err := rows.Scan(&u.ProjectID, &u.UserID, &meta, &first, &last, &u.Connections, &u.Refused); err != nil {
			return User{}, err
		}
		u.Metadata = metadata(meta)
		u.FirstSeen, u.LastSeen = time.UnixMicro(int64(first)).UTC(), time.UnixMicro(int64(last)).UTC()
		return u, nil
	})
	if err != nil {
		return UsersPage{}, err
	}
	if cands != nil {
		users = slices.DeleteFunc(users, func(u User) bool { return !cands.pairs[[2]string{u.ProjectID, u.UserID}] })
		users = users[:min(len(users), n+1)]
	}
	if len(users) <= n {
		if users == nil {
			users = []User{}
		}
		return UsersPage{Users: users}, nil
	}
	end := users[n-1]
	next := userPosition{asOf: at.asOf, lastUS: uint64(end.LastSeen.UnixMicro()), project: end.ProjectID, user: end.UserID}
	return UsersPage{Users: users[:n], Next: next.cursor()}, nil
}

// userCandidates are the users of a first page: their projects and ids as
// the query's filter, and the pairs to keep of what it returns.
type userCandidates struct {
	projects, users []string
	pairs           map[[2]string]bool
}

// newestUsers finds the n users c selects that were seen last, in windows
// at the end of its range (conds.window): the users seen within the last
// window holding n of them are the n seen last over the whole range, as any
// other was last seen before that window began. It returns nil when the
// range is read whole anyway (one project's users, a short range, or fewer
// than n users in every window but the whole range): the page's query is
// then enough.
func newestUsers(ctx context.Context, conn driver.Conn, c *conds, n int) (*userCandidates, error) {
	for w := int64(firstWindow); ; w *= windowGrowth {
		wc, whole := c.window(w)
		if whole {
			return nil, nil
		}
		q := "SELECT project_id, user_id, max(" + decisionMicros + ") AS last_us FROM hissuno_decisions" + wc.String() +
			" GROUP BY project_id, user_id ORDER BY last_us DESC, project_id DESC, user_id DESC LIMIT ?"
		rows, err := conn.Query(ctx, q, append(wc.args, n)...)
		if err != nil {
			return nil, queryError(err)
		}
		type pair struct{ project, user string }
		found, err := collect(rows, "users", func(rows driver.Rows) (pair, error) {
			var p pair
			var last uint64
			return p, rows.Scan(&p.project, &p.user, &last)
		})
		if err != nil {
			return nil, err
		}
		if len(found) < n {
			continue
		}
		cands := &userCandidates{pairs: map[[2]string]bool{}}
		projects, users := map[string]bool{}, map[string]bool{}
		for _, p := range found {
			cands.pairs[[2]string{p.project, p.user}] = true
			if !projects[p.project] {
				projects[p.project] = true
				cands.projects = append(cands.projects, p.project)
			}
			if !users[p.user] {
				users[p.user] = true
				cands.users = append(cands.users, p.user)
			}
		}
		return cands, nil
	}
}

// AnonymousStats counts the anonymous sessions of some decisions.
type AnonymousStats struct {
	// Connections counts the accepted anonymous connections.
	Connections uint64 `json:"connections"`
	// Visitors approximates the people behind them: their distinct (client
	// IP, User-Agent) pairs. People behind one address with the same
	// browser count once, one person on two networks or browsers twice; the
	// userId an anonymous client sends is not used, as anyone can send any.
	Visitors uint64 `json:"visitors"`
}

// Anonymous counts the anonymous accepted connections among the decisions
// matching f, and approximates their visitors (AnonymousStats.Visitors).
func Anonymous(ctx context.Context, conn driver.Conn, f Filter) (AnonymousStats, error) {
	c := f.decisions()
	c.add("session = ?", string(events.SessionAnonymous))
	c.add("decision = ?", string(events.OutcomeAccept))
	var s AnonymousStats
	q := "SELECT count(), uniqExact(client_ip, user_agent) FROM hissuno_decisions" + c.String()
	if err := conn.QueryRow(ctx, q, c.args...).Scan(&s.Connections, &s.Visitors); err != nil {
		return AnonymousStats{}, queryError(err)
	}
	return s, nil
}

// Counts are a project's figures over a time range.
type Counts struct {
	// Decisions counts every decision.
	Decisions uint64 `json:"decisions"`
	// Refused counts those that were not an accept.
	Refused uint64 `json:"refused"`
}

// ProjectCounts counts each project's decisions from since on, as the
// project list shows them (since a day ago for 24-hour figures). projects
// restricts as Filter.Projects does (nil: every project with decisions;
// empty: none), and each project asked for has an entry, zero when it has
// no decision.
func ProjectCounts(ctx context.Context, conn driver.Conn, since time.Time, projects []string) (map[string]Counts, error) {
	out := make(map[string]Counts, len(projects))
	for _, p := range projects {
		out[p] = Counts{}
	}
	c := Filter{Since: since, Projects: projects}.decisions()
	q := "SELECT project_id, count(), countIf(decision != ?) FROM hissuno_decisions" + c.String() + " GROUP BY project_id"
	rows, err := conn.Query(ctx, q, append([]any{string(events.OutcomeAccept)}, c.args...)...)
	if err != nil {
		return nil, queryError(err)
	}
	type row struct {
		project string
		counts  Counts
	}
	rs, err := collect(rows, "project counts", func(rows driver.Rows) (row, error) {
		var r row
		err := rows.Scan(&r.project, &r.counts.Decisions, &r.counts.Refused)
		return r, err
	})
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		out[r.project] = r.counts
	}
	return out, nil
}

// ErrTruncated means an export stopped at its bound with decisions left.
var ErrTruncated = errors.New("export truncated")

// exportBlockRows is how many rows a block ClickHouse sends an export
// holds. The driver buffers two blocks ahead of the one being read, so
// that an export holds about 4 blocks of rows at once, whatever its size.
const exportBlockRows = 1024

// ExportDecisions calls each for every decision matching f (f.Limit aside),
// each once, in DecisionsPage's order, and returns how many each took.
// Rows stream from ClickHouse in blocks of exportBlockRows and none is
// kept, so that memory stays bounded however many rows are exported. At
// most bound decisions are exported: with more left, it stops and returns
// bound and ErrTruncated. An error of each stops the export and is returned
// as it is, the decision it refused not counted.
func ExportDecisions(ctx context.Context, conn driver.Conn, f Filter, bound int, each func(Record) error) (int, error) {
	if bound <= 0 {
		return 0, fmt.Errorf("export: the bound must be positive, not %d", bound)
	}
	qctx, cancel := context.WithCancel(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_block_size": exportBlockRows})))
	defer cancel()
	c := f.decisions()
	q := "SELECT " + DecisionColumns + " FROM hissuno_decisions" + c.String() + " ORDER BY time DESC, time_us DESC, decision_id DESC LIMIT 1 BY decision_id LIMIT ?"
	rows, err := conn.Query(qctx, q, append(c.args, bound+1)...)
	if err != nil {
		return 0, queryError(err)
	}
	n, err := export(rows, bound, each)
	if err != nil && !errors.Is(err, ErrTruncated) {
		// Closing drains what the server still sends: stop it instead.
		cancel()
	}
	rows.Close()
	return n, err
}

// export reads rows into each, at most bound of them.
func export(rows driver.Rows, bound int, each func(Record) error) (int, error) {
	n := 0
	for rows.Next() {
		if n == bound {
			return n, fmt.Errorf("%w after %d decisions: narrow the filter or raise the bound", ErrTruncated, bound)
		}
		r, err := scanRecord(rows)
		if err != nil {
			return n, fmt.Errorf("read decisions: %w", err)
		}
		if err := each(r); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read decisions: %w", err)
	}
	return n, nil
}

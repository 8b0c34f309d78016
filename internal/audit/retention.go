package audit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Day is the unit of retention: a table keeps its rows a whole number of
// days.
const Day = 24 * time.Hour

// Default retentions: decisions 400 days (a year and a month of history for
// a security team's questions), admin events forever (0).
const (
	DefaultDecisionRetention = 400 * Day
	DefaultAdminRetention    = 0
)

// ParseRetention reads a retention: a number of days (400d), a Go duration
// that is a whole number of days (9600h), or 0 for keep forever.
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		days, err := strconv.ParseInt(n, 10, 32)
		if err != nil || days > maxRetentionDays {
			return 0, fmt.Errorf("retention %q: at most %dd", s, maxRetentionDays)
		}
		return time.Duration(days) * Day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("retention %q is neither days (400d) nor a duration (9600h); 0 keeps forever", s)
	}
	if err := CheckRetention(d); err != nil {
		return 0, err
	}
	return d, nil
}

// maxRetentionDays bounds a retention to what DateTime can hold anyway
// (1970 to 2106): about 136 years.
const maxRetentionDays = 50_000

// CheckRetention reports whether d is a retention: 0 (keep forever) or a
// whole number of days from 1 to 50,000.
func CheckRetention(d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d < 0:
		return fmt.Errorf("retention %s is negative: give a number of days (400d), or 0 to keep forever", d)
	case d%Day != 0:
		return fmt.Errorf("retention %s is not a whole number of days: give days (400d) or a multiple of 24h", d)
	case d/Day > maxRetentionDays:
		return fmt.Errorf("retention %s: at most %dd", d, maxRetentionDays)
	}
	return nil
}

// FormatRetention writes a retention as days (400d), or 0 for forever.
func FormatRetention(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	return d.String()
}

// Version is a ClickHouse server's version, as SELECT version() answers
// (18.16.1, 24.8.4.13).
type Version struct{ Major, Minor int }

// ParseVersion reads the major and minor numbers of SELECT version().
func ParseVersion(s string) (Version, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ".", 3)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("ClickHouse version %q: want MAJOR.MINOR…", s)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("ClickHouse version %q: want MAJOR.MINOR…", s)
	}
	return Version{major, minor}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func (v Version) atLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// SupportsTTL reports whether the server has table TTLs and ALTER TABLE …
// MODIFY TTL: ClickHouse 19.6 and later ("TTL expressions for columns and
// tables", ClickHouse's changelog for 19.6.2.11, 2019-05-13, PR #4212;
// 18.16 has neither).
func (v Version) SupportsTTL() bool { return v.atLeast(19, 6) }

// SupportsRemoveTTL reports whether the server has ALTER TABLE … REMOVE
// TTL. ClickHouse's docs ("Manipulations with Table TTL") have it since
// late 2020 (documentation PR #17059, 2020-11); 20.12 is taken as the
// bound without a server of those versions to confirm it: where it is
// wrong, the ALTER fails with the server's error. Older servers keep a TTL
// once set: retention 0 cannot lift it there.
func (v Version) SupportsRemoveTTL() bool { return v.atLeast(20, 12) }

// TableRef names a table in the statements that enforce its retention, and
// is the seam for a cluster: Name is the table holding the rows (on a
// cluster, the Replicated table under each Distributed one, e.g.
// hissuno_decisions_local) and Cluster, when set, adds ON CLUSTER to every
// ALTER so that it reaches each replica. system.parts, which retention
// reads, lists the local server's parts of Name.
type TableRef struct {
	// Name is the table's name, unquoted: letters, digits and _.
	Name string
	// Cluster is the cluster of ON CLUSTER; empty: this server only.
	Cluster string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (r TableRef) check() error {
	if !identRE.MatchString(r.Name) {
		return fmt.Errorf("table name %q: letters, digits and _ only", r.Name)
	}
	if r.Cluster != "" && !identRE.MatchString(r.Cluster) {
		return fmt.Errorf("cluster name %q: letters, digits and _ only", r.Cluster)
	}
	return nil
}

// alter is the start of an ALTER statement on the table.
func (r TableRef) alter() string {
	s := "ALTER TABLE " + r.Name
	if r.Cluster != "" {
		s += " ON CLUSTER " + r.Cluster
	}
	return s
}

// TTLStatement is the statement that makes the table delete rows whose
// time is older than retention (a whole number of days), in the grammar
// of ClickHouse's docs ("ALTER TABLE [db.]table_name [ON CLUSTER cluster]
// MODIFY TTL ttl_expression", sql-reference/statements/alter/ttl) and of
// its own test tests/queries/0_stateless/00933_alter_ttl.sql ("alter table
// ttl modify ttl d + interval 1 day"). It was checked against those texts
// only: no server of 19.6 or later runs where this was written.
func TTLStatement(r TableRef, retention time.Duration) string {
	return fmt.Sprintf("%s MODIFY TTL time + INTERVAL %d DAY", r.alter(), int64(retention/Day))
}

// RemoveTTLStatement is the statement that lifts a table's TTL (retention
// 0 where a TTL was set before).
func RemoveTTLStatement(r TableRef) string { return r.alter() + " REMOVE TTL" }

// DropPartitionStatement drops one month partition by its id (202401).
func DropPartitionStatement(r TableRef, id string) string {
	return fmt.Sprintf("%s DROP PARTITION ID '%s'", r.alter(), id)
}

// Partition is one partition of a table (PARTITION BY toYYYYMM(time)):
// its id (202401) and the newest time of a row in it.
type Partition struct {
	ID      string
	MaxTime time.Time
}

// monthRE is a toYYYYMM partition id.
var monthRE = regexp.MustCompile(`^[0-9]{4}(0[1-9]|1[0-2])$`)

// ExpiredPartitions returns the ids of the partitions that hold no row
// inside retention at now: the whole month (UTC) ended before now −
// retention, and so did the newest row in it (which also covers a server
// whose time zone shifts its months). Retention 0 keeps everything; an id
// that is not a month is never returned.
func ExpiredPartitions(now time.Time, retention time.Duration, parts []Partition) []string {
	if retention <= 0 {
		return nil
	}
	cutoff := now.Add(-retention)
	var out []string
	for _, p := range parts {
		if !monthRE.MatchString(p.ID) {
			continue
		}
		y, _ := strconv.Atoi(p.ID[:4])
		m, _ := strconv.Atoi(p.ID[4:])
		end := time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC)
		if !end.After(cutoff) && p.MaxTime.Before(cutoff) {
			out = append(out, p.ID)
		}
	}
	return out
}

// TTLUpToDate reports whether a table's CREATE statement (system.tables'
// create_table_query) already carries the TTL of retention, so that the
// ALTER, which makes a current server rewrite every part, is not repeated
// at every start. ClickHouse formats INTERVAL n DAY as toIntervalDay(n)
// when it writes a table's definition ("TTL time + toIntervalDay(400)", as
// SHOW CREATE TABLE output quoted in public write-ups shows for TTLs; not
// seen on a server here), and the form as written is accepted too; a form
// neither matches only costs the ALTER once per auditor start.
// Retention 0 is up to date when the table has no TTL.
func TTLUpToDate(createQuery string, retention time.Duration) bool {
	ttl := ttlClause(createQuery)
	if retention == 0 {
		return ttl == ""
	}
	days := strconv.FormatInt(int64(retention/Day), 10)
	norm := strings.ToLower(strings.Join(strings.Fields(ttl), " "))
	return norm == "time + tointervalday("+days+")" || norm == "time + interval "+days+" day"
}

// ttlClause is the table TTL expression of a CREATE statement: what
// follows " TTL " up to SETTINGS or the end; "" when there is none.
// Column TTLs (inside the column list) are not looked at.
func ttlClause(q string) string {
	// The table's clauses follow ENGINE; a column's TTL stands before it.
	if j := strings.Index(q, "ENGINE"); j >= 0 {
		q = q[j:]
	}
	i := strings.Index(q, " TTL ")
	if i < 0 {
		return ""
	}
	q = q[i+len(" TTL "):]
	if j := strings.Index(q, " SETTINGS "); j >= 0 {
		q = q[:j]
	}
	return strings.TrimSpace(q)
}

// RetentionResult is what one enforcement of a table's retention did.
type RetentionResult struct {
	// TTL is the statement applied (MODIFY or REMOVE TTL), if any.
	TTL string
	// Dropped are the partitions dropped.
	Dropped []string
}

// ErrRemoveTTL means a table has a TTL that this server cannot lift
// (before 20.12) while its retention is now 0.
var ErrRemoveTTL = errors.New("this ClickHouse cannot remove a TTL (ALTER … REMOVE TTL needs 20.12 or later)")

// ApplyRetention makes the table keep rows retention long (0: forever) on
// the server conn reaches, of version v: with a TTL where the server has
// them (set only when it differs from the one in place), otherwise by
// dropping the month partitions ExpiredPartitions names; dropped is called
// with each id as soon as it is gone.
func ApplyRetention(ctx context.Context, conn driver.Conn, v Version, r TableRef, retention time.Duration, now time.Time, dropped func(id string)) (RetentionResult, error) {
	var res RetentionResult
	if err := r.check(); err != nil {
		return res, err
	}
	if err := CheckRetention(retention); err != nil {
		return res, err
	}
	if v.SupportsTTL() {
		var create string
		if err := conn.QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = ?", r.Name).Scan(&create); err != nil {
			return res, fmt.Errorf("read the definition of %s: %w", r.Name, err)
		}
		if TTLUpToDate(create, retention) {
			return res, nil
		}
		stmt := TTLStatement(r, retention)
		if retention == 0 {
			if !v.SupportsRemoveTTL() {
				return res, fmt.Errorf("%s keeps its TTL (%s): %w; remove it by hand or upgrade ClickHouse", r.Name, ttlClause(create), ErrRemoveTTL)
			}
			stmt = RemoveTTLStatement(r)
		}
		if err := conn.Exec(ctx, stmt); err != nil {
			return res, fmt.Errorf("%s: %w", stmt, err)
		}
		res.TTL = stmt
		return res, nil
	}
	if retention == 0 {
		return res, nil
	}
	parts, err := Partitions(ctx, conn, r.Name)
	if err != nil {
		return res, err
	}
	for _, id := range ExpiredPartitions(now, retention, parts) {
		stmt := DropPartitionStatement(r, id)
		if err := conn.Exec(ctx, stmt); err != nil {
			return res, fmt.Errorf("%s: %w", stmt, err)
		}
		res.Dropped = append(res.Dropped, id)
		if dropped != nil {
			dropped(id)
		}
	}
	return res, nil
}

// Partitions lists the active partitions of a table of the current
// database on this server, with the newest time of a row in each.
func Partitions(ctx context.Context, conn driver.Conn, table string) ([]Partition, error) {
	rows, err := conn.Query(ctx, "SELECT partition_id, max(max_time) FROM system.parts "+
		"WHERE database = currentDatabase() AND table = ? AND active GROUP BY partition_id ORDER BY partition_id", table)
	if err != nil {
		return nil, fmt.Errorf("list the partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		if err := rows.Scan(&p.ID, &p.MaxTime); err != nil {
			return nil, fmt.Errorf("list the partitions of %s: %w", table, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the partitions of %s: %w", table, err)
	}
	return out, nil
}

// ServerVersion asks the server its version (SELECT version()).
func ServerVersion(ctx context.Context, conn driver.Conn) (Version, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s); err != nil {
		return Version{}, fmt.Errorf("ask the ClickHouse version: %w", err)
	}
	return ParseVersion(s)
}

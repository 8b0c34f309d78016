package audit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

func TestParseRetention(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     time.Duration
		err      string // a part of the error; "" for none
	}{
		{"days", "400d", 400 * audit.Day, ""},
		{"one day", "1d", audit.Day, ""},
		{"zero keeps forever", "0", 0, ""},
		{"zero days", "0d", 0, ""},
		{"hours that are whole days", "9600h", 400 * audit.Day, ""},
		{"spaces around", " 30d ", 30 * audit.Day, ""},
		{"not whole days", "36h", 0, "not a whole number of days"},
		{"minutes", "90m", 0, "not a whole number of days"},
		{"negative", "-24h", 0, "negative"},
		{"negative days", "-1d", 0, "neither days"},
		{"weeks are not a unit", "2w", 0, "neither days (400d) nor a duration"},
		{"empty", "", 0, "neither days"},
		{"too long", "50001d", 0, "at most 50000d"},
		{"overflowing days", "99999999999999999999d", 0, "at most 50000d"},
		{"a fraction of days", "1.5d", 0, "neither days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := audit.ParseRetention(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRetention(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRetention(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := audit.ParseRetention(audit.FormatRetention(got)); err != nil || back != got {
				t.Errorf("FormatRetention(%v) = %q reads back as %v, %v", got, audit.FormatRetention(got), back, err)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in          string
		want        audit.Version
		ttl, remove bool
		wantErr     bool
	}{
		{in: "18.16.1", want: audit.Version{Major: 18, Minor: 16}},
		{in: "19.5.4.22", want: audit.Version{Major: 19, Minor: 5}},
		{in: "19.6.2.11", want: audit.Version{Major: 19, Minor: 6}, ttl: true},
		{in: "20.11.7.16", want: audit.Version{Major: 20, Minor: 11}, ttl: true},
		{in: "20.12.3.3", want: audit.Version{Major: 20, Minor: 12}, ttl: true, remove: true},
		{in: "26.8.1.1", want: audit.Version{Major: 26, Minor: 8}, ttl: true, remove: true},
		{in: "1.1.54343", want: audit.Version{Major: 1, Minor: 1}},
		{in: "banana", wantErr: true},
		{in: "26", wantErr: true},
		{in: "x.6.1", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			v, err := audit.ParseVersion(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseVersion(%q) = %v, want an error", tc.in, v)
				}
				return
			}
			if err != nil || v != tc.want {
				t.Fatalf("ParseVersion(%q) = %v, %v; want %v", tc.in, v, err, tc.want)
			}
			if v.SupportsTTL() != tc.ttl || v.SupportsRemoveTTL() != tc.remove {
				t.Errorf("%s: TTL %v, REMOVE TTL %v; want %v, %v", v, v.SupportsTTL(), v.SupportsRemoveTTL(), tc.ttl, tc.remove)
			}
		})
	}
}

// TestTTLStatements pins the statements' text. It follows the grammar of
// ClickHouse's docs, sql-reference/statements/alter/ttl ("ALTER TABLE
// [db.]table_name [ON CLUSTER cluster] MODIFY TTL ttl_expression", "…
// REMOVE TTL") and of its test 0_stateless/00933_alter_ttl.sql ("alter
// table ttl modify ttl d + interval 1 day"); no server that has TTLs runs
// here to parse them.
func TestTTLStatements(t *testing.T) {
	t.Parallel()
	local := audit.TableRef{Name: "hissuno_decisions"}
	cluster := audit.TableRef{Name: "hissuno_decisions_local", Cluster: "prod"}
	cases := []struct{ name, got, want string }{
		{"modify", audit.TTLStatement(local, 400*audit.Day), "ALTER TABLE hissuno_decisions MODIFY TTL time + INTERVAL 400 DAY"},
		{"modify one day", audit.TTLStatement(local, audit.Day), "ALTER TABLE hissuno_decisions MODIFY TTL time + INTERVAL 1 DAY"},
		{"modify on a cluster", audit.TTLStatement(cluster, 30*audit.Day), "ALTER TABLE hissuno_decisions_local ON CLUSTER prod MODIFY TTL time + INTERVAL 30 DAY"},
		{"remove", audit.RemoveTTLStatement(local), "ALTER TABLE hissuno_decisions REMOVE TTL"},
		{"remove on a cluster", audit.RemoveTTLStatement(cluster), "ALTER TABLE hissuno_decisions_local ON CLUSTER prod REMOVE TTL"},
		{"drop", audit.DropPartitionStatement(local, "202401"), "ALTER TABLE hissuno_decisions DROP PARTITION ID '202401'"},
		{"drop on a cluster", audit.DropPartitionStatement(cluster, "202401"), "ALTER TABLE hissuno_decisions_local ON CLUSTER prod DROP PARTITION ID '202401'"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestTTLUpToDate(t *testing.T) {
	t.Parallel()
	// As current servers write system.tables' create_table_query.
	const cols = "CREATE TABLE db.hissuno_decisions (`decision_id` String, `time` DateTime, `x` String TTL time + toIntervalDay(3)) " +
		"ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(time) ORDER BY (project_id, time, decision_id)"
	cases := []struct {
		name      string
		create    string
		retention time.Duration
		want      bool
	}{
		{"no TTL, keep forever", cols + " SETTINGS index_granularity = 8192", 0, true},
		{"no TTL, 400 days wanted", cols + " SETTINGS index_granularity = 8192", 400 * audit.Day, false},
		{"a column TTL is no table TTL", cols, 3 * audit.Day, false},
		{"same TTL", cols + " TTL time + toIntervalDay(400) SETTINGS index_granularity = 8192", 400 * audit.Day, true},
		{"same TTL, no settings", cols + " TTL time + toIntervalDay(400)", 400 * audit.Day, true},
		{"same TTL as written", cols + " TTL time + INTERVAL 400 DAY", 400 * audit.Day, true},
		{"other days", cols + " TTL time + toIntervalDay(30) SETTINGS index_granularity = 8192", 400 * audit.Day, false},
		{"prefix of the days", cols + " TTL time + toIntervalDay(4000)", 400 * audit.Day, false},
		{"a TTL, keep forever", cols + " TTL time + toIntervalDay(400)", 0, false},
		{"another TTL expression", cols + " TTL received_at + toIntervalDay(400)", 400 * audit.Day, false},
	}
	for _, tc := range cases {
		if got := audit.TTLUpToDate(tc.create, tc.retention); got != tc.want {
			t.Errorf("%s: TTLUpToDate = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestExpiredPartitions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	// 400 days before now: 2025-05-11 12:00 UTC.
	inMonth := func(id string) audit.Partition {
		t, _ := time.Parse("200601", id)
		return audit.Partition{ID: id, MaxTime: t.AddDate(0, 1, 0).Add(-time.Second)}
	}
	parts := []audit.Partition{inMonth("202412"), inMonth("202503"), inMonth("202504"), inMonth("202505"), inMonth("202606")}
	cases := []struct {
		name      string
		now       time.Time
		retention time.Duration
		parts     []audit.Partition
		want      []string
	}{
		{"400 days: whole months before 2025-05-11", now, 400 * audit.Day, parts, []string{"202412", "202503", "202504"}},
		{"keep forever", now, 0, parts, nil},
		{"the month of the cutoff is kept", now, 400 * audit.Day, []audit.Partition{inMonth("202505")}, nil},
		{"a month ending exactly at the cutoff goes", time.Date(2025, 5, 31, 0, 0, 0, 0, time.UTC), 30 * audit.Day, []audit.Partition{inMonth("202504")}, []string{"202504"}},
		{"a month ending a second after the cutoff stays", time.Date(2025, 5, 31, 0, 0, 1, 0, time.UTC).Add(-2 * time.Second), 30 * audit.Day, []audit.Partition{inMonth("202504")}, nil},
		{"a row inside retention keeps its partition", now, 400 * audit.Day,
			[]audit.Partition{{ID: "202503", MaxTime: time.Date(2025, 6, 1, 3, 0, 0, 0, time.UTC)}}, nil},
		{"not months", now, 400 * audit.Day,
			[]audit.Partition{{ID: "all"}, {ID: "2025"}, {ID: "202513"}, {ID: "202500"}, {ID: "20250101"}, {ID: "x02503"}}, nil},
		{"short retention", now, audit.Day, parts, []string{"202412", "202503", "202504", "202505"}},
		{"nothing", now, audit.Day, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := audit.ExpiredPartitions(tc.now, tc.retention, tc.parts); !slices.Equal(got, tc.want) {
				t.Errorf("ExpiredPartitions = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestApplyRetentionDropsOldMonths runs retention on the ClickHouse of the
// tests (18.16, which has no TTL): the months entirely past retention are
// dropped, every other row stays, and retention 0 keeps everything.
func TestApplyRetentionDropsOldMonths(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.MigratedClickHouse(t)
	ctx := stacktest.Context(t, time.Minute)
	v, err := audit.ServerVersion(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if v.SupportsTTL() {
		t.Skipf("ClickHouse %s has TTLs: partitions are not dropped there", v)
	}
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC) // 400 days before: 2025-05-11 12:00
	months := []struct {
		start string
		rows  int
		kept  bool
	}{
		{"2024-12-01 00:00:00", 7, false},
		{"2025-03-10 00:00:00", 30, false},
		{"2025-04-30 23:59:20", 40, false}, // its last row a second before May
		{"2025-05-01 00:00:00", 50, true},  // older than 400 days, but the month is not
		{"2026-06-01 00:00:00", 60, true},
	}
	for _, table := range []string{"hissuno_decisions", "hissuno_admin_events"} {
		id := "decision_id"
		if table == "hissuno_admin_events" {
			id = "event_id"
		}
		for _, m := range months {
			// One insert a month, a second apart from its start.
			stacktest.Exec(t, conn, fmt.Sprintf("INSERT INTO %s (%s, project_id, time) SELECT concat('r', toString(number)), 'p', toDateTime('%s') + number FROM system.numbers LIMIT %d",
				table, id, m.start, m.rows))
		}
	}
	count := func(table string) map[string]uint64 {
		t.Helper()
		rows, err := conn.Query(ctx, "SELECT toString(toYYYYMM(time)), count() FROM "+table+" GROUP BY toYYYYMM(time)")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]uint64{}
		for rows.Next() {
			var id string
			var n uint64
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			out[id] = n
		}
		return out
	}
	all := map[string]uint64{"202412": 7, "202503": 30, "202504": 40, "202505": 50, "202606": 60}

	// Admin events kept forever: nothing dropped.
	admin := audit.TableRef{Name: "hissuno_admin_events"}
	res, err := audit.ApplyRetention(ctx, conn, v, admin, 0, now, nil)
	if err != nil || len(res.Dropped) > 0 || res.TTL != "" {
		t.Fatalf("retention 0: %+v, %v; want nothing done", res, err)
	}
	if got := count("hissuno_admin_events"); !equalCounts(got, all) {
		t.Errorf("admin events after retention 0: %v, want %v", got, all)
	}

	var seen []string
	decisions := audit.TableRef{Name: "hissuno_decisions"}
	res, err = audit.ApplyRetention(ctx, conn, v, decisions, 400*audit.Day, now, func(id string) { seen = append(seen, id) })
	if err != nil {
		t.Fatalf("ApplyRetention: %v", err)
	}
	want := []string{"202412", "202503", "202504"}
	if !slices.Equal(res.Dropped, want) || !slices.Equal(seen, want) {
		t.Errorf("dropped %v (reported %v), want %v", res.Dropped, seen, want)
	}
	if got, want := count("hissuno_decisions"), map[string]uint64{"202505": 50, "202606": 60}; !equalCounts(got, want) {
		t.Errorf("decisions after retention: %v, want %v", got, want)
	}
	if got := count("hissuno_admin_events"); !equalCounts(got, all) {
		t.Errorf("admin events after the decisions' retention: %v, want %v", got, all)
	}

	// Again: nothing left to drop.
	res, err = audit.ApplyRetention(ctx, conn, v, decisions, 400*audit.Day, now, nil)
	if err != nil || len(res.Dropped) > 0 {
		t.Errorf("second run: %+v, %v; want nothing dropped", res, err)
	}

	// A name that is not one is refused before any SQL.
	if _, err := audit.ApplyRetention(ctx, conn, v, audit.TableRef{Name: "x; DROP TABLE y"}, audit.Day, now, nil); err == nil {
		t.Error("a table name with SQL in it was accepted")
	}
}

func equalCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// ttlServer stands for a ClickHouse that has TTLs (none runs here): it
// answers the table's CREATE statement and records the statements sent.
type ttlServer struct {
	driver.Conn // any other call panics
	create      string
	sent        []string
}

type createRow struct{ create string }

func (r createRow) Err() error { return nil }
func (r createRow) Scan(dest ...any) error {
	*dest[0].(*string) = r.create
	return nil
}
func (r createRow) ScanStruct(any) error { return nil }

func (s *ttlServer) QueryRow(_ context.Context, q string, _ ...any) driver.Row {
	if !strings.Contains(q, "create_table_query") {
		panic("unexpected query " + q)
	}
	return createRow{s.create}
}

func (s *ttlServer) Exec(_ context.Context, q string, _ ...any) error {
	s.sent = append(s.sent, q)
	return nil
}

// TestApplyRetentionWithTTL: on a server with TTLs, retention is the
// table's TTL, set only when the one in place differs, removed for 0 where
// the server can, and never a partition dropped.
func TestApplyRetentionWithTTL(t *testing.T) {
	t.Parallel()
	const table = "CREATE TABLE db.hissuno_decisions (`time` DateTime) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(time) ORDER BY time"
	const settings = " SETTINGS index_granularity = 8192"
	current := audit.Version{Major: 26, Minor: 8}
	first := audit.Version{Major: 19, Minor: 6}
	ref := audit.TableRef{Name: "hissuno_decisions"}
	cases := []struct {
		name      string
		v         audit.Version
		create    string
		retention time.Duration
		want      []string
		err       error
	}{
		{"set", current, table + settings, 400 * audit.Day, []string{"ALTER TABLE hissuno_decisions MODIFY TTL time + INTERVAL 400 DAY"}, nil},
		{"set on 19.6", first, table, 30 * audit.Day, []string{"ALTER TABLE hissuno_decisions MODIFY TTL time + INTERVAL 30 DAY"}, nil},
		{"already set", current, table + " TTL time + toIntervalDay(400)" + settings, 400 * audit.Day, nil, nil},
		{"changed", current, table + " TTL time + toIntervalDay(30)" + settings, 400 * audit.Day, []string{"ALTER TABLE hissuno_decisions MODIFY TTL time + INTERVAL 400 DAY"}, nil},
		{"forever, none set", current, table + settings, 0, nil, nil},
		{"forever, one set", current, table + " TTL time + toIntervalDay(30)" + settings, 0, []string{"ALTER TABLE hissuno_decisions REMOVE TTL"}, nil},
		{"forever, one set, server too old to remove it", first, table + " TTL time + toIntervalDay(30)", 0, nil, audit.ErrRemoveTTL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &ttlServer{create: tc.create}
			res, err := audit.ApplyRetention(context.Background(), s, tc.v, ref, tc.retention, time.Now(), func(id string) {
				t.Errorf("partition %s dropped on a server with TTLs", id)
			})
			if !errors.Is(err, tc.err) {
				t.Fatalf("ApplyRetention: %v, want %v", err, tc.err)
			}
			if !slices.Equal(s.sent, tc.want) {
				t.Errorf("sent %q, want %q", s.sent, tc.want)
			}
			if wantTTL := strings.Join(tc.want, ""); res.TTL != wantTTL || len(res.Dropped) > 0 {
				t.Errorf("result %+v, want TTL %q and nothing dropped", res, wantTTL)
			}
		})
	}
}

package auditor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestAuditorDropsMonthsPastRetention: an auditor with a 30-day retention
// for decisions, on the ClickHouse of the tests (18.16: no TTL), drops the
// month partitions entirely past it once it reaches ClickHouse, keeps
// every row of the others, and keeps every admin event (retention 0).
func TestAuditorDropsMonthsPastRetention(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.MigratedClickHouse(t)
	ctx := stacktest.Context(t, 2*time.Minute)
	v, err := audit.ServerVersion(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if v.SupportsTTL() {
		t.Skipf("ClickHouse %s has TTLs: the auditor sets one instead of dropping partitions", v)
	}
	now := time.Now().UTC()
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	old := thisMonth.AddDate(0, -3, 0)   // its month ended two months ago: past 30 days
	older := thisMonth.AddDate(0, -5, 0) // the same
	recent := now.Add(-time.Hour)        // inside retention
	fill := func(table, id string, at time.Time, n int) {
		stacktest.Exec(t, conn, fmt.Sprintf("INSERT INTO %s (%s, project_id, time) SELECT concat('r', toString(number)), 'p', toDateTime(%d) + number FROM system.numbers LIMIT %d",
			table, id, at.Unix(), n))
	}
	for _, table := range []struct{ name, id string }{{"hissuno_decisions", "decision_id"}, {"hissuno_admin_events", "event_id"}} {
		fill(table.name, table.id, older, 11)
		fill(table.name, table.id, old, 13)
		fill(table.name, table.id, recent, 17)
	}
	ns, _ := natsJS(t)
	startAuditor(t, context.Background(), ns, auditor.Config{
		ClickHouseDSN: dsn, BatchSize: 64, BatchWait: 20 * time.Millisecond,
		DecisionRetention: 30 * audit.Day, RetentionEvery: time.Second,
	})
	stacktest.Eventually(t, time.Minute, "the decisions' old months dropped", func() error {
		n, err := tryCount(conn, "SELECT count() FROM hissuno_decisions")
		if err == nil && n != 17 {
			err = fmt.Errorf("%d decisions, want the 17 inside retention", n)
		}
		return err
	})
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_decisions WHERE time >= ?", recent); n != 17 {
		t.Errorf("%d recent decisions, want 17", n)
	}
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_admin_events"); n != 11+13+17 {
		t.Errorf("%d admin events, want all %d (kept forever)", n, 11+13+17)
	}
	if n := stacktest.Count(t, conn, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'hissuno_decisions' AND active AND partition_id IN (?, ?)",
		old.Format("200601"), older.Format("200601")); n != 0 {
		t.Errorf("%d parts of the old months still active", n)
	}
}

func TestRetentionConfig(t *testing.T) {
	t.Parallel()
	ns, _ := natsJS(t)
	cases := []struct {
		name string
		cfg  auditor.Config
		err  string
	}{
		{"decisions not whole days", auditor.Config{DecisionRetention: 36 * time.Hour}, "decisions: retention 36h0m0s is not a whole number of days"},
		{"admin negative", auditor.Config{AdminRetention: -audit.Day}, "admin events: retention -24h0m0s is negative"},
		{"enforced too often", auditor.Config{RetentionEvery: time.Millisecond}, "RetentionEvery"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.NATS = stacktest.Connect(t, ns)
			cfg.ClickHouseDSN = "clickhouse://127.0.0.1:1/default"
			_, err := auditor.New(cfg, stacktest.Logger(t))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New: %v, want an error with %q", err, tc.err)
			}
		})
	}
}

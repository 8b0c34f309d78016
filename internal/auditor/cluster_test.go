package auditor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/schemas"
)

// TestCrashAfterInsertOnCluster: on a replicated ClickHouse (two replicas
// of one shard and a ZooKeeper, started by the test) whose tables an older
// hissuno made (migrations 0001 and 0002, an admin event stored), two
// auditors migrate at once, adding 0003's columns to the local and the
// Distributed tables (and every later migration) without losing the event.
// Then an auditor dies after
// its insert and before its ack; the next auditor gets the batch again,
// reads back through its node which of its rows the cluster holds, and
// inserts none of them again: neither replica holds a row twice, even
// with merges stopped.
func TestCrashAfterInsertOnCluster(t *testing.T) {
	// Not parallel: two ClickHouse servers and a JVM would take the CPU
	// from the package's tests that count on a 2 s ack wait.
	rc := stacktest.StartReplicatedClickHouse(t, 2)
	dsn := rc.DSN()
	conns := []driver.Conn{stacktest.OpenClickHouse(t, rc.NodeDSN(0)), stacktest.OpenClickHouse(t, rc.NodeDSN(1))}
	ctx := stacktest.Context(t, 2*time.Minute)
	// The cluster as a hissuno of migrations 0001 and 0002 left it, with
	// an admin event stored.
	olderCluster(t, conns, rc.Name, rc.Database, 2)
	insertOne(t, conns[0], "INSERT INTO hissuno_admin_events (event_id, kind, time, project_id)", "ev_old", "project_created", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "p_old")
	// Two auditors migrating at once, through either node: both succeed,
	// and 0003 is applied.
	errs := make([]error, len(conns))
	applied := make([][]string, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() { applied[i], errs[i] = audit.MigrateCluster(ctx, c, dsn, rc.Name) })
	}
	wg.Wait()
	migrations, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	later := map[string]bool{}
	for _, m := range migrations {
		if m.Version > 2 {
			later[m.Name] = true
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("MigrateCluster through node %d, two at once: %v", i, err)
		}
		for _, m := range applied[i] {
			if !later[m] {
				t.Errorf("MigrateCluster through node %d applied %s, want only migrations after 0002", i, m)
			}
		}
	}
	if len(applied[0])+len(applied[1]) == 0 {
		t.Fatal("neither MigrateCluster applied 0003")
	}
	// Then, from either node, the migrations are all there: nothing to do.
	for i, c := range conns {
		if applied, err := audit.MigrateCluster(ctx, c, dsn, rc.Name); err != nil || len(applied) != 0 {
			t.Fatalf("MigrateCluster again through node %d = %v, %v; want nothing applied", i, applied, err)
		}
		// Every column of the last migration is in both tables.
		for _, table := range []string{"hissuno_admin_events", "hissuno_admin_events_local"} {
			if n := stacktest.Count(t, c, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = '"+table+"' AND name IN ('reason', 'account', 'client_ip', 'user_agent')"); n != 4 {
				t.Errorf("node %d's %s has %d of the 4 columns 0003 adds", i, table, n)
			}
		}
		// The admin event stored before is still there, once, on each node.
		stacktest.Eventually(t, 30*time.Second, fmt.Sprintf("node %d holds the older admin event", i), func() error {
			if n := stacktest.Count(t, c, "SELECT count() FROM hissuno_admin_events_local WHERE event_id = 'ev_old' AND reason = ''"); n != 1 {
				return fmt.Errorf("%d rows of it", n)
			}
			return nil
		})
	}
	for _, c := range conns {
		// Keep any duplicate in place until we look.
		stacktest.Exec(t, c, "SYSTEM STOP MERGES hissuno_decisions_local")
	}

	ns, js := natsJS(t)
	const n = 100
	ids := publishN(t, js, "cluster-crash", n)
	ctxA, killA := context.WithCancel(context.Background())
	var crashes atomic.Int32
	// One batch of all n, one insert at a time: A inserts it and dies.
	cfgA := auditor.WithCrashAfterInsert(auditor.Config{
		ClickHouseDSN: dsn, Cluster: rc.Name, Instance: "auditor-a", BatchSize: n, BatchWait: time.Second, AckWait: 2 * time.Second, Inserts: 1,
	}, func() bool {
		if crashes.Add(1) == 1 {
			killA()
			return true
		}
		return false
	})
	a := startAuditor(t, ctxA, ns, cfgA)
	a.wait(t)
	if c := crashes.Load(); c != 1 {
		t.Fatalf("auditor A inserted %d batches before it died, want 1", c)
	}
	if b, _ := backlog(t, js); b != n {
		t.Errorf("after the crash the backlog is %d, want all %d (nothing acked)", b, n)
	}
	dupsBefore := duplicatedBlocks(t, conns)
	skipped := metrics.AuditSkipped.WithLabelValues("hissuno_decisions")
	skippedBefore := testutil.ToFloat64(skipped)

	startAuditor(t, context.Background(), ns, auditor.Config{
		ClickHouseDSN: dsn, Cluster: rc.Name, Instance: "auditor-b", BatchSize: n, BatchWait: time.Second, AckWait: 2 * time.Second, Inserts: 1,
	})
	stacktest.Eventually(t, time.Minute, "an empty backlog", func() error { return emptyBacklog(t, js) })
	if d := testutil.ToFloat64(skipped) - skippedBefore; d != n {
		t.Errorf("auditor B left out %.0f rows of the redelivered batch as stored, want all %d", d, n)
	}
	if d := duplicatedBlocks(t, conns) - dupsBefore; d != 0 {
		t.Errorf("the replicas dropped %d blocks as duplicates after B's insert, want none (B inserted nothing)", d)
	}
	for i, c := range conns {
		stacktest.Eventually(t, 30*time.Second, fmt.Sprintf("node %d holds the %d decisions", i, n), func() error {
			if got := stacktest.Count(t, c, "SELECT count() FROM hissuno_decisions_local"); got != n {
				return fmt.Errorf("%d rows in hissuno_decisions_local", got)
			}
			return nil
		})
		checkExactlyOnce(t, c, ids)
	}
}

// olderCluster makes, on the cluster, the tables of the first n
// migrations and records them, as a hissuno of that time left it.
func olderCluster(t *testing.T, conns []driver.Conn, cluster, database string, n int) {
	t.Helper()
	ms, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{"CREATE TABLE IF NOT EXISTS hissuno_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version"}
	for _, m := range ms[:n] {
		stmts = append(stmts, m.Statements...)
	}
	for _, stmt := range stmts {
		forms, err := schemas.ClusterStatements(stmt, cluster, database)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range forms {
			if !f.EachNode {
				stacktest.Exec(t, conns[0], f.SQL)
				continue
			}
			for _, c := range conns {
				stacktest.Exec(t, c, f.SQL)
			}
		}
	}
	for _, m := range ms[:n] {
		insertOne(t, conns[0], "INSERT INTO hissuno_migrations (version, name, applied_at)", m.Version, m.Name, time.Now().UTC().Truncate(time.Second))
	}
}

// insertOne inserts one row through the Distributed table insert names,
// synchronously.
func insertOne(t *testing.T, conn driver.Conn, insert string, values ...any) {
	t.Helper()
	ctx := audit.SyncInserts(stacktest.Context(t, 30*time.Second))
	b, err := conn.PrepareBatch(ctx, insert)
	if err == nil {
		if err = b.Append(values...); err == nil {
			err = b.Send()
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", insert, err)
	}
}

// duplicatedBlocks is how many inserted blocks the nodes dropped as ones
// they had (ClickHouse's DuplicatedInsertedBlocks).
func duplicatedBlocks(t *testing.T, conns []driver.Conn) uint64 {
	t.Helper()
	var sum uint64
	for _, c := range conns {
		sum += stacktest.Count(t, c, "SELECT sum(value) FROM system.events WHERE event = 'DuplicatedInsertedBlocks'")
	}
	return sum
}

func TestConfigCluster(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, cluster string
		ok            bool
	}{
		{name: "one server", cluster: "", ok: true},
		{name: "a cluster", cluster: "hissuno_prod", ok: true},
		{name: "a dash", cluster: "hissuno-prod"},
		{name: "SQL", cluster: "c ON CLUSTER x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := auditor.Config{NATS: &nats.Conn{}, ClickHouseDSN: "clickhouse://127.0.0.1:9000/default", Cluster: tt.cluster, BatchSize: 1, BatchWait: time.Second, AckWait: time.Second, Inserts: 1, RetentionEvery: time.Hour}.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

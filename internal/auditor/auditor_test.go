package auditor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/schemas"
)

// tryCount is count that returns its error instead of failing the test
// (for polling a ClickHouse that may be away).
func tryCount(conn driver.Conn, q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

const (
	countFinal = "SELECT count() FROM hissuno_decisions FINAL"
	countRaw   = "SELECT count() FROM hissuno_decisions"
)

// natsJS is an embedded JetStream server with the streams, and a JetStream
// client on it.
func natsJS(t testing.TB) (*server.Server, jetstream.JetStream) {
	t.Helper()
	ns, nc := stacktest.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ns, js
}

// publish stores a decision event as a verifier does: its id is the
// Nats-Msg-Id.
func publish(t testing.TB, js jetstream.JetStream, d events.Decision) {
	t.Helper()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, js, body, d.DecisionID)
}

// publishRaw stores body on the decisions subject, with msgID as its
// Nats-Msg-Id when not empty.
func publishRaw(t testing.TB, js jetstream.JetStream, body []byte, msgID string) {
	t.Helper()
	m := nats.NewMsg(events.SubjectDecisions)
	m.Data = body
	if msgID != "" {
		m.Header.Set(events.HeaderMsgID, msgID)
	}
	if _, err := js.PublishMsg(stacktest.Context(t, 10*time.Second), m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// publishN publishes n decisions of run, made now, and returns their ids.
func publishN(t testing.TB, js jetstream.JetStream, run string, n int) []string {
	t.Helper()
	now := time.Now().UTC()
	ids := make([]string, n)
	for i := range n {
		d := stacktest.SampleDecision(run, i, now.Add(time.Duration(i-n)*time.Millisecond))
		publish(t, js, d)
		ids[i] = d.DecisionID
	}
	return ids
}

// running is an auditor running in the background.
type running struct {
	a      *auditor.Auditor
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

// startAuditor runs an auditor on its own NATS connection until parent
// ends, stop is called or the test ends.
func startAuditor(t testing.TB, parent context.Context, ns *server.Server, cfg auditor.Config) *running {
	t.Helper()
	cfg.NATS = stacktest.Connect(t, ns)
	a, err := auditor.New(cfg, stacktest.Logger(t))
	if err != nil {
		t.Fatalf("auditor.New: %v", err)
	}
	ctx, cancel := context.WithCancel(parent)
	r := &running{a: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = a.Run(ctx)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the auditor and waits until Run has returned.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	r.wait(t)
}

// wait waits until Run has returned, and checks it returned no error.
func (r *running) wait(t testing.TB) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("auditor.Run did not return within 30 s of its context's end")
	}
	if r.err != nil {
		t.Errorf("auditor.Run: %v", r.err)
	}
}

// stillRunning fails the test when Run has returned.
func (r *running) stillRunning(t testing.TB) {
	t.Helper()
	select {
	case <-r.done:
		t.Fatalf("auditor.Run returned (%v) while it should keep running", r.err)
	default:
	}
}

// backlog is how many decisions wait for the auditor; false while its
// consumer does not exist yet.
func backlog(t testing.TB, js jetstream.JetStream) (uint64, error) {
	t.Helper()
	n, _, err := auditor.Backlog(stacktest.Context(t, 10*time.Second), js, events.StreamDecisions, events.ConsumerAuditDecisions)
	return n, err
}

// emptyBacklog is nil once the auditor's consumer has nothing left to
// store, else an error saying what it has.
func emptyBacklog(t testing.TB, js jetstream.JetStream) error {
	t.Helper()
	b, err := backlog(t, js)
	if err != nil {
		return err
	}
	if b != 0 {
		return fmt.Errorf("a backlog of %d decisions", b)
	}
	return nil
}

// decisionsStreamEmpty is nil once the decisions stream holds nothing,
// else an error saying what it holds.
func decisionsStreamEmpty(t testing.TB, js jetstream.JetStream) error {
	t.Helper()
	s, err := js.Stream(stacktest.Context(t, 10*time.Second), events.StreamDecisions)
	if err != nil {
		return err
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		return fmt.Errorf("the decisions stream holds %d decisions", n)
	}
	return nil
}

// waitStored waits until ClickHouse holds want distinct decisions.
func waitStored(t testing.TB, conn driver.Conn, want int, timeout time.Duration) {
	t.Helper()
	var last uint64
	stacktest.Eventually(t, timeout, fmt.Sprintf("%d decisions in ClickHouse", want), func() error {
		n, err := tryCount(conn, countRaw)
		if err != nil {
			return err
		}
		if last = n; n < uint64(want) {
			return fmt.Errorf("%d of %d decisions stored", n, want)
		}
		return nil
	})
	if last != uint64(want) {
		t.Fatalf("ClickHouse holds %d rows, want %d decisions, each once", last, want)
	}
}

// checkExactlyOnce checks, through the package's queries, that ClickHouse
// shows every decision of ids exactly once and nothing else, and that the
// stats of every grouping add up to len(ids).
func checkExactlyOnce(t testing.TB, conn driver.Conn, ids []string) {
	t.Helper()
	ctx := stacktest.Context(t, time.Minute)
	want := len(ids)
	if n := stacktest.Count(t, conn, countRaw); n != uint64(want) {
		t.Errorf("SELECT count() (raw, no FINAL) = %d, want %d: a decision stored twice", n, want)
	}
	if n := stacktest.Count(t, conn, "SELECT uniqExact(decision_id) FROM hissuno_decisions"); n != uint64(want) {
		t.Errorf("distinct decision_id = %d, want %d", n, want)
	}
	recs, err := audit.Decisions(ctx, conn, audit.Filter{Limit: 2*want + 10})
	if err != nil {
		t.Fatalf("Decisions: %v", err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.DecisionID]++
	}
	if len(recs) != want {
		t.Errorf("Decisions returned %d records, want %d", len(recs), want)
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("Decisions shows %s %d times, want once", id, seen[id])
		}
		delete(seen, id)
	}
	for id, n := range seen {
		t.Errorf("Decisions shows %s (%d times), which was never published", id, n)
	}
	for _, by := range audit.Groups {
		stats, err := audit.Stats(ctx, conn, audit.Filter{Limit: 2*want + 10}, by)
		if err != nil {
			t.Fatalf("Stats by %s: %v", by, err)
		}
		var sum uint64
		for _, s := range stats {
			sum += s.Count
		}
		if sum != uint64(want) {
			t.Errorf("Stats by %s add up to %d, want %d: %v", by, sum, want, stats)
		}
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.ClickHouseConn(t)
	ctx := stacktest.Context(t, time.Minute)
	all, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range all {
		names = append(names, m.Name)
	}
	wantNames := []string{"0001_decisions.sql", "0002_admin_events.sql", "0003_admin_event_context.sql", "0004_throttled.sql", "0005_merge_duplicates.sql"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("migrations %v, want %v", names, wantNames)
	}

	applied, err := audit.Migrate(ctx, conn)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if !slices.Equal(applied, names) {
		t.Errorf("first Migrate applied %v, want %v", applied, names)
	}

	recorded := func() map[uint32]string {
		t.Helper()
		rows, err := conn.Query(ctx, "SELECT version, name, applied_at FROM hissuno_migrations FINAL ORDER BY version")
		if err != nil {
			t.Fatalf("read hissuno_migrations: %v", err)
		}
		defer rows.Close()
		out := map[uint32]string{}
		for rows.Next() {
			var v uint32
			var name string
			var at time.Time
			if err := rows.Scan(&v, &name, &at); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(at); d < -time.Minute || d > 10*time.Minute {
				t.Errorf("migration %s applied_at %s, want about now", name, at)
			}
			out[v] = name
		}
		return out
	}
	want := map[uint32]string{1: "0001_decisions.sql", 2: "0002_admin_events.sql", 3: "0003_admin_event_context.sql", 4: "0004_throttled.sql", 5: "0005_merge_duplicates.sql"}
	if got := recorded(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("hissuno_migrations holds %v, want %v", got, want)
	}

	for i := range 2 {
		applied, err = audit.Migrate(ctx, conn)
		if err != nil {
			t.Fatalf("Migrate run %d: %v", i+2, err)
		}
		if len(applied) != 0 {
			t.Errorf("Migrate run %d applied %v, want nothing", i+2, applied)
		}
	}
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_migrations FINAL"); n != uint64(len(wantNames)) {
		t.Errorf("hissuno_migrations holds %d versions after three runs, want %d", n, len(wantNames))
	}

	// The tables' columns are those the inserts name, in the same order.
	tests := []struct {
		name    string
		table   string
		columns string
	}{
		{name: "decisions", table: "hissuno_decisions", columns: audit.DecisionColumns},
		{name: "admin events", table: "hissuno_admin_events", columns: audit.AdminColumns},
		{name: "throttled", table: "hissuno_throttled", columns: audit.ThrottledColumns},
		{name: "migrations", table: "hissuno_migrations", columns: "version, name, applied_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = ?", tt.table)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Fatal(err)
				}
				got = append(got, name)
			}
			if want := strings.Split(tt.columns, ", "); !slices.Equal(got, want) {
				t.Errorf("%s has columns\n%v\nthe insert names\n%v", tt.table, got, want)
			}
		})
	}
}

// TestMigrateUpgrade migrates an audit made before 0003 that holds an admin
// event: the event keeps everything it had and reads back with the new
// columns empty.
func TestMigrateUpgrade(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.ClickHouseConn(t)
	ctx := stacktest.Context(t, time.Minute)
	all, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Exec(t, conn, "CREATE TABLE hissuno_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version")
	for _, m := range all[:2] {
		for _, stmt := range m.Statements {
			stacktest.Exec(t, conn, stmt)
		}
		insertRow(t, conn, "INSERT INTO hissuno_migrations (version, name, applied_at)", m.Version, m.Name, time.Now())
	}
	insertRow(t, conn, "INSERT INTO hissuno_admin_events (event_id, command_id, kind, actor, time, time_us, project_id, name, key_version, revision)",
		"adm_cmd_old", "cmd_old", "project.created", "ops@laptop", time.Now(), uint32(0), "proj_old", "Old shop", uint32(1), uint64(1))
	applied, err := audit.Migrate(ctx, conn)
	if err != nil {
		t.Fatalf("Migrate over 0002: %v", err)
	}
	if want := []string{"0003_admin_event_context.sql", "0004_throttled.sql", "0005_merge_duplicates.sql"}; !slices.Equal(applied, want) {
		t.Errorf("Migrate over 0002 applied %v, want %v", applied, want)
	}
	recs, err := audit.AdminEvents(ctx, conn, audit.Filter{Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatalf("read the admin events after the upgrade: %v", err)
	}
	if len(recs) != 1 || recs[0].EventID != "adm_cmd_old" || recs[0].Actor != "ops@laptop" || recs[0].Name != "Old shop" || recs[0].Reason != "" || recs[0].Account != "" {
		t.Errorf("the event from before the upgrade reads back as %+v", recs)
	}
}

// TestMigrateMergesDuplicates fills tables made by the migrations before
// 0005 with the copies auditors before it stored (batches inserted again,
// over two month partitions, merges stopped so that none is merged away
// before), then migrates: every decision and admin event is there once,
// none lost, and the questions' plain count()s are exact.
func TestMigrateMergesDuplicates(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.ClickHouseConn(t)
	ctx := stacktest.Context(t, 2*time.Minute)
	all, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Exec(t, conn, "CREATE TABLE hissuno_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version")
	for _, m := range all {
		if m.Version >= 5 {
			break
		}
		for _, stmt := range m.Statements {
			stacktest.Exec(t, conn, stmt)
		}
		insertRow(t, conn, "INSERT INTO hissuno_migrations (version, name, applied_at)", m.Version, m.Name, time.Now())
	}
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_admin_events")

	// 300 decisions, 150 in each of two months; stored in three batches,
	// the first two of them again, one part of them a third time.
	const n = 300
	now := time.Now().UTC()
	var rows [][]any
	for i := range n {
		at := now.Add(-time.Duration(i%2) * 40 * 24 * time.Hour).Add(-time.Duration(i) * time.Second)
		body, err := json.Marshal(stacktest.SampleDecision("mig", i, at))
		if err != nil {
			t.Fatal(err)
		}
		row, err := audit.DecisionsTable.Row(events.SubjectDecisions, body)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	for _, b := range [][][]any{rows[:100], rows[100:200], rows[200:], rows[:100], rows[100:200], rows[50:150]} {
		if err := audit.Insert(ctx, conn, audit.DecisionsTable, b); err != nil {
			t.Fatal(err)
		}
	}
	stored := uint64(n + 200 + 100)
	for i := range 3 {
		for range 1 + i%2 {
			insertRow(t, conn, "INSERT INTO hissuno_admin_events (event_id, command_id, kind, actor, time, time_us, project_id, name, key_version, revision)",
				fmt.Sprintf("adm_mig_%d", i), "cmd_mig", "project.created", "ops@laptop", now.Add(-time.Duration(i)*40*24*time.Hour), uint32(0), "proj_mig", "Shop", uint32(1), uint64(1))
		}
	}
	if got := stacktest.Count(t, conn, countRaw); got != stored {
		t.Fatalf("%d rows before the migration, want %d: merged before the test could look", got, stored)
	}
	stacktest.Exec(t, conn, "SYSTEM START MERGES hissuno_decisions")
	stacktest.Exec(t, conn, "SYSTEM START MERGES hissuno_admin_events")

	applied, err := audit.Migrate(ctx, conn)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if want := []string{"0005_merge_duplicates.sql"}; !slices.Equal(applied, want) {
		t.Errorf("Migrate applied %v, want %v", applied, want)
	}
	if got := stacktest.Count(t, conn, countRaw); got != n {
		t.Errorf("%d rows after the migration, want %d (each decision once)", got, n)
	}
	if got := stacktest.Count(t, conn, "SELECT uniqExact(decision_id) FROM hissuno_decisions"); got != n {
		t.Errorf("%d decisions after the migration, want %d (none lost)", got, n)
	}
	if got := stacktest.Count(t, conn, "SELECT count() FROM hissuno_admin_events"); got != 3 {
		t.Errorf("%d admin events after the migration, want 3", got)
	}
	stats, err := audit.Stats(ctx, conn, audit.Filter{}, audit.ByDecision)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, s := range stats {
		total += s.Count
	}
	if total != n {
		t.Errorf("Stats counts %d decisions after the migration, want %d", total, n)
	}
	if applied, err := audit.Migrate(ctx, conn); err != nil || len(applied) != 0 {
		t.Errorf("Migrate again applied %v, %v; want nothing", applied, err)
	}
}

// insertRow inserts one row as the auditor does, in a batch.
func insertRow(t *testing.T, conn driver.Conn, insert string, values ...any) {
	t.Helper()
	ctx := stacktest.Context(t, 30*time.Second)
	b, err := conn.PrepareBatch(ctx, insert)
	if err != nil {
		t.Fatalf("%s: %v", insert, err)
	}
	if err := b.Append(values...); err != nil {
		t.Fatalf("%s: %v", insert, err)
	}
	if err := b.Send(); err != nil {
		t.Fatalf("%s: %v", insert, err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.ClickHouseConn(t)
	ctx := stacktest.Context(t, time.Minute)
	// Several auditors starting at once all migrate; none fails and the
	// tables end up as one would make them.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := audit.Open(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := audit.Migrate(ctx, c); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Migrate: %v", err)
	}
	all, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_migrations FINAL"); n != uint64(len(all)) {
		t.Errorf("hissuno_migrations holds %d versions, want %d", n, len(all))
	}
	if applied, err := audit.Migrate(ctx, conn); err != nil || len(applied) != 0 {
		t.Errorf("Migrate after the concurrent runs applied %v, %v; want nothing", applied, err)
	}
}

func TestAuditorStoresEveryDecisionOnce(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.ClickHouseConn(t)
	ns, js := natsJS(t)
	const n = 1000
	// Half before the auditor starts (a backlog), half while it runs; some
	// published twice with the same Nats-Msg-Id, as a retrying verifier does.
	first := publishN(t, js, "pre", n/2)
	r := startAuditor(t, context.Background(), ns, auditor.Config{ClickHouseDSN: dsn, BatchSize: 64, BatchWait: 20 * time.Millisecond})
	now := time.Now().UTC()
	var second []string
	for i := range n / 2 {
		d := stacktest.SampleDecision("live", i, now.Add(time.Duration(i)*time.Microsecond))
		publish(t, js, d)
		if i%10 == 0 {
			publish(t, js, d)
		}
		second = append(second, d.DecisionID)
	}
	waitStored(t, conn, n, time.Minute)
	checkExactlyOnce(t, conn, append(first, second...))
	stacktest.Eventually(t, 10*time.Second, "an empty backlog", func() error { return emptyBacklog(t, js) })
	if err := r.a.Ready(stacktest.Context(t, 10*time.Second)); err != nil {
		t.Errorf("Ready with ClickHouse up: %v", err)
	}

	// Every field of a decision survives the trip.
	d := stacktest.SampleDecision("pre", 0, time.Now())
	recs, err := audit.Decisions(stacktest.Context(t, 10*time.Second), conn, audit.Filter{ProjectID: d.ProjectID, UserID: d.UserID, Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	var got *audit.Record
	for i := range recs {
		if recs[i].DecisionID == d.DecisionID {
			got = &recs[i]
		}
	}
	if got == nil {
		t.Fatalf("decision %s not found by project and user", d.DecisionID)
	}
	if got.AttemptID != d.AttemptID || got.Decision != string(d.Decision) || got.Session != string(d.Session) ||
		got.UserID != d.UserID || !got.UserVerified || got.KeyVersion != 1 || got.TokenFingerprint != d.TokenFingerprint ||
		got.Origin != d.Origin || got.Verifier != d.Verifier || got.Ingress != d.Ingress || got.LatencyMicros != 1500 ||
		got.ClientIP != d.ClientIP || got.UserAgent != d.UserAgent || got.UserMetadata["plan"] != "pro" {
		t.Errorf("stored record %+v\ndoes not match the event %+v", *got, d)
	}
}

// TestAuditorKeepsTheConsumerEnsureMade: the auditor starts on the
// consumer bus.Ensure made and changes only what its own settings set (its
// ack wait, and how many events it holds unacknowledged); each decision it
// stored, and acknowledged, leaves the decisions stream.
func TestAuditorKeepsTheConsumerEnsureMade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  auditor.Config
		want bus.AuditSettings
	}{
		{"defaults", auditor.Config{}, bus.AuditSettings{}},
		{"its own batches", auditor.Config{BatchSize: 64, Inserts: 3, AckWait: 30 * time.Second}, bus.AuditSettings{MaxAckPending: 5 * 64, AckWait: 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn, conn := stacktest.ClickHouseConn(t)
			ns, js := natsJS(t)
			ids := publishN(t, js, "ensured", 50)
			cfg := tt.cfg
			cfg.ClickHouseDSN, cfg.BatchWait = dsn, 20*time.Millisecond
			startAuditor(t, context.Background(), ns, cfg)
			waitStored(t, conn, len(ids), time.Minute)
			checkExactlyOnce(t, conn, ids)

			cons, err := js.Consumer(stacktest.Context(t, 10*time.Second), events.StreamDecisions, events.ConsumerAuditDecisions)
			if err != nil {
				t.Fatal(err)
			}
			got, want := cons.CachedInfo().Config, bus.AuditDecisionsConsumer(tt.want)
			if got.Durable != want.Durable || got.Description != want.Description || got.FilterSubject != want.FilterSubject ||
				got.AckPolicy != want.AckPolicy || got.AckWait != want.AckWait || got.MaxDeliver != want.MaxDeliver ||
				got.MaxAckPending != want.MaxAckPending || got.DeliverPolicy != want.DeliverPolicy {
				t.Errorf("the auditor runs with\n%+v\nwant\n%+v", got, want)
			}
			stacktest.Eventually(t, 10*time.Second, "the decisions stream empty once every decision is stored", func() error { return decisionsStreamEmpty(t, js) })
		})
	}
}

// TestAuditorRemovesStoredDecisionsAFollowerHolds: a follower of the
// decisions stream that reads nothing (a hung audit tail) is interest that
// would keep every decision; once the auditor stored them, more than
// StoredGrace ago, it removes them all the same.
func TestAuditorRemovesStoredDecisionsAFollowerHolds(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.ClickHouseConn(t)
	ns, js := natsJS(t)
	if _, err := js.CreateConsumer(stacktest.Context(t, 10*time.Second), events.StreamDecisions, bus.FollowDecisions(jetstream.DeliverAllPolicy)); err != nil {
		t.Fatal(err)
	}
	ids := publishN(t, js, "followed", 50)
	startAuditor(t, context.Background(), ns, auditor.Config{ClickHouseDSN: dsn, BatchWait: 20 * time.Millisecond, BacklogEvery: 50 * time.Millisecond, StoredGrace: 300 * time.Millisecond})
	waitStored(t, conn, len(ids), time.Minute)
	stacktest.Eventually(t, 10*time.Second, "the stored decisions removed from under the follower", func() error { return decisionsStreamEmpty(t, js) })
	checkExactlyOnce(t, conn, ids)
}

func TestBacklogSurvivesClickHouseRestart(t *testing.T) {
	t.Parallel()
	if !localclickhouse.Available() {
		stacktest.Missing(t, localclickhouse.ErrNotInstalled.Error()+"; scripts/deps, as root, installs it")
	}
	tests := []struct {
		name    string
		ackWait time.Duration
		// longOutage keeps ClickHouse down for three ack waits, so that the
		// batches the auditor holds (and does not mark in progress) expire
		// and JetStream delivers them again.
		longOutage bool
	}{
		{name: "short outage", ackWait: time.Minute},
		{name: "outage longer than the ack wait", ackWait: time.Second, longOutage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := stacktest.Context(t, 3*time.Minute)
			srv, err := localclickhouse.Start(ctx, t.TempDir())
			if err != nil {
				t.Fatalf("start a private ClickHouse: %v", err)
			}
			t.Cleanup(srv.Stop)
			ns, js := natsJS(t)
			r := startAuditor(t, context.Background(), ns, auditor.Config{
				ClickHouseDSN: srv.DSN, BatchSize: 50, BatchWait: 20 * time.Millisecond,
				RetryMax: 250 * time.Millisecond, BacklogEvery: 50 * time.Millisecond, AckWait: tt.ackWait,
			})
			load := startLoad(t, ns)

			conn := stacktest.OpenClickHouse(t, srv.DSN)
			stacktest.Eventually(t, time.Minute, "decisions arriving in ClickHouse", func() error {
				n, err := tryCount(conn, countRaw)
				if err != nil {
					return err
				}
				if n < 100 {
					return fmt.Errorf("%d decisions stored, want 100", n)
				}
				return nil
			})

			srv.Kill()
			killed, killedAt := time.Now(), load.published()
			t.Logf("ClickHouse killed after %d decisions published", killedAt)
			b0 := uint64(0)
			stacktest.Eventually(t, 30*time.Second, "a backlog while ClickHouse is down", func() error {
				b, err := backlog(t, js)
				b0 = b
				if err != nil {
					return err
				}
				if b < 100 {
					return fmt.Errorf("a backlog of %d decisions, want 100", b)
				}
				return nil
			})
			stacktest.Eventually(t, 30*time.Second, "the backlog growing while ClickHouse is down", func() error {
				b, err := backlog(t, js)
				if err != nil {
					return err
				}
				if b < b0+200 {
					return fmt.Errorf("a backlog of %d decisions, want %d", b, b0+200)
				}
				return nil
			})
			if tt.longOutage {
				// A pull consumer redelivers only when asked, so nothing shows
				// the ack wait passing: the outage just lasts three of them.
				stacktest.Eventually(t, 30*time.Second, "an outage of three ack waits", func() error {
					if down := time.Since(killed); down <= 3*tt.ackWait {
						return fmt.Errorf("down for %s", down.Round(time.Millisecond))
					}
					return nil
				})
			}
			r.stillRunning(t)
			if err := r.a.Ready(stacktest.Context(t, 10*time.Second)); err == nil {
				t.Error("Ready says ClickHouse is fine while it is down")
			}
			if load.published() <= killedAt {
				t.Fatal("the load stopped while ClickHouse was down")
			}

			if err := srv.Restart(ctx); err != nil {
				t.Fatalf("restart ClickHouse: %v", err)
			}
			restartedAt := load.published()
			t.Logf("ClickHouse restarted after %d decisions published", restartedAt)
			stacktest.Eventually(t, 30*time.Second, "the load going on after the restart", func() error {
				if n := load.published(); n < restartedAt+300 {
					return fmt.Errorf("%d decisions published since the restart, want 300", n-restartedAt)
				}
				return nil
			})
			all := load.stop(t)

			conn = stacktest.OpenClickHouse(t, srv.DSN) // the old connection died with the server
			waitStored(t, conn, len(all), 2*time.Minute)
			stacktest.Eventually(t, 30*time.Second, "an empty backlog", func() error { return emptyBacklog(t, js) })
			checkExactlyOnce(t, conn, all)
			r.stillRunning(t)
			stacktest.Eventually(t, 10*time.Second, "Ready after the restart", func() error {
				return r.a.Ready(stacktest.Context(t, 10*time.Second))
			})
			t.Logf("%d decisions, %d raw rows", len(all), stacktest.Count(t, conn, countRaw))
		})
	}
}

// load publishes decisions continuously, one a millisecond, as verifiers
// under load do.
type load struct {
	mu     sync.Mutex
	ids    []string
	quit   chan struct{}
	done   chan error
	once   sync.Once
	result []string
}

func startLoad(t testing.TB, ns *server.Server) *load {
	t.Helper()
	js, err := jetstream.New(stacktest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	l := &load{quit: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-l.quit:
				l.done <- nil
				return
			case <-time.After(time.Millisecond):
			}
			d := stacktest.SampleDecision("load", i, time.Now())
			body, _ := json.Marshal(d)
			m := nats.NewMsg(events.SubjectDecisions)
			m.Data = body
			m.Header.Set(events.HeaderMsgID, d.DecisionID)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := js.PublishMsg(ctx, m)
			cancel()
			if err != nil {
				l.done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			l.mu.Lock()
			l.ids = append(l.ids, d.DecisionID)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.stop(t) })
	return l
}

// published is how many decisions the load has stored so far.
func (l *load) published() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// stop ends the load and returns the ids of every decision it stored.
func (l *load) stop(t testing.TB) []string {
	t.Helper()
	l.once.Do(func() {
		close(l.quit)
		if err := <-l.done; err != nil {
			t.Errorf("load: %v", err)
		}
		l.mu.Lock()
		l.result = slices.Clone(l.ids)
		l.mu.Unlock()
	})
	return l.result
}

func TestCrashAfterInsertBeforeAck(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.MigratedClickHouse(t)
	// Keep the duplicates the crash causes in place until we look.
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	ns, js := natsJS(t)
	const n, batch = 600, 100
	ids := publishN(t, js, "crash", n)

	ctxA, killA := context.WithCancel(context.Background())
	var crashes atomic.Int32
	// One insert at a time, so that exactly one batch is in ClickHouse
	// and unacknowledged when A dies.
	cfgA := auditor.WithCrashAfterInsert(auditor.Config{
		ClickHouseDSN: dsn, Instance: "auditor-a", BatchSize: batch, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second, Inserts: 1,
	}, func() bool {
		if crashes.Add(1) == 1 {
			killA() // the process dies: nothing after the insert happens
			return true
		}
		return false
	})
	a := startAuditor(t, ctxA, ns, cfgA)
	a.wait(t)
	if c := crashes.Load(); c != 1 {
		t.Fatalf("auditor A inserted %d batches before it died, want 1", c)
	}
	raw := stacktest.Count(t, conn, countRaw)
	if raw == 0 || raw > batch {
		t.Fatalf("after the crash ClickHouse holds %d rows, want the one batch (1 to %d)", raw, batch)
	}
	if b, _ := backlog(t, js); b != n {
		t.Errorf("after the crash the backlog is %d, want all %d (nothing acked)", b, n)
	}

	startAuditor(t, context.Background(), ns, auditor.Config{
		ClickHouseDSN: dsn, Instance: "auditor-b", BatchSize: batch, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second,
	})
	waitStored(t, conn, n, time.Minute)
	stacktest.Eventually(t, 30*time.Second, "an empty backlog", func() error { return emptyBacklog(t, js) })
	// The batch A stored before it died came again to B, which found its
	// rows stored and did not insert them again: no copy, even unmerged.
	if got := stacktest.Count(t, conn, countRaw); got != n {
		t.Errorf("raw rows = %d, want %d: the batch stored before the crash was stored again", got, n)
	}
	checkExactlyOnce(t, conn, ids)

	stacktest.Exec(t, conn, "SYSTEM START MERGES hissuno_decisions")
	stacktest.Exec(t, conn, "OPTIMIZE TABLE hissuno_decisions FINAL")
	if got := stacktest.Count(t, conn, countRaw); got != n {
		t.Errorf("raw rows after OPTIMIZE … FINAL = %d, want %d", got, n)
	}
	checkExactlyOnce(t, conn, ids)
}

// TestInsertRetriedAfterLostAnswer: an insert lands in ClickHouse but the
// auditor does not learn it (the connection breaks after sending); it
// retries, finds the rows stored, and stores no copy.
func TestInsertRetriedAfterLostAnswer(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.MigratedClickHouse(t)
	stacktest.Exec(t, conn, "SYSTEM STOP MERGES hissuno_decisions")
	ns, js := natsJS(t)
	const n = 300
	ids := publishN(t, js, "lost", n)
	var lost atomic.Int32
	cfg := auditor.WithLostInsertAnswer(auditor.Config{
		ClickHouseDSN: dsn, BatchSize: 100, BatchWait: 50 * time.Millisecond, AckWait: 2 * time.Second, Inserts: 1,
	}, func() bool { return lost.Add(1)%2 == 1 }) // every other insert
	startAuditor(t, context.Background(), ns, cfg)
	stacktest.Eventually(t, time.Minute, "an empty backlog", func() error { return emptyBacklog(t, js) })
	if lost.Load() < 2 {
		t.Fatalf("%d inserts made, want some answers lost", lost.Load())
	}
	checkExactlyOnce(t, conn, ids)
}

func TestPoisonGoesToDeadLetters(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.ClickHouseConn(t)
	ns, js := natsJS(t)
	poison := []struct {
		name string
		body string
	}{
		{name: "not JSON", body: `{"decisionId": "dec_broken", `},
		{name: "JSON without decisionId", body: `{"schemaVersion":1,"attemptId":"att_x","time":"2026-01-02T03:04:05Z","projectId":"p","decision":"accept"}`},
		{name: "JSON without time", body: `{"schemaVersion":1,"decisionId":"dec_notime","projectId":"p","decision":"accept"}`},
		{name: "JSON array", body: `[1,2,3]`},
		{name: "empty", body: ``},
	}
	startAuditor(t, context.Background(), ns, auditor.Config{ClickHouseDSN: dsn, BatchSize: 16, BatchWait: 20 * time.Millisecond})
	now := time.Now().UTC()
	var ids []string
	for i := range 80 {
		d := stacktest.SampleDecision("poison", i, now.Add(time.Duration(i)*time.Millisecond))
		publish(t, js, d)
		ids = append(ids, d.DecisionID)
		if i%16 == 5 && i/16 < len(poison) {
			publishRaw(t, js, []byte(poison[i/16].body), "")
		}
	}
	waitStored(t, conn, len(ids), time.Minute)
	checkExactlyOnce(t, conn, ids)
	stacktest.Eventually(t, 10*time.Second, "an empty backlog", func() error { return emptyBacklog(t, js) })

	ctx := stacktest.Context(t, 30*time.Second)
	dl, err := js.Stream(ctx, events.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	stacktest.Eventually(t, 10*time.Second, "every poison message dead-lettered", func() error {
		if info, err = dl.Info(ctx); err != nil {
			return err
		}
		if info.State.Msgs < uint64(len(poison)) {
			return fmt.Errorf("%d of %d dead-lettered", info.State.Msgs, len(poison))
		}
		return nil
	})
	if info.State.Msgs != uint64(len(poison)) {
		t.Errorf("%d dead letters, want %d", info.State.Msgs, len(poison))
	}
	letters := map[string]*jetstream.RawStreamMsg{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := dl.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		letters[string(m.Data)] = m
	}
	for _, p := range poison {
		t.Run(p.name, func(t *testing.T) {
			m := letters[p.body]
			if m == nil {
				t.Fatalf("%q is not in %s", p.body, events.StreamDeadLetter)
			}
			if want := events.SubjectDeadLetterPrefix + events.StreamDecisions; m.Subject != want {
				t.Errorf("dead letter on %q, want %q", m.Subject, want)
			}
			if m.Header.Get(events.HeaderError) == "" {
				t.Errorf("dead letter without %s: %v", events.HeaderError, m.Header)
			}
			if got := m.Header.Get(events.HeaderSourceSubject); got != events.SubjectDecisions {
				t.Errorf("%s = %q, want %q", events.HeaderSourceSubject, got, events.SubjectDecisions)
			}
		})
	}
	if n := stacktest.Count(t, conn, "SELECT count() FROM hissuno_decisions WHERE decision_id IN ('dec_broken', 'dec_notime', '')"); n != 0 {
		t.Errorf("%d poison rows reached ClickHouse", n)
	}
}

func TestClickHouseUnreachableFromStart(t *testing.T) {
	t.Parallel()
	ns, js := natsJS(t)
	r := startAuditor(t, context.Background(), ns, auditor.Config{
		ClickHouseDSN: "clickhouse://127.0.0.1:1/default", BatchSize: 10, BatchWait: 20 * time.Millisecond,
		RetryMax: 100 * time.Millisecond, BacklogEvery: 20 * time.Millisecond, StoredGrace: 10 * time.Millisecond,
	})
	const n = 35
	publishN(t, js, "unreachable", n)
	stacktest.Eventually(t, 10*time.Second, "the backlog reported", func() error {
		b, err := backlog(t, js)
		if err != nil {
			return err
		}
		if b != n {
			return fmt.Errorf("a backlog of %d decisions, want %d", b, n)
		}
		return nil
	})
	// Let it try (and fail) to insert a while: the backlog stays whole.
	cons, err := js.Consumer(stacktest.Context(t, 10*time.Second), events.StreamDecisions, events.ConsumerAuditDecisions)
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 10*time.Second, "the auditor holding a batch (delivered, unacked)", func() error {
		info, err := cons.Info(stacktest.Context(t, 10*time.Second))
		if err != nil {
			return err
		}
		if info.NumAckPending == 0 {
			return fmt.Errorf("none ack pending, %d pending", info.NumPending)
		}
		return nil
	})
	// For a second of failed attempts, nothing is acked and the backlog
	// stays whole.
	since := time.Now()
	stacktest.Eventually(t, 30*time.Second, "a second of attempts", func() error {
		r.stillRunning(t)
		if err := r.a.Ready(stacktest.Context(t, 10*time.Second)); err == nil {
			t.Fatal("Ready reports a ClickHouse on a closed port as ready")
		}
		info, err := cons.Info(stacktest.Context(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream != 0 {
			t.Fatalf("messages acked (ack floor %d) with ClickHouse unreachable", info.AckFloor.Stream)
		}
		if b := info.NumPending + uint64(info.NumAckPending); b != n {
			t.Fatalf("backlog %d, want %d", b, n)
		}
		// Nothing stored, nothing removed from the stream.
		s, err := js.Stream(stacktest.Context(t, 10*time.Second), events.StreamDecisions)
		if err != nil {
			t.Fatal(err)
		}
		if held := s.CachedInfo().State.Msgs; held != n {
			t.Fatalf("the decisions stream holds %d decisions with ClickHouse unreachable, want %d", held, n)
		}
		if d := time.Since(since); d <= time.Second {
			return fmt.Errorf("%s of attempts", d.Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("Ready: %v", r.a.Ready(stacktest.Context(t, 10*time.Second)))
	r.stop(t)
}

package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

const (
	// readerUsersFile is the audit readers' ClickHouse user, as
	// docker-compose.yml mounts it.
	readerUsersFile = "clickhouse/users.d/hissuno-reader.xml"
	readerUser      = deploy.ClickHouseReader
	readerPassVar   = deploy.ClickHouseReaderPasswordVar
	auditDatabase   = deploy.ClickHouseDatabase
)

// writerUsersXML is the writer as the ClickHouse image's entrypoint makes it
// from CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (users.d/default-user.xml:
// the default profile, any address), with the root 18.16 reads.
const writerUsersXML = `<?xml version="1.0"?>
<yandex>
    <users>
        <hissuno>
            <profile>default</profile>
            <networks><ip>::/0</ip></networks>
            <password>%s</password>
            <quota>default</quota>
        </hissuno>
    </users>
</yandex>
`

// TestClickHouseReaderUser starts a ClickHouse (18.16 here) with the
// users of docker-compose.yml — the image's writer and
// deploy/clickhouse/users.d/hissuno-reader.xml, its password from the
// environment — and checks that the auditor's writer migrates and writes,
// that the reader answers every audit question, and that every write or
// schema change through the reader fails, saying it is read-only.
func TestClickHouseReaderUser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ClickHouse server")
	}
	if !localclickhouse.Available() {
		stacktest.Missing(t, "clickhouse-server is not installed: apt-get install -y clickhouse-server (scripts/deps)")
	}
	ctx := stacktest.Context(t, 3*time.Minute)
	dir := t.TempDir()
	const writerPass, readerPass = "writerpw1", "readerpw1"
	readerXML, err := os.ReadFile(readerUsersFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readerXML, deploy.ClickHouseReaderUsers) {
		t.Fatalf("deploy.ClickHouseReaderUsers is not %s", readerUsersFile)
	}
	srv, err := localclickhouse.StartWith(ctx, filepath.Join(dir, "ch"), localclickhouse.Options{
		UsersFiles: map[string][]byte{
			filepath.Base(readerUsersFile): readerXML,
			"hissuno-writer.xml":           []byte(fmt.Sprintf(writerUsersXML, writerPass)),
		},
		Env: []string{readerPassVar + "=" + readerPass},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	stacktest.Exec(t, stacktest.OpenClickHouse(t, srv.DSN), "CREATE DATABASE "+auditDatabase) // as the image does (CLICKHOUSE_DB)
	dsn := srv.DSNAs

	// The writer: the auditor migrates and inserts.
	writer := stacktest.OpenClickHouse(t, dsn("hissuno", writerPass, auditDatabase))
	if _, err := audit.Migrate(ctx, writer); err != nil {
		t.Fatalf("the writer cannot migrate: %v", err)
	}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var rows [][]any
	for i := range 40 {
		d := stacktest.SampleDecision("reader", i, base.Add(time.Duration(i)*time.Second))
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
	if err := audit.Insert(ctx, writer, audit.DecisionsTable, rows); err != nil {
		t.Fatalf("the writer cannot insert: %v", err)
	}
	stacktest.Exec(t, writer, fmt.Sprintf("INSERT INTO hissuno_admin_events (event_id, kind, actor, time, project_id) SELECT 'ev1', 'project_created', 'nats:admin', toDateTime(%d), 'proj_0'", base.Unix()))

	// The reader answers every question of `hissuno audit` and the console.
	reader := stacktest.OpenClickHouse(t, dsn(readerUser, readerPass, auditDatabase))
	f := audit.Filter{Since: base.Add(-time.Minute), Limit: 1000}
	recs, err := audit.Decisions(ctx, reader, f)
	if err != nil || len(recs) != len(rows) {
		t.Fatalf("reader: Decisions: %d records, %v; want %d", len(recs), err, len(rows))
	}
	questions := []struct {
		name string
		ask  func() error
	}{
		{"admin events", func() error {
			evs, err := audit.AdminEvents(ctx, reader, f)
			if err == nil && len(evs) != 1 {
				err = fmt.Errorf("%d admin events, want 1", len(evs))
			}
			return err
		}},
		{"decisions page", func() error { _, err := audit.DecisionsPage(ctx, reader, f, ""); return err }},
		{"admin events page", func() error { _, err := audit.AdminEventsPage(ctx, reader, f, ""); return err }},
		{"one decision", func() error { _, err := audit.Decision(ctx, reader, recs[0].DecisionID, nil); return err }},
		{"series", func() error {
			_, err := audit.Series(ctx, reader, f, audit.BucketMinute, audit.SplitDecision)
			return err
		}},
		{"top origins", func() error { _, err := audit.Top(ctx, reader, f, audit.ByOrigin, 10); return err }},
		{"users", func() error { _, err := audit.Users(ctx, reader, f, ""); return err }},
		{"anonymous", func() error { _, err := audit.Anonymous(ctx, reader, f); return err }},
		{"project counts", func() error { _, err := audit.ProjectCounts(ctx, reader, f.Since, nil); return err }},
		{"export (sets max_block_size)", func() error {
			n, err := audit.ExportDecisions(ctx, reader, f, 1000, func(audit.Record) error { return nil })
			if err == nil && n != len(rows) {
				err = fmt.Errorf("exported %d, want %d", n, len(rows))
			}
			return err
		}},
	}
	for _, by := range []audit.Group{audit.ByDecision, audit.ByReason, audit.ByOrigin, audit.ByUser, audit.ByHour} {
		questions = append(questions, struct {
			name string
			ask  func() error
		}{"stats by " + string(by), func() error { _, err := audit.Stats(ctx, reader, f, by); return err }})
	}
	for _, q := range questions {
		if err := q.ask(); err != nil {
			t.Errorf("reader: %s: %v", q.name, err)
		}
	}

	// Nothing the reader sends writes or changes the schema.
	writes := []string{
		"INSERT INTO hissuno_decisions (decision_id, time) SELECT 'forged', now()",
		"ALTER TABLE hissuno_decisions DELETE WHERE 1",
		"ALTER TABLE hissuno_decisions DROP PARTITION ID '" + base.Format("200601") + "'",
		"ALTER TABLE hissuno_admin_events ADD COLUMN forged String",
		"DROP TABLE hissuno_decisions",
		"TRUNCATE TABLE hissuno_admin_events",
		"CREATE TABLE forged (x UInt8) ENGINE = Memory",
		"RENAME TABLE hissuno_decisions TO forged",
		"OPTIMIZE TABLE hissuno_decisions FINAL",
	}
	for _, stmt := range writes {
		err := reader.Exec(ctx, stmt)
		if err == nil || !audit.ReadOnly(err) || !strings.Contains(err.Error(), "readonly") {
			t.Errorf("reader: %s: %v; want ClickHouse's readonly refusal (164)", stmt, err)
		}
	}
	if err := audit.Insert(ctx, reader, audit.DecisionsTable, rows[:1]); err == nil || !audit.ReadOnly(err) {
		t.Errorf("reader: a batch insert: %v; want the readonly refusal", err)
	}
	if _, err := audit.Migrate(ctx, reader); err == nil || !strings.Contains(err.Error(), "may only read") {
		t.Errorf("reader: Migrate: %v; want an error saying the user may only read and what to do", err)
	}
	// Only the audit's database.
	if err := tryOpen(ctx, dsn(readerUser, readerPass, "default")); err == nil {
		t.Error("the reader reached the default database")
	}
	if err := tryOpen(ctx, dsn(readerUser, "wrong", auditDatabase)); err == nil {
		t.Error("the reader connected with a wrong password")
	}
	if n := stacktest.Count(t, writer, "SELECT count() FROM hissuno_decisions"); n != uint64(len(rows)) {
		t.Errorf("%d decisions after the reader's attempts, want %d", n, len(rows))
	}
}

// tryOpen connects and runs a query, returning the first error.
func tryOpen(ctx context.Context, dsn string) error {
	conn, err := audit.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	return queryOne(ctx, conn)
}

func queryOne(ctx context.Context, conn driver.Conn) error {
	var n uint8
	return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
}

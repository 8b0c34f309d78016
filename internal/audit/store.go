package audit

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/schemas"
)

// ErrUnreachable means ClickHouse could not be reached; the message names
// the address and says what to do.
var ErrUnreachable = errors.New("ClickHouse unreachable")

// errBadRow marks an insert error a row caused on the client side.
var errBadRow = errors.New("row not accepted")

// DefaultDSN is where the CLI looks for ClickHouse when no DSN is given.
const DefaultDSN = "clickhouse://127.0.0.1:9000/default"

// Open connects to ClickHouse over the native protocol and checks that it
// answers. The DSN may carry a user, a password, a database and TLS
// (clickhouse://user:pass@host:9440/db?secure=true). No query settings are
// sent: ClickHouse 18.16 refuses non-numeric ones on the native protocol.
func Open(ctx context.Context, dsn string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse DSN: %w (write clickhouse://[user:password@]host:9000/database)", err)
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, strings.Join(opts.Addr, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w at %s: %w (is ClickHouse running? check --clickhouse / HISSUNO_CLICKHOUSE_DSN)", ErrUnreachable, strings.Join(opts.Addr, ","), err)
	}
	return conn, nil
}

// migrationsDDL is the migrations table, in the form of the migration
// files, so that it has a cluster form too.
const migrationsDDL = `CREATE TABLE IF NOT EXISTS hissuno_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY version`

// Migrate applies the migrations of schemas/clickhouse that the migrations
// table does not list yet, in order, and records each. It returns the names
// of the migrations it applied.
func Migrate(ctx context.Context, conn driver.Conn) ([]string, error) {
	return migrate(ctx, conn, nil)
}

// MigrateCluster is Migrate on the ClickHouse cluster named cluster (a
// <remote_servers> entry of every node), in the database conn uses: each
// table is a Replicated…MergeTree table name_local on every node, made
// with ON CLUSTER, and a Distributed table name over them, which inserts
// and queries use (schemas.ClusterStatements derives them from the
// migration files). An ALTER of a Distributed table is run on every node
// in turn, connecting to each as dsn (its user, password, database and
// TLS) at the host and port its <remote_servers> entry names. Nothing runs ON CLUSTER when the
// tables are there and up to date, so that a node down does not hold the
// auditor's start.
func MigrateCluster(ctx context.Context, conn driver.Conn, dsn, cluster string) ([]string, error) {
	var db string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		return nil, fmt.Errorf("current database: %w", err)
	}
	var nodes uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = '"+escape(cluster)+"'").Scan(&nodes); err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	if nodes == 0 {
		return nil, fmt.Errorf("ClickHouse knows no cluster %q: name one of its <remote_servers> (SELECT DISTINCT cluster FROM system.clusters), or leave out --cluster for a single server", cluster)
	}
	return migrate(ctx, conn, &clusterDDL{conn: conn, dsn: dsn, name: cluster, db: db})
}

// clusterDDL runs migration statements on a cluster.
type clusterDDL struct {
	conn driver.Conn
	dsn  string
	name string
	db   string
}

// exec runs stmt's cluster form: ON CLUSTER, or on every node in turn.
func (c *clusterDDL) exec(ctx context.Context, stmt string) error {
	forms, err := schemas.ClusterStatements(stmt, c.name, c.db)
	if err != nil {
		return err
	}
	for _, f := range forms {
		if !f.EachNode {
			if err := c.conn.Exec(ctx, f.SQL); err != nil && !alreadyAdded(err, f.SQL) {
				return fmt.Errorf("%w (on cluster %s: is every node up? see system.distributed_ddl_queue)", err, c.name)
			}
			continue
		}
		if err := c.onEachNode(ctx, f.SQL); err != nil {
			return err
		}
	}
	return nil
}

// onEachNode runs stmt on every node of the cluster, one connection each.
func (c *clusterDDL) onEachNode(ctx context.Context, stmt string) error {
	rows, err := c.conn.Query(ctx, "SELECT host_name, port FROM system.clusters WHERE cluster = '"+escape(c.name)+"'")
	if err != nil {
		return fmt.Errorf("read system.clusters: %w", err)
	}
	var addrs []string
	for rows.Next() {
		var host string
		var port uint16
		if err := rows.Scan(&host, &port); err != nil {
			rows.Close()
			return err
		}
		addrs = append(addrs, net.JoinHostPort(host, fmt.Sprint(port)))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	opts, err := clickhouse.ParseDSN(c.dsn)
	if err != nil {
		return fmt.Errorf("ClickHouse DSN: %w", err)
	}
	for _, addr := range addrs {
		o := *opts
		o.Addr = []string{addr}
		o.DialTimeout = 5 * time.Second
		node, err := clickhouse.Open(&o)
		if err == nil {
			err = node.Exec(ctx, stmt)
			node.Close()
		}
		if err != nil && !alreadyAdded(err, stmt) {
			return fmt.Errorf("on node %s of cluster %s: %w (every node must be up and reachable from here to alter its Distributed table; run the migration again once it is)", addr, c.name, err)
		}
	}
	return nil
}

// syncMigrationsTimeout bounds the wait for this node's replica of the
// migrations table to catch up.
const syncMigrationsTimeout = 10 * time.Second

// syncMigrations waits, for a while, until this node's replica of the
// migrations table holds what the others recorded (another node's
// migration is otherwise seen a moment later, replication being
// asynchronous). Past the wait, or with a replica away, a migration may be
// applied again, which its statements allow.
func (c *clusterDDL) syncMigrations(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, syncMigrationsTimeout)
	defer cancel()
	_ = c.conn.Exec(ctx, "SYSTEM SYNC REPLICA "+c.db+".hissuno_migrations"+schemas.LocalSuffix)
}

// escape makes s safe inside a quoted ClickHouse string.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// SyncInserts is ctx with the setting that makes an insert into a
// Distributed table return only once every shard has written its rows
// (insert_distributed_sync=1; numeric, as ClickHouse 18.16 requires of a
// setting on the native protocol), so that an insert that returned is
// stored, as the auditor's ack promises. Without a cluster it changes
// nothing.
func SyncInserts(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// migrate is Migrate, on one server (c nil) or on a cluster.
func migrate(ctx context.Context, conn driver.Conn, c *clusterDDL) ([]string, error) {
	exec := func(stmt string) error {
		if err := conn.Exec(ctx, stmt); err != nil && !alreadyAdded(err, stmt) {
			return err
		}
		return nil
	}
	if c != nil {
		exec = func(stmt string) error { return c.exec(ctx, stmt) }
		ctx = SyncInserts(ctx)
	}
	if err := ensureMigrationsTable(ctx, conn, c != nil, exec); err != nil {
		if ReadOnly(err) {
			return nil, fmt.Errorf("create migrations table: %w (this ClickHouse user may only read, as the audit's readers do: migrate with the auditor's DSN, whose user may write, or let the auditor migrate at its start)", err)
		}
		return nil, fmt.Errorf("create migrations table: %w", err)
	}
	if c != nil {
		c.syncMigrations(ctx)
	}
	migrations, err := schemas.ClickHouseMigrations()
	if err != nil {
		return nil, err
	}
	done := map[uint32]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM hissuno_migrations FINAL")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		done[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		for _, stmt := range m.Statements {
			if table, ok := optimizeFinal(stmt); ok {
				if c != nil {
					table += schemas.LocalSuffix
				}
				if err := mergeDuplicates(ctx, conn, table); err != nil {
					return applied, fmt.Errorf("migration %s: %w", m.Name, err)
				}
				continue
			}
			if err := exec(stmt); err != nil {
				return applied, fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		if err := Insert(ctx, conn, migrationsTable, [][]any{{m.Version, m.Name, time.Now().UTC().Truncate(time.Second)}}); err != nil {
			return applied, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		applied = append(applied, m.Name)
	}
	return applied, nil
}

// optimizeFinal reports whether stmt is "OPTIMIZE TABLE name FINAL", and
// the name; comment lines before it (a migration's first statement holds
// the file's comment) are not part of it.
func optimizeFinal(stmt string) (string, bool) {
	var code []string
	for _, line := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			code = append(code, line)
		}
	}
	f := strings.Fields(strings.Join(code, "\n"))
	if len(f) != 4 || !strings.EqualFold(f[0], "OPTIMIZE") || !strings.EqualFold(f[1], "TABLE") || !strings.EqualFold(f[3], "FINAL") {
		return "", false
	}
	return f[2], true
}

// mergeAttempts bounds the tries of one partition's merge that ClickHouse
// declines (a merge of those parts already running, say another auditor's
// migration).
const mergeAttempts = 30

// mergeDuplicates merges away the copies of rows an older auditor stored
// in table: every partition that may hold one (more than one active part,
// or a part no merge has written, level 0) is merged whole with OPTIMIZE …
// PARTITION ID … FINAL, which a ReplacingMergeTree does keeping one row
// per key; a partition of one merged part holds none and is left alone, so
// that a migration run again (interrupted, or by two auditors at once)
// only merges what is left. ClickHouse is asked to refuse a merge it cannot
// do (optimize_throw_if_noop) instead of skipping it silently: it is tried
// again, then the migration fails, to be run again.
func mergeDuplicates(ctx context.Context, conn driver.Conn, table string) error {
	const q = `SELECT partition_id FROM system.parts
WHERE database = currentDatabase() AND table = ? AND active
GROUP BY partition_id HAVING count() > 1 OR min(level) = 0
ORDER BY partition_id`
	rows, err := conn.Query(ctx, q, table)
	if err != nil {
		return fmt.Errorf("list the partitions of %s: %w", table, err)
	}
	parts, err := collect(rows, "partitions", func(rows driver.Rows) (string, error) {
		var p string
		err := rows.Scan(&p)
		return p, err
	})
	if err != nil {
		return err
	}
	// replication_alter_partitions_sync 0: on a Replicated table the merge
	// is queued in the replication log and not waited for; ClickHouse 18.16
	// fails waiting for one that another node's migration queued at once
	// ("Unknown log entry type: 0").
	octx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"optimize_throw_if_noop": 1, "replication_alter_partitions_sync": 0}))
	for _, p := range parts {
		if strings.Trim(p, "0123456789") != "" {
			return fmt.Errorf("partition %q of %s: not a month's (YYYYMM)", p, table)
		}
		stmt := "OPTIMIZE TABLE " + table + " PARTITION ID '" + p + "' FINAL"
		for try := 1; ; try++ {
			err := conn.Exec(octx, stmt)
			if err == nil {
				break
			}
			if try == mergeAttempts || ctx.Err() != nil {
				return fmt.Errorf("merge the copies in partition %s of %s: %w", p, table, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// codeReadOnly is ClickHouse's READONLY: a user whose profile has
// readonly set asked to write, change the schema or (readonly 1) a
// setting.
const codeReadOnly = 164

// ReadOnly reports whether err is ClickHouse refusing a write or a schema
// change to a read-only user (the audit's readers).
func ReadOnly(err error) bool {
	var exc *clickhouse.Exception
	return errors.As(err, &exc) && exc.Code == codeReadOnly
}

// ensureMigrationsTable creates the migrations table. On a cluster it
// first asks whether this node has it: a CREATE … ON CLUSTER waits for
// every node, and one down would hold every start of the auditor.
func ensureMigrationsTable(ctx context.Context, conn driver.Conn, cluster bool, exec func(string) error) error {
	if cluster {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'hissuno_migrations'").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return exec(migrationsDDL)
}

// codeColumnExists is ClickHouse's ILLEGAL_COLUMN, which an ADD COLUMN of a
// column already there answers (ClickHouse 18.16 has no ADD COLUMN IF NOT
// EXISTS).
const codeColumnExists = 44

// alreadyAdded reports whether err is an ADD COLUMN finding its column
// there: another auditor's migration, running at once, added it.
func alreadyAdded(err error, stmt string) bool {
	var exc *clickhouse.Exception
	return errors.As(err, &exc) && exc.Code == codeColumnExists && strings.Contains(strings.ToUpper(stmt), "ADD COLUMN")
}

// DecisionColumns are the columns of hissuno_decisions, as every decision
// insert and query names them.
const DecisionColumns = "decision_id, attempt_id, time, time_us, received_at, project_id, decision, reason, message, session, " +
	"user_id, user_verified, user_metadata, claimed_user_id, origin, token_fingerprint, key_version, skew_seconds, " +
	"verifier, ingress, latency_us, client_ip, user_agent"

// AdminColumns are the columns of hissuno_admin_events, as every admin-event
// insert and query names them.
const AdminColumns = "event_id, command_id, kind, actor, time, time_us, project_id, name, require_token, origins, " +
	"key_version, previous_key_version, key_fingerprint, grace_seconds, grace_until, user_id, revoked_before, revision, " +
	"reason, account, client_ip, user_agent"

// ThrottledColumns are the columns of hissuno_throttled, as every insert
// and query of counts of throttled requests names them.
const ThrottledColumns = "rollup_id, time, ingress, project_id, client_ip, reason, count, overflow"

// Table describes one audit table: its insert statement and how an event
// becomes a row.
type Table struct {
	name   string
	insert string
	// id is the column naming a row (decision_id, event_id); key are the
	// positions in a row of project_id, time and id, the table's ORDER BY.
	id  string
	key [3]int
	// row decodes one event, stored on subject, into the row's values, in
	// column order; an error means the event can never be inserted.
	row func(subject string, data []byte) ([]any, error)
}

var migrationsTable = Table{
	name:   "hissuno_migrations",
	insert: "INSERT INTO hissuno_migrations (version, name, applied_at)",
}

// DecisionsTable is hissuno_decisions: one row per decision event.
var DecisionsTable = Table{
	name:   "hissuno_decisions",
	insert: "INSERT INTO hissuno_decisions (" + DecisionColumns + ")",
	id:     "decision_id",
	key:    [3]int{5, 2, 0},
	row:    decisionRow,
}

// AdminTable is hissuno_admin_events: one row per admin event.
var AdminTable = Table{
	name:   "hissuno_admin_events",
	insert: "INSERT INTO hissuno_admin_events (" + AdminColumns + ")",
	id:     "event_id",
	key:    [3]int{6, 4, 0},
	row:    adminRow,
}

// ThrottledTable is hissuno_throttled: one row per count of throttled
// requests (events.Throttled).
var ThrottledTable = Table{
	name:   "hissuno_throttled",
	insert: "INSERT INTO hissuno_throttled (" + ThrottledColumns + ")",
	id:     "rollup_id",
	key:    [3]int{3, 1, 0},
	row:    throttledRow,
}

func throttledRow(subject string, data []byte) ([]any, error) {
	var e events.Throttled
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("throttled count is not valid JSON: %w", err)
	}
	if err := e.Verify(subject); err != nil {
		return nil, err
	}
	return []any{
		e.ID, e.Minute.UTC().Truncate(time.Second), e.Ingress, e.ProjectID, e.ClientIP, string(e.Reason), e.Count, boolUint8(e.Overflow),
	}, nil
}

func decisionRow(subject string, data []byte) ([]any, error) {
	if subject != events.SubjectDecisions {
		return nil, fmt.Errorf("a decision on %q: decisions are stored from %s only", subject, events.SubjectDecisions)
	}
	var d events.Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decision is not valid JSON: %w", err)
	}
	if d.DecisionID == "" || d.Time.IsZero() {
		return nil, errors.New("decision without decisionId or time")
	}
	meta := ""
	if len(d.UserMetadata) > 0 {
		b, _ := json.Marshal(d.UserMetadata)
		meta = string(b)
	}
	t := d.Time.UTC()
	return []any{
		d.DecisionID, d.AttemptID, t.Truncate(time.Second), uint32(t.Nanosecond() / 1000), d.ReceivedAt.UTC().Truncate(time.Second),
		d.ProjectID, string(d.Decision), string(d.Reason), d.Message, string(d.Session),
		d.UserID, boolUint8(d.UserVerified), meta, d.ClaimedUserID, d.Origin, d.TokenFingerprint,
		uint32(max(d.KeyVersion, 0)), d.SkewSeconds, d.Verifier, d.Ingress, uint64(max(d.LatencyMicros, 0)), d.ClientIP, d.UserAgent,
	}, nil
}

func adminRow(subject string, data []byte) ([]any, error) {
	var e events.AdminEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("admin event is not valid JSON: %w", err)
	}
	if e.EventID == "" || e.Time.IsZero() {
		return nil, errors.New("admin event without eventId or time")
	}
	if err := e.Verify(subject); err != nil {
		return nil, err
	}
	t := e.Time.UTC()
	origins := e.Origins
	if origins == nil {
		origins = []string{}
	}
	return []any{
		e.EventID, e.CommandID, string(e.Kind), e.Actor, t.Truncate(time.Second), uint32(t.Nanosecond() / 1000),
		e.ProjectID, e.Name, boolUint8(e.RequireToken != nil && *e.RequireToken), origins,
		uint32(max(e.KeyVersion, 0)), uint32(max(e.PreviousKeyVersion, 0)), e.KeyFingerprint, e.GraceSeconds,
		timeOrZero(e.GraceUntil), e.UserID, timeOrZero(e.RevokedBefore), e.Revision,
		e.Reason, e.Account, e.ClientIP, e.UserAgent,
	}, nil
}

func boolUint8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC().Truncate(time.Second)
}

// Name is the table's name.
func (t Table) Name() string { return t.name }

// Row decodes one event, stored on subject, into the table's row, in column
// order; an error means the event can never be inserted.
func (t Table) Row(subject string, data []byte) ([]any, error) { return t.row(subject, data) }

// Key is what identifies a row of an audit table: its project, its time to
// the second and its id, the table's ORDER BY (project_id, time, id).
type Key struct {
	Project string
	Time    int64
	ID      string
}

// Key is the key of row, made by t.Row.
func (t Table) Key(row []any) Key {
	tm, _ := row[t.key[1]].(time.Time)
	p, _ := row[t.key[0]].(string)
	id, _ := row[t.key[2]].(string)
	return Key{Project: p, Time: tm.Unix(), ID: id}
}

// storedChunk bounds the keys one lookup of Stored names, so that its
// query stays well within ClickHouse's max_query_size (256 KiB).
const storedChunk = 1000

// Stored reports which of keys the table holds already: stored[k] for each
// one that is there. It reads through the primary index (the projects, the
// range of seconds and the ids of the keys) and compares whole keys. It
// reads the index granules of those projects over those seconds: at 20 M
// decisions a month over 1,000 projects, a redelivered batch of 10,000
// took 3.6–6.4 s on a loaded 2-core machine (BENCHMARKS.md), well within
// the half of AckWait it is given. The
// auditor asks it before inserting a batch JetStream delivered again, or
// after an insert whose outcome is unknown, and inserts only the rows
// missing, so that no row is ever stored twice by a live auditor.
func Stored(ctx context.Context, conn driver.Conn, t Table, keys []Key) (map[Key]bool, error) {
	stored := map[Key]bool{}
	// By project, so that each lookup names few projects and reads only
	// their rows of the batch's time (a batch holds every project's).
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b Key) int { return cmp.Or(cmp.Compare(a.Project, b.Project), cmp.Compare(a.Time, b.Time)) })
	for lo := 0; lo < len(keys); lo += storedChunk {
		chunk := keys[lo:min(lo+storedChunk, len(keys))]
		projects := map[string]bool{}
		ids := make([]string, 0, len(chunk))
		first, last := chunk[0].Time, chunk[0].Time
		var ps []string
		for _, k := range chunk {
			if !projects[k.Project] {
				projects[k.Project] = true
				ps = append(ps, k.Project)
			}
			ids = append(ids, k.ID)
			first, last = min(first, k.Time), max(last, k.Time)
		}
		c := &conds{}
		c.in("project_id", ps)
		c.add("time >= toDateTime(?) AND time <= toDateTime(?)", dateTimeSeconds(time.Unix(first, 0)), dateTimeSeconds(time.Unix(last, 0)))
		c.in(t.id, ids)
		rows, err := conn.Query(ctx, "SELECT project_id, toUInt32(time), "+t.id+" FROM "+t.name+c.String(), c.args...)
		if err != nil {
			return nil, fmt.Errorf("look up rows stored in %s: %w", t.name, err)
		}
		found, err := collect(rows, "rows stored in "+t.name, func(rows driver.Rows) (Key, error) {
			var k Key
			var sec uint32
			err := rows.Scan(&k.Project, &sec, &k.ID)
			k.Time = int64(sec)
			return k, err
		})
		if err != nil {
			return nil, err
		}
		for _, k := range found {
			stored[k] = true
		}
	}
	return stored, nil
}

// InsertMissing inserts, in one batch, those of rows (made by t.Row) the
// table does not hold yet, as the auditor stores a batch JetStream
// delivered again, and returns how many it left out as stored already.
func InsertMissing(ctx context.Context, conn driver.Conn, t Table, rows [][]any) (int, error) {
	keys := make([]Key, len(rows))
	for i, r := range rows {
		keys[i] = t.Key(r)
	}
	stored, err := Stored(ctx, conn, t, keys)
	if err != nil {
		return 0, err
	}
	missing := make([][]any, 0, len(rows))
	for i, r := range rows {
		if !stored[keys[i]] {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return len(rows), nil
	}
	return len(rows) - len(missing), Insert(ctx, conn, t, missing)
}

// Insert writes rows (made by t.Row) in one batch, naming the columns.
func Insert(ctx context.Context, conn driver.Conn, t Table, rows [][]any) error {
	batch, err := conn.PrepareBatch(ctx, t.insert)
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w", t.name, err)
	}
	for _, r := range rows {
		if err := batch.Append(r...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("%w: append to %s: %w", errBadRow, t.name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", t.name, err)
	}
	return nil
}

// Transient reports whether an insert error may succeed on retry (the
// server is down, overloaded, or the connection broke), as opposed to an
// error the rows themselves cause.
func Transient(err error) bool {
	if err == nil || errors.Is(err, errBadRow) {
		return false
	}
	var exc *clickhouse.Exception
	if errors.As(err, &exc) {
		switch exc.Code {
		case 6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 130, 131, 386:
			// Parse, type and value errors: the data is at fault.
			return false
		}
		return true
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// Anything else (a closed pool, an EOF mid-batch) is treated as the
	// connection's fault; a row at fault shows up as a ClickHouse exception.
	return true
}

// CreateDatabase makes a database of its own, named prefix and a random
// suffix, on the ClickHouse dsn names, and returns a DSN for it and how to
// drop it: a bench run's or a test's, never production's.
func CreateDatabase(ctx context.Context, dsn, prefix string) (string, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("ClickHouse DSN: %w", err)
	}
	conn, err := Open(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(dctx, "DROP DATABASE IF EXISTS "+name)
		conn.Close()
	}, nil
}

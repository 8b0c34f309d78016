package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
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

// Migrate applies the migrations of schemas/clickhouse that the migrations
// table does not list yet, in order, and records each. It returns the names
// of the migrations it applied.
func Migrate(ctx context.Context, conn driver.Conn) ([]string, error) {
	const table = `CREATE TABLE IF NOT EXISTS hissuno_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY version`
	if err := conn.Exec(ctx, table); err != nil {
		return nil, fmt.Errorf("create migrations table: %w", err)
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
			if err := conn.Exec(ctx, stmt); err != nil && !alreadyAdded(err, stmt) {
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
	row:    decisionRow,
}

// AdminTable is hissuno_admin_events: one row per admin event.
var AdminTable = Table{
	name:   "hissuno_admin_events",
	insert: "INSERT INTO hissuno_admin_events (" + AdminColumns + ")",
	row:    adminRow,
}

// ThrottledTable is hissuno_throttled: one row per count of throttled
// requests (events.Throttled).
var ThrottledTable = Table{
	name:   "hissuno_throttled",
	insert: "INSERT INTO hissuno_throttled (" + ThrottledColumns + ")",
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

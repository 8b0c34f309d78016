package stacktest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/internal/audit"
)

// ClickHouse returns the DSN of a fresh, empty database on the ClickHouse
// the tests use (HISSUNO_TEST_CLICKHOUSE, set by scripts/test), dropped when
// the test ends. Without one the test fails under CI and is skipped
// elsewhere, naming the command that provides it.
func ClickHouse(t testing.TB) string {
	t.Helper()
	base := os.Getenv("HISSUNO_TEST_CLICKHOUSE")
	if base == "" {
		Missing(t, "no ClickHouse for the tests: run scripts/test, or set HISSUNO_TEST_CLICKHOUSE=clickhouse://127.0.0.1:9000/default")
	}
	dsn, drop, err := audit.CreateDatabase(Context(t, 30*time.Second), base, "test_")
	if err != nil {
		t.Fatalf("HISSUNO_TEST_CLICKHOUSE: %v", err)
	}
	t.Cleanup(drop)
	return dsn
}

// Context is a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// OpenClickHouse connects to ClickHouse at dsn, closed when the test ends.
func OpenClickHouse(t testing.TB, dsn string) driver.Conn {
	t.Helper()
	conn, err := audit.Open(Context(t, 30*time.Second), dsn)
	if err != nil {
		t.Fatalf("open ClickHouse: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ClickHouseConn is ClickHouse with a connection to the fresh database,
// closed when the test ends.
func ClickHouseConn(t testing.TB) (string, driver.Conn) {
	t.Helper()
	dsn := ClickHouse(t)
	return dsn, OpenClickHouse(t, dsn)
}

// MigratedClickHouse is ClickHouseConn with the audit tables created.
func MigratedClickHouse(t testing.TB) (string, driver.Conn) {
	t.Helper()
	dsn, conn := ClickHouseConn(t)
	if _, err := audit.Migrate(Context(t, 30*time.Second), conn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return dsn, conn
}

// Count runs a ClickHouse query returning one UInt64.
func Count(t testing.TB, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(Context(t, 30*time.Second), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Exec runs a ClickHouse statement.
func Exec(t testing.TB, conn driver.Conn, q string) {
	t.Helper()
	if err := conn.Exec(Context(t, 30*time.Second), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse returns the DSN of a fresh, empty database on the ClickHouse
// the tests use (HISSUNO_TEST_CLICKHOUSE, set by scripts/test), dropped when
// the test ends. Without one the test fails under CI and is skipped
// elsewhere, naming the command that provides it.
func ClickHouse(t testing.TB) string {
	t.Helper()
	base := os.Getenv("HISSUNO_TEST_CLICKHOUSE")
	if base == "" {
		const why = "no ClickHouse for the tests: run scripts/test, or set HISSUNO_TEST_CLICKHOUSE=clickhouse://127.0.0.1:9000/default"
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	opts, err := clickhouse.ParseDSN(base)
	if err != nil {
		t.Fatalf("HISSUNO_TEST_CLICKHOUSE: %v", err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("clickhouse: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("HISSUNO_TEST_CLICKHOUSE: %v", err)
	}
	u.Path = "/" + db
	return u.String()
}

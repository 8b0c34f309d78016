package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestSyncInserts: the setting SyncInserts sends reaches the server (the
// tests' ClickHouse 18.16, which refuses a setting it cannot read as a
// number on the native protocol), and a query without it keeps the
// server's default.
func TestSyncInserts(t *testing.T) {
	t.Parallel()
	_, conn := stacktest.ClickHouseConn(t)
	ctx := stacktest.Context(t, 30*time.Second)
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "SyncInserts", ctx: audit.SyncInserts(ctx), want: "1"},
		{name: "default", ctx: ctx, want: "0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var v string
			if err := conn.QueryRow(tt.ctx, "SELECT value FROM system.settings WHERE name = 'insert_distributed_sync'").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != tt.want {
				t.Errorf("insert_distributed_sync = %s, want %s", v, tt.want)
			}
		})
	}
}

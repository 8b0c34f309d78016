package stacktest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
	"github.com/hissuno/widgetauth/internal/devtools/localzookeeper"
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

// ReplicatedClickHouse is a ClickHouse cluster a test started: one shard of
// replicas (ClickHouse 18.16 from PATH, localclickhouse.StartCluster)
// coordinated by a ZooKeeper of its own (Debian's zookeeper,
// localzookeeper), all on loopback.
type ReplicatedClickHouse struct {
	// Name is the cluster's name in every node's <remote_servers>.
	Name string
	// Database is the database made on every node for the test.
	Database string
	// ZooKeeper coordinates the replicas.
	ZooKeeper *localzookeeper.Server
	// Nodes are the replicas.
	Nodes []*localclickhouse.Server
}

// DSN is the address of every node, in order, in the test's database: the
// driver uses the first that answers.
func (c *ReplicatedClickHouse) DSN() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "clickhouse://" + strings.Join(addrs, ",") + "/" + c.Database
}

// NodeDSN is the address of node i alone, in the test's database.
func (c *ReplicatedClickHouse) NodeDSN(i int) string {
	return "clickhouse://" + c.Nodes[i].Addr + "/" + c.Database
}

// ClusterName is the cluster ReplicatedClickHouse names in <remote_servers>.
const ClusterName = "hissuno"

// StartReplicatedClickHouse starts a ZooKeeper and replicas ClickHouse
// servers as the replicas of one shard of the cluster ClusterName, makes a
// database on every node (CREATE DATABASE … ON CLUSTER), and stops them all
// when the test ends. Without ZooKeeper or ClickHouse installed the test
// fails under CI and is skipped elsewhere, naming scripts/deps.
func StartReplicatedClickHouse(t testing.TB, replicas int) *ReplicatedClickHouse {
	t.Helper()
	if !localzookeeper.Available() || !localclickhouse.Available() {
		Missing(t, "a replicated ClickHouse needs zookeeper (java) and clickhouse-server: run scripts/deps (apt-get install -y zookeeper clickhouse-server)")
	}
	ctx := Context(t, 2*time.Minute)
	dir := t.TempDir()
	zk, err := localzookeeper.Start(ctx, filepath.Join(dir, "zookeeper"))
	if err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	t.Cleanup(zk.Stop)
	nodes, err := localclickhouse.StartCluster(ctx, filepath.Join(dir, "clickhouse"), ClusterName, zk.Addr, replicas)
	if err != nil {
		t.Fatalf("start ClickHouse cluster: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Stop()
		}
	})
	c := &ReplicatedClickHouse{Name: ClusterName, Database: "hissuno", ZooKeeper: zk, Nodes: nodes}
	conn := OpenClickHouse(t, nodes[0].DSN)
	Exec(t, conn, "CREATE DATABASE IF NOT EXISTS "+c.Database+" ON CLUSTER "+c.Name)
	return c
}

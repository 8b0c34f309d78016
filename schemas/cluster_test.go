package schemas

import (
	"strings"
	"testing"
)

func TestClusterStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stmt    string
		want    []ClusterStatement
		wantErr string
	}{
		{
			name: "a ReplacingMergeTree table becomes a replicated local table and a Distributed one",
			stmt: "-- the table\nCREATE TABLE IF NOT EXISTS hissuno_t\n(\n    t_id String,\n    tags Array(String),\n    time DateTime\n)\nENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMM(time)\nORDER BY (time, t_id)",
			want: []ClusterStatement{
				{SQL: "CREATE TABLE IF NOT EXISTS db1.hissuno_t_local ON CLUSTER c1\n(\n    t_id String,\n    tags Array(String),\n    time DateTime\n)\n" +
					"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/hissuno_t_local', '{replica}')\nPARTITION BY toYYYYMM(time)\nORDER BY (time, t_id)"},
				{SQL: "CREATE TABLE IF NOT EXISTS db1.hissuno_t ON CLUSTER c1 AS db1.hissuno_t_local\nENGINE = Distributed(c1, db1, hissuno_t_local, cityHash64(t_id))"},
			},
		},
		{
			name: "engine arguments follow the path and the replica",
			stmt: "CREATE TABLE IF NOT EXISTS m (version UInt32, applied_at DateTime) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version",
			want: []ClusterStatement{
				{SQL: "CREATE TABLE IF NOT EXISTS db1.m_local ON CLUSTER c1\n(version UInt32, applied_at DateTime)\n" +
					"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db1/m_local', '{replica}', applied_at)\nORDER BY version"},
				{SQL: "CREATE TABLE IF NOT EXISTS db1.m ON CLUSTER c1 AS db1.m_local\nENGINE = Distributed(c1, db1, m_local, cityHash64(version))"},
			},
		},
		{
			name: "a plain MergeTree",
			stmt: "CREATE TABLE IF NOT EXISTS x (id String) ENGINE = MergeTree ORDER BY id",
			want: []ClusterStatement{
				{SQL: "CREATE TABLE IF NOT EXISTS db1.x_local ON CLUSTER c1\n(id String)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db1/x_local', '{replica}')\nORDER BY id"},
				{SQL: "CREATE TABLE IF NOT EXISTS db1.x ON CLUSTER c1 AS db1.x_local\nENGINE = Distributed(c1, db1, x_local, cityHash64(id))"},
			},
		},
		{
			name: "ADD COLUMN alters the local table on the cluster and the Distributed one on each node",
			stmt: "-- why\nALTER TABLE hissuno_admin_events ADD COLUMN reason String",
			want: []ClusterStatement{
				{SQL: "ALTER TABLE db1.hissuno_admin_events_local ON CLUSTER c1 ADD COLUMN reason String"},
				{SQL: "ALTER TABLE db1.hissuno_admin_events ADD COLUMN reason String", EachNode: true},
			},
		},
		{name: "two columns in one ALTER", stmt: "ALTER TABLE t ADD COLUMN a String, ADD COLUMN b Array(String)", wantErr: "one ADD COLUMN per statement"},
		{name: "a drop", stmt: "ALTER TABLE t DROP COLUMN a", wantErr: "no cluster form"},
		{name: "a view", stmt: "CREATE MATERIALIZED VIEW v AS SELECT 1", wantErr: "no cluster form"},
		{name: "a table without IF NOT EXISTS", stmt: "CREATE TABLE t (a String) ENGINE = MergeTree ORDER BY a", wantErr: "no cluster form"},
		{name: "a Log table", stmt: "CREATE TABLE IF NOT EXISTS t (a String) ENGINE = Log", wantErr: "no cluster form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ClusterStatements(tt.stmt, "c1", "db1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d statements, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("statement %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestClusterStatementsNames(t *testing.T) {
	t.Parallel()
	for _, tc := range [][2]string{{"c-1", "db"}, {"c", "db; DROP"}, {"", "db"}} {
		if _, err := ClusterStatements("CREATE TABLE IF NOT EXISTS x (id String) ENGINE = MergeTree ORDER BY id", tc[0], tc[1]); err == nil {
			t.Errorf("cluster %q database %q accepted", tc[0], tc[1])
		}
	}
}

// TestEveryMigrationHasAClusterForm holds every migration file, today's and
// those to come, to the forms ClusterStatements understands.
func TestEveryMigrationHasAClusterForm(t *testing.T) {
	t.Parallel()
	ms, err := ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			got, err := ClusterStatements(s, "hissuno", "default")
			if err != nil {
				t.Errorf("%s: %v", m.Name, err)
				continue
			}
			for _, c := range got {
				if !strings.Contains(c.SQL, "default.") {
					t.Errorf("%s: %q names its table without the database", m.Name, c.SQL)
				}
			}
		}
	}
}

package schemas

import (
	"fmt"
	"regexp"
	"strings"
)

// ClusterStatement is one statement of a migration as a replicated
// ClickHouse cluster runs it.
type ClusterStatement struct {
	// SQL is the statement.
	SQL string
	// EachNode means SQL is run on every node of the cluster, one
	// connection each, instead of once with ON CLUSTER: ClickHouse 18.16
	// refuses ALTER … ON CLUSTER on a table that is not replicated (the
	// Distributed one) in a cluster whose shards are.
	EachNode bool
}

// LocalSuffix is what a table's name takes on a cluster for its replicated
// table on each node; the name itself is the Distributed table over them,
// which every insert and query uses.
const LocalSuffix = "_local"

// ZooKeeperPath is the ZooKeeper path of a replicated table on a cluster:
// ClickHouse expands the {shard} macro of each node.
func ZooKeeperPath(database, local string) string {
	return "/clickhouse/tables/{shard}/" + database + "/" + local
}

var (
	identRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	createRe    = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*ENGINE\s*=\s*([A-Za-z]*MergeTree)\s*(\(([^()]*)\))?(.*)$`)
	alterRe     = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+(ADD\s+COLUMN\s.*)$`)
	optimizeRe  = regexp.MustCompile(`(?is)^OPTIMIZE\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+FINAL;?$`)
	firstRe     = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s`)
	addColumnRe = regexp.MustCompile(`(?i)\bADD\s+COLUMN\b`)
)

// ClusterStatements derives, from one statement of a migration file (as
// Migration.Statements holds it), the statements that make the same change
// on the cluster named cluster, in database. It understands the two forms
// the migration files use and refuses anything else, so that a new form
// is taught here before it reaches a cluster:
//
//   - CREATE TABLE IF NOT EXISTS name (columns) ENGINE = XMergeTree[(args)] …
//     becomes name_local, ON CLUSTER, with ReplicatedXMergeTree on the
//     ZooKeeper path ZooKeeperPath (args kept after the path and replica),
//     and name, ON CLUSTER, a Distributed table over name_local sharded by
//     cityHash64 of the first column (the row's id, so that a row sent
//     again lands on the shard that has it).
//   - ALTER TABLE name ADD COLUMN … (one column) alters name_local ON
//     CLUSTER (one replica applies it, replication carries it to the
//     others) and name on each node.
//   - OPTIMIZE TABLE name FINAL merges name_local (audit.Migrate runs it
//     partition by partition on the node it is connected to; replication
//     carries the merge to the others).
//
// Comments must stand on lines of their own (Migration.Statements keeps
// them; they are dropped here), names are unquoted and unqualified, engine
// arguments hold no parentheses, and the first column of a table is its id.
func ClusterStatements(stmt, cluster, database string) ([]ClusterStatement, error) {
	if !identRe.MatchString(cluster) {
		return nil, fmt.Errorf("cluster name %q: letters, digits and _ only", cluster)
	}
	if !identRe.MatchString(database) {
		return nil, fmt.Errorf("database name %q: letters, digits and _ only", database)
	}
	sql := stripComments(stmt)
	if m := createRe.FindStringSubmatch(sql); m != nil {
		name, columns, engine, args, rest := m[1], m[2], m[3], strings.TrimSpace(m[5]), strings.TrimSpace(m[6])
		first := firstRe.FindStringSubmatch(columns)
		if first == nil {
			return nil, fmt.Errorf("CREATE TABLE %s: no first column to shard by", name)
		}
		local := name + LocalSuffix
		params := fmt.Sprintf("'%s', '{replica}'", ZooKeeperPath(database, local))
		if args != "" {
			params += ", " + args
		}
		return []ClusterStatement{
			{SQL: fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s\n(%s)\nENGINE = Replicated%s(%s)\n%s",
				database, local, cluster, columns, engine, params, rest)},
			{SQL: fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s AS %s.%s\nENGINE = Distributed(%s, %s, %s, cityHash64(%s))",
				database, name, cluster, database, local, cluster, database, local, first[1])},
		}, nil
	}
	if m := alterRe.FindStringSubmatch(sql); m != nil {
		name, change := m[1], strings.TrimSpace(m[2])
		if len(addColumnRe.FindAllString(change, -1)) > 1 {
			return nil, fmt.Errorf("ALTER TABLE %s: one ADD COLUMN per statement", name)
		}
		return []ClusterStatement{
			{SQL: fmt.Sprintf("ALTER TABLE %s.%s%s ON CLUSTER %s %s", database, name, LocalSuffix, cluster, change)},
			{SQL: fmt.Sprintf("ALTER TABLE %s.%s %s", database, name, change), EachNode: true},
		}, nil
	}
	if m := optimizeRe.FindStringSubmatch(sql); m != nil {
		return []ClusterStatement{{SQL: fmt.Sprintf("OPTIMIZE TABLE %s.%s%s FINAL", database, m[1], LocalSuffix)}}, nil
	}
	return nil, fmt.Errorf("no cluster form for this statement (CREATE TABLE IF NOT EXISTS … ENGINE = …MergeTree, ALTER TABLE … ADD COLUMN, or OPTIMIZE TABLE … FINAL, are understood; teach schemas.ClusterStatements a new one): %.80s", strings.TrimSpace(sql))
}

// stripComments drops the lines that are comments.
func stripComments(sql string) string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return strings.TrimSpace(b.String())
}

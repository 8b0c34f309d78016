package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// auditClusterEvery spaces the site's requests in TestAuditOnReplicatedClickHouse:
// 100 a second.
const auditClusterEvery = 10 * time.Millisecond

// TestAuditOnReplicatedClickHouse runs the audit as production does on a
// replicated ClickHouse: two 18.16 replicas of one shard and a ZooKeeper,
// started by the test; `hissuno audit migrate --cluster` makes the tables
// (twice: the second finds nothing to do), and the stack's auditor writes
// through the Distributed table of the first replica its DSN names. Under a
// site's steady load through the whole pipeline (ingress → verifier →
// auditor), that replica is stopped while deciding goes on, then brought
// back. Every decision that got an HTTP answer is then in the audit
// exactly once, read through either replica's Distributed table and held
// by either replica's own table.
func TestAuditOnReplicatedClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: starts a ZooKeeper and two ClickHouse servers; run without -short")
	}
	// Not parallel: two ClickHouse servers and a JVM would take the CPU
	// from the drills, whose bounds count on it.
	start := time.Now()
	rc := stacktest.StartReplicatedClickHouse(t, 2)
	t.Logf("ZooKeeper and 2 ClickHouse replicas up in %s", time.Since(start).Round(time.Millisecond))
	for i, want := range []string{"applied 0001_decisions.sql\n", "ClickHouse schema up to date\n"} {
		out := runAuditCLI(t, "audit", "migrate", "--clickhouse", rc.DSN(), "--cluster", rc.Name)
		if !strings.Contains(out, want) {
			t.Fatalf("audit migrate --cluster, run %d, printed %q, want %q in it", i+1, out, want)
		}
	}

	st := stacktest.Start(t, stack.Config{
		ClickHouseDSN: rc.DSN(),
		Auditor:       auditor.Config{Cluster: rc.Name, BatchWait: 200 * time.Millisecond},
		Ingress:       ingress.Config{Limits: ingress.NoLimits},
	})
	proj := createStackProject(t, st)
	site := &siteClient{addr: st.HTTPAddr, project: proj.ID, token: mint(t, proj.Secret, "cluster-user"), client: &http.Client{Timeout: 10 * time.Second}}
	var probes []siteResult // answered too: their decisions count
	stacktest.Eventually(t, 30*time.Second, "the site's project decided (200)", func() error {
		r := site.send()
		probes = append(probes, r)
		if r.status != http.StatusOK {
			return fmt.Errorf("status %d %s", r.status, r.err)
		}
		return nil
	})
	conns := []driver.Conn{stacktest.OpenClickHouse(t, rc.NodeDSN(0)), stacktest.OpenClickHouse(t, rc.NodeDSN(1))}

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	load := site.run(ctx, auditClusterEvery)
	// Decisions reach the audit through replica 1.
	waitAudited(t, conns[1], proj.ID, 50, "replica 2, before the stop")

	rc.Nodes[0].Stop()
	stopped := time.Now()
	before := len(load.snapshot())
	// Deciding goes on, and the audit with it, through replica 2.
	stacktest.Eventually(t, time.Minute, "decisions made after replica 1 stopped in the audit of replica 2", func() error {
		if made := len(load.snapshot()) - before; made < 300 {
			return fmt.Errorf("%d requests answered since the stop", made)
		}
		return nil
	})
	waitAudited(t, conns[1], proj.ID, uint64(before+250), "replica 2, replica 1 stopped")
	t.Logf("replica 1 stopped for %s", time.Since(stopped).Round(time.Millisecond))
	if err := rc.Nodes[0].Restart(stacktest.Context(t, time.Minute)); err != nil {
		t.Fatalf("restart replica 1: %v", err)
	}
	conns[0] = stacktest.OpenClickHouse(t, rc.NodeDSN(0))
	// A while longer under load with both replicas up.
	after := len(load.snapshot())
	stacktest.Eventually(t, time.Minute, "requests answered after replica 1 came back", func() error {
		if made := len(load.snapshot()) - after; made < 200 {
			return fmt.Errorf("%d requests answered since the restart", made)
		}
		return nil
	})
	stopLoad()
	results := append(load.wait(), probes...)

	var ids []string
	statuses := map[int]int{}
	for _, r := range results {
		statuses[r.status]++
		if r.decisionID != "" {
			ids = append(ids, r.decisionID)
		}
	}
	if statuses[http.StatusOK] == 0 || len(ids) < statuses[http.StatusOK] {
		t.Fatalf("answers by status %v, %d with a decision id: want every 200 to carry one", statuses, len(ids))
	}
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("the ingress answered one decision id twice")
	}
	for i, c := range conns {
		for _, table := range []string{"hissuno_decisions", "hissuno_decisions_local"} {
			where := fmt.Sprintf("replica %d's %s", i+1, table)
			stacktest.Eventually(t, time.Minute, fmt.Sprintf("the %d decisions answered in %s", len(ids), where), func() error {
				got, err := auditedIDs(c, table, proj.ID)
				if err != nil {
					return err
				}
				if len(got) < len(ids) {
					return fmt.Errorf("%d of %d", len(got), len(ids))
				}
				return nil
			})
			got, err := auditedIDs(conns[i], table, proj.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, ids) {
				t.Errorf("%s holds %d rows of the project, want the %d decisions answered, each once (first difference: %s)",
					where, len(got), len(ids), firstDifference(got, ids))
			}
		}
	}
	// The CLI reads them through either node, as a security team does,
	// with no --cluster.
	for i := range rc.Nodes {
		out := runAuditCLI(t, "audit", "query", "--clickhouse", rc.NodeDSN(i), "--project", proj.ID, "--since", "1h",
			"--limit", fmt.Sprint(2*len(ids)), "--format", "json")
		if n := strings.Count(out, "\n"); n != len(ids) {
			t.Errorf("hissuno audit query through replica %d printed %d decisions, want %d", i+1, n, len(ids))
		}
	}
	t.Logf("%d decisions (%v by status), every one once on both replicas; test took %s", len(ids), statuses, time.Since(start).Round(time.Millisecond))
}

// runAuditCLI runs hissuno with args and returns what it printed; a
// non-zero exit fails the test.
func runAuditCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Run(cli.Env{Ctx: stacktest.Context(t, 2*time.Minute), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args); code != 0 {
		t.Fatalf("hissuno %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// waitAudited waits until the project has at least n rows in the
// Distributed table conn's node reads.
func waitAudited(t *testing.T, conn driver.Conn, project string, n uint64, where string) {
	t.Helper()
	stacktest.Eventually(t, time.Minute, fmt.Sprintf("%d decisions in the audit of %s", n, where), func() error {
		var got uint64
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := conn.QueryRow(ctx, "SELECT count() FROM hissuno_decisions WHERE project_id = ?", project).Scan(&got); err != nil {
			return err
		}
		if got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// auditedIDs is every row's decision_id of the project in table, without
// FINAL (a row held twice shows twice), sorted.
func auditedIDs(conn driver.Conn, table, project string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT decision_id FROM "+table+" WHERE project_id = ? ORDER BY decision_id", project)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// firstDifference names the first id where two sorted lists differ.
func firstDifference(got, want []string) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return "missing " + want[i]
		case i >= len(want):
			return "extra " + got[i]
		case got[i] != want[i]:
			return fmt.Sprintf("%s where %s was answered", got[i], want[i])
		}
	}
	return "none"
}

package audit

import (
	"testing"

	"github.com/hissuno/widgetauth/schemas"
)

// TestOptimizeFinalFindsEveryMerge is the test that would have caught
// migration 0005's first merge (its statement carries the file's comment)
// being run as a plain OPTIMIZE, which ClickHouse may skip silently.
func TestOptimizeFinalFindsEveryMerge(t *testing.T) {
	for _, tt := range []struct {
		name, stmt, table string
		ok                bool
	}{
		{name: "plain", stmt: "OPTIMIZE TABLE hissuno_decisions FINAL", table: "hissuno_decisions", ok: true},
		{name: "after comments", stmt: "-- merges copies\n-- of rows\nOPTIMIZE TABLE hissuno_admin_events FINAL", table: "hissuno_admin_events", ok: true},
		{name: "not final", stmt: "OPTIMIZE TABLE hissuno_decisions"},
		{name: "a create", stmt: "-- x\nCREATE TABLE IF NOT EXISTS t (a String) ENGINE = MergeTree ORDER BY a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			table, ok := optimizeFinal(tt.stmt)
			if ok != tt.ok || table != tt.table {
				t.Errorf("optimizeFinal = %q, %v; want %q, %v", table, ok, tt.table, tt.ok)
			}
		})
	}
	migrations, err := schemas.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	merges := 0
	for _, m := range migrations {
		for _, stmt := range m.Statements {
			if _, ok := optimizeFinal(stmt); ok {
				merges++
			}
		}
	}
	if merges != 2 {
		t.Errorf("the migrations hold %d OPTIMIZE … FINAL that mergeDuplicates runs, want 2 (0005's two tables)", merges)
	}
}

package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed clickhouse/*.sql
var clickhouseFS embed.FS

// Migration is one numbered ClickHouse DDL statement of schemas/clickhouse.
type Migration struct {
	// Version is the file's number (0001_… is 1).
	Version uint32
	// Name is the file's name.
	Name string
	// SQL is the file, comments included.
	SQL string
	// Statements are its statements, in order: one, or several each ending
	// in ";" at the end of a line (several ALTERs that add one column each).
	Statements []string
}

// ClickHouseMigrations returns the ClickHouse migrations in version order.
// Each file holds statements valid on ClickHouse 18.16 and current
// releases; an ALTER TABLE … ADD COLUMN adds one column, so that running it
// again (two auditors migrating at once) can be recognised as done.
func ClickHouseMigrations() ([]Migration, error) {
	entries, err := fs.ReadDir(clickhouseFS, "clickhouse")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || v == 0 {
			return nil, fmt.Errorf("migration %s: name it NNNN_what.sql", e.Name())
		}
		b, err := fs.ReadFile(clickhouseFS, "clickhouse/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: uint32(v), Name: e.Name(), SQL: string(b), Statements: statements(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a number", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// statements splits a migration into its statements: at lines ending in
// ";", comment lines left out of the split's decision.
func statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(sql, "\n") {
		cur.WriteString(line)
		if t := strings.TrimSpace(line); strings.HasSuffix(t, ";") && !strings.HasPrefix(t, "--") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" && !onlyComments(rest) {
		out = append(out, rest)
	}
	return out
}

func onlyComments(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
			return false
		}
	}
	return true
}

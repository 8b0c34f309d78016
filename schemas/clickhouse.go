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
	// SQL is the statement, comments included.
	SQL string
}

// ClickHouseMigrations returns the ClickHouse migrations in version order.
// Each file holds one statement valid on ClickHouse 18.16 and current
// releases.
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
		out = append(out, Migration{Version: uint32(v), Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a number", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

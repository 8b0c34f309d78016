package auditor

// This file lends the external tests (package auditor_test) what they need
// of the package's insides. They cannot be white-box tests: they use
// stacktest, which imports stack, which imports auditor — a cycle Go refuses
// inside package auditor.

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// WithCrashAfterInsert returns cfg whose auditor asks crash after each
// successful insert; true makes it return without acking, as if killed.
func WithCrashAfterInsert(cfg Config, crash func() bool) Config {
	cfg.crashAfterInsert = crash
	return cfg
}

// DecisionRow is decisionRow: one decision event as the row the auditor
// inserts.
func DecisionRow(data []byte) ([]any, error) { return decisionRow(data) }

// AdminRow is adminRow: one admin event as the row the auditor inserts.
func AdminRow(data []byte) ([]any, error) { return adminRow(data) }

// DecisionInsert and AdminInsert are the auditor's INSERT statements.
var (
	DecisionInsert = decisionsTable.insert
	AdminInsert    = adminTable.insert
)

// DecisionColumns and AdminColumns are the columns the inserts name.
const (
	DecisionColumns = decisionColumns
	AdminColumns    = adminColumns
)

// InsertDecisionRows inserts rows (made by DecisionRow) in one batch, as
// the auditor does.
func InsertDecisionRows(ctx context.Context, conn driver.Conn, rows [][]any) error {
	return insert(ctx, conn, decisionsTable, rows)
}

// InsertAdminRows inserts rows (made by AdminRow) in one batch.
func InsertAdminRows(ctx context.Context, conn driver.Conn, rows [][]any) error {
	return insert(ctx, conn, adminTable, rows)
}

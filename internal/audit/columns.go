package audit

import (
	"strconv"
	"time"
)

// Column is one column of a decision export: its header and how a record
// shows in it. `hissuno audit query --format csv` and the console's CSV
// export write these.
type Column struct {
	Name  string
	Value func(Record) string
}

// DecisionColumnsCSV are the columns of a CSV of decisions, in order.
var DecisionColumnsCSV = []Column{
	{"decisionId", func(r Record) string { return r.DecisionID }},
	{"time", func(r Record) string { return r.Time.Format(time.RFC3339Nano) }},
	{"projectId", func(r Record) string { return r.ProjectID }},
	{"decision", func(r Record) string { return r.Decision }},
	{"reason", func(r Record) string { return r.Reason }},
	{"session", func(r Record) string { return r.Session }},
	{"userId", func(r Record) string { return r.UserID }},
	{"claimedUserId", func(r Record) string { return r.ClaimedUserID }},
	{"origin", func(r Record) string { return r.Origin }},
	{"tokenFingerprint", func(r Record) string { return r.TokenFingerprint }},
	{"keyVersion", func(r Record) string { return strconv.Itoa(int(r.KeyVersion)) }},
	{"verifier", func(r Record) string { return r.Verifier }},
	{"clientIp", func(r Record) string { return r.ClientIP }},
}

// CSVHeader is the header row of DecisionColumnsCSV.
func CSVHeader() []string {
	out := make([]string, len(DecisionColumnsCSV))
	for i, c := range DecisionColumnsCSV {
		out[i] = c.Name
	}
	return out
}

// CSVRow is r as a row of DecisionColumnsCSV.
func (r Record) CSVRow() []string {
	out := make([]string, len(DecisionColumnsCSV))
	for i, c := range DecisionColumnsCSV {
		out[i] = c.Value(r)
	}
	return out
}

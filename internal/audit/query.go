package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Filter selects audit records. Zero fields do not filter.
type Filter struct {
	ProjectID string
	Since     time.Time
	Until     time.Time
	Decision  string
	Reason    string
	UserID    string
	Origin    string
	// Limit bounds the rows returned; default 100.
	Limit int
}

// where builds the WHERE clause and its arguments. Every value is bound,
// never spliced into the SQL.
func (f Filter) where(userColumn string) (string, []any) {
	conds := []string{"time >= toDateTime(?)", "time < toDateTime(?)"}
	until := f.Until
	if until.IsZero() {
		until = time.Now().Add(time.Minute)
	}
	args := []any{dateTimeSeconds(f.Since), dateTimeSeconds(until)}
	add := func(col, v string) {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	add("project_id", f.ProjectID)
	add("decision", f.Decision)
	add("reason", f.Reason)
	add(userColumn, f.UserID)
	add("origin", f.Origin)
	return " WHERE " + strings.Join(conds, " AND "), args
}

// dateTimeSeconds is t as the seconds a ClickHouse DateTime holds (an
// unsigned 32-bit count from 1970): earlier times, the zero time included,
// are 1970 and later ones 2106. ClickHouse would wrap them instead, so that
// a zero Since (year 1) became 2042 and matched nothing.
func dateTimeSeconds(t time.Time) int64 {
	return min(max(t.Unix(), 0), math.MaxUint32)
}

// Record is one decision as security teams see it. The JSON field names are
// the public contract of `hissuno audit query --format json`.
type Record struct {
	DecisionID       string            `json:"decisionId"`
	AttemptID        string            `json:"attemptId"`
	Time             time.Time         `json:"time"`
	ProjectID        string            `json:"projectId"`
	Decision         string            `json:"decision"`
	Reason           string            `json:"reason"`
	Message          string            `json:"message"`
	Session          string            `json:"session"`
	UserID           string            `json:"userId"`
	UserVerified     bool              `json:"userVerified"`
	UserMetadata     map[string]string `json:"userMetadata"`
	ClaimedUserID    string            `json:"claimedUserId"`
	Origin           string            `json:"origin"`
	TokenFingerprint string            `json:"tokenFingerprint"`
	KeyVersion       uint32            `json:"keyVersion"`
	SkewSeconds      int64             `json:"skewSeconds"`
	Verifier         string            `json:"verifier"`
	Ingress          string            `json:"ingress"`
	LatencyMicros    uint64            `json:"latencyMicros"`
	ClientIP         string            `json:"clientIp"`
	UserAgent        string            `json:"userAgent"`
}

// Decisions returns decisions matching f, newest first, each once.
func Decisions(ctx context.Context, conn driver.Conn, f Filter) ([]Record, error) {
	where, args := f.where("user_id")
	q := "SELECT " + DecisionColumns + " FROM hissuno_decisions FINAL" + where + " ORDER BY time DESC, time_us DESC, decision_id LIMIT ?"
	args = append(args, limit(f.Limit))
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var t, received time.Time
		var us uint32
		var verified uint8
		var meta, message string
		if err := rows.Scan(&r.DecisionID, &r.AttemptID, &t, &us, &received, &r.ProjectID, &r.Decision, &r.Reason, &message, &r.Session,
			&r.UserID, &verified, &meta, &r.ClaimedUserID, &r.Origin, &r.TokenFingerprint, &r.KeyVersion, &r.SkewSeconds,
			&r.Verifier, &r.Ingress, &r.LatencyMicros, &r.ClientIP, &r.UserAgent); err != nil {
			return nil, fmt.Errorf("read decisions: %w", err)
		}
		r.Time = t.UTC().Add(time.Duration(us) * time.Microsecond)
		r.UserVerified = verified == 1
		r.Message = message
		if meta != "" {
			_ = json.Unmarshal([]byte(meta), &r.UserMetadata)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Group names what Stats counts by.
type Group string

// The groupings of `hissuno audit stats --by`.
const (
	ByDecision Group = "decision"
	ByReason   Group = "reason"
	ByOrigin   Group = "origin"
	ByUser     Group = "user"
	ByHour     Group = "hour"
)

// Groups lists every grouping.
var Groups = []Group{ByDecision, ByReason, ByOrigin, ByUser, ByHour}

// Stat is one group's count.
type Stat struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

// Stats counts decisions matching f by group, each decision once. Every
// group is returned unless f.Limit is set.
func Stats(ctx context.Context, conn driver.Conn, f Filter, by Group) ([]Stat, error) {
	var expr, order string
	switch by {
	case ByDecision:
		expr, order = "decision", "n DESC, k"
	case ByReason:
		expr, order = "if(reason = '', '(accept)', reason)", "n DESC, k"
	case ByOrigin:
		expr, order = "if(origin = '', '(none)', origin)", "n DESC, k"
	case ByUser:
		expr, order = "if(user_id = '', '(none)', user_id)", "n DESC, k"
	case ByHour:
		expr, order = "formatDateTime(toStartOfHour(time), '%Y-%m-%d %H:00')", "k"
	default:
		return nil, fmt.Errorf("--by %q: use decision, reason, origin, user or hour", by)
	}
	where, args := f.where("user_id")
	q := "SELECT " + expr + " AS k, count() AS n FROM hissuno_decisions FINAL" + where + " GROUP BY k ORDER BY " + order
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	var out []Stat
	for rows.Next() {
		var s Stat
		if err := rows.Scan(&s.Key, &s.Count); err != nil {
			return nil, fmt.Errorf("read stats: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// AdminRecord is one admin event as security teams see it.
type AdminRecord struct {
	EventID            string     `json:"eventId"`
	CommandID          string     `json:"commandId"`
	Time               time.Time  `json:"time"`
	Kind               string     `json:"kind"`
	Actor              string     `json:"actor"`
	ProjectID          string     `json:"projectId"`
	Name               string     `json:"name"`
	RequireToken       bool       `json:"requireToken"`
	Origins            []string   `json:"origins"`
	KeyVersion         uint32     `json:"keyVersion"`
	PreviousKeyVersion uint32     `json:"previousKeyVersion"`
	KeyFingerprint     string     `json:"keyFingerprint"`
	GraceSeconds       int64      `json:"graceSeconds"`
	GraceUntil         *time.Time `json:"graceUntil"`
	UserID             string     `json:"userId"`
	RevokedBefore      *time.Time `json:"revokedBefore"`
	Revision           uint64     `json:"revision"`
	Reason             string     `json:"reason"`
	Account            string     `json:"account"`
	ClientIP           string     `json:"clientIp"`
	UserAgent          string     `json:"userAgent"`
}

// AdminEvents returns admin events matching f (project, time range, user),
// newest first, each once.
func AdminEvents(ctx context.Context, conn driver.Conn, f Filter) ([]AdminRecord, error) {
	g := Filter{ProjectID: f.ProjectID, Since: f.Since, Until: f.Until, UserID: f.UserID, Limit: f.Limit}
	where, args := g.where("user_id")
	q := "SELECT " + AdminColumns + " FROM hissuno_admin_events FINAL" + where + " ORDER BY time DESC, time_us DESC, event_id LIMIT ?"
	args = append(args, limit(f.Limit))
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	var out []AdminRecord
	for rows.Next() {
		var r AdminRecord
		var t, grace, revoked time.Time
		var us uint32
		var requireToken uint8
		if err := rows.Scan(&r.EventID, &r.CommandID, &r.Kind, &r.Actor, &t, &us, &r.ProjectID, &r.Name, &requireToken, &r.Origins,
			&r.KeyVersion, &r.PreviousKeyVersion, &r.KeyFingerprint, &r.GraceSeconds, &grace, &r.UserID, &revoked, &r.Revision,
			&r.Reason, &r.Account, &r.ClientIP, &r.UserAgent); err != nil {
			return nil, fmt.Errorf("read admin events: %w", err)
		}
		r.Time = t.UTC().Add(time.Duration(us) * time.Microsecond)
		r.RequireToken = requireToken == 1
		if grace.Unix() > 0 {
			g := grace.UTC()
			r.GraceUntil = &g
		}
		if revoked.Unix() > 0 {
			rv := revoked.UTC()
			r.RevokedBefore = &rv
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func limit(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}

// codeUnknownTable is ClickHouse's UNKNOWN_TABLE exception.
const codeUnknownTable = 60

func queryError(err error) error {
	var exc *clickhouse.Exception
	if errors.As(err, &exc) && exc.Code == codeUnknownTable {
		return fmt.Errorf("the audit tables do not exist yet: run `hissuno audit migrate` or start the auditor: %w", err)
	}
	return fmt.Errorf("audit query: %w", err)
}

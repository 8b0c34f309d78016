package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/inert"
)

const auditUsage = `hissuno audit query [--project ID] [--since 24h] [--until TIME] [--decision D] [--reason R]
                    [--user U] [--origin O] [--limit N] [--format table|json|csv] [--admin | --throttled]
       hissuno audit stats [--project ID] [--since 24h] [--by decision|reason|origin|user|hour]
       hissuno audit stats --throttled [--project ID] [--since 24h] [--reason R] [--by reason|project|ip|hour]
       hissuno audit tail [--project ID] [--format table|json]
       hissuno audit migrate`

func runAudit(env Env, args []string) error {
	return dispatch(env, args, "audit", auditUsage, map[string]func(Env, []string) error{
		"query":   auditQuery,
		"stats":   auditStats,
		"tail":    auditTail,
		"migrate": auditMigrate,
	})
}

// auditUser is the NATS user of read-only audit access (audit tail): it
// may follow decisions and nothing else.
const auditUser = "audit"

// devDSNFile is where `hissuno dev` writes the DSN of the ClickHouse it
// started, so the audit commands find it without --clickhouse.
const devDSNFile = "clickhouse-dsn"

// defaultDSN is HISSUNO_CLICKHOUSE_DSN, else the DSN of the ClickHouse a
// local `hissuno dev` started, else ClickHouse's default address.
func defaultDSN() string {
	if v := os.Getenv("HISSUNO_CLICKHOUSE_DSN"); v != "" {
		return v
	}
	if b, err := os.ReadFile(filepath.Join(dataDir(), devDSNFile)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return audit.DefaultDSN
}

// filterFlags are the filters query and stats share.
type filterFlags struct {
	dsn      string
	project  string
	since    string
	until    string
	decision string
	reason   string
	user     string
	origin   string
	limit    int
	format   string
	// rows is set for query, whose --limit bounds rows; stats returns
	// every group.
	rows bool
}

func (f *filterFlags) register(fs *flag.FlagSet, full bool) {
	f.rows = full
	fs.StringVar(&f.dsn, "clickhouse", defaultDSN(), "ClickHouse DSN, clickhouse://[user:password@]host:9000/db[?secure=true] [HISSUNO_CLICKHOUSE_DSN]")
	fs.StringVar(&f.project, "project", "", "only this project id")
	fs.StringVar(&f.since, "since", "24h", "from this long ago (24h, 7d, 90m) or this time (2026-11-01, RFC 3339), from 1970-01-01 to 2106-02-07")
	fs.StringVar(&f.until, "until", "", "up to this time (2026-11-02, RFC 3339) or this long ago, from 1970-01-01 to 2106-02-07; default now")
	fs.StringVar(&f.decision, "decision", "", "only accept, unauthorized or origin_blocked")
	fs.StringVar(&f.reason, "reason", "", "only this reason code, e.g. origin_not_allowed")
	fs.StringVar(&f.user, "user", "", "only this userId")
	fs.StringVar(&f.origin, "origin", "", "only this Origin, e.g. https://shop.example")
	if full {
		fs.IntVar(&f.limit, "limit", 100, "at most this many rows")
	}
	if full {
		fs.StringVar(&f.format, "format", "table", "table, json (one object a line) or csv")
	} else {
		fs.StringVar(&f.format, "format", "table", "table or json")
	}
}

func (f *filterFlags) filter(now time.Time) (audit.Filter, error) {
	since, err := parseWhen(f.since, now)
	if err != nil {
		return audit.Filter{}, fmt.Errorf("--since: %w", err)
	}
	var until time.Time
	if f.until != "" {
		if until, err = parseWhen(f.until, now); err != nil {
			return audit.Filter{}, fmt.Errorf("--until: %w", err)
		}
	}
	if f.decision != "" && !slices.Contains([]string{"accept", "unauthorized", "origin_blocked"}, f.decision) {
		return audit.Filter{}, fmt.Errorf("--decision %q: use accept, unauthorized or origin_blocked", f.decision)
	}
	if f.reason != "" && !slices.Contains(events.Reasons, events.Reason(f.reason)) {
		return audit.Filter{}, fmt.Errorf("--reason %q is not a reason code (e.g. token_expired, origin_not_allowed)", f.reason)
	}
	if f.rows && (f.limit < 1 || f.limit > 1_000_000) {
		return audit.Filter{}, errors.New("--limit: use 1 to 1000000")
	}
	return audit.Filter{ProjectID: f.project, Since: since, Until: until, Decision: f.decision, Reason: f.reason,
		UserID: f.user, Origin: f.origin, Limit: f.limit}, nil
}

// throttledOr is the filter of the flags: of counts of throttled requests
// when throttled (--reason a throttle reason; no decision, user or origin,
// which such counts do not have), else filter's.
func (f *filterFlags) throttledOr(throttled bool, now time.Time) (audit.Filter, error) {
	if !throttled {
		return f.filter(now)
	}
	if f.decision != "" || f.user != "" || f.origin != "" {
		return audit.Filter{}, errors.New("--throttled counts have no decision, user or origin: drop --decision, --user and --origin")
	}
	reason := f.reason
	if reason != "" && !slices.Contains(events.Throttles, events.Throttle(reason)) {
		return audit.Filter{}, fmt.Errorf("--reason %q is not a throttle reason: with --throttled use ip_rate, project_rate, unseen_project_rate, ip_connections or connections", reason)
	}
	g := *f
	g.reason = ""
	filter, err := g.filter(now)
	filter.Reason = reason
	return filter, err
}

// The times the audit can hold: ClickHouse's DateTime counts seconds from
// 1970 in 32 unsigned bits. A time outside them cannot be asked for (the
// query would clamp or wrap it and answer nothing, or everything, in
// silence).
var (
	auditFirst = time.Unix(0, 0).UTC()
	auditLast  = time.Unix(math.MaxUint32, 0).UTC() // 2106-02-07T06:28:15Z
)

// durationRE is what time.ParseDuration reads (a non-negative one), so that
// one it refuses for its size is told from one it cannot read.
var durationRE = regexp.MustCompile(`^0$|^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// parseWhen reads a time: a duration back from now (90m, 24h, 7d) or an
// absolute date or RFC 3339 time, within the times the audit can hold
// (1970-01-01 to 2106-02-07T06:28:15Z).
func parseWhen(s string, now time.Time) (time.Time, error) {
	tooFar := func() error {
		return fmt.Errorf("%q reaches back before 1970-01-01, the oldest time the audit can hold; use at most %dd, or 1970-01-01",
			s, int64(now.Sub(auditFirst)/(24*time.Hour)))
	}
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days > int64(now.Sub(auditFirst)/(24*time.Hour)) {
			return time.Time{}, tooFar()
		}
		return now.Add(-time.Duration(days) * 24 * time.Hour), nil
	}
	if durationRE.MatchString(s) {
		d, err := time.ParseDuration(s)
		if err != nil || d > now.Sub(auditFirst) {
			return time.Time{}, tooFar()
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Before(auditFirst) || t.After(auditLast) {
				return time.Time{}, fmt.Errorf("%q is outside the times the audit can hold, %s to %s",
					s, auditFirst.Format(time.RFC3339), auditLast.Format(time.RFC3339))
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor a time (2026-11-01, 2026-11-01T10:00:00Z)", s)
}

func auditQuery(env Env, args []string) error {
	var f filterFlags
	fs := newFlags("audit query", auditUsage, env.Stderr)
	f.register(fs, true)
	admin := fs.Bool("admin", false, "show admin events (project created or updated, key rotated, user revoked) instead of decisions")
	throttled := fs.Bool("throttled", false, "show the counts of requests the ingresses refused (429, or a connection closed at once) per minute, project (unknown: a projectId no verifier had known), client IP and reason, instead of decisions")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *admin && *throttled {
		return errors.New("--admin and --throttled show different records: give one of them")
	}
	filter, err := f.throttledOr(*throttled, time.Now())
	if err != nil {
		return err
	}
	if !slices.Contains([]string{"table", "json", "csv"}, f.format) {
		return fmt.Errorf("--format %q: use table, json or csv", f.format)
	}
	c, err := audit.Open(env.Ctx, f.dsn)
	if err != nil {
		return err
	}
	defer c.Close()
	if *admin {
		recs, err := audit.AdminEvents(env.Ctx, c, filter)
		if err != nil {
			return err
		}
		return adminListing.write(env.Stdout, f.format, recs)
	}
	if *throttled {
		recs, err := audit.Throttled(env.Ctx, c, filter)
		if err != nil {
			return err
		}
		return throttledListing.write(env.Stdout, f.format, recs)
	}
	recs, err := audit.Decisions(env.Ctx, c, filter)
	if err != nil {
		return err
	}
	return decisionListing.write(env.Stdout, f.format, recs)
}

// writeJSONLines writes one JSON object a line, inert (inertJSON).
func writeJSONLines[T any](w io.Writer, recs []T) error {
	jw := inert.JSONWriter{W: w}
	for _, r := range recs {
		if err := jw.Write(r); err != nil {
			return err
		}
	}
	return nil
}

// tableRow writes one row of a tabwriter table: every cell inert, so that
// the row is one line whatever the audit holds.
func tableRow(w io.Writer, cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		io.WriteString(w, inert.Text(c))
	}
	io.WriteString(w, "\n")
}

// listing is how records of one kind are written as CSV and as a table
// (JSON writes every field, one object a line).
type listing[T any] struct {
	csv, table []field[T]
	// none is the table's line when there is no record.
	none string
}

// csvFields are the audit's export columns as a listing's.
func csvFields(cols []audit.Column) []field[audit.Record] {
	out := make([]field[audit.Record], len(cols))
	for i, c := range cols {
		out[i] = field[audit.Record]{c.Name, c.Value}
	}
	return out
}

// field is one column: its header and how a record shows in it.
type field[T any] struct {
	name  string
	value func(T) string
}

// write writes recs in format: json, csv or table.
func (l listing[T]) write(w io.Writer, format string, recs []T) error {
	switch format {
	case "json":
		return writeJSONLines(w, recs)
	case "csv":
		cw := inert.NewCSVWriter(w)
		cw.Write(names(l.csv)...)
		for _, r := range recs {
			cw.Write(values(l.csv, r)...)
		}
		return cw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(names(l.table), "\t"))
	for _, r := range recs {
		tableRow(tw, values(l.table, r)...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(recs) == 0 {
		fmt.Fprintln(w, l.none)
	}
	return nil
}

func names[T any](fs []field[T]) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

func values[T any](fs []field[T], r T) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.value(r)
	}
	return out
}

// tableTime is how a table shows a record's time.
func tableTime(t time.Time) string { return t.Format("2006-01-02 15:04:05.000") }

var decisionListing = listing[audit.Record]{
	csv: csvFields(audit.DecisionColumnsCSV),
	table: []field[audit.Record]{
		{"TIME", func(r audit.Record) string { return tableTime(r.Time) }},
		{"PROJECT", func(r audit.Record) string { return r.ProjectID }},
		{"DECISION", func(r audit.Record) string { return r.Decision }},
		{"REASON", func(r audit.Record) string { return dash(r.Reason) }},
		{"SESSION", func(r audit.Record) string { return dash(r.Session) }},
		{"USER", func(r audit.Record) string { return dash(r.UserID) }},
		{"CLAIMED", func(r audit.Record) string { return dash(r.ClaimedUserID) }},
		{"ORIGIN", func(r audit.Record) string { return dash(r.Origin) }},
		{"KEY", func(r audit.Record) string { return keyVersion(r.KeyVersion) }},
		{"TOKEN", func(r audit.Record) string { return dash(r.TokenFingerprint) }},
		{"DECISION ID", func(r audit.Record) string { return r.DecisionID }},
	},
	none: "(no decisions match; widen --since or drop a filter)",
}

var adminListing = listing[audit.AdminRecord]{
	csv: []field[audit.AdminRecord]{
		{"eventId", func(r audit.AdminRecord) string { return r.EventID }},
		{"time", func(r audit.AdminRecord) string { return r.Time.Format(time.RFC3339Nano) }},
		{"kind", func(r audit.AdminRecord) string { return r.Kind }},
		{"actor", func(r audit.AdminRecord) string { return r.Actor }},
		{"projectId", func(r audit.AdminRecord) string { return r.ProjectID }},
		{"keyVersion", func(r audit.AdminRecord) string { return strconv.Itoa(int(r.KeyVersion)) }},
		{"previousKeyVersion", func(r audit.AdminRecord) string { return strconv.Itoa(int(r.PreviousKeyVersion)) }},
		{"keyFingerprint", func(r audit.AdminRecord) string { return r.KeyFingerprint }},
		{"graceSeconds", func(r audit.AdminRecord) string { return strconv.FormatInt(r.GraceSeconds, 10) }},
		{"userId", func(r audit.AdminRecord) string { return r.UserID }},
		{"reason", func(r audit.AdminRecord) string { return r.Reason }},
		{"account", func(r audit.AdminRecord) string { return r.Account }},
		{"clientIp", func(r audit.AdminRecord) string { return r.ClientIP }},
	},
	table: []field[audit.AdminRecord]{
		{"TIME", func(r audit.AdminRecord) string { return tableTime(r.Time) }},
		{"KIND", func(r audit.AdminRecord) string { return r.Kind }},
		{"ACTOR", func(r audit.AdminRecord) string { return r.Actor }},
		{"PROJECT", func(r audit.AdminRecord) string { return r.ProjectID }},
		{"KEY", func(r audit.AdminRecord) string { return keyVersion(r.KeyVersion) }},
		{"DETAIL", adminDetail},
		{"REASON", func(r audit.AdminRecord) string { return dash(r.Reason) }},
	},
	none: "(no admin events match; widen --since or drop a filter)",
}

var throttledListing = listing[audit.ThrottledRecord]{
	csv: []field[audit.ThrottledRecord]{
		{"id", func(r audit.ThrottledRecord) string { return r.ID }},
		{"time", func(r audit.ThrottledRecord) string { return r.Time.Format(time.RFC3339) }},
		{"ingress", func(r audit.ThrottledRecord) string { return r.Ingress }},
		{"projectId", func(r audit.ThrottledRecord) string { return r.ProjectID }},
		{"clientIp", func(r audit.ThrottledRecord) string { return r.ClientIP }},
		{"reason", func(r audit.ThrottledRecord) string { return r.Reason }},
		{"count", func(r audit.ThrottledRecord) string { return strconv.FormatUint(r.Count, 10) }},
		{"overflow", func(r audit.ThrottledRecord) string { return strconv.FormatBool(r.Overflow) }},
	},
	table: []field[audit.ThrottledRecord]{
		{"MINUTE", func(r audit.ThrottledRecord) string { return r.Time.Format("2006-01-02 15:04") }},
		{"PROJECT", func(r audit.ThrottledRecord) string { return overflowOr(r, r.ProjectID) }},
		{"CLIENT IP", func(r audit.ThrottledRecord) string { return overflowOr(r, dash(r.ClientIP)) }},
		{"REASON", func(r audit.ThrottledRecord) string { return r.Reason }},
		{"COUNT", func(r audit.ThrottledRecord) string { return strconv.FormatUint(r.Count, 10) }},
		{"INGRESS", func(r audit.ThrottledRecord) string { return r.Ingress }},
	},
	none: "(no throttled requests match; widen --since or drop a filter)",
}

// overflowOr is how a table shows a key of an overflow count: the
// requests of every key over the ingress's bound that minute.
func overflowOr(r audit.ThrottledRecord, s string) string {
	if r.Overflow {
		return audit.KeyOverflow
	}
	return s
}

// adminDetail says in a table what an admin event changed.
func adminDetail(r audit.AdminRecord) string {
	switch r.Kind {
	case string(events.AdminKeyRotated):
		detail := fmt.Sprintf("v%d → v%d, new key %s", r.PreviousKeyVersion, r.KeyVersion, r.KeyFingerprint)
		if r.GraceUntil != nil {
			return detail + ", old key until " + r.GraceUntil.Format(time.RFC3339)
		}
		return detail + ", old key retired at once"
	case string(events.AdminUserRevoked):
		return "user " + r.UserID
	case string(events.AdminUserUnrevoked):
		return "user " + r.UserID + " no longer revoked"
	case string(events.AdminProjectCreated), string(events.AdminProjectUpdated):
		return fmt.Sprintf("requireToken=%v origins=%s", r.RequireToken, strings.Join(r.Origins, ","))
	}
	if r.Account != "" {
		detail := "account " + r.Account
		if r.ClientIP != "" {
			detail += " from " + r.ClientIP
		}
		return detail
	}
	return ""
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func keyVersion(v uint32) string {
	if v == 0 {
		return "-"
	}
	return "v" + strconv.Itoa(int(v))
}

func auditStats(env Env, args []string) error {
	var f filterFlags
	fs := newFlags("audit stats", auditUsage, env.Stderr)
	f.register(fs, false)
	by := fs.String("by", "decision", "group by decision, reason, origin, user or hour; with --throttled by reason (the default), project, ip or hour")
	throttled := fs.Bool("throttled", false, "add up the requests the ingresses refused (429, or a connection closed at once) instead of counting decisions")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *throttled && *by == "decision" {
		*by = string(audit.ThrottledByReason)
	}
	switch {
	case *throttled && !slices.Contains(audit.ThrottledGroups, audit.Group(*by)):
		return fmt.Errorf("--by %q: with --throttled use reason, project, ip or hour", *by)
	case !*throttled && !slices.Contains(audit.Groups, audit.Group(*by)):
		return fmt.Errorf("--by %q: use decision, reason, origin, user or hour", *by)
	}
	filter, err := f.throttledOr(*throttled, time.Now())
	if err != nil {
		return err
	}
	if f.format != "table" && f.format != "json" {
		return fmt.Errorf("--format %q: use table or json", f.format)
	}
	c, err := audit.Open(env.Ctx, f.dsn)
	if err != nil {
		return err
	}
	defer c.Close()
	count := audit.Stats
	if *throttled {
		count = audit.ThrottledStats
	}
	stats, err := count(env.Ctx, c, filter, audit.Group(*by))
	if err != nil {
		return err
	}
	if f.format == "json" {
		jw := inert.JSONWriter{W: env.Stdout}
		for _, s := range stats {
			if err := jw.Write(map[string]any{*by: s.Key, "count": s.Count}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tCOUNT\t\n", strings.ToUpper(*by))
	var total uint64
	for _, s := range stats {
		fmt.Fprintf(tw, "%s\t%d\t\n", inert.Text(s.Key), s.Count)
		total += s.Count
	}
	fmt.Fprintf(tw, "total\t%d\t\n", total)
	return tw.Flush()
}

func auditTail(env Env, args []string) error {
	var n natsFlags
	fs := newFlags("audit tail", "hissuno audit tail [--project ID] [--format table|json]", env.Stderr)
	n.register(fs)
	projectID := fs.String("project", "", "only this project id")
	format := fs.String("format", "table", "table or json (one object a line)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("--format %q: use table or json", *format)
	}
	nc, js, err := n.connectJS("hissuno-audit-tail", auditUser, zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	// The tail's consumer counts as interest on the decisions stream: a
	// decision stays there until the tail has it too. The auditor removes
	// the decisions it stored more than auditor.DefaultStoredGrace ago even
	// from under a tail that has not read them: a tail that far behind
	// skips them, and says so.
	cons, err := js.CreateConsumer(env.Ctx, events.StreamDecisions, bus.FollowDecisions(jetstream.DeliverNewPolicy))
	if err != nil {
		return fmt.Errorf("follow decisions: %w (has `hissuno dev` run against this NATS?)", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(env.Ctx), 2*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(ctx, events.StreamDecisions, cons.CachedInfo().Name)
	}()
	if *format == "table" {
		fmt.Fprintln(env.Stderr, "following decisions live; Ctrl-C to stop")
	}
	var last uint64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if md, err := m.Metadata(); err == nil {
			if last != 0 && md.Sequence.Stream > last+1 {
				fmt.Fprintf(env.Stderr, "audit tail fell behind: %d decisions, already stored, were skipped (hissuno audit query shows them)\n", md.Sequence.Stream-last-1)
			}
			last = md.Sequence.Stream
		}
		var d events.Decision
		if json.Unmarshal(m.Data(), &d) != nil || (*projectID != "" && d.ProjectID != *projectID) {
			return
		}
		if *format == "json" {
			_ = inert.JSONWriter{W: env.Stdout}.Write(d)
			return
		}
		fmt.Fprintf(env.Stdout, "%s  %-14s %-22s %-12s %-20s %-24s %s\n", d.Time.Format("15:04:05.000"), inert.Text(string(d.Decision)), inert.Text(dash(string(d.Reason))),
			inert.Text(dash(string(d.Session))), inert.Text(dash(d.UserID)), inert.Text(dash(d.Origin)), inert.Text(d.ProjectID))
	})
	if err != nil {
		return fmt.Errorf("follow decisions: %w", err)
	}
	defer cc.Stop()
	<-env.Ctx.Done()
	return nil
}

func auditMigrate(env Env, args []string) error {
	fs := newFlags("audit migrate", "hissuno audit migrate [--clickhouse DSN] [--cluster NAME]", env.Stderr)
	dsn := fs.String("clickhouse", defaultDSN(), "ClickHouse DSN [HISSUNO_CLICKHOUSE_DSN]")
	cluster := fs.String("cluster", "", "ClickHouse cluster (a <remote_servers> name) to make the audit tables on, replicated, with Distributed tables over them; empty: one server [HISSUNO_CLICKHOUSE_CLUSTER]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := audit.Open(env.Ctx, *dsn)
	if err != nil {
		return err
	}
	defer c.Close()
	var applied []string
	if *cluster != "" {
		applied, err = audit.MigrateCluster(env.Ctx, c, *dsn, *cluster)
	} else {
		applied, err = audit.Migrate(env.Ctx, c)
	}
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(env.Stdout, "ClickHouse schema up to date")
		return nil
	}
	for _, m := range applied {
		fmt.Fprintln(env.Stdout, "applied", m)
	}
	return nil
}

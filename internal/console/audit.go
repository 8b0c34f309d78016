package console

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/danielgtaylor/huma/v2"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/inert"
)

// Export bounds: an export holds at most MaxExport decisions, by default
// DefaultExport.
const (
	DefaultExport = 100_000
	MaxExport     = 1_000_000
)

// DecisionFilter is every filter of `hissuno audit query`, as query
// parameters.
type DecisionFilter struct {
	Project  string    `query:"project" maxLength:"64" doc:"Only this project id."`
	Since    time.Time `query:"since" doc:"From this time (RFC 3339); default 24 hours ago."`
	Until    time.Time `query:"until" doc:"Up to this time (RFC 3339), excluded; default now."`
	Decision string    `query:"decision" enum:"accept,unauthorized,origin_blocked,refused" doc:"Only this outcome; refused: unauthorized and origin_blocked."`
	Reason   string    `query:"reason" maxLength:"64" doc:"Only this reason code, e.g. origin_not_allowed."`
	User     string    `query:"user" maxLength:"256" doc:"Only this userId."`
	Origin   string    `query:"origin" maxLength:"2048" doc:"Only this Origin, e.g. https://shop.example."`
	Session  string    `query:"session" enum:"authenticated,anonymous" doc:"Only accepts of this session kind."`
}

// filter is the audit filter of the query, restricted to what p may see;
// a project outside p's list answers 404 as an unknown one.
func (c *Console) filter(ctx context.Context, p *principal, q DecisionFilter) (audit.Filter, error) {
	if q.Project != "" && !p.canSee(q.Project) {
		c.denied(ctx, p, "audit of project "+q.Project+" is outside the account's projects")
		return audit.Filter{}, huma.Error404NotFound("no project " + q.Project)
	}
	f := audit.Filter{ProjectID: q.Project, Projects: p.scope(), Since: q.Since, Until: q.Until, Decision: q.Decision,
		Reason: q.Reason, UserID: q.User, Origin: q.Origin, Session: q.Session}
	if f.Since.IsZero() {
		f.Since = c.cfg.Clock().Add(-24 * time.Hour)
	}
	if !f.Until.IsZero() && !f.Until.After(f.Since) {
		return audit.Filter{}, huma.Error422UnprocessableEntity("until must be after since")
	}
	return f, nil
}

type PageParams struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" doc:"Records a page, default 100."`
	Cursor string `query:"cursor" maxLength:"512" doc:"The next cursor of the previous page."`
}

type decisionsInput struct {
	DecisionFilter
	PageParams
}

type decisionsOutput struct {
	Body audit.Page
}

type decisionInput struct {
	ID string `path:"decisionId" maxLength:"64"`
}

type decisionOutput struct {
	Body audit.Record
}

type seriesInput struct {
	DecisionFilter
	Bucket string `query:"bucket" enum:"minute,hour,day" doc:"Bucket width; default hour."`
	Split  string `query:"split" enum:"decision,reason" doc:"Count apart by decision or by reason; default decision."`
}

// Series is decisions counted per bucket of time.
type Series struct {
	Bucket string    `json:"bucket"`
	Split  string    `json:"split"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Points hold only the buckets and keys with decisions: a missing one
	// counts 0.
	Points []audit.Point `json:"points"`
}

type seriesOutput struct {
	Body Series
}

type topInput struct {
	DecisionFilter
	By string `query:"by" enum:"origin,reason,user" doc:"What to count by; default origin. (Decisions by outcome: the series, split by decision.)"`
	N  int    `query:"n" minimum:"1" maximum:"100" doc:"How many; default 10."`
}

// Top is the most frequent values of one field.
type Top struct {
	By    string       `json:"by"`
	Items []audit.Stat `json:"items"`
}

type topOutput struct {
	Body Top
}

type adminEventsInput struct {
	Project string    `query:"project" maxLength:"64"`
	Since   time.Time `query:"since" doc:"Default 30 days ago."`
	Until   time.Time `query:"until"`
	Kind    string    `query:"kind" maxLength:"64" doc:"Only this kind, e.g. key.rotated."`
	Actor   string    `query:"actor" maxLength:"300" doc:"Only this actor, e.g. console:ada@example.com or nats:admin."`
	User    string    `query:"user" maxLength:"256"`
	PageParams
}

type adminEventsOutput struct {
	Body audit.AdminPage
}

type throttledInput struct {
	Project string    `query:"project" maxLength:"64" doc:"Only this project id; unknown: projectIds no verifier had decided (owners and accounts not limited to projects only)."`
	Since   time.Time `query:"since" doc:"From this time (RFC 3339); default 24 hours ago."`
	Until   time.Time `query:"until" doc:"Up to this time (RFC 3339), excluded; default now."`
	Reason  string    `query:"reason" enum:"ip_rate,project_rate,unseen_project_rate,ip_connections,connections" doc:"Only this throttle reason."`
	Limit   int       `query:"limit" minimum:"1" maximum:"1000" doc:"Counts listed, the newest minute and the largest count first; default 100. The totals cover every count."`
}

// ThrottledTraffic is what the ingresses refused (429, or a connection
// closed at once): their counts per minute, project, client IP and reason,
// and the requests refused by reason over the whole range.
type ThrottledTraffic struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Items are the counts, newest minute first, at most limit of them.
	Items []audit.ThrottledRecord `json:"items"`
	// ByReason adds up every count of the range by reason.
	ByReason []audit.Stat `json:"byReason"`
	// Total is the requests refused in the range: the sum of ByReason.
	Total uint64 `json:"total"`
}

type throttledOutput struct {
	Body ThrottledTraffic
}

type usersInput struct {
	ProjectPath
	Since time.Time `query:"since" doc:"Default 30 days ago."`
	Until time.Time `query:"until"`
	PageParams
}

// Users are a project's visitors: identified users with their metadata,
// and the anonymous ones counted.
type Users struct {
	audit.UsersPage
	Anonymous audit.AnonymousStats `json:"anonymous"`
}

type usersOutput struct {
	Body Users
}

type historyInput struct {
	ProjectPath
	UserID string    `path:"userId" maxLength:"256"`
	Since  time.Time `query:"since" doc:"Default 30 days ago."`
	Until  time.Time `query:"until"`
	PageParams
}

type exportInput struct {
	DecisionFilter
	Format string `query:"format" enum:"csv,json" doc:"csv (a header row) or json (one object a line); default csv."`
	Max    int    `query:"max" minimum:"1" maximum:"1000000" doc:"At most this many decisions, newest first; default 100000."`
}

func (c *Console) registerAudit(api huma.API) {
	tags := []string{"Audit"}
	register(api, huma.Operation{
		OperationID: "list-decisions", Method: http.MethodGet, Path: APIPrefix + "/audit/decisions", Tags: tags,
		Summary:     "List decisions",
		Description: "Newest first, a page at a time: pass next as cursor for the following page. Pages never shift or repeat a decision while new ones are stored.",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *decisionsInput) (*decisionsOutput, error) {
		f, err := c.filter(ctx, p, in.DecisionFilter)
		if err != nil {
			return nil, err
		}
		f.Limit = in.Limit
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		page, err := audit.DecisionsPage(ctx, conn, f, in.Cursor)
		if err != nil {
			return nil, c.auditError("list decisions", err)
		}
		return &decisionsOutput{Body: page}, nil
	})

	register(api, huma.Operation{
		OperationID: "get-decision", Method: http.MethodGet, Path: APIPrefix + "/audit/decisions/{decisionId}", Tags: tags,
		Summary: "Get one decision", Errors: []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *decisionInput) (*decisionOutput, error) {
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		rec, err := audit.Decision(ctx, conn, in.ID, p.scope())
		if errors.Is(err, audit.ErrNotFound) {
			c.deniedDecision(ctx, conn, p, in.ID)
			return nil, huma.Error404NotFound("no decision " + in.ID)
		}
		if err != nil {
			return nil, c.auditError("read a decision", err)
		}
		return &decisionOutput{Body: rec}, nil
	})

	register(api, huma.Operation{
		OperationID: "decision-series", Method: http.MethodGet, Path: APIPrefix + "/audit/series", Tags: tags,
		Summary: "Decisions over time", Description: "Counted per minute, hour or day (UTC), apart by decision or by reason.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *seriesInput) (*seriesOutput, error) {
		f, err := c.filter(ctx, p, in.DecisionFilter)
		if err != nil {
			return nil, err
		}
		bucket, split := or(in.Bucket, "hour"), or(in.Split, "decision")
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		points, err := audit.Series(ctx, conn, f, audit.Bucket(bucket), audit.Split(split))
		if errors.Is(err, audit.ErrTooManyBuckets) {
			return nil, huma.Error422UnprocessableEntity(err.Error())
		}
		if err != nil {
			return nil, c.auditError("count decisions over time", err)
		}
		until := f.Until
		if until.IsZero() {
			until = c.cfg.Clock()
		}
		return &seriesOutput{Body: Series{Bucket: bucket, Split: split, Since: f.Since.UTC(), Until: until.UTC(), Points: nonNilSlice(points)}}, nil
	})

	register(api, huma.Operation{
		OperationID: "top-values", Method: http.MethodGet, Path: APIPrefix + "/audit/top", Tags: tags,
		Summary: "Top origins, reasons or users", Errors: []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *topInput) (*topOutput, error) {
		f, err := c.filter(ctx, p, in.DecisionFilter)
		if err != nil {
			return nil, err
		}
		by := or(in.By, "origin")
		n := in.N
		if n == 0 {
			n = 10
		}
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		stats, err := audit.Top(ctx, conn, f, audit.Group(by), n)
		if err != nil {
			return nil, c.auditError("count the top values", err)
		}
		return &topOutput{Body: Top{By: by, Items: nonNilSlice(stats)}}, nil
	})

	register(api, huma.Operation{
		OperationID: "list-admin-events", Method: http.MethodGet, Path: APIPrefix + "/audit/admin-events", Tags: tags,
		Summary:     "List admin events",
		Description: "Every change to a project (who, as the system knows them, and why), every sign-in, failure, lockout and refusal, newest first.",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *adminEventsInput) (*adminEventsOutput, error) {
		if in.Project != "" && !p.canSee(in.Project) {
			c.denied(ctx, p, "admin events of project "+in.Project+" are outside the account's projects")
			return nil, huma.Error404NotFound("no project " + in.Project)
		}
		f := audit.Filter{ProjectID: in.Project, Projects: p.scope(), Since: in.Since, Until: in.Until, Kind: in.Kind, Actor: in.Actor, UserID: in.User, Limit: in.Limit}
		if f.Since.IsZero() {
			f.Since = c.cfg.Clock().Add(-30 * 24 * time.Hour)
		}
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		page, err := audit.AdminEventsPage(ctx, conn, f, in.Cursor)
		if err != nil {
			return nil, c.auditError("list admin events", err)
		}
		return &adminEventsOutput{Body: page}, nil
	})

	register(api, huma.Operation{
		OperationID: "list-throttled", Method: http.MethodGet, Path: APIPrefix + "/audit/throttled", Tags: tags,
		Summary: "List throttled traffic",
		Description: "The requests the ingresses refused over a rate limit (429) or a connection cap, counted per minute, project, client IP and reason " +
			"(at most a bounded number of keys a minute per ingress; the rest in one overflow count per reason), and their totals by reason. " +
			"Project unknown holds the projectIds no verifier had decided, which a flood chooses: an account limited to projects sees only its projects' counts, never unknown or overflow ones.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *throttledInput) (*throttledOutput, error) {
		if in.Project != "" && !p.canSee(in.Project) {
			c.denied(ctx, p, "throttled traffic of project "+in.Project+" is outside the account's projects")
			return nil, huma.Error404NotFound("no project " + in.Project)
		}
		f := audit.Filter{ProjectID: in.Project, Projects: p.scope(), Since: in.Since, Until: in.Until, Reason: in.Reason, Limit: in.Limit}
		if f.Since.IsZero() {
			f.Since = c.cfg.Clock().Add(-24 * time.Hour)
		}
		if f.Until.IsZero() {
			f.Until = c.cfg.Clock()
		}
		if !f.Until.After(f.Since) {
			return nil, huma.Error422UnprocessableEntity("until must be after since")
		}
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		items, err := audit.Throttled(ctx, conn, f)
		if err != nil {
			return nil, c.auditError("list throttled traffic", err)
		}
		f.Limit = 0
		byReason, err := audit.ThrottledStats(ctx, conn, f, audit.ThrottledByReason)
		if err != nil {
			return nil, c.auditError("add up throttled traffic", err)
		}
		out := ThrottledTraffic{Since: f.Since, Until: f.Until, Items: nonNilSlice(items), ByReason: nonNilSlice(byReason)}
		for _, s := range byReason {
			out.Total += s.Count
		}
		return &throttledOutput{Body: out}, nil
	})

	register(api, huma.Operation{
		OperationID: "list-users", Method: http.MethodGet, Path: APIPrefix + "/projects/{projectId}/users", Tags: tags,
		Summary:     "A project's visitors",
		Description: "Identified users (a verified token's userId) with their latest metadata and when they were last seen, most recent first; anonymous visitors counted.",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *usersInput) (*usersOutput, error) {
		if _, _, err := c.project(ctx, p, in.ProjectID); err != nil {
			return nil, err
		}
		f := audit.Filter{ProjectID: in.ProjectID, Since: in.Since, Until: in.Until, Limit: in.Limit}
		if f.Since.IsZero() {
			f.Since = c.cfg.Clock().Add(-30 * 24 * time.Hour)
		}
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		page, err := audit.Users(ctx, conn, f, in.Cursor)
		if err != nil {
			return nil, c.auditError("list users", err)
		}
		anon, err := audit.Anonymous(ctx, conn, f)
		if err != nil {
			return nil, c.auditError("count anonymous visitors", err)
		}
		return &usersOutput{Body: Users{UsersPage: page, Anonymous: anon}}, nil
	})

	register(api, huma.Operation{
		OperationID: "user-history", Method: http.MethodGet, Path: APIPrefix + "/projects/{projectId}/users/{userId}/decisions", Tags: tags,
		Summary: "A user's connection history", Description: "Every decision about the user on the project, newest first, a page at a time.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, permReadAudit, func(ctx context.Context, p *principal, in *historyInput) (*decisionsOutput, error) {
		if _, _, err := c.project(ctx, p, in.ProjectID); err != nil {
			return nil, err
		}
		f := audit.Filter{ProjectID: in.ProjectID, UserID: in.UserID, Since: in.Since, Until: in.Until, Limit: in.Limit}
		if f.Since.IsZero() {
			f.Since = c.cfg.Clock().Add(-30 * 24 * time.Hour)
		}
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		page, err := audit.DecisionsPage(ctx, conn, f, in.Cursor)
		if err != nil {
			return nil, c.auditError("read a user's history", err)
		}
		return &decisionsOutput{Body: page}, nil
	})

	register(api, huma.Operation{
		OperationID: "export-decisions", Method: http.MethodGet, Path: APIPrefix + "/audit/export", Tags: tags,
		Summary:     "Export decisions",
		Description: "The decisions matching the filters, newest first, as CSV or JSON lines, streamed as they are read (at most max of them; the X-Hissuno-Truncated trailer says whether more matched).",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
		Responses: map[string]*huma.Response{"200": {Description: "The decisions", Content: map[string]*huma.MediaType{
			"text/csv": {Schema: &huma.Schema{Type: "string"}}, "application/x-ndjson": {Schema: &huma.Schema{Type: "string"}},
		}}},
	}, permReadAudit, func(ctx context.Context, p *principal, in *exportInput) (*huma.StreamResponse, error) {
		f, err := c.filter(ctx, p, in.DecisionFilter)
		if err != nil {
			return nil, err
		}
		max := in.Max
		if max == 0 {
			max = DefaultExport
		}
		conn, err := c.auditConnOrError(ctx)
		if err != nil {
			return nil, err
		}
		format := or(in.Format, "csv")
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			c.export(ctx, hctx, conn, f, format, max)
		}}, nil
	})
}

// deniedDecision records a denial when a principal limited to some
// projects asked for a decision of another project: it answers 404 as an
// unknown decision, and the audit shows the attempt, as for a project.
func (c *Console) deniedDecision(ctx context.Context, conn driver.Conn, p *principal, id string) {
	if p.projects == nil {
		return
	}
	if other, err := audit.Decision(ctx, conn, id, nil); err == nil {
		c.denied(ctx, p, "decision "+id+" of project "+other.ProjectID+" is outside the account's projects")
	}
}

// export streams the decisions of f: each row written as it is read, the
// writes flushed now and then, nothing held but the row at hand.
func (c *Console) export(ctx context.Context, hctx huma.Context, conn driver.Conn, f audit.Filter, format string, max int) {
	name := "hissuno-decisions-" + c.cfg.Clock().UTC().Format("20060102T150405Z")
	hctx.SetHeader("Trailer", "X-Hissuno-Truncated, X-Hissuno-Error")
	if format == "json" {
		hctx.SetHeader("Content-Type", "application/x-ndjson")
		hctx.SetHeader("Content-Disposition", `attachment; filename="`+name+`.jsonl"`)
	} else {
		hctx.SetHeader("Content-Type", "text/csv; charset=utf-8")
		hctx.SetHeader("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	}
	hctx.SetStatus(http.StatusOK)
	w := hctx.BodyWriter()
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	var write func(audit.Record) error
	var done func() error
	if format == "json" {
		jw := inert.JSONWriter{W: w}
		write, done = func(r audit.Record) error { return jw.Write(r) }, func() error { return nil }
	} else {
		cw := inert.NewCSVWriter(w)
		cw.Write(audit.CSVHeader()...)
		write = func(r audit.Record) error { cw.Write(r.CSVRow()...); return nil }
		done = cw.Flush
	}
	n := 0
	_, err := audit.ExportDecisions(ctx, conn, f, max, func(r audit.Record) error {
		if err := write(r); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			if err := done(); err != nil {
				return err
			}
			flush()
		}
		return nil
	})
	_ = done()
	flush()
	truncated := errors.Is(err, audit.ErrTruncated)
	hctx.SetHeader("X-Hissuno-Truncated", map[bool]string{true: "true", false: "false"}[truncated])
	if err != nil && !truncated {
		c.log.Error().Err(err).Int("rows", n).Msg("export stopped")
		hctx.SetHeader("X-Hissuno-Error", "the export stopped early; the console's log says why")
	}
}

// auditConnOrError is the ClickHouse connection, or the 503 of an audit
// that cannot be reached.
func (c *Console) auditConnOrError(ctx context.Context) (driver.Conn, error) {
	conn, err := c.auditConn(ctx)
	if err != nil {
		return nil, huma.Error503ServiceUnavailable(err.Error())
	}
	return conn, nil
}

// auditError maps the audit package's errors to answers.
func (c *Console) auditError(what string, err error) error {
	switch {
	case errors.Is(err, audit.ErrBadCursor):
		return huma.Error422UnprocessableEntity(err.Error() + ": pass the next cursor of the page before, with the same filters")
	case errors.Is(err, audit.ErrNotMigrated):
		return huma.Error503ServiceUnavailable("the audit tables do not exist yet: an auditor creates them at start (or run `hissuno audit migrate`)")
	case errors.Is(err, audit.ErrUnreachable):
		return huma.Error503ServiceUnavailable(err.Error())
	}
	return c.internal(what, err)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

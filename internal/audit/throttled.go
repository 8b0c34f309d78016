package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/events"
)

// ThrottledRecord is one count of throttled requests as security teams see
// it: how many requests (or connections) an ingress refused in one minute
// for one project (or "unknown"), client address and reason. The JSON
// field names are the public contract of `hissuno audit query --throttled
// --format json` and of the console's /api/v1/audit/throttled.
type ThrottledRecord struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Ingress   string    `json:"ingress"`
	ProjectID string    `json:"projectId"`
	ClientIP  string    `json:"clientIp"`
	Reason    string    `json:"reason"`
	Count     uint64    `json:"count"`
	Overflow  bool      `json:"overflow"`
}

// throttled is the clause selecting counts of throttled requests: the time
// range, the project and the reason. An account limited to projects
// (Projects not nil) sees only its projects' counts: never the unknown
// ones (which a flood's projectIds chose, whatever project they aimed at)
// nor the overflow ones (which name no project).
func (f Filter) throttled() *conds {
	c := f.common()
	if f.Projects != nil {
		c.add("project_id != ?", events.ThrottledUnknownProject)
	}
	c.eq("reason", f.Reason)
	return c
}

// Throttled returns the counts of throttled requests matching f (projects,
// time range, reason, Limit), each once, newest minute first and the
// largest count first within a minute.
func Throttled(ctx context.Context, conn driver.Conn, f Filter) ([]ThrottledRecord, error) {
	c := f.throttled()
	q := "SELECT " + ThrottledColumns + " FROM hissuno_throttled" + c.String() + " ORDER BY time DESC, count DESC, rollup_id LIMIT 1 BY rollup_id LIMIT ?"
	rows, err := conn.Query(ctx, q, append(c.args, limit(f.Limit))...)
	if err != nil {
		return nil, queryError(err)
	}
	return collect(rows, "throttled counts", func(rows driver.Rows) (ThrottledRecord, error) {
		var r ThrottledRecord
		var t time.Time
		var overflow uint8
		err := rows.Scan(&r.ID, &t, &r.Ingress, &r.ProjectID, &r.ClientIP, &r.Reason, &r.Count, &overflow)
		r.Time, r.Overflow = t.UTC(), overflow == 1
		return r, err
	})
}

// The groupings of `hissuno audit stats --throttled --by`: requests refused
// by reason, by project ("unknown" included), by client address
// (KeyOverflow for the overflow counts) or by hour.
const (
	ThrottledByReason  Group = "reason"
	ThrottledByProject Group = "project"
	ThrottledByIP      Group = "ip"
	ThrottledByHour    Group = "hour"
)

// ThrottledGroups lists every grouping of counts of throttled requests.
var ThrottledGroups = []Group{ThrottledByReason, ThrottledByProject, ThrottledByIP, ThrottledByHour}

// KeyOverflow is the key of the overflow counts in a grouping by project
// or address: the requests of the keys over an ingress's bound a minute.
const KeyOverflow = "(overflow)"

var throttledGroupKeys = map[Group]string{
	ThrottledByReason:  "reason",
	ThrottledByProject: "if(overflow = 1, '" + KeyOverflow + "', project_id)",
	ThrottledByIP:      "if(overflow = 1, '" + KeyOverflow + "', client_ip)",
	ThrottledByHour:    "formatDateTime(toStartOfHour(time), '%Y-%m-%d %H:00')",
}

// ThrottledStats adds up the requests refused matching f by group, each
// count once: their sum is the number of requests refused. Every group is
// returned unless f.Limit is set. Like every audit question it reads
// without FINAL: the auditor stores each count once (Stored).
func ThrottledStats(ctx context.Context, conn driver.Conn, f Filter, by Group) ([]Stat, error) {
	expr, ok := throttledGroupKeys[by]
	if !ok {
		return nil, fmt.Errorf("--by %q: use reason, project, ip or hour", by)
	}
	return groupStats(ctx, conn, "sum(count)", "hissuno_throttled", sameKey(expr), by == ThrottledByHour, f.throttled(), f.Limit, "throttled stats")
}

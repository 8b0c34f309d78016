package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/throttle"
)

// TestAuditQueryThrottled: requests a stack's ingress answered 429 reach
// `hissuno audit query --throttled` and `audit stats --throttled` as counts
// that add up to the 429s, by project (unknown ones as "unknown") and
// reason.
func TestAuditQueryThrottled(t *testing.T) {
	t.Parallel()
	dsn := auditClickHouse(t)
	slow := func(n int) throttle.Limit { return throttle.Limit{Rate: 0.001, Burst: n} }
	st := stacktest.Start(t, stack.Config{ClickHouseDSN: dsn, Auditor: auditor.Config{BatchWait: 50 * time.Millisecond}, IngressDeadline: 20 * time.Second,
		Ingress: ingress.Config{Limits: ingress.Limits{IP: throttle.Limit{Rate: -1}, Project: slow(3), Unseen: slow(2)}}})
	id, _ := createProject(t, st)
	post := func(projectID string) int {
		resp, err := http.Post("http://"+st.HTTPAddr+ingress.ConnectPath, "application/json", bytes.NewReader([]byte(`{"projectId":"`+projectID+`"}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The project's first request spends one unseen token and makes it
	// known; its bucket holds 3; the unseen one has 1 left.
	var projectRefused, unknownRefused uint64
	for range 10 {
		if post(id) == http.StatusTooManyRequests {
			projectRefused++
		}
	}
	for i := range 7 {
		if post(fmt.Sprintf("proj_nobody%d", i)) == http.StatusTooManyRequests {
			unknownRefused++
		}
	}
	if projectRefused != 6 || unknownRefused != 6 {
		t.Fatalf("429s: %d for the project, %d for unknown projectIds; want 6 and 6", projectRefused, unknownRefused)
	}
	st.StopIngress() // publishes the counts of the minute
	ch := []string{"--clickhouse", dsn}
	try := func(args ...string) (uint64, []map[string]any, error) {
		r := run(t, append(append([]string{"audit", "query", "--throttled", "--format", "json"}, ch...), args...)...)
		if r.code != 0 {
			return 0, nil, fmt.Errorf("audit query --throttled\n%s", r)
		}
		var n uint64
		lines := jsonLines(t, r.stdout)
		for _, o := range lines {
			c, _ := o["count"].(float64)
			n += uint64(c)
		}
		return n, lines, nil
	}
	sum := func(args ...string) (uint64, []map[string]any) {
		n, lines, err := try(args...)
		if err != nil {
			t.Fatal(err)
		}
		return n, lines
	}
	// The auditor makes its tables when it first reaches ClickHouse.
	stacktest.Eventually(t, time.Minute, "the counts stored", func() error {
		if n, _, err := try(); err != nil || n != projectRefused+unknownRefused {
			return fmt.Errorf("counts add up to %d (%v), want %d", n, err, projectRefused+unknownRefused)
		}
		return nil
	})
	n, lines := sum("--project", id)
	if n != projectRefused || len(lines) != 1 || lines[0]["reason"] != string(events.ThrottleProject) || lines[0]["clientIp"] != "127.0.0.1" {
		t.Errorf("--project %s: %d refused in %v, want %d project_rate from 127.0.0.1", id, n, lines, projectRefused)
	}
	if n, _ := sum("--project", events.ThrottledUnknownProject, "--reason", string(events.ThrottleUnseenProject)); n != unknownRefused {
		t.Errorf("--project unknown --reason unseen_project_rate: %d, want %d", n, unknownRefused)
	}
	if n, _ := sum("--since", "2020-01-01", "--until", "2020-01-02"); n != 0 {
		t.Errorf("--until in 2020: %d refused", n)
	}

	r := run(t, append([]string{"audit", "stats", "--throttled", "--format", "json"}, ch...)...)
	if r.code != 0 {
		t.Fatalf("audit stats --throttled\n%s", r)
	}
	got := map[string]uint64{}
	for _, o := range jsonLines(t, r.stdout) {
		c, _ := o["count"].(float64)
		got[fmt.Sprint(o["reason"])] = uint64(c)
	}
	if want := map[string]uint64{"project_rate": projectRefused, "unseen_project_rate": unknownRefused}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stats --throttled: %v, want %v", got, want)
	}
	r = run(t, append([]string{"audit", "stats", "--throttled", "--by", "project"}, ch...)...)
	if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, events.ThrottledUnknownProject) || !strings.Contains(r.stdout, "total") {
		t.Errorf("stats --throttled --by project\n%s", r)
	}
	r = run(t, append([]string{"audit", "query", "--throttled"}, ch...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "CLIENT IP") || !strings.Contains(r.stdout, "unseen_project_rate") {
		t.Errorf("audit query --throttled (table)\n%s", r)
	}
	r = run(t, append([]string{"audit", "query", "--throttled", "--format", "csv"}, ch...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "id,time,ingress,projectId,clientIp,reason,count,overflow\n") {
		t.Errorf("audit query --throttled --format csv\n%s", r)
	}
}

func TestAuditThrottledFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"with --admin", []string{"audit", "query", "--throttled", "--admin"}, "give one of them"},
		{"a decision's reason", []string{"audit", "query", "--throttled", "--reason", "token_expired"}, "use ip_rate"},
		{"a decision filter", []string{"audit", "query", "--throttled", "--decision", "accept"}, "drop --decision"},
		{"stats by origin", []string{"audit", "stats", "--throttled", "--by", "origin"}, "use reason, project, ip or hour"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, append(tt.args, "--clickhouse", closedClickHouse)...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("want a failure saying %q\n%s", tt.want, r)
			}
		})
	}
}

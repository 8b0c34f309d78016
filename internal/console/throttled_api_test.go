package console_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/console"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/throttle"
)

// TestThrottledTrafficAPI: the requests the ingress answered 429 reach
// GET /api/v1/audit/throttled as counts adding up to them; an owner sees
// every project's and the unknown ones; an account limited to a project
// sees that project's only (never unknown or overflow counts, and
// ?project=unknown is a project it cannot see: 404).
func TestThrottledTrafficAPI(t *testing.T) {
	t.Parallel()
	slow := func(n int) throttle.Limit { return throttle.Limit{Rate: 0.001, Burst: n} }
	e := newEnv(t, withBatchWait(50*time.Millisecond), func(c *stack.Config) {
		c.Ingress.Limits = ingress.Limits{IP: throttle.Limit{Rate: -1}, Project: slow(2), Unseen: slow(2)}
	})
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	a, _ := owner.createProject(t, "A", nil)
	b, _ := owner.createProject(t, "B", nil)
	post := func(projectID string) bool {
		resp, err := http.Post("http://"+e.st.HTTPAddr+ingress.ConnectPath, "application/json", bytes.NewReader([]byte(`{"projectId":"`+projectID+`"}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusTooManyRequests
	}
	// A's and B's first requests spend the unseen bucket (2) and make them
	// known; each then has 2 of its own.
	refused := map[string]uint64{}
	for _, p := range []string{a, b, a, a, a, a, b, b, b, "proj_nobody", "proj_nobody2"} {
		if post(p) {
			refused[p]++
		}
	}
	if refused[a] != 2 || refused[b] != 1 || refused["proj_nobody"]+refused["proj_nobody2"] != 2 {
		t.Fatalf("429s: %v", refused)
	}
	e.st.StopIngress() // publishes the minute's counts

	var all console.ThrottledTraffic
	deadline := time.Now().Add(time.Minute)
	for {
		owner.do(t, http.MethodGet, "/api/v1/audit/throttled", nil).want(t, http.StatusOK).decode(t, &all)
		if all.Total == 5 && len(all.Items) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if all.Total != 5 || len(all.Items) != 3 {
		t.Fatalf("owner: total %d in %+v, want 5 in 3 counts: %s", all.Total, all.Items, owner.do(t, http.MethodGet, "/api/v1/audit/throttled", nil).body)
	}
	want := map[string]string{a: "2 project_rate", b: "1 project_rate", events.ThrottledUnknownProject: "2 unseen_project_rate"}
	for _, it := range all.Items {
		if got := fmt.Sprintf("%d %s", it.Count, it.Reason); want[it.ProjectID] != got || it.ClientIP != "127.0.0.1" {
			t.Errorf("count %+v, want %s from 127.0.0.1", it, want[it.ProjectID])
		}
	}
	var unknown console.ThrottledTraffic
	owner.do(t, http.MethodGet, "/api/v1/audit/throttled?project=unknown&reason=unseen_project_rate", nil).want(t, http.StatusOK).decode(t, &unknown)
	if unknown.Total != 2 || len(unknown.Items) != 1 {
		t.Errorf("owner, project unknown: %+v", unknown)
	}

	limited := e.signIn(t, "sec-a@example.com", account.RoleSecurity, a)
	var mine console.ThrottledTraffic
	limited.do(t, http.MethodGet, "/api/v1/audit/throttled", nil).want(t, http.StatusOK).decode(t, &mine)
	if mine.Total != 2 || len(mine.Items) != 1 || mine.Items[0].ProjectID != a {
		t.Errorf("an account limited to A sees %+v", mine)
	}
	limited.do(t, http.MethodGet, "/api/v1/audit/throttled?project=unknown", nil).want(t, http.StatusNotFound)
	limited.do(t, http.MethodGet, "/api/v1/audit/throttled?project="+b, nil).want(t, http.StatusNotFound)
	owner.do(t, http.MethodGet, "/api/v1/audit/throttled?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", nil).want(t, http.StatusUnprocessableEntity)
	e.browser(t).do(t, http.MethodGet, "/api/v1/audit/throttled", nil).want(t, http.StatusUnauthorized)
}

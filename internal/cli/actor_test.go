package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestTheCLICannotChooseItsActor: whatever --actor says, the audit records
// the NATS user the CLI signed in as; the flag's words are kept as the
// reason, with a warning, and --reason is shown on every kind of change.
func TestTheCLICannotChooseItsActor(t *testing.T) {
	t.Parallel()
	st, dsn := auditStack(t)
	nats := stacktest.NATSArgs(t, st, events.SourceAdmin)
	id, _ := createProject(t, st, "--reason", "onboarding ACME")

	for _, tc := range []struct {
		args       []string
		warns      bool
		wantReason string
	}{
		{[]string{"project", "update", id, "--origin", "https://a.example.com", "--actor", "console:ada@example.com"}, true, "console:ada@example.com"},
		{[]string{"project", "update", id, "--origin", "https://b.example.com", "--actor", "ada", "--reason", "ticket 7"}, true, "ticket 7"},
		{[]string{"project", "rotate", id, "--reason", "key on a laptop"}, false, "key on a laptop"},
		{[]string{"project", "revoke-user", id, "--user", "u1", "--reason", "left the company"}, false, "left the company"},
		{[]string{"project", "unrevoke-user", id, "--user", "u1", "--reason", "came back"}, false, "came back"},
	} {
		r := run(t, append(tc.args, nats...)...)
		if r.code != 0 {
			t.Fatalf("%q\n%s", tc.args, r)
		}
		if warned := strings.Contains(r.stderr, "--actor is no longer trusted"); warned != tc.warns {
			t.Errorf("%q: warned %v, want %v\n%s", tc.args, warned, tc.warns, r)
		}
	}

	want := []struct{ kind, reason string }{
		{"project.created", "onboarding ACME"},
		{"project.updated", "console:ada@example.com"},
		{"project.updated", "ticket 7"},
		{"key.rotated", "key on a laptop"},
		{"user.revoked", "left the company"},
		{"user.unrevoked", "came back"},
	}
	var got []map[string]any
	stacktest.Eventually(t, time.Minute, "the admin events in ClickHouse", func() error {
		r := run(t, "audit", "query", "--admin", "--project", id, "--format", "json", "--clickhouse", dsn)
		if r.code != 0 {
			return fmt.Errorf("audit query --admin: %s", r)
		}
		got = jsonLines(t, r.stdout)
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d admin events stored", len(got), len(want))
		}
		return nil
	})
	// Newest first.
	for i, w := range want {
		ev := got[len(got)-1-i]
		if ev["kind"] != w.kind || ev["reason"] != w.reason || ev["actor"] != events.ActorNATS+events.SourceAdmin {
			b, _ := json.Marshal(ev)
			t.Errorf("event %d: %s, want kind %s, reason %q, actor %s", i, b, w.kind, w.reason, events.ActorNATS+events.SourceAdmin)
		}
	}
}

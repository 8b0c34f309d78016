package events_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
)

func TestThrottledVerify(t *testing.T) {
	t.Parallel()
	good := events.Throttled{SchemaVersion: 1, ID: "thr_x_0", Ingress: "ingress.i-1", Minute: time.Unix(1_800_000_000, 0),
		ProjectID: events.ThrottledUnknownProject, ClientIP: "198.51.100.7", Reason: events.ThrottleUnseenProject, Count: 2}
	subject := events.ThrottledSubject("ingress.i-1")
	tests := []struct {
		name    string
		edit    func(*events.Throttled)
		subject string
		ok      bool
	}{
		{"as published", func(*events.Throttled) {}, subject, true},
		{"an IPv6 /64", func(e *events.Throttled) { e.ClientIP = "2001:db8:1:2::/64" }, subject, true},
		{"overflow", func(e *events.Throttled) { e.ProjectID, e.ClientIP, e.Overflow = "", "", true }, subject, true},
		{"another ingress's subject", func(*events.Throttled) {}, events.ThrottledSubject("edge.gw-1"), false},
		{"no count", func(e *events.Throttled) { e.Count = 0 }, subject, false},
		{"a decision's reason", func(e *events.Throttled) { e.Reason = "token_expired" }, subject, false},
		{"a project that is no id", func(e *events.Throttled) { e.ProjectID = "sk live with spaces" }, subject, false},
		{"no project", func(e *events.Throttled) { e.ProjectID = "" }, subject, false},
		{"an address that is none", func(e *events.Throttled) { e.ClientIP = "Mozilla/5.0" }, subject, false},
		{"overflow naming a project", func(e *events.Throttled) { e.Overflow = true }, subject, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := good
			tt.edit(&e)
			err := e.Verify(tt.subject)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, events.ErrForgedThrottled) {
				t.Errorf("Verify = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

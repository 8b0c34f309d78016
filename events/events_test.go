package events_test

import (
	"errors"
	"testing"

	"github.com/hissuno/widgetauth/events"
)

func TestAdminEventVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    events.AdminEventKind
		subject string
		actor   string
		ok      bool
	}{
		{"a rotation by the CLI", events.AdminKeyRotated, "hissuno.admin.event.key.rotated", "nats:admin", true},
		{"a rotation by a console account", events.AdminKeyRotated, "hissuno.admin.event.key.rotated", "console:ada@example.com", true},
		{"a sign-in", events.AdminSignedIn, "hissuno.admin.event.account.signed_in", "console:ada@example.com", true},
		{"a failed sign-in", events.AdminSignInFailed, "hissuno.admin.event.account.sign_in_failed", events.ActorAnonymous, true},
		{"a token made by a token", events.AdminTokenCreated, "hissuno.admin.event.token.created", "token:tok_abc", true},
		{"a kind on another kind's subject", events.AdminKeyRotated, "hissuno.admin.event.account.signed_in", "console:ada@example.com", false},
		{"a project event on an account subject", events.AdminProjectCreated, "hissuno.admin.event.account.created", "nats:admin", false},
		{"an unknown kind", "account.owned", "hissuno.admin.event.account.owned", "console:ada@example.com", false},
		{"an account event claiming a NATS user", events.AdminAccountCreated, "hissuno.admin.event.account.created", "nats:admin", false},
		{"an account event with no actor", events.AdminSignedOut, "hissuno.admin.event.account.signed_out", "", false},
		{"an account event with an empty console actor", events.AdminSignedOut, "hissuno.admin.event.account.signed_out", "console:", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := events.AdminEvent{Kind: tt.kind, Actor: tt.actor}
			err := e.Verify(tt.subject)
			if tt.ok && err != nil {
				t.Errorf("Verify(%q) = %v, want nil", tt.subject, err)
			}
			if !tt.ok && !errors.Is(err, events.ErrForgedAdminEvent) {
				t.Errorf("Verify(%q) = %v, want ErrForgedAdminEvent", tt.subject, err)
			}
		})
	}
}

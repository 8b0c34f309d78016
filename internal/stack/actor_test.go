package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestActorIsWhoNATSAuthenticated: an admin event names who made the change
// as NATS authenticated them. The CLI's user is recorded as itself whatever
// actor its command claims; only the console's user can name a console
// account or API token, and it cannot name anything else; every other user
// cannot put a command on the stream at all, under any source's name.
func TestActorIsWhoNATSAuthenticated(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	id, _ := identityProject(t, st, false)
	watcher := identityJS(t, stacktest.ConnectAs(t, st, stacktest.Superuser))

	t.Run("the admin user is recorded as itself", func(t *testing.T) {
		client, err := admin.New(stacktest.ConnectAs(t, st, events.SourceAdmin), events.SourceAdmin)
		if err != nil {
			t.Fatal(err)
		}
		for _, claimed := range []string{"", "ada@example.com", events.ActorConsole + "ada@example.com", events.ActorToken + "tok_0123", events.ActorNATS + events.SourceConsole, "console:\nforged"} {
			cmd := admin.NewCommand(events.CommandUpdateProject, id, claimed)
			cmd.Origins, cmd.Reason = []string{"https://a.example.com"}, "ticket 42"
			submitAs(t, client, cmd)
			ev := adminEventOf(t, watcher, cmd.CommandID)
			if want := events.ActorNATS + events.SourceAdmin; ev.Actor != want || ev.Reason != "ticket 42" {
				t.Errorf("claimed actor %q: recorded actor %q reason %q, want %q and the reason", claimed, ev.Actor, ev.Reason, want)
			}
		}
	})

	console, err := admin.New(stacktest.ConnectAs(t, st, events.SourceConsole), events.SourceConsole)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the console names its account or token", func(t *testing.T) {
		for _, actor := range []string{events.ActorConsole + "ada@example.com", events.ActorToken + "tok_0123"} {
			cmd := admin.NewCommand(events.CommandUpdateProject, id, actor)
			cmd.Origins, cmd.ClientIP, cmd.UserAgent = []string{"https://b.example.com"}, "192.0.2.7", "Firefox"
			submitAs(t, console, cmd)
			if ev := adminEventOf(t, watcher, cmd.CommandID); ev.Actor != actor || ev.ClientIP != "192.0.2.7" || ev.UserAgent != "Firefox" {
				t.Errorf("recorded actor %q from %q %q, want %q from the browser's address and agent", ev.Actor, ev.ClientIP, ev.UserAgent, actor)
			}
		}
	})

	t.Run("the console cannot name anyone else", func(t *testing.T) {
		for _, claimed := range []string{"", events.ActorNATS + events.SourceAdmin, "ada@example.com", events.ActorConsole, events.ActorToken} {
			t.Run(fmt.Sprintf("%q", claimed), func(t *testing.T) {
				t.Parallel()
				cmd := admin.NewCommand(events.CommandUpdateProject, id, claimed)
				cmd.Origins = []string{"https://c.example.com"}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := console.Submit(ctx, cmd, 3*time.Second)
				cancel()
				if !errors.Is(err, admin.ErrNoAnswer) {
					t.Errorf("claimed actor %q: %v, want no answer (dead-lettered)", claimed, err)
				}
				stacktest.Eventually(t, 10*time.Second, "the command dead-lettered", func() error {
					return wantIdentityCount(t, watcher, events.StreamDeadLetter, cmd.CommandID, 1)
				})
				if n := len(adminEvents(t, watcher, cmd.CommandID)); n != 0 {
					t.Errorf("claimed actor %q: %d admin events recorded", claimed, n)
				}
			})
		}
	})

	// Which users may put a command on the stream under which source.
	may := map[string]string{events.SourceAdmin: events.SourceAdmin, events.SourceConsole: events.SourceConsole}
	t.Run("no other command reaches the stream", func(t *testing.T) {
		for _, user := range deploy.NATSUsers {
			for _, source := range []string{user, events.SourceAdmin, events.SourceConsole} {
				if may[user] == source {
					continue
				}
				t.Run(fmt.Sprintf("%s cannot submit a command as %s", user, source), func(t *testing.T) {
					t.Parallel()
					client, err := admin.New(stacktest.ConnectAs(t, st, user), source)
					if err != nil {
						t.Fatal(err)
					}
					cmd := admin.NewCommand(events.CommandUpdateProject, id, events.ActorConsole+"ada@example.com")
					cmd.Origins = []string{"https://forged.example.com"}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, err = client.Submit(ctx, cmd, 2*time.Second)
					if err == nil || !strings.Contains(err.Error(), "may not send admin commands") {
						t.Fatalf("submit: %v, want a permissions violation", err)
					}
					if n := identityCount(t, watcher, events.StreamAdmin, cmd.CommandID); n != 0 {
						t.Fatalf("the stream holds %d messages of the command", n)
					}
				})
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := watcher.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := project.NewStore(kv).Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Origins, []string{"https://b.example.com"}) {
		t.Errorf("origins %v, want the console's last change alone: a refused command changed the project", rec.Origins)
	}
}

// submitAs submits cmd with client and fails the test unless it is applied.
func submitAs(t *testing.T, client *admin.Client, cmd events.Command) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.Submit(ctx, cmd, 20*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Kind, err)
	}
	if res.Error != "" {
		t.Fatalf("%s refused: %s", cmd.Kind, res.Error)
	}
}

// adminEvents are the admin events the stream holds for a command.
func adminEvents(t *testing.T, js jetstream.JetStream, commandID string) []events.AdminEvent {
	t.Helper()
	var out []events.AdminEvent
	for _, m := range stacktest.ReadStream(t, js, events.StreamAdmin) {
		if !strings.HasPrefix(m.Subject(), events.SubjectAdminEventPrefix) {
			continue
		}
		var ev events.AdminEvent
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatalf("admin event on %s: %v", m.Subject(), err)
		}
		if ev.CommandID == commandID {
			out = append(out, ev)
		}
	}
	return out
}

// adminEventOf is the one admin event of an applied command (the rotator
// stores it before it answers).
func adminEventOf(t *testing.T, js jetstream.JetStream, commandID string) events.AdminEvent {
	t.Helper()
	evs := adminEvents(t, js, commandID)
	if len(evs) != 1 {
		t.Fatalf("%d admin events of command %s, want 1", len(evs), commandID)
	}
	return evs[0]
}

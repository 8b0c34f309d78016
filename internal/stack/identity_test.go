package stack_test

// The embedded NATS server of `hissuno dev` (stack.Start) runs
// deploy/nats/nats.conf: nobody connects without a user, every role is its
// own user, and what one user may publish proves who sent it. These tests
// attack a running stack as a local process would.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestDevNATSRefusesAnonymous: nothing connects to the stack's NATS without
// the credentials of one of its users.
func TestDevNATSRefusesAnonymous(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	ingressCreds, _ := st.Credentials("ingress")
	for _, tc := range []struct {
		name           string
		user, password string
	}{
		{"anonymous", "", ""},
		{"a wrong password", "verifier", "pw0123"},
		{"another user's password", "rotator", ingressCreds.Password},
		{"an unknown user", "mallory", ingressCreds.Password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nc, err := bus.Connect(bus.ConnConfig{URL: st.NATSURL, User: tc.user, Password: tc.password, ConnectTimeout: 2 * time.Second}, stacktest.Logger(t))
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("refused for another reason: %v", err)
			}
		})
	}
}

// TestDevCredentialsFiles: the stack keeps each user's credentials in its
// data directory, readable by its owner only, good for its server; never
// the superuser's.
func TestDevCredentialsFiles(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	st := stacktest.Start(t, stack.Config{DataDir: data})
	dir := stack.CredentialsDir(data)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("%s has mode %v, want 0700", dir, perm)
	}
	for _, user := range deploy.NATSUsers {
		c, err := stack.ReadCredentials(data, user)
		if err != nil {
			t.Errorf("user %s: %v", user, err)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, user+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("user %s: credentials file mode %v, want 0600", user, perm)
		}
		if want, _ := st.Credentials(user); c != want || c.URL != st.NATSURL {
			t.Errorf("user %s: file holds credentials for %s, not the running server's", user, c.URL)
		}
		nc, err := bus.Connect(c.ConnConfig("identity-test"), stacktest.Logger(t))
		if err != nil {
			t.Errorf("user %s: its credentials do not connect: %v", user, err)
			continue
		}
		nc.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, stacktest.Superuser+".json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the superuser's credentials are on disk (stat: %v)", err)
	}
	// A credentials file others can read is refused, not used.
	path := filepath.Join(dir, "admin.json")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := stack.ReadCredentials(data, "admin"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a credentials file readable by others: %v, want a refusal saying chmod 600", err)
	}
}

// TestForgedRepliesNeverReachABrowser: a local process that learns attempt
// ids as they are published (here the test's superuser watches them for it)
// and answers each at once with a forged accept, as every NATS user but the
// verifier, gets no forged reply into an HTTP answer: 1,000 forged replies,
// 0 accepted, every browser gets the verifier's own refusal.
func TestForgedRepliesNeverReachABrowser(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	id, _ := identityProject(t, st, true, "https://shop.example")

	var forgers []*nats.Conn
	for _, user := range deploy.NATSUsers {
		if user != "verifier" {
			nc := stacktest.ConnectAs(t, st, user)
			nc.SetErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}) // violations expected
			forgers = append(forgers, nc)
		}
	}
	forged, _ := json.Marshal(events.Decision{SchemaVersion: events.SchemaVersion, Decision: events.OutcomeAccept,
		Session: events.SessionAuthenticated, UserID: "ceo", UserVerified: true})
	const wantForged = 1000
	var sent atomic.Int64
	watch := stacktest.ConnectAs(t, st, stacktest.Superuser)
	sub, err := watch.Subscribe(events.SubjectAttempts+".>", func(m *nats.Msg) {
		var a events.Attempt
		if json.Unmarshal(m.Data, &a) != nil || a.ReplyTo == "" {
			return
		}
		for _, f := range forgers {
			for range 4 {
				if sent.Load() >= wantForged {
					return
				}
				if f.Publish(a.ReplyTo, forged) == nil {
					sent.Add(1)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Timeout: 20 * time.Second}
	requests := 0
	for sent.Load() < wantForged {
		requests++
		status, body := identityConnect(t, client, st, map[string]any{"projectId": id, "userId": "ceo"}, "https://evil.example")
		if status != http.StatusForbidden || body["decision"] != string(events.OutcomeOriginBlocked) {
			t.Fatalf("request %d: %d %v, want the verifier's 403 origin_blocked: a forged reply reached the browser", requests, status, body)
		}
		if requests > 2*wantForged {
			t.Fatalf("only %d forged replies sent in %d requests", sent.Load(), requests)
		}
	}
	t.Logf("%d forged replies over %d requests, none answered a browser", sent.Load(), requests)

	// The control: a user NATS lets publish anywhere (the superuser) wins
	// the race, so the test does detect a forgery that gets through.
	_ = sub.Unsubscribe()
	won := make(chan struct{}, 1)
	ctl, err := watch.Subscribe(events.SubjectAttempts+".>", func(m *nats.Msg) {
		var a events.Attempt
		if json.Unmarshal(m.Data, &a) == nil && a.ReplyTo != "" {
			_ = watch.Publish(a.ReplyTo, forged)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Unsubscribe() })
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50 && len(won) == 0; i++ {
		if status, body := identityConnect(t, client, st, map[string]any{"projectId": id}, "https://evil.example"); status == http.StatusOK && body["userId"] == "ceo" {
			won <- struct{}{}
		}
	}
	if len(won) == 0 {
		t.Error("control: 50 replies forged by the superuser never won the race; the test would not see a forgery")
	}
}

// TestAttemptProvenance: an attempt is decided only if it is what it
// claims: published under its own ingress's name with its id as Nats-Msg-Id,
// an id that carries its receivedAt, stored by JetStream near that time, a
// reply subject of its ingress and a client IP. Anything else is
// dead-lettered and decided never; the browser-shaped control attempt is
// decided once.
func TestAttemptProvenance(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	id, _ := identityProject(t, st, false)
	pub := stacktest.ConnectAs(t, st, "ingress")
	js := identityJS(t, stacktest.ConnectAs(t, st, stacktest.Superuser))
	const ingressName = "ingress.provenance-test"

	good := func() (events.Attempt, string) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		a := events.Attempt{SchemaVersion: events.SchemaVersion, AttemptID: events.NewAttemptID(now), ProjectID: id,
			ReceivedAt: now, Deadline: now.Add(3 * time.Second), Ingress: ingressName, ClientIP: "203.0.113.7"}
		a.ReplyTo = events.ReplySubject(a.Ingress, a.AttemptID)
		return a, events.AttemptSubject(a.Ingress)
	}
	for _, tc := range []struct {
		name    string
		change  func(a *events.Attempt, subject, msgID *string)
		decided bool
	}{
		{"as the ingress publishes it", func(*events.Attempt, *string, *string) {}, true},
		{"an ingress other than its subject's", func(a *events.Attempt, _, _ *string) { a.Ingress = "ingress.someone-else" }, false},
		{"a Nats-Msg-Id other than its id", func(_ *events.Attempt, _, msgID *string) { *msgID = "att_replayed" }, false},
		{"an id without its time", func(a *events.Attempt, _, msgID *string) {
			a.AttemptID = "att_forged" + a.AttemptID[15:]
			*msgID, a.ReplyTo = a.AttemptID, events.ReplySubject(a.Ingress, a.AttemptID)
		}, false},
		{"a receivedAt not its id's", func(a *events.Attempt, _, _ *string) { a.ReceivedAt = a.ReceivedAt.Add(-3 * time.Hour) }, false},
		{"an old id published again (receivedAt and id 3 h old)", func(a *events.Attempt, _, msgID *string) {
			old := a.ReceivedAt.Add(-3 * time.Hour)
			a.AttemptID, a.ReceivedAt = events.NewAttemptID(old), old
			*msgID, a.ReplyTo = a.AttemptID, events.ReplySubject(a.Ingress, a.AttemptID)
		}, false},
		{"an id from the future", func(a *events.Attempt, _, msgID *string) {
			later := a.ReceivedAt.Add(time.Hour)
			a.AttemptID, a.ReceivedAt = events.NewAttemptID(later), later
			*msgID, a.ReplyTo = a.AttemptID, events.ReplySubject(a.Ingress, a.AttemptID)
		}, false},
		{"a reply to another subject", func(a *events.Attempt, _, _ *string) { a.ReplyTo = events.AdminInboxPrefix + ".steal" }, false},
		{"a client IP that is not one", func(a *events.Attempt, _, _ *string) { a.ClientIP = "10.0.0.1, 1.2.3.4" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, subject := good()
			msgID := a.AttemptID
			tc.change(&a, &subject, &msgID)
			body, _ := json.Marshal(a)
			m := nats.NewMsg(subject)
			m.Data = body
			m.Header.Set(events.HeaderMsgID, msgID)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := bus.Publish(ctx, pub, m); err != nil {
				t.Fatalf("publish as the ingress: %v", err)
			}
			decisionID := events.DecisionIDFor(a.AttemptID)
			if tc.decided {
				stacktest.Eventually(t, 10*time.Second, "the decision stored", func() error {
					return wantIdentityCount(t, js, events.StreamDecisions, decisionID, 1)
				})
				return
			}
			stacktest.Eventually(t, 10*time.Second, "the attempt dead-lettered", func() error {
				return wantIdentityCount(t, js, events.StreamDeadLetter, a.AttemptID, 1)
			})
			if n := identityCount(t, js, events.StreamDecisions, decisionID); n != 0 {
				t.Errorf("%d decisions stored on a refused attempt", n)
			}
		})
	}
}

// TestAttemptReplayedAfterTheDuplicateWindow replays an attempt a browser
// really sent, byte for byte and with its own Nats-Msg-Id, once the
// streams' duplicate window has passed (so JetStream stores it again): the
// verifier refuses it, and the audit's stream holds one decision with its
// id, not two that contradict each other. Slow (the window is at least
// 90 s), so -short skips it.
func TestAttemptReplayedAfterTheDuplicateWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 90 s duplicate window")
	}
	t.Parallel()
	const window = 90 * time.Second
	st := stacktest.Start(t, stack.Config{Topology: bus.Topology{DuplicateWindow: window}})
	id, _ := identityProject(t, st, false, "https://shop.example")
	watch := stacktest.ConnectAs(t, st, stacktest.Superuser)
	js := identityJS(t, watch)
	attempts := make(chan *nats.Msg, 16)
	sub, err := watch.ChanSubscribe(events.SubjectAttempts+".>", attempts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 20 * time.Second}
	status, body := identityConnect(t, client, st, map[string]any{"projectId": id, "userId": "u-1"}, "https://shop.example")
	if status != http.StatusOK {
		t.Fatalf("the browser's request: %d %v", status, body)
	}
	var original *nats.Msg
	select {
	case original = <-attempts:
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt was not seen")
	}
	// Settings change meanwhile: a second decision would contradict the
	// first (origin_blocked against accept).
	identityUpdateOrigins(t, st, id, "https://other.example")
	time.Sleep(window + 2*time.Second) // the duplicate windows of both streams pass
	replay := nats.NewMsg(original.Subject)
	replay.Data, replay.Header = original.Data, original.Header
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := bus.Publish(ctx, stacktest.ConnectAs(t, st, "ingress"), replay)
	if err != nil || ack.Duplicate {
		t.Fatalf("replay: ack %+v, error %v; want it stored anew", ack, err)
	}
	var a events.Attempt
	if err := json.Unmarshal(original.Data, &a); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 10*time.Second, "the replay dead-lettered", func() error {
		return wantIdentityCount(t, js, events.StreamDeadLetter, a.AttemptID, 1)
	})
	if n := identityCount(t, js, events.StreamDecisions, events.DecisionIDFor(a.AttemptID)); n != 1 {
		t.Errorf("HISSUNO_DECISIONS holds %d decisions with id %s, want 1", n, events.DecisionIDFor(a.AttemptID))
	}
}

// TestNewKeysReachOnlyTheClientThatAsked: another holder of the admin
// credentials (or anyone) reading every admin answer while a rotation
// happens reads no key; the answer goes only to an inbox of the source
// that asked, and a command without a key to seal to is refused.
func TestNewKeysReachOnlyTheClientThatAsked(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	id, _ := identityProject(t, st, false)
	eavesdropper := stacktest.ConnectAs(t, st, events.SourceAdmin)
	heard := make(chan *nats.Msg, 16)
	sub, err := eavesdropper.ChanSubscribe(events.AdminInboxPrefix+".>", heard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := eavesdropper.Flush(); err != nil {
		t.Fatal(err)
	}
	res := identitySubmit(t, st, admin.NewCommand(events.CommandRotateKey, id, "identity-test"))
	if !strings.HasPrefix(res.SecretKey, "sk_live_") {
		t.Fatalf("the client that asked got no key: %+v", res.CommandResult)
	}
	overheard := false
	for !overheard {
		select {
		case m := <-heard:
			if strings.Contains(string(m.Data), res.SecretKey) || strings.Contains(string(m.Data), "sk_live_") {
				t.Fatalf("the answer on %s shows the key to whoever reads the inbox", m.Subject)
			}
			var cr events.CommandResult
			if json.Unmarshal(m.Data, &cr) != nil || cr.CommandID != res.CommandID {
				continue // JetStream's acknowledgement of the command
			}
			overheard = true
			if cr.SealedSecretKey == "" {
				t.Fatalf("the answer overheard carries no sealed key: %s", m.Data)
			}
			other, err := admin.NewAnswerKey()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Open(cr); err == nil {
				t.Fatal("another answer key opens the sealed key")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the eavesdropper did not hear the answer: the test checks nothing")
		}
	}

	t.Run("a command asking for its answer outside its source's inbox is not applied", func(t *testing.T) {
		nc := stacktest.ConnectAs(t, st, stacktest.Superuser)
		inbox := "_HISSUNO_AUDIT_INBOX.stolen"
		answers, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		key, err := admin.NewAnswerKey()
		if err != nil {
			t.Fatal(err)
		}
		cmd := admin.NewCommand(events.CommandRotateKey, id, "identity-test")
		cmd.ReplyKey = key.Public()
		b, _ := json.Marshal(cmd)
		m := nats.NewMsg(cmd.Kind.SubjectFrom(events.SourceAdmin))
		m.Data = b
		m.Header.Set(events.HeaderMsgID, cmd.CommandID)
		m.Header.Set(events.HeaderReplyTo, inbox)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := bus.Publish(ctx, nc, m); err != nil {
			t.Fatal(err)
		}
		js := identityJS(t, nc)
		stacktest.Eventually(t, 10*time.Second, "the command dead-lettered", func() error {
			return wantIdentityCount(t, js, events.StreamDeadLetter, cmd.CommandID, 1)
		})
		if got, err := answers.NextMsg(100 * time.Millisecond); err == nil {
			t.Fatalf("an answer reached %s: %s", got.Subject, got.Data)
		}
		kv, err := js.KeyValue(ctx, events.BucketProjects)
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := project.NewStore(kv).Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.KeyVersion != res.Project.KeyVersion {
			t.Errorf("key version %d, want %d: the command was applied", rec.KeyVersion, res.Project.KeyVersion)
		}
	})

	t.Run("a rotation without a key to seal to is refused", func(t *testing.T) {
		nc := stacktest.ConnectAs(t, st, events.SourceAdmin)
		inbox := nc.NewRespInbox()
		answers, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		cmd := admin.NewCommand(events.CommandRotateKey, id, "identity-test")
		b, _ := json.Marshal(cmd)
		m := nats.NewMsg(cmd.Kind.SubjectFrom(events.SourceAdmin))
		m.Data = b
		m.Header.Set(events.HeaderMsgID, cmd.CommandID)
		m.Header.Set(events.HeaderReplyTo, inbox)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := bus.Publish(ctx, nc, m); err != nil {
			t.Fatal(err)
		}
		got, err := answers.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var cr events.CommandResult
		if err := json.Unmarshal(got.Data, &cr); err != nil || !strings.Contains(cr.Error, "replyKey") || cr.Project != nil {
			t.Fatalf("answer %s, want a refusal naming the replyKey", got.Data)
		}
	})
}

// identityProject creates a project through the rotator as the admin does
// and returns its id and key.
func identityProject(t *testing.T, st *stack.Stack, requireToken bool, origins ...string) (string, string) {
	t.Helper()
	cmd := admin.NewCommand(events.CommandCreateProject, "proj_"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), "identity-test")
	cmd.ProjectID = cmd.ProjectID[:min(len(cmd.ProjectID), 64)]
	cmd.Name, cmd.RequireToken, cmd.Origins = "identity", &requireToken, origins
	res := identitySubmit(t, st, cmd)
	return res.Project.ProjectID, res.SecretKey
}

func identityUpdateOrigins(t *testing.T, st *stack.Stack, id string, origins ...string) {
	t.Helper()
	cmd := admin.NewCommand(events.CommandUpdateProject, id, "identity-test")
	cmd.Origins = origins
	identitySubmit(t, st, cmd)
}

var identityAdmins sync.Map // *stack.Stack → *admin.Client

func identitySubmit(t *testing.T, st *stack.Stack, cmd events.Command) admin.Result {
	t.Helper()
	c, ok := identityAdmins.Load(st)
	if !ok {
		client, err := admin.New(stacktest.ConnectAs(t, st, events.SourceAdmin), events.SourceAdmin)
		if err != nil {
			t.Fatal(err)
		}
		c, _ = identityAdmins.LoadOrStore(st, client)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.(*admin.Client).Submit(ctx, cmd, 20*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Kind, err)
	}
	return res
}

func identityJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// identityCount counts the messages of a stream whose body mentions s.
func identityCount(t *testing.T, js jetstream.JetStream, stream, s string) int {
	t.Helper()
	n := 0
	for _, m := range stacktest.ReadStream(t, js, stream) {
		if strings.Contains(string(m.Data()), s) {
			n++
		}
	}
	return n
}

// wantIdentityCount is nil when stream holds want messages containing s,
// else an error saying how many it holds.
func wantIdentityCount(t *testing.T, js jetstream.JetStream, stream, s string, want int) error {
	t.Helper()
	if n := identityCount(t, js, stream, s); n != want {
		return fmt.Errorf("%s holds %d messages with %s, want %d", stream, n, s, want)
	}
	return nil
}

func identityConnect(t *testing.T, client *http.Client, st *stack.Stack, body map[string]any, origin string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, "http://"+st.HTTPAddr+ingress.ConnectPath, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// testCtx is a context that ends with the test or after 30 s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// bareJS runs an embedded JetStream server without any stream and returns a
// JetStream client of it.
func bareJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
	if err != nil {
		t.Fatalf("run embedded: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	js, err := jetstream.New(stacktest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	ctx := testCtx(t)

	if err := bus.Check(ctx, js); err == nil {
		t.Fatal("Check passes before Ensure")
	}
	topo := bus.Topology{}
	if err := bus.Ensure(ctx, js, topo); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if err := bus.Ensure(ctx, js, topo); err != nil {
		t.Fatalf("Ensure a second time: %v", err)
	}
	if err := bus.Check(ctx, js); err != nil {
		t.Fatalf("Check after Ensure: %v", err)
	}

	topo.SetDefaults()
	streams := topo.Streams()
	names := map[string]bool{}
	for _, want := range streams {
		names[want.Name] = true
		t.Run(want.Name, func(t *testing.T) {
			s, err := js.Stream(ctx, want.Name)
			if err != nil {
				t.Fatalf("stream %s not created: %v", want.Name, err)
			}
			got := s.CachedInfo().Config
			if got.Retention != want.Retention || got.Discard != want.Discard || got.Storage != want.Storage {
				t.Errorf("retention %v discard %v storage %v, want %v %v %v", got.Retention, got.Discard, got.Storage, want.Retention, want.Discard, want.Storage)
			}
			if strings.Join(got.Subjects, ",") != strings.Join(want.Subjects, ",") {
				t.Errorf("subjects %q, want %q", got.Subjects, want.Subjects)
			}
			if got.MaxAge != want.MaxAge || got.MaxBytes != want.MaxBytes && want.MaxBytes != 0 || got.Duplicates != want.Duplicates || got.Replicas != want.Replicas {
				t.Errorf("max age %v max bytes %d duplicates %v replicas %d, want %v %d %v %d", got.MaxAge, got.MaxBytes, got.Duplicates, got.Replicas, want.MaxAge, want.MaxBytes, want.Duplicates, want.Replicas)
			}
		})
	}
	for _, n := range []string{events.StreamAttempts, events.StreamDecisions, events.StreamAdmin, events.StreamDeadLetter} {
		if !names[n] {
			t.Errorf("Topology.Streams() has no %s", n)
		}
	}

	attempts, err := js.Stream(ctx, events.StreamAttempts)
	if err != nil {
		t.Fatal(err)
	}
	if c := attempts.CachedInfo().Config; c.Retention != jetstream.WorkQueuePolicy {
		t.Errorf("%s retention %v, want work queue", events.StreamAttempts, c.Retention)
	}
	decisions, err := js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	if c := decisions.CachedInfo().Config; c.Retention != jetstream.InterestPolicy || c.Discard != jetstream.DiscardNew {
		t.Errorf("%s retention %v discard %v, want interest (a stored decision leaves) and discard new (never drop a decision)", events.StreamDecisions, c.Retention, c.Discard)
	}
	// The auditor's consumer exists, configured as the auditor configures
	// it with its defaults: decisions made before any auditor ran wait.
	cons, err := js.Consumer(ctx, events.StreamDecisions, events.ConsumerAuditDecisions)
	if err != nil {
		t.Fatalf("the auditor's consumer after Ensure: %v", err)
	}
	if got, want := cons.CachedInfo().Config, bus.AuditDecisionsConsumer(bus.AuditSettings{}); !sameConsumer(got, want) {
		t.Errorf("the auditor's consumer is %+v, want %+v", got, want)
	}

	kv, err := js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != int64(topo.Bucket().History) {
		t.Errorf("bucket history %d, want %d", st.History(), topo.Bucket().History)
	}

	// Every subject lands in its stream.
	for _, subj := range []string{events.AttemptSubject("ingress.i1"), events.SubjectDecisions, events.CommandRotateKey.SubjectFrom(events.SourceAdmin), events.SubjectAdminEventPrefix + "key.rotated", events.SubjectDeadLetterPrefix + "X"} {
		if _, err := js.Publish(ctx, subj, []byte("{}")); err != nil {
			t.Errorf("publish to %s: %v", subj, err)
		}
	}
	// Ensure again with data in the streams keeps it.
	if err := bus.Ensure(ctx, js, bus.Topology{}); err != nil {
		t.Fatalf("Ensure with data: %v", err)
	}
	info, err := decisions.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("%s holds %d messages after a second Ensure, want 1", events.StreamDecisions, info.State.Msgs)
	}
}

func TestEnsureCustomTopology(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	ctx := testCtx(t)
	topo := bus.Topology{AttemptsMaxAge: time.Hour, DecisionsMaxAge: 48 * time.Hour, DecisionsMaxBytes: 64 << 20, DuplicateWindow: 2 * time.Minute}
	if err := bus.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.MaxAge != 48*time.Hour || c.MaxBytes != 64<<20 || c.Duplicates != 2*time.Minute {
		t.Errorf("decisions: max age %v max bytes %d duplicates %v", c.MaxAge, c.MaxBytes, c.Duplicates)
	}
	// A changed topology updates the streams in place.
	topo.DecisionsMaxAge = 72 * time.Hour
	if err := bus.Ensure(ctx, js, topo); err != nil {
		t.Fatalf("Ensure with a changed topology: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 72*time.Hour {
		t.Errorf("decisions max age %v after the update, want 72h", info.Config.MaxAge)
	}
}

func TestEnsureRefusesInvalidTopology(t *testing.T) {
	t.Parallel()
	js := bareJS(t)
	ctx := testCtx(t)
	if err := bus.Ensure(ctx, js, bus.Topology{Replicas: 9}); err == nil {
		t.Fatal("Ensure accepted 9 replicas")
	}
	if _, err := js.Stream(ctx, events.StreamAttempts); err == nil {
		t.Error("a refused Ensure created streams")
	}
}

func TestTopologyValidate(t *testing.T) {
	t.Parallel()
	valid := func() bus.Topology {
		var tp bus.Topology
		tp.SetDefaults()
		return tp
	}
	tests := []struct {
		name    string
		change  func(*bus.Topology)
		wantErr bool
	}{
		{"defaults", func(*bus.Topology) {}, false},
		{"three replicas", func(tp *bus.Topology) { tp.Replicas = 3 }, false},
		{"five replicas", func(tp *bus.Topology) { tp.Replicas = 5 }, false},
		{"zero replicas", func(tp *bus.Topology) { tp.Replicas = 0 }, true},
		{"negative replicas", func(tp *bus.Topology) { tp.Replicas = -1 }, true},
		{"six replicas", func(tp *bus.Topology) { tp.Replicas = 6 }, true},
		{"duplicate window over the attempts max age", func(tp *bus.Topology) { tp.AttemptsMaxAge = time.Minute; tp.DuplicateWindow = time.Hour }, true},
		{"duplicate window over the decisions max age", func(tp *bus.Topology) { tp.DecisionsMaxAge = time.Minute; tp.DuplicateWindow = time.Hour }, true},
		{"duplicate window equal to the max age", func(tp *bus.Topology) { tp.AttemptsMaxAge = time.Hour; tp.DuplicateWindow = time.Hour }, false},
		{"duplicate window under 90 s", func(tp *bus.Topology) { tp.DuplicateWindow = 89 * time.Second }, true},
		{"duplicate window of 90 s", func(tp *bus.Topology) { tp.DuplicateWindow = 90 * time.Second }, false},
		{"decisions under 1 MiB", func(tp *bus.Topology) { tp.DecisionsMaxBytes = 1<<20 - 1 }, true},
		{"decisions at 1 MiB", func(tp *bus.Topology) { tp.DecisionsMaxBytes = 1 << 20 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp := valid()
			tt.change(&tp)
			if err := tp.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate(%+v) = %v, want error %v", tp, err, tt.wantErr)
			}
		})
	}
	var zero bus.Topology
	if zero.Validate() == nil {
		t.Error("the zero Topology validates without SetDefaults")
	}
}

func TestTopologySetDefaultsKeepsValues(t *testing.T) {
	t.Parallel()
	tp := bus.Topology{Replicas: 3, AttemptsMaxAge: time.Hour, DuplicateWindow: time.Minute}
	tp.SetDefaults()
	if tp.Replicas != 3 || tp.AttemptsMaxAge != time.Hour || tp.DuplicateWindow != time.Minute {
		t.Errorf("SetDefaults overwrote set fields: %+v", tp)
	}
	if tp.DecisionsMaxAge == 0 || tp.DecisionsMaxBytes == 0 || tp.AttemptsMaxBytes == 0 {
		t.Errorf("SetDefaults left fields unset: %+v", tp)
	}
}

func TestConnConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     bus.ConnConfig
		wantErr string // a part of the message; empty: valid
	}{
		{"url only", bus.ConnConfig{URL: bus.DefaultURL}, ""},
		{"user and password", bus.ConnConfig{URL: bus.DefaultURL, User: "u", Password: "p"}, ""},
		{"user without password", bus.ConnConfig{URL: bus.DefaultURL, User: "u"}, ""},
		{"token", bus.ConnConfig{URL: bus.DefaultURL, Token: "t"}, ""},
		{"creds", bus.ConnConfig{URL: bus.DefaultURL, CredsFile: "/x.creds"}, ""},
		{"tls client cert", bus.ConnConfig{URL: bus.DefaultURL, CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}, ""},
		{"no url", bus.ConnConfig{}, "--nats"},
		{"cert without key", bus.ConnConfig{URL: bus.DefaultURL, CertFile: "c.pem"}, "--nats-tls-key"},
		{"key without cert", bus.ConnConfig{URL: bus.DefaultURL, KeyFile: "k.pem"}, "--nats-tls-cert"},
		{"user and token", bus.ConnConfig{URL: bus.DefaultURL, User: "u", Token: "t"}, "one NATS credential"},
		{"token and creds", bus.ConnConfig{URL: bus.DefaultURL, Token: "t", CredsFile: "/x.creds"}, "one NATS credential"},
		{"user and creds", bus.ConnConfig{URL: bus.DefaultURL, User: "u", Password: "p", CredsFile: "/x.creds"}, "one NATS credential"},
		{"password without user", bus.ConnConfig{URL: bus.DefaultURL, Password: "p"}, "--nats-user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error saying %q", tt.cfg, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
			for _, secret := range []string{tt.cfg.Password, tt.cfg.Token} {
				if secret != "" && strings.Contains(err.Error(), "\""+secret+"\"") {
					t.Errorf("error %q shows a credential", err)
				}
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		secrets        []string
	}{
		{name: "no credentials", in: "nats://127.0.0.1:4222", want: "nats://127.0.0.1:4222"},
		{name: "user and password", in: "nats://alice:s3cr3t@nats.example.com:4222", want: "nats://alice:redacted@nats.example.com:4222", secrets: []string{"s3cr3t"}},
		{name: "token", in: "nats://T0KEN@nats.example.com:4222", want: "nats://redacted@nats.example.com:4222", secrets: []string{"T0KEN"}},
		{name: "tls", in: "tls://bob:pw1@a:4222", want: "tls://bob:redacted@a:4222", secrets: []string{"pw1"}},
		{name: "list", in: "nats://a:pw1@h1:4222,nats://h2:4222,nats://tok2@h3:4222", want: "nats://a:redacted@h1:4222,nats://h2:4222,nats://redacted@h3:4222", secrets: []string{"pw1", "tok2"}},
		{name: "password with special characters", in: "nats://a:p%40ss%2Fw@h:4222", want: "nats://a:redacted@h:4222", secrets: []string{"p%40ss", "p@ss"}},
		{name: "empty", in: "", want: ""},
		{name: "list with spaces", in: "nats://a:pw1@h1:4222, nats://b:pw2@h2:4222", secrets: []string{"pw1", "pw2"}},
		// nats.go accepts a URL without a scheme (it adds nats://), so
		// credentials there are used and must be hidden as well.
		{name: "password without a scheme", in: "alice:s3cr3t@nats.example.com:4222", secrets: []string{"s3cr3t"}},
		{name: "token without a scheme", in: "T0KEN@nats.example.com:4222", secrets: []string{"T0KEN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := bus.RedactURL(tt.in)
			// Cases without a wanted form only check that no secret shows.
			if (tt.want != "" || tt.in == "") && got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("RedactURL(%q) = %q shows %q", tt.in, got, s)
				}
			}
		})
	}
}

func TestConnectFails(t *testing.T) {
	t.Parallel()
	addr := stacktest.FreeAddr(t)
	tests := []struct {
		name    string
		cfg     bus.ConnConfig
		secrets []string
	}{
		{"password in the url", bus.ConnConfig{URL: "nats://alice:s3cr3tpw@" + addr}, []string{"s3cr3tpw"}},
		{"token in the url", bus.ConnConfig{URL: "nats://T0KENVALUE@" + addr}, []string{"T0KENVALUE"}},
		{"password flag", bus.ConnConfig{URL: "nats://" + addr, User: "alice", Password: "fl4gpw"}, []string{"fl4gpw"}},
		{"token flag", bus.ConnConfig{URL: "nats://" + addr, Token: "fl4gtoken"}, []string{"fl4gtoken"}},
		{"password in a url without a scheme", bus.ConnConfig{URL: "alice:n0sch3mepw@" + addr}, []string{"n0sch3mepw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.ConnectTimeout = 2 * time.Second
			start := time.Now()
			nc, err := bus.Connect(tt.cfg, zerolog.Nop())
			if err == nil {
				nc.Close()
				t.Fatal("Connect to a closed port succeeded")
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("Connect took %v to fail", time.Since(start))
			}
			if !errors.Is(err, bus.ErrConnect) {
				t.Errorf("error %v does not wrap ErrConnect", err)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not name the address %s", err, addr)
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows the credential %q", err, s)
				}
			}
		})
	}
}

func TestConnectInvalidConfig(t *testing.T) {
	t.Parallel()
	_, err := bus.Connect(bus.ConnConfig{URL: bus.DefaultURL, Password: "p"}, zerolog.Nop())
	if err == nil || errors.Is(err, bus.ErrConnect) {
		t.Errorf("Connect with an invalid config: %v, want a validation error", err)
	}
}

func TestConnect(t *testing.T) {
	t.Parallel()
	ns, _ := stacktest.NATS(t)
	nc, err := bus.Connect(bus.ConnConfig{URL: ns.ClientURL(), Name: "bus-test"}, zerolog.Nop())
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Check(testCtx(t), js); err != nil {
		t.Errorf("Check after stacktest.NATS: %v", err)
	}
	// In process, without a socket.
	ip, err := bus.Connect(bus.ConnConfig{URL: ns.ClientURL(), InProcess: ns}, zerolog.Nop())
	if err != nil {
		t.Fatalf("Connect in process: %v", err)
	}
	t.Cleanup(ip.Close)
	if err := ip.Flush(); err != nil {
		t.Errorf("in-process connection: %v", err)
	}
}

func TestRunEmbeddedBadListen(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"nohostport", "127.0.0.1:notaport"} {
		if ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: listen, StoreDir: t.TempDir()}, zerolog.Nop()); err == nil {
			ns.Shutdown()
			t.Errorf("RunEmbedded(%q) succeeded", listen)
		}
	}
}

func TestInstanceName(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := range 50 {
		role := []string{"verifier", "ingress", "rotator"}[i%3]
		name := bus.InstanceName(role)
		if !strings.HasPrefix(name, role+"-") {
			t.Errorf("InstanceName(%q) = %q, want it to start with the role", role, name)
		}
		if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
			t.Errorf("InstanceName(%q) = %q is not a single NATS subject token", role, name)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				t.Errorf("InstanceName(%q) = %q holds %q", role, name, r)
				break
			}
		}
		if seen[name] {
			t.Errorf("InstanceName returned %q twice", name)
		}
		seen[name] = true
	}
	// Usable as a subject token in practice.
	subj := fmt.Sprintf("%s%s.attempt1", events.SubjectReplyPrefix, bus.InstanceName("ingress"))
	if n := strings.Count(subj, "."); n != 3 {
		t.Errorf("reply subject %q has %d dots, want 3", subj, n)
	}
}

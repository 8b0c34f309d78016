package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// topologyViolation matches the permissions violations of a role that
// tries to create or update the streams without the right to: expected
// only of a role left at the default --ensure-streams, which tries and
// then only checks they exist.
var topologyViolation = regexp.MustCompile(`Permissions Violation for Publish to \\?"\$JS\.API\.(STREAM\.(CREATE|UPDATE)\.[^"\\]+|INFO)\\?"`)

// ensureRefused is what a role left at the default --ensure-streams logs
// when its NATS user may not create or update the streams.
const ensureRefused = "could not create or update the streams; using the existing ones"

// TestSetupCommand runs `hissuno setup` as the setup user, as
// docker-compose.yml does before every role: it creates the streams and
// the bucket, and run again with other sizes it updates them.
func TestSetupCommand(t *testing.T) {
	s := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out, errOut, code := runCLI(ctx, s.setupArgs("setup")...)
	if code != 0 {
		t.Fatalf("hissuno setup: exit %d\n%s%s", code, out, errOut)
	}
	for _, name := range []string{events.StreamAttempts, events.StreamDecisions, events.StreamAdmin, events.StreamDeadLetter, events.BucketProjects} {
		if !regexp.MustCompile(`(?m)^(stream|bucket) +` + regexp.QuoteMeta(name) + ` +ready`).MatchString(out) {
			t.Errorf("hissuno setup does not report %s ready:\n%s", name, out)
		}
	}

	if !regexp.MustCompile(`(?m)^consumer +` + regexp.QuoteMeta(events.ConsumerAuditDecisions) + ` +ready`).MatchString(out) {
		t.Errorf("hissuno setup does not report the auditor's consumer ready:\n%s", out)
	}

	out, errOut, code = runCLI(ctx, append(s.setupArgs("setup"), "--decisions-max-age", "48h", "--decisions-max-bytes", fmt.Sprint(64<<20))...)
	if code != 0 {
		t.Fatalf("hissuno setup again, other sizes: exit %d\n%s%s", code, out, errOut)
	}
	js, err := jetstream.New(s.connect(t, "setup"))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := stream.CachedInfo().Config; cfg.MaxAge != 48*time.Hour || cfg.MaxBytes != 64<<20 {
		t.Errorf("decisions stream max age %v, max bytes %d after setup again; want 48h and %d", cfg.MaxAge, cfg.MaxBytes, 64<<20)
	}
}

// TestSetupBringsTheDecisionsStreamForward: a deployment whose decisions
// stream an older `hissuno setup` made (limits retention, no consumer until
// an auditor ran) holds decisions no auditor has stored yet; `hissuno setup`
// as the setup user of nats.conf switches it to interest retention and
// makes the auditor's consumer first, so that every one of them waits for
// the auditor, which then takes them all.
func TestSetupBringsTheDecisionsStreamForward(t *testing.T) {
	s := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	setup, err := jetstream.New(s.connect(t, "setup"))
	if err != nil {
		t.Fatal(err)
	}
	topo := bus.Topology{}
	topo.SetDefaults()
	for _, cfg := range topo.Streams() {
		if cfg.Name == events.StreamDecisions {
			cfg.Retention = jetstream.LimitsPolicy // as it was made before
			if _, err := setup.CreateStream(ctx, cfg); err != nil {
				t.Fatalf("the old decisions stream: %v", err)
			}
		}
	}
	verifier, err := jetstream.New(s.connect(t, "verifier"))
	if err != nil {
		t.Fatal(err)
	}
	const waiting = 5
	for i := range waiting {
		if _, err := verifier.Publish(ctx, events.SubjectDecisions, []byte(fmt.Sprintf(`{"decisionId":"dec_old_%d"}`, i))); err != nil {
			t.Fatalf("a decision in the old stream: %v", err)
		}
	}

	out, errOut, code := runCLI(ctx, s.setupArgs("setup")...)
	if code != 0 {
		t.Fatalf("hissuno setup on the old stream: exit %d\n%s%s", code, out, errOut)
	}
	stream, err := setup.Stream(ctx, events.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	if info := stream.CachedInfo(); info.Config.Retention != jetstream.InterestPolicy || info.State.Msgs != waiting {
		t.Errorf("after hissuno setup: retention %v holding %d decisions, want interest holding %d", info.Config.Retention, info.State.Msgs, waiting)
	}
	auditor, err := jetstream.New(s.connect(t, "auditor"))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := auditor.CreateOrUpdateConsumer(ctx, events.StreamDecisions, bus.AuditDecisionsConsumer(bus.AuditSettings{}))
	if err != nil {
		t.Fatalf("the auditor's consumer: %v", err)
	}
	res, err := cons.Fetch(waiting, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range res.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != waiting {
		t.Fatalf("the auditor got %d of the %d decisions made before the upgrade (%v)", got, waiting, res.Error())
	}
	stacktest.Eventually(t, 10*time.Second, "the decisions stream empty once the auditor acknowledged them", func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("the stream holds %d decisions", info.State.Msgs)
		}
		return nil
	})
}

// TestRolesStartFromTheirCommands starts each role the way
// docker-compose.yml does, `hissuno ROLE --ensure-streams=false` with its
// own NATS user once `hissuno setup` has run, and waits until its /readyz
// answers 200: it meets no permissions violation on the way, shutdown
// included. Left at the default --ensure-streams, a role still starts,
// its user being refused the streams: it warns and uses the existing ones.
func TestRolesStartFromTheirCommands(t *testing.T) {
	s := startNATS(t)
	s.ensureStreams(t)
	key, _ := masterKey(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	roles := []struct {
		name string
		args []string
	}{
		{"rotator", []string{"--master-key-file", keyFile}},
		{"verifier", []string{"--master-key-file", keyFile}},
		{"ingress", nil},
		// Ready once ClickHouse answers and the tables exist: the stream of
		// decisions is empty.
		{"auditor", nil},
		// Ready without ClickHouse (its audit endpoints answer 503 until
		// it is reachable).
		{"console", nil},
	}
	for _, role := range roles {
		for _, ensure := range []bool{false, true} {
			name := role.name + " --ensure-streams=false"
			if ensure {
				name = role.name + " at the default --ensure-streams"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				args := append([]string{role.name, "--nats", s.url, "--nats-user", role.name, "--nats-password", s.passwords[role.name], "--log-format", "json"}, role.args...)
				if !ensure {
					args = append(args, "--ensure-streams=false")
				}
				if role.name == "auditor" {
					args = append(args, "--clickhouse", stacktest.ClickHouse(t))
				}
				addr := stacktest.FreeAddr(t)
				if role.name == "ingress" || role.name == "console" {
					args = append(args, "--listen", addr)
				} else {
					args = append(args, "--metrics-listen", addr)
				}
				stderr := runUntilReady(t, addr, args)

				if warned := strings.Contains(stderr, ensureRefused); warned != ensure {
					t.Errorf("hissuno %s warned %q: %v, want %v:\n%s", role.name, ensureRefused, warned, ensure, stderr)
				}
				for _, line := range strings.Split(stderr, "\n") {
					if !strings.Contains(line, "Permissions Violation") {
						continue
					}
					if !ensure || !topologyViolation.MatchString(line) {
						t.Errorf("hissuno %s met a permissions violation: %s", role.name, line)
					}
				}
			})
		}
	}
}

// runUntilReady runs a role's command line until its /readyz at addr
// answers 200, then stops it and returns what it logged. The role must
// be ready within 30 s and exit with 0 when stopped.
func runUntilReady(t *testing.T, addr string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr stacktest.SyncBuffer
	exited := make(chan int, 1)
	go func() { exited <- runCommand(ctx, &stdout, &stderr, args) }()

	deadline := time.Now().Add(30 * time.Second)
	for !ready(addr) {
		select {
		case code := <-exited:
			t.Fatalf("hissuno %s exited with %d before it was ready:\n%s", args[0], code, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			<-exited
			t.Fatalf("hissuno %s not ready within 30 s:\n%s", args[0], stderr.String())
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("hissuno %s exited with %d after it was stopped:\n%s", args[0], code, stderr.String())
	}
	return stderr.String()
}

// ready reports whether the /readyz at addr answers 200.
func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

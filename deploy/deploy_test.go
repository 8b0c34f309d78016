package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/rotator"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/verifier"
)

// TestPipelineWithOneUserPerRole runs every role as its own NATS user of
// nats.conf and the admin commands as the admin user: a project is
// created, a widget is decided, the key is rotated and confirmed by both
// verifiers, the audit follows; no role meets a permissions violation on
// the way, shutdown included.
func TestPipelineWithOneUserPerRole(t *testing.T) {
	s := startNATS(t)
	s.ensureStreams(t)
	_, sealer := masterKey(t)
	log := stacktest.Logger(t)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(role string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				t.Errorf("%s stopped: %v", role, err)
			}
		}()
	}
	// conns are the roles' connections, checked for violations at the end.
	conns := map[string]*nats.Conn{}

	conns["rotator"] = s.connect(t, "rotator")
	rot, err := rotator.New(rotator.Config{NATS: conns["rotator"], Sealer: sealer, Instance: "rotator-1"}, log)
	if err != nil {
		t.Fatal(err)
	}
	run("rotator", rot.Run)

	var verifiers []*verifier.Verifier
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("verifier-%d", i)
		conns[name] = s.connect(t, "verifier")
		v, err := verifier.New(verifier.Config{NATS: conns[name], Sealer: sealer, Instance: name}, log)
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
		run(name, v.Run)
	}

	conns["ingress"] = s.connect(t, "ingress")
	in, err := ingress.New(ingress.Config{NATS: conns["ingress"], Listen: "127.0.0.1:0", Instance: "ingress-1"}, log)
	if err != nil {
		t.Fatal(err)
	}
	run("ingress", in.Run)

	// Without a ClickHouse for the tests the auditor is left out, but not
	// under CI: there stacktest.ClickHouse fails the test, naming how to
	// provide one.
	var dsn string
	if os.Getenv("HISSUNO_TEST_CLICKHOUSE") != "" || os.Getenv("CI") != "" {
		dsn = stacktest.ClickHouse(t)
		conns["auditor"] = s.connect(t, "auditor")
		a, err := auditor.New(auditor.Config{NATS: conns["auditor"], ClickHouseDSN: dsn, Instance: "auditor-1", BatchWait: 50 * time.Millisecond}, log)
		if err != nil {
			t.Fatal(err)
		}
		run("auditor", a.Run)
	}

	select {
	case <-in.Listening():
	case <-time.After(10 * time.Second):
		t.Fatal("the ingress did not listen within 10 s")
	}
	stacktest.Eventually(t, 15*time.Second, "both verifiers ready", func() error {
		var unready []string
		for i, v := range verifiers {
			if !v.Ready() {
				unready = append(unready, fmt.Sprintf("verifier-%d", i+1))
			}
		}
		if len(unready) > 0 {
			return fmt.Errorf("not ready: %s", strings.Join(unready, ", "))
		}
		return nil
	})
	base := "http://" + in.Addr()

	// The admin, as an operator would: the password from the environment.
	t.Setenv("HISSUNO_NATS_PASSWORD", s.passwords["admin"])
	admin := []string{"--nats", s.url, "--nats-user", "admin"}
	cmdCtx, cmdCancel := context.WithTimeout(context.Background(), time.Minute)
	defer cmdCancel()

	created := keyAnswer(t, cmdCtx, append([]string{"project", "create", "--name", "Shop", "--require-token", "--origin", "https://shop.example", "--json"}, admin...)...)
	id := created.ProjectID
	token := mint(t, cmdCtx, created.SecretKey, "alice")
	status, body := widgetConnect(t, base, id, token)
	if status != http.StatusOK || body["session"] != "authenticated" || body["userId"] != "alice" {
		t.Fatalf("connect with a token of the new project: %d %v, want 200 authenticated alice", status, body)
	}
	decisionIDs := []string{body["decisionId"].(string)}

	if out, errOut, code := runCLI(cmdCtx, append([]string{"project", "get", id, "--json"}, admin...)...); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("project get as admin: exit %d\n%s%s", code, out, errOut)
	}

	rotated := keyAnswer(t, cmdCtx, append([]string{"project", "rotate", id, "--json"}, admin...)...)
	if want := []string{"verifier-1", "verifier-2"}; !slices.Equal(rotated.Confirmed, want) || len(rotated.Unconfirmed) > 0 {
		t.Fatalf("rotation confirmed by %v, unconfirmed %v; want confirmed by %v", rotated.Confirmed, rotated.Unconfirmed, want)
	}
	if rotated.SecretKey == "" || rotated.SecretKey == created.SecretKey {
		t.Fatal("the rotation did not hand back a new secret key")
	}
	status, body = widgetConnect(t, base, id, token)
	if status != http.StatusUnauthorized || body["reason"] != string(events.ReasonTokenBadSignature) {
		t.Fatalf("old token after the rotation: %d %v, want 401 token_bad_signature", status, body)
	}
	decisionIDs = append(decisionIDs, body["decisionId"].(string))
	status, body = widgetConnect(t, base, id, mint(t, cmdCtx, rotated.SecretKey, "alice"))
	if status != http.StatusOK {
		t.Fatalf("new token after the rotation: %d %v, want 200", status, body)
	}
	decisionIDs = append(decisionIDs, body["decisionId"].(string))

	if out, errOut, code := runCLI(cmdCtx, append([]string{"project", "revoke-user", id, "--user", "mallory"}, admin...)...); code != 0 {
		t.Fatalf("project revoke-user as admin: exit %d\n%s%s", code, out, errOut)
	}

	t.Run("audit tail as the audit user", func(t *testing.T) {
		audit := []string{"--nats", s.url, "--nats-user", "audit", "--nats-password", s.passwords["audit"]}
		tailCtx, stopTail := context.WithCancel(cmdCtx)
		var out, errOut stacktest.SyncBuffer
		done := make(chan int, 1)
		go func() {
			done <- runCommand(tailCtx, &out, &errOut, append([]string{"audit", "tail", "--project", id, "--format", "json"}, audit...))
		}()
		// The tail follows new decisions only: connect until one shows, at
		// most once every connectEvery (one shows within milliseconds once
		// the tail follows), checking the output at every poll.
		const connectEvery = 100 * time.Millisecond
		var sent []string
		var lastSent time.Time
		stacktest.Eventually(t, 20*time.Second, "a decision in audit tail", func() error {
			if time.Since(lastSent) >= connectEvery {
				_, body := widgetConnect(t, base, id, token)
				sent = append(sent, body["decisionId"].(string))
				lastSent = time.Now()
			}
			shown := out.String()
			for _, d := range sent {
				if strings.Contains(shown, d) {
					return nil
				}
			}
			return fmt.Errorf("none of the %d decisions made shows in the tail's %d bytes of output", len(sent), len(shown))
		})
		stopTail()
		if code := <-done; code != 0 {
			t.Fatalf("audit tail: exit %d\n%s", code, errOut.String())
		}
	})

	if dsn != "" {
		t.Run("auditor stores decisions and admin events", func(t *testing.T) {
			c, err := audit.Open(cmdCtx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			since := time.Now().Add(-time.Hour)
			stacktest.Eventually(t, 30*time.Second, "the decisions and the rotation in ClickHouse", func() error {
				recs, err := audit.Decisions(cmdCtx, c, audit.Filter{ProjectID: id, Since: since, Limit: 1000})
				if err != nil {
					return fmt.Errorf("decisions: %w", err)
				}
				stored := map[string]bool{}
				for _, r := range recs {
					stored[r.DecisionID] = true
				}
				for _, d := range decisionIDs {
					if !stored[d] {
						return fmt.Errorf("decision %s not stored (%d of the project's decisions are)", d, len(recs))
					}
				}
				admin, err := audit.AdminEvents(cmdCtx, c, audit.Filter{ProjectID: id, Since: since, Limit: 100})
				if err != nil {
					return fmt.Errorf("admin events: %w", err)
				}
				if !slices.ContainsFunc(admin, func(r audit.AdminRecord) bool { return r.Kind == string(events.AdminKeyRotated) }) {
					return fmt.Errorf("no %s among the project's %d admin events", events.AdminKeyRotated, len(admin))
				}
				return nil
			})
		})
	}

	for role, nc := range conns {
		if err := violation(nc); err != nil {
			t.Errorf("%s met a permissions violation doing its job: %v", role, err)
		}
	}
	cancel()
	wg.Wait()
	for role, nc := range conns {
		if err := violation(nc); err != nil {
			t.Errorf("%s met a permissions violation stopping: %v", role, err)
		}
	}
}

// keyAnswerJSON is the --json answer of project create and rotate.
type keyAnswerJSON struct {
	ProjectID   string   `json:"projectId"`
	SecretKey   string   `json:"secretKey"`
	Confirmed   []string `json:"confirmed"`
	Unconfirmed []string `json:"unconfirmed"`
}

// keyAnswer runs an admin command that answers with a key.
func keyAnswer(t *testing.T, ctx context.Context, args ...string) keyAnswerJSON {
	t.Helper()
	out, errOut, code := runCLI(ctx, args...)
	if code != 0 {
		t.Fatalf("hissuno %s: exit %d\n%s", strings.Join(args[:2], " "), code, errOut)
	}
	var a keyAnswerJSON
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.ProjectID == "" || a.SecretKey == "" {
		t.Fatalf("hissuno %s: answer %q: %v", strings.Join(args[:2], " "), out, err)
	}
	return a
}

// mint mints a widget token with the CLI, as a customer's backend would.
func mint(t *testing.T, ctx context.Context, secret, user string) string {
	t.Helper()
	out, errOut, code := runCLI(ctx, "token", "mint", "--secret", secret, "--user", user, "--ttl", "10m")
	if code != 0 {
		t.Fatalf("token mint: exit %d\n%s", code, errOut)
	}
	return strings.TrimSpace(out)
}

// widgetConnect asks the ingress, as the widget on shop.example would.
func widgetConnect(t *testing.T, base, projectID, token string) (int, map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"projectId": projectID, "widgetToken": token})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+ingress.ConnectPath, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://shop.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("answer %d: %v", resp.StatusCode, err)
	}
	if _, ok := answer["decisionId"].(string); !ok {
		t.Fatalf("answer %d without a decision: %v", resp.StatusCode, answer)
	}
	return resp.StatusCode, answer
}

package main

// End-to-end tests with real processes: the test builds the hissuno binary
// once, runs an embedded JetStream server in the test process, starts the
// roles (ingress, verifiers, rotator) as subprocesses the way production
// runs them, and drives them through HTTP and the CLI, as users do.
//
// They are slow (tens of seconds each: a killed verifier's attempts come
// back only after the consumer's 10 s ack wait), so `go test -short` skips
// them; the normal `go test ./...` runs them. They do not run in parallel:
// they measure delays and load the machine's CPUs themselves.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// Timing of the roles, as the binary's defaults set them.
const (
	// ingressDeadline is how long the ingress waits for a verifier (--deadline).
	ingressDeadline = 3 * time.Second
	// termGrace is how long a process may take to exit after SIGTERM before
	// the cleanup kills it.
	termGrace = 10 * time.Second
	// drainTimeout bounds the wait for the attempts work queue to empty: a
	// killed verifier's attempts come back after the 10 s ack wait.
	drainTimeout = 60 * time.Second
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error

	// e2eMasterKey is the master key every role of every test shares.
	e2eMasterKey = randomHex(32)
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// hissunoBinary builds the binary once per test run and returns its path.
func hissunoBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "hissuno-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "hissuno")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// skipUnlessE2E skips the slow end-to-end tests under -short.
func skipUnlessE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with real processes; skipped with -short")
	}
}

// e2e is one test's system: an embedded JetStream server, the role
// processes started against it, and the CLI invocations' output.
type e2e struct {
	t    *testing.T
	bin  string
	dir  string // logs of the processes
	url  string // NATS client URL
	nc   *nats.Conn
	js   jetstream.JetStream
	http *http.Client

	mu        sync.Mutex
	procs     []*proc
	cliStderr []string // stderr of every CLI invocation
}

// proc is one role process.
type proc struct {
	name       string // also its --instance
	addr       string // the ingress's HTTP address
	cmd        *exec.Cmd
	stderrPath string
	stdoutPath string
	done       chan struct{} // closed once the process has exited
	exitedAt   time.Time
	// expectExit is set when the test stops the process on purpose.
	mu         sync.Mutex
	expectExit bool
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	e := &e2e{t: t, bin: hissunoBinary(t), dir: t.TempDir()}
	// Registered before the processes' cleanups, so it runs after them,
	// when every log is complete.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, p := range e.procs {
			t.Logf("--- last lines of %s's stderr (%s):\n%s", p.name, p.stderrPath, tail(p.stderrPath, 30))
		}
	})
	ns, nc := stacktest.NATS(t)
	e.url, e.nc = ns.ClientURL(), nc
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	tr := &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	e.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return e
}

// env is the environment of every process: the test's, without HISSUNO_
// variables, plus the shared master key and JSON logs.
func (e *e2e) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HISSUNO_") {
			env = append(env, kv)
		}
	}
	return append(env, "HISSUNO_MASTER_KEY="+e2eMasterKey, "HISSUNO_LOG_FORMAT=json")
}

// start starts a role process; t.Cleanup stops it with SIGTERM, then
// SIGKILL after termGrace, and reports a process that needed the SIGKILL.
func (e *e2e) start(name, role string, args ...string) *proc {
	t := e.t
	t.Helper()
	p := &proc{
		name:       name,
		stderrPath: filepath.Join(e.dir, name+".stderr"),
		stdoutPath: filepath.Join(e.dir, name+".stdout"),
		done:       make(chan struct{}),
	}
	stderr, err := os.Create(p.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := os.Create(p.stdoutPath)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{role, "--nats", e.url, "--metrics-listen", "", "--instance", name}, args...)
	p.cmd = exec.Command(e.bin, args...)
	p.cmd.Env = e.env()
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	// If the test process dies without its cleanups (a timeout's panic),
	// the role dies too rather than reconnect forever. Linux only, as
	// localclickhouse already is.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = stdout.Close()
		_ = stderr.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.exitedAt = time.Now()
		_ = stdout.Close()
		_ = stderr.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	t.Cleanup(func() {
		switch {
		case p.exited() && !p.expected():
			t.Errorf("%s exited on its own during the test: %v (see %s)", p.name, p.cmd.ProcessState, p.stderrPath)
		case p.exited():
		case p.terminate(termGrace):
			t.Errorf("%s did not exit within %s of SIGTERM; killed (see %s)", p.name, termGrace, p.stderrPath)
		case p.cmd.ProcessState.ExitCode() != 0:
			t.Errorf("%s exited with %v after SIGTERM, want 0 (see %s)", p.name, p.cmd.ProcessState, p.stderrPath)
		}
	})
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// expect marks the process as stopped on purpose.
func (p *proc) expect() {
	p.mu.Lock()
	p.expectExit = true
	p.mu.Unlock()
}

func (p *proc) expected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expectExit
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	p.expect()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// kill kills the process with SIGKILL and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.expect()
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// terminate sends SIGTERM and waits up to grace, then kills the process.
// It reports whether the SIGKILL was needed.
func (p *proc) terminate(grace time.Duration) (killed bool) {
	p.expect()
	if p.exited() {
		return false
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return true
	}
}

// waitExit waits up to timeout for the process to exit and returns its exit
// code and when it exited.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) (code int, at time.Time) {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), p.exitedAt
	case <-time.After(timeout):
		t.Errorf("%s did not exit within %s", p.name, timeout)
		_ = p.cmd.Process.Kill()
		<-p.done
		return p.cmd.ProcessState.ExitCode(), p.exitedAt
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually is stacktest.Eventually that also fails the test as soon as a
// role process exits unexpectedly.
func (e *e2e) eventually(timeout time.Duration, what string, cond func() error) {
	t := e.t
	t.Helper()
	stacktest.Eventually(t, timeout, what, func() error {
		t.Helper()
		err := cond()
		if err == nil {
			return nil
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, p := range e.procs {
			if p.exited() && !p.expected() {
				t.Fatalf("waiting for %s (%v): %s exited with %v; its stderr ends with:\n%s", what, err, p.name, p.cmd.ProcessState, tail(p.stderrPath, 20))
			}
		}
		return err
	})
}

// startIngress starts an ingress and waits until its /readyz answers 200.
// Its rate and connection limits are off: these tests load it from one
// address on purpose (internal/ingress tests the limits).
func (e *e2e) startIngress(name string, args ...string) *proc {
	e.t.Helper()
	addr := stacktest.FreeAddr(e.t)
	unlimited := []string{"--rate-ip", "0", "--rate-project", "0", "--rate-unseen-project", "0", "--max-conns", "-1", "--max-conns-per-ip", "-1"}
	p := e.start(name, "ingress", append(append([]string{"--listen", addr}, unlimited...), args...)...)
	p.addr = addr
	e.eventually(30*time.Second, name+" /readyz answers 200", func() error {
		resp, err := e.http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answers %d %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	})
	return p
}

// startVerifiers starts verifiers and waits until each answers discovery
// and the shared consumer has a pull request of each waiting.
func (e *e2e) startVerifiers(names []string, args ...string) []*proc {
	e.t.Helper()
	var ps []*proc
	for _, n := range names {
		ps = append(ps, e.start(n, "verifier", args...))
	}
	e.waitService(events.ServiceVerifier, names...)
	e.eventually(30*time.Second, "every verifier pulls attempts", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := e.js.Consumer(ctx, events.StreamAttempts, events.ConsumerVerifiers)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting < len(names) {
			return fmt.Errorf("%d pull requests waiting, want %d", info.NumWaiting, len(names))
		}
		return nil
	})
	return ps
}

// startRotator starts a rotator and waits until it answers discovery.
func (e *e2e) startRotator(name string) *proc {
	e.t.Helper()
	p := e.start(name, "rotator")
	e.waitService(events.ServiceRotator, name)
	return p
}

// ping sends a micro-service PING to subject and gathers the answers for
// wait.
func (e *e2e) ping(subject string, wait time.Duration) []micro.Ping {
	t := e.t
	t.Helper()
	inbox := e.nc.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := e.nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []micro.Ping
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		m, err := sub.NextMsg(left)
		if err != nil {
			return out
		}
		var p micro.Ping
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Errorf("a PING answer on %s is not JSON: %v: %s", subject, err, m.Data)
			continue
		}
		out = append(out, p)
	}
}

// waitService waits until every named instance answers a PING of service.
func (e *e2e) waitService(service string, instances ...string) {
	e.t.Helper()
	e.eventually(30*time.Second, fmt.Sprintf("%s instances %v answer $SRV.PING", service, instances), func() error {
		seen := map[string]bool{}
		for _, p := range e.ping("$SRV.PING."+service, 200*time.Millisecond) {
			seen[p.Metadata["instance"]] = true
		}
		for _, n := range instances {
			if !seen[n] {
				return fmt.Errorf("%s did not answer; %v did", n, slices.Sorted(maps.Keys(seen)))
			}
		}
		return nil
	})
}

// cliResult is what one CLI invocation did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs `hissuno ARGS --nats URL` (without --nats for `token`, which
// talks to no server) and keeps its stderr for the log checks.
func (e *e2e) cli(args ...string) cliResult {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if args[0] != "token" {
		args = append(args, "--nats", e.url)
	}
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = e.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("hissuno %s: %v", redact.String(strings.Join(args, " ")), err)
	}
	e.mu.Lock()
	e.cliStderr = append(e.cliStderr, r.stderr)
	e.mu.Unlock()
	return r
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func (e *e2e) mustCLI(args ...string) cliResult {
	e.t.Helper()
	r := e.cli(args...)
	if r.code != 0 {
		e.t.Fatalf("hissuno %s: exit %d\nstdout: %s\nstderr: %s", redact.String(strings.Join(args, " ")), r.code, redact.String(r.stdout), r.stderr)
	}
	return r
}

// keyAnswer is the --json answer of project create and project rotate.
type keyAnswer struct {
	ProjectID string `json:"projectId"`
	SecretKey string `json:"secretKey"`
}

func (e *e2e) parseKeyAnswer(r cliResult) keyAnswer {
	e.t.Helper()
	var k keyAnswer
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.ProjectID == "" || !strings.HasPrefix(k.SecretKey, "sk_live_") {
		e.t.Fatalf("--json answer without projectId and secretKey (%v): %s", err, redact.String(r.stdout))
	}
	return k
}

// createProject creates a project with the CLI.
func (e *e2e) createProject(name string, requireToken bool) keyAnswer {
	e.t.Helper()
	args := []string{"project", "create", "--name", name, "--json"}
	if requireToken {
		args = append(args, "--require-token")
	}
	return e.parseKeyAnswer(e.mustCLI(args...))
}

// mint signs an HS256 widget token with key, as a customer's backend does.
func mint(t *testing.T, key, userID string, iat, exp time.Time) string {
	t.Helper()
	return stacktest.Mint(t, key, widgettoken.Claims{UserID: userID, IssuedAt: iat, Expires: exp})
}

// request is one POST /v1/widget/connect.
type request struct {
	projectID string
	token     string // in the body's widgetToken
	bearer    string // in the Authorization header, as Bearer
	// authorization, when set, is the Authorization header verbatim.
	authorization string
	userID        string
	raw           []byte // when set, the body verbatim
}

// connectAnswer is the body of any answer of POST /v1/widget/connect.
type connectAnswer struct {
	Decision   string `json:"decision"`
	Session    string `json:"session"`
	UserID     string `json:"userId"`
	Reason     string `json:"reason"`
	DecisionID string `json:"decisionId"`
	Error      string `json:"error"`
}

// answer is what one request got.
type answer struct {
	start, end time.Time
	status     int
	body       connectAnswer
	err        error // transport error: no answer at all
}

// post sends one connect request to the ingress at addr.
func (e *e2e) post(addr string, r request) answer {
	body := r.raw
	if body == nil {
		m := map[string]any{"projectId": r.projectID}
		if r.token != "" {
			m["widgetToken"] = r.token
		}
		if r.userID != "" {
			m["userId"] = r.userID
		}
		body, _ = json.Marshal(m)
	}
	a := answer{start: time.Now()}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/widget/connect", bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://shop.example")
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.authorization != "" {
		req.Header.Set("Authorization", r.authorization)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		a.end, a.err = time.Now(), err
		return a
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	a.end, a.status = time.Now(), resp.StatusCode
	if err != nil {
		a.err = err
		return a
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		a.err = fmt.Errorf("status %d with a body that is not JSON: %q", resp.StatusCode, raw)
	}
	return a
}

// load runs clients goroutines, each sending one request after another
// until ctx ends (requests in flight then still finish), and returns every
// answer.
func load(ctx context.Context, clients int, send func(client int) answer) []answer {
	var mu sync.Mutex
	var all []answer
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []answer
			for ctx.Err() == nil {
				mine = append(mine, send(c))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// attemptLog records the id of every attempt published on hissuno.attempts,
// by a core-NATS subscription of the test.
type attemptLog struct {
	mu  sync.Mutex
	ids []string
}

func (l *attemptLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}

func (e *e2e) recordAttempts() *attemptLog {
	t := e.t
	t.Helper()
	l := &attemptLog{}
	sub, err := e.nc.Subscribe(events.SubjectAttempts+".>", func(m *nats.Msg) {
		var a events.Attempt
		if err := json.Unmarshal(m.Data, &a); err != nil || a.AttemptID == "" {
			t.Errorf("an attempt that is not JSON with an attemptId: %v", err)
			return
		}
		l.mu.Lock()
		l.ids = append(l.ids, a.AttemptID)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// decisionLog records every decision published on hissuno.decisions, by a
// core-NATS subscription of the test (a decision stored twice would show
// twice here; the stream is the record).
type decisionLog struct {
	mu   sync.Mutex
	decs []events.Decision
}

func (l *decisionLog) all() []events.Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.decs)
}

func (e *e2e) recordDecisions() *decisionLog {
	t := e.t
	t.Helper()
	l := &decisionLog{}
	sub, err := e.nc.Subscribe(events.SubjectDecisions, func(m *nats.Msg) {
		var d events.Decision
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Errorf("a decision that is not JSON: %v", err)
			return
		}
		l.mu.Lock()
		l.decs = append(l.decs, d)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitAttemptsDrained waits until the attempts work queue is empty: every
// attempt published was decided and acknowledged.
func (e *e2e) waitAttemptsDrained(timeout time.Duration) {
	e.t.Helper()
	var left uint64
	e.eventually(timeout, "the attempts work queue is empty", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, events.StreamAttempts)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if left = info.State.Msgs; left != 0 {
			return fmt.Errorf("%d attempts left", left)
		}
		return nil
	})
}

// readDecisions reads the whole decisions stream.
func (e *e2e) readDecisions() []events.Decision {
	e.t.Helper()
	var out []events.Decision
	for _, m := range e.readStream(events.StreamDecisions) {
		var d events.Decision
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			e.t.Fatalf("a stored decision is not JSON: %v: %s", err, m.Data())
		}
		out = append(out, d)
	}
	return out
}

// readStream reads every message of a stream.
func (e *e2e) readStream(name string) []jetstream.Msg {
	e.t.Helper()
	return stacktest.ReadStream(e.t, e.js, name)
}

// checkExactlyOnce asserts that every attempt has exactly one decision in
// decisions, and that no decision is for an attempt never published. It
// returns the decisions by attempt id.
func checkExactlyOnce(t *testing.T, attempts []string, decisions []events.Decision) map[string]events.Decision {
	t.Helper()
	published := map[string]bool{}
	for _, id := range attempts {
		if published[id] {
			t.Errorf("attempt %s published twice", id)
		}
		published[id] = true
	}
	count := map[string]int{}
	byAttempt := map[string]events.Decision{}
	var unknown []string
	for _, d := range decisions {
		count[d.AttemptID]++
		byAttempt[d.AttemptID] = d
		if d.DecisionID != events.DecisionIDFor(d.AttemptID) {
			t.Errorf("decision %s of attempt %s: want id %s", d.DecisionID, d.AttemptID, events.DecisionIDFor(d.AttemptID))
		}
		if !published[d.AttemptID] {
			unknown = append(unknown, d.AttemptID)
		}
	}
	var missing, doubled []string
	for _, id := range attempts {
		switch count[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			doubled = append(doubled, fmt.Sprintf("%s×%d", id, count[id]))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d attempts have no decision (lost): %v", len(missing), len(attempts), first(missing, 10))
	}
	if len(doubled) > 0 {
		t.Errorf("%d attempts have more than one decision: %v", len(doubled), first(doubled, 10))
	}
	if len(unknown) > 0 {
		t.Errorf("%d decisions are for attempts never seen published: %v", len(unknown), first(unknown, 10))
	}
	return byAttempt
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// checkAnswersRecorded asserts that every decision an HTTP client received
// is the stored decision.
func checkAnswersRecorded(t *testing.T, answers []answer, byAttempt map[string]events.Decision) {
	t.Helper()
	byID := map[string]events.Decision{}
	for _, d := range byAttempt {
		byID[d.DecisionID] = d
	}
	bad := 0
	for _, a := range answers {
		if a.err != nil || a.body.DecisionID == "" {
			continue
		}
		d, ok := byID[a.body.DecisionID]
		switch {
		case !ok:
			t.Errorf("a browser got decision %s (%s %s), which is not stored", a.body.DecisionID, a.body.Decision, a.body.Reason)
			bad++
		case string(d.Decision) != a.body.Decision || string(d.Reason) != a.body.Reason:
			t.Errorf("a browser got %s %s for %s, the stored decision says %s %s", a.body.Decision, a.body.Reason, a.body.DecisionID, d.Decision, d.Reason)
			bad++
		}
		if bad > 10 {
			return
		}
	}
}

// TestTwoVerifiersShareLoadAndOneIsKilled kills -9 one of two verifiers in
// the middle of a load: the browsers get 200, or 503 for the attempts the
// dead verifier held, and every attempt ends with exactly one decision.
func TestTwoVerifiersShareLoadAndOneIsKilled(t *testing.T) {
	skipUnlessE2E(t)
	e := newE2E(t)
	in := e.startIngress("e2e-ingress")
	e.startRotator("e2e-rotator")
	names := []string{"e2e-verifier-1", "e2e-verifier-2"}
	vs := e.startVerifiers(names)
	victim := vs[1]
	p := e.createProject("two verifiers", true)
	tokens := make([]string, 16)
	for i := range tokens {
		tokens[i] = mint(t, p.SecretKey, fmt.Sprintf("user-%d", i), time.Now(), time.Now().Add(time.Hour))
	}
	attempts := e.recordAttempts()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var answers []answer
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		answers = load(ctx, len(tokens), func(c int) answer {
			return e.post(in.addr, request{projectID: p.ProjectID, token: tokens[c]})
		})
	}()
	loadStart := time.Now()
	time.Sleep(1500 * time.Millisecond) // shapes the load: kill in its middle
	killAt := time.Now()
	victim.kill(t)
	<-loaded
	t.Logf("killed %s with SIGKILL after %v of load", victim.name, killAt.Sub(loadStart).Round(time.Millisecond))

	// Every answer is an accept, or a 503 for an attempt in flight at the
	// kill. The server notices the dead connection within milliseconds;
	// killSlack covers that.
	const killSlack = time.Second
	counts := map[int]int{}
	for _, a := range answers {
		counts[a.status]++
		switch {
		case a.err != nil:
			t.Errorf("request at %s: no answer: %v", a.start.Format(time.StampMilli), a.err)
		case a.status == http.StatusOK:
			if a.body.Decision != "accept" || a.body.Session != "authenticated" || a.body.DecisionID == "" {
				t.Errorf("200 with %+v, want an authenticated accept with a decisionId", a.body)
			}
		case a.status == http.StatusServiceUnavailable:
			if a.start.After(killAt.Add(killSlack)) {
				t.Errorf("503 (%s) for a request sent %s after the kill: the surviving verifier should have decided it", a.body.Error, a.start.Sub(killAt))
			}
			if a.end.Before(killAt) {
				t.Errorf("503 (%s) answered %s before the kill, for a request sent at %s", a.body.Error, killAt.Sub(a.end), a.start.Format(time.StampMilli))
			}
		default:
			t.Errorf("status %d (%+v), want 200, or 503 for a request in flight at the kill", a.status, a.body)
		}
	}

	e.waitAttemptsDrained(drainTimeout)
	published := attempts.all()
	decisions := e.readDecisions()
	byAttempt := checkExactlyOnce(t, published, decisions)
	checkAnswersRecorded(t, answers, byAttempt)

	received := map[string]bool{}
	for _, a := range answers {
		received[a.body.DecisionID] = true
	}
	before, after := map[string]int{}, map[string]int{}
	late, refused, unseen := 0, 0, 0
	for _, d := range decisions {
		if !received[d.DecisionID] {
			unseen++
		}
		if d.Time.Before(killAt) {
			before[d.Verifier]++
		} else {
			after[d.Verifier]++
		}
		if time.Duration(d.LatencyMicros)*time.Microsecond > ingressDeadline {
			late++
		}
		if d.Decision != events.OutcomeAccept {
			refused++
		}
	}
	for _, n := range names {
		if before[n] == 0 {
			t.Errorf("%s decided nothing before the kill (decisions by verifier before the kill: %v): the load was not shared", n, before)
		}
	}
	if after[victim.name] > 0 {
		t.Errorf("%s, killed, has %d decisions timed after the kill", victim.name, after[victim.name])
	}
	if refused > 0 {
		t.Errorf("%d decisions refuse a valid token", refused)
	}
	t.Logf("requests %d: 200 %d, 503 %d; attempts published %d, decisions stored %d (%d reached no browser, %d stored later than the ingress deadline)",
		len(answers), counts[200], counts[503], len(published), len(decisions), unseen, late)
	t.Logf("decisions before the kill by verifier: %v; after the kill: %v", before, after)
}

// TestSettingsChangeReachesEveryVerifier toggles a project's requireToken
// with the CLI and measures how soon the ingress, and each of three
// verifiers, decide by the new setting.
func TestSettingsChangeReachesEveryVerifier(t *testing.T) {
	skipUnlessE2E(t)
	e := newE2E(t)
	in := e.startIngress("e2e-ingress")
	e.startRotator("e2e-rotator")
	names := []string{"e2e-verifier-1", "e2e-verifier-2", "e2e-verifier-3"}
	e.startVerifiers(names)
	p := e.createProject("settings", true)
	decisions := e.recordDecisions()

	anonymous := func(int) answer { return e.post(in.addr, request{projectID: p.ProjectID, userID: "visitor"}) }
	// reflects says whether an answer or a decision follows requireToken.
	answerReflects := func(a answer, requireToken bool) bool {
		if requireToken {
			return a.status == http.StatusUnauthorized && a.body.Reason == string(events.ReasonTokenRequired)
		}
		return a.status == http.StatusOK && a.body.Session == string(events.SessionAnonymous)
	}
	decisionReflects := func(d events.Decision, requireToken bool) bool {
		if requireToken {
			return d.Reason == events.ReasonTokenRequired
		}
		return d.Decision == events.OutcomeAccept && d.Session == events.SessionAnonymous
	}
	// firstByVerifier is, per verifier, the time of its first decision on
	// the project at or after since that follows requireToken.
	firstByVerifier := func(since time.Time, requireToken bool) map[string]time.Time {
		out := map[string]time.Time{}
		for _, d := range decisions.all() {
			if d.ProjectID != p.ProjectID || d.Time.Before(since) || !decisionReflects(d, requireToken) {
				continue
			}
			if f, ok := out[d.Verifier]; !ok || d.Time.Before(f) {
				out[d.Verifier] = d.Time
			}
		}
		return out
	}

	// Every verifier refuses anonymous requests before the first change.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	warmStart := time.Now()
	warmDone := make(chan []answer)
	go func() { warmDone <- load(ctx, 6, anonymous) }()
	e.eventually(30*time.Second, "every verifier answered token_required", func() error {
		if firsts := firstByVerifier(warmStart, true); len(firsts) != len(names) {
			return fmt.Errorf("%d of %d verifiers did: %v", len(firsts), len(names), slices.Sorted(maps.Keys(firsts)))
		}
		return nil
	})
	cancel()
	for _, a := range <-warmDone {
		if !answerReflects(a, true) {
			t.Errorf("before any change: %d %+v (%v), want 401 token_required", a.status, a.body, a.err)
		}
	}

	const reps = 20
	var httpDelays, allDelays, cliTimes []time.Duration
	requireToken := true
	for rep := range reps {
		requireToken = !requireToken
		// Anonymous requests all along, noting the first answer that
		// follows the new setting.
		var seenMu sync.Mutex
		var firstHTTP time.Time
		ctx, cancel := context.WithCancel(context.Background())
		loadDone := make(chan []answer)
		start := time.Now()
		go func() {
			loadDone <- load(ctx, 6, func(c int) answer {
				a := anonymous(c)
				if answerReflects(a, requireToken) {
					seenMu.Lock()
					if firstHTTP.IsZero() || a.end.Before(firstHTTP) {
						firstHTTP = a.end
					}
					seenMu.Unlock()
				}
				return a
			})
		}()
		r := e.mustCLI("project", "update", p.ProjectID, fmt.Sprintf("--require-token=%v", requireToken))
		returned := time.Now()
		if strings.Contains(r.stderr, "did not confirm") {
			t.Errorf("rep %d: the rotator names verifiers that did not confirm: %s", rep, r.stderr)
		}
		var firsts map[string]time.Time
		converged := func() bool {
			seenMu.Lock()
			seen := !firstHTTP.IsZero()
			seenMu.Unlock()
			firsts = firstByVerifier(start, requireToken)
			return seen && len(firsts) == len(names)
		}
		deadline := start.Add(10 * time.Second)
		for !converged() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		answers := <-loadDone
		if !converged() {
			t.Fatalf("rep %d: requireToken=%v not in force on the ingress and every verifier within 10 s (HTTP seen %v, verifiers %v)", rep, requireToken, !firstHTTP.IsZero(), firsts)
		}
		// Causality, not timing: the CLI returns once every verifier has
		// confirmed, so a request sent after it returned gets the new
		// setting.
		stale := 0
		for _, a := range answers {
			switch {
			case a.err != nil:
				t.Errorf("rep %d: no answer: %v", rep, a.err)
			case !answerReflects(a, requireToken) && !answerReflects(a, !requireToken):
				t.Errorf("rep %d: %d %+v, want 200 anonymous or 401 token_required", rep, a.status, a.body)
			case a.start.After(returned) && !answerReflects(a, requireToken):
				stale++
			}
		}
		if stale > 0 {
			t.Errorf("rep %d: %d requests sent after `project update` returned got the old requireToken=%v", rep, stale, !requireToken)
		}
		var all time.Duration
		for _, f := range firsts {
			all = max(all, f.Sub(start))
		}
		httpDelays = append(httpDelays, firstHTTP.Sub(start))
		allDelays = append(allDelays, all)
		cliTimes = append(cliTimes, returned.Sub(start))
		t.Logf("rep %2d requireToken=%-5v: first HTTP answer %v, every verifier %v, CLI returned after %v (%d requests)",
			rep, requireToken, firstHTTP.Sub(start).Round(time.Millisecond), all.Round(time.Millisecond), returned.Sub(start).Round(time.Millisecond), len(answers))
	}
	h, a, c := summarize(httpDelays), summarize(allDelays), summarize(cliTimes)
	t.Logf("settings change delay over %d changes: p50 %s ms / max %s ms (HTTP), p50 %s ms / max %s ms (every verifier)", reps, h.median, h.max, a.median, a.max)
	t.Logf("SETTINGS_DELAY n=%d http_ms min=%s median=%s max=%s all_verifiers_ms min=%s median=%s max=%s cli_ms min=%s median=%s max=%s",
		reps, h.min, h.median, h.max, a.min, a.median, a.max, c.min, c.median, c.max)
}

// summary holds the min, median and max of durations, in milliseconds.
type summary struct{ min, median, max string }

func summarize(ds []time.Duration) summary {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{min: ms(s[0]), median: ms(med), max: ms(s[n-1])}
}

// TestLogsNeverHoldSecrets runs a full admin and traffic session and checks
// that no secret key and no token reaches any process's output.
func TestLogsNeverHoldSecrets(t *testing.T) {
	skipUnlessE2E(t)
	e := newE2E(t)
	in := e.startIngress("e2e-ingress", "--log-level", "debug")
	rot := e.start("e2e-rotator", "rotator", "--log-level", "debug")
	e.waitService(events.ServiceRotator, "e2e-rotator")
	names := []string{"e2e-verifier-1", "e2e-verifier-2"}
	vs := e.startVerifiers(names, "--log-level", "debug")

	var keys, tokens []string
	send := func(what string, r request, wantStatus int, wantReason events.Reason) {
		t.Helper()
		a := e.post(in.addr, r)
		if a.err != nil || a.status != wantStatus || a.body.Reason != string(wantReason) {
			t.Errorf("%s: %d %+v (%v), want %d %q", what, a.status, a.body, a.err, wantStatus, wantReason)
		}
	}
	// both sends a token in the body, then as Authorization: Bearer.
	both := func(what, projectID, tok string, wantStatus int, wantReason events.Reason) {
		t.Helper()
		tokens = append(tokens, tok)
		send(what+" (body)", request{projectID: projectID, token: tok}, wantStatus, wantReason)
		send(what+" (bearer)", request{projectID: projectID, bearer: tok}, wantStatus, wantReason)
	}
	now := time.Now()
	p := e.createProject("secrets", true)
	keys = append(keys, p.SecretKey)
	first := mint(t, p.SecretKey, "alice", now, now.Add(time.Hour))
	both("valid token", p.ProjectID, first, 200, "")

	for range 2 {
		k := e.parseKeyAnswer(e.mustCLI("project", "rotate", p.ProjectID, "--json"))
		if slices.Contains(keys, k.SecretKey) {
			t.Fatalf("project rotate printed a key seen before")
		}
		keys = append(keys, k.SecretKey)
	}
	current := keys[len(keys)-1]
	both("token signed with a rotated key", p.ProjectID, first, 401, events.ReasonTokenBadSignature)
	both("valid token after the rotations", p.ProjectID, mint(t, current, "alice", now, now.Add(time.Hour)), 200, "")
	mallory := mint(t, current, "mallory", now.Add(-10*time.Second), now.Add(time.Hour))
	both("token of a user about to be revoked", p.ProjectID, mallory, 200, "")

	e.mustCLI("project", "update", p.ProjectID, "--require-token=false")
	e.mustCLI("project", "revoke-user", p.ProjectID, "--user", "mallory")
	e.mustCLI("project", "get", p.ProjectID, "--json")
	minted := e.mustCLI("token", "mint", "--secret", current, "--user", "bob")
	bob := strings.TrimSpace(minted.stdout)

	wrongKey := "sk_live_" + randomHex(24)
	keys = append(keys, wrongKey)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	noneClaims := base64.RawURLEncoding.EncodeToString([]byte(`{"userId":"alice","exp":` + fmt.Sprint(now.Add(time.Hour).Unix()) + `}`))
	valid := mint(t, current, "alice", now, now.Add(time.Hour))
	corrupted := valid[:len(valid)-6] + "AAAAAA"
	if corrupted == valid {
		corrupted = valid[:len(valid)-6] + "BBBBBB"
	}
	tooLarge := stacktest.MintMap(t, current, map[string]any{"userId": "alice", "exp": now.Add(time.Hour).Unix(), "pad": strings.Repeat("p", 9<<10)})

	both("token minted by the CLI", p.ProjectID, bob, 200, "")
	both("valid token", p.ProjectID, valid, 200, "")
	both("revoked user's token", p.ProjectID, mallory, 401, events.ReasonTokenRevoked)
	both("expired token", p.ProjectID, mint(t, current, "alice", now.Add(-3*time.Hour), now.Add(-2*time.Hour)), 401, events.ReasonTokenExpired)
	both("token signed with a wrong key", p.ProjectID, mint(t, wrongKey, "alice", now, now.Add(time.Hour)), 401, events.ReasonTokenBadSignature)
	both("token with a corrupted signature", p.ProjectID, corrupted, 401, events.ReasonTokenBadSignature)
	both("malformed token", p.ProjectID, "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2lnbmF0dXJlLXNlZ21lbnQtb2YtYS1tYWxmb3JtZWQtdG9rZW4", 401, events.ReasonTokenMalformed)
	both("token that is not a JWT", p.ProjectID, "not-a-jwt-but-a-secret-looking-string-QWxhZGRpbjpvcGVu", 401, events.ReasonTokenMalformed)
	both("alg none token", p.ProjectID, noneHeader+"."+noneClaims+".", 401, events.ReasonTokenAlgNotAllowed)
	both("token over 8 KiB", p.ProjectID, tooLarge, 401, events.ReasonTokenTooLarge)
	both("token for an unknown project", "proj_unknown_e2e", valid, 401, events.ReasonUnknownProject)

	// Refused by the ingress before anything is published.
	big, _ := json.Marshal(map[string]any{"projectId": p.ProjectID, "widgetToken": valid, "userId": strings.Repeat("u", 20<<10)})
	tokens = append(tokens, valid)
	send("20 KiB body", request{raw: big}, 400, "")
	send("two different tokens", request{projectID: p.ProjectID, token: valid, bearer: bob}, 400, "")
	send("token in a Basic Authorization header", request{projectID: p.ProjectID, authorization: "Basic " + valid}, 400, "")
	send("token in a JSON body that is not valid JSON", request{raw: []byte(`{"projectId":"` + p.ProjectID + `","widgetToken":"` + valid + `",}`)}, 400, "")

	// Attempts another ingress could publish that no verifier can handle:
	// they are dead-lettered, with their tokens scrubbed.
	deadLetters := []string{
		`{"schemaVersion":99,"attemptId":"att_e2e_version","projectId":"` + p.ProjectID + `","widgetToken":"` + valid + `"}`,
		`not JSON, but it holds a token: ` + valid,
	}
	for i, body := range deadLetters {
		m := nats.NewMsg(events.AttemptSubject("ingress.e2e"))
		m.Data = []byte(body)
		m.Header.Set(events.HeaderMsgID, fmt.Sprintf("att_e2e_dead_%d", i))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := e.js.PublishMsg(ctx, m)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	e.eventually(20*time.Second, "the undecidable attempts are dead-lettered", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, events.StreamDeadLetter)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(len(deadLetters)) {
			return fmt.Errorf("%d of %d dead-lettered", info.State.Msgs, len(deadLetters))
		}
		return nil
	})

	// Stop every role, so that their logs are complete.
	for _, proc := range append([]*proc{in, rot}, vs...) {
		if proc.terminate(termGrace) {
			t.Errorf("%s did not exit within %s of SIGTERM", proc.name, termGrace)
		}
	}

	type output struct{ name, text string }
	var outputs []output
	// The audit's sources too: decisions, admin commands and events, dead
	// letters (headers included).
	for _, stream := range []string{events.StreamDecisions, events.StreamAdmin, events.StreamDeadLetter} {
		var b strings.Builder
		for _, m := range e.readStream(stream) {
			fmt.Fprintf(&b, "%v %s\n", m.Headers(), m.Data())
		}
		outputs = append(outputs, output{"stream " + stream, b.String()})
	}
	e.mu.Lock()
	for _, proc := range e.procs {
		for _, path := range []string{proc.stderrPath, proc.stdoutPath} {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			outputs = append(outputs, output{filepath.Base(path), string(b)})
		}
	}
	for i, s := range e.cliStderr {
		outputs = append(outputs, output{fmt.Sprintf("CLI invocation %d's stderr", i+1), s})
	}
	e.mu.Unlock()

	type secret struct{ what, value string }
	var secrets []secret
	for i, k := range keys {
		secrets = append(secrets, secret{fmt.Sprintf("secret key %d", i+1), k})
	}
	secrets = append(secrets, secret{"master key", e2eMasterKey})
	for i, tok := range tokens {
		secrets = append(secrets, secret{fmt.Sprintf("token %d", i+1), tok})
		if parts := strings.Split(tok, "."); len(parts) == 3 && len(parts[2]) >= 16 {
			secrets = append(secrets, secret{fmt.Sprintf("signature of token %d", i+1), parts[2]})
		}
	}
	lines := 0
	for _, o := range outputs {
		for _, s := range secrets {
			if i := strings.Index(o.text, s.value); i >= 0 {
				t.Errorf("%s holds %s: …%s…", o.name, s.what, excerpt(o.text, i, len(s.value)))
			}
		}
		if !strings.HasSuffix(o.name, ".stderr") {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(o.text))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.TrimSpace(line) == "" {
				continue
			}
			lines++
			var fields map[string]any
			if err := json.Unmarshal([]byte(line), &fields); err != nil {
				t.Errorf("%s: a line that is not JSON with HISSUNO_LOG_FORMAT=json: %s", o.name, line)
				continue
			}
			if c, _ := fields["component"].(string); c == "" {
				t.Errorf("%s: a log line without \"component\": %s", o.name, line)
			}
		}
	}
	t.Logf("checked %d outputs (%d JSON log lines of the roles, %d CLI invocations) for %d secrets", len(outputs), lines, len(e.cliStderr), len(secrets))
}

// excerpt shows where a secret sits in a text, with the secret itself cut
// short so that the test's own output does not repeat it.
func excerpt(s string, i, n int) string {
	from := max(i-80, 0)
	return s[from:i] + s[i:i+min(n, 12)] + "[…]"
}

// TestSigtermFinishesInFlight sends SIGTERM to the verifier and the ingress
// under load: both exit 0, every answer is a decision (or a 503 from the
// stopping ingress), and no attempt is lost.
func TestSigtermFinishesInFlight(t *testing.T) {
	skipUnlessE2E(t)
	e := newE2E(t)
	in := e.startIngress("e2e-ingress")
	rot := e.startRotator("e2e-rotator")
	v := e.startVerifiers([]string{"e2e-verifier-1"})[0]
	p := e.createProject("sigterm", true)
	tokens := make([]string, 16)
	for i := range tokens {
		tokens[i] = mint(t, p.SecretKey, fmt.Sprintf("user-%d", i), time.Now(), time.Now().Add(time.Hour))
	}
	attempts := e.recordAttempts()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan []answer)
	go func() {
		loaded <- load(ctx, len(tokens), func(c int) answer {
			if c%2 == 0 {
				return e.post(in.addr, request{projectID: p.ProjectID, userID: "anonymous"})
			}
			return e.post(in.addr, request{projectID: p.ProjectID, bearer: tokens[c]})
		})
	}()
	time.Sleep(1500 * time.Millisecond) // shapes the load
	termV := time.Now()
	v.signal(t, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond) // shapes the shutdown: the ingress a moment later
	termI := time.Now()
	in.signal(t, syscall.SIGTERM)
	vCode, vAt := v.waitExit(t, 15*time.Second)
	iCode, iAt := in.waitExit(t, 15*time.Second)
	cancel()
	answers := <-loaded
	if vCode != 0 {
		t.Errorf("the verifier exited with %d after SIGTERM, want 0", vCode)
	}
	if iCode != 0 {
		t.Errorf("the ingress exited with %d after SIGTERM, want 0", iCode)
	}
	t.Logf("verifier exited %d after %v; ingress exited %d after %v", vCode, vAt.Sub(termV).Round(time.Millisecond), iCode, iAt.Sub(termI).Round(time.Millisecond))

	const sigSlack = 250 * time.Millisecond
	counts := map[int]int{}
	noAnswer := 0
	var noAnswerErrs []string
	earliest503 := time.Duration(1<<63 - 1)
	for _, a := range answers {
		if a.err != nil {
			noAnswer++
			if a.start.Before(termI.Add(-sigSlack)) {
				t.Errorf("a request sent %v before the ingress's SIGTERM got no answer: %v", termI.Sub(a.start), a.err)
			}
			if len(noAnswerErrs) < 3 {
				noAnswerErrs = append(noAnswerErrs, a.err.Error())
			}
			continue
		}
		counts[a.status]++
		switch a.status {
		case http.StatusOK:
			if a.body.Decision != "accept" || a.body.DecisionID == "" {
				t.Errorf("200 with %+v", a.body)
			}
		case http.StatusUnauthorized:
			if a.body.Reason != string(events.ReasonTokenRequired) || a.body.DecisionID == "" {
				t.Errorf("401 with %+v, want token_required", a.body)
			}
		case http.StatusServiceUnavailable:
			// It waited for a verifier that had stopped pulling.
			if a.end.Before(termV) {
				t.Errorf("503 (%s) answered %v before the verifier's SIGTERM", a.body.Error, termV.Sub(a.end))
			}
			earliest503 = min(earliest503, a.start.Sub(termV))
		default:
			t.Errorf("status %d (%+v), want 200, 401 or 503", a.status, a.body)
		}
	}
	t.Logf("requests %d: 200 %d, 401 %d, 503 %d from the stopping ingress (the earliest sent %v after the verifier's SIGTERM), %d without an answer (sent after the ingress stopped listening; e.g. %q)",
		len(answers), counts[200], counts[401], counts[503], earliest503, noAnswer, first(noAnswerErrs, 1))

	if rot.terminate(15 * time.Second) {
		t.Errorf("the rotator did not exit within 15 s of SIGTERM")
	} else if code := rot.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the rotator exited with %d after SIGTERM, want 0", code)
	}

	// A fresh verifier decides what is left; nothing is lost or doubled.
	e.startVerifiers([]string{"e2e-verifier-2"})
	e.waitAttemptsDrained(drainTimeout)
	published := attempts.all()
	decisions := e.readDecisions()
	byAttempt := checkExactlyOnce(t, published, decisions)
	checkAnswersRecorded(t, answers, byAttempt)
	// The stopping verifier answered every attempt it took, and the
	// attempts that got 503 waited in the queue for the next one.
	received := map[string]bool{}
	for _, a := range answers {
		received[a.body.DecisionID] = true
	}
	byVerifier := map[string]int{}
	unanswered := 0
	for _, d := range decisions {
		byVerifier[d.Verifier]++
		if d.Verifier == v.name && !received[d.DecisionID] {
			unanswered++
		}
	}
	if unanswered > 0 {
		t.Errorf("%d decisions of %s, which was stopped with SIGTERM, reached no browser: it did not finish what it had in flight", unanswered, v.name)
	}
	if byVerifier["e2e-verifier-2"] != counts[503] {
		t.Errorf("%d requests got 503 but the fresh verifier decided %d attempts: each 503 should be one attempt left in the queue", counts[503], byVerifier["e2e-verifier-2"])
	}
	t.Logf("attempts published %d, decisions stored %d, by verifier %v", len(published), len(decisions), byVerifier)
}

// TestMicroServicesDiscoverable checks that every role answers the NATS
// micro-service discovery, as `nats micro ls` uses it.
func TestMicroServicesDiscoverable(t *testing.T) {
	skipUnlessE2E(t)
	e := newE2E(t)
	e.startIngress("e2e-ingress")
	e.startRotator("e2e-rotator")
	e.startVerifiers([]string{"e2e-verifier-1"})

	seen := map[string][]string{}
	for _, p := range e.ping("$SRV.PING", 500*time.Millisecond) {
		seen[p.Name] = append(seen[p.Name], p.Metadata["instance"])
		if p.ID == "" || p.Version == "" || p.Type != micro.PingResponseType {
			t.Errorf("PING answer %+v lacks an id, a version or its type", p)
		}
	}
	for _, want := range []struct{ service, instance string }{
		{events.ServiceIngress, "e2e-ingress"},
		{events.ServiceVerifier, "e2e-verifier-1"},
		{events.ServiceRotator, "e2e-rotator"},
	} {
		if !slices.Contains(seen[want.service], want.instance) {
			t.Errorf("$SRV.PING: no %s named %s among the answers %v", want.service, want.instance, seen)
		}
	}

	m, err := e.nc.Request("$SRV.INFO."+events.ServiceVerifier, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO.%s: %v", events.ServiceVerifier, err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatalf("$SRV.INFO answer is not JSON: %v: %s", err, m.Data)
	}
	var endpoints []string
	for _, ep := range info.Endpoints {
		endpoints = append(endpoints, ep.Name)
	}
	if info.Name != events.ServiceVerifier || !slices.Contains(endpoints, "sync") {
		t.Errorf("$SRV.INFO.%s: service %q with endpoints %v, want an endpoint named sync", events.ServiceVerifier, info.Name, endpoints)
	}

	m, err = e.nc.Request("$SRV.STATS."+events.ServiceVerifier, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("$SRV.STATS.%s: %v", events.ServiceVerifier, err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(m.Data, &stats); err != nil {
		t.Fatalf("$SRV.STATS answer is not JSON: %v: %s", err, m.Data)
	}
	if stats.Name != events.ServiceVerifier || stats.Type != micro.StatsResponseType || len(stats.Endpoints) == 0 {
		t.Errorf("$SRV.STATS.%s: %+v, want the verifier's stats with its endpoints", events.ServiceVerifier, stats)
	}
	t.Logf("services: %v; verifier endpoints: %v", seen, endpoints)
}

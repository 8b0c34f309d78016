package stack_test

// A three-node JetStream cluster loses one node under load: the pipeline
// (ingress, two verifiers, rotator, each connected to every node so it fails
// over) must keep answering and lose no attempt. The roles run in this
// process, wired as stack.Start wires them, but on a cluster of embedded
// servers instead of stack.Start's single one.
//
// The test is slow (tens of seconds per case: leader elections, and an
// attempt whose verifier lost its node comes back only after the consumer's
// ack wait), so `go test -short` skips it; the normal `go test ./...` runs
// it. The cases do not run in parallel: each loads the machine's CPUs.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/rotator"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/verifier"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// Shape and bounds of the node-loss test.
const (
	// clusterNodes is the cluster's size and every stream's replica count.
	clusterNodes = 3
	// loadClients is how many widgets send connect requests at once.
	loadClients = 8
	// loadPause spaces one client's requests, to keep the load within what
	// a busy two-CPU machine under -race serves.
	loadPause = 10 * time.Millisecond
	// loadBefore is how long the load runs before the node stops.
	loadBefore = time.Second
	// loadAfter is how long the load runs after the node stopped (and at
	// least a second after the pipeline answered again).
	loadAfter = 3 * time.Second
	// electionBound is how long after the node stopped a request may still
	// get 503 while leaders are elected: raft's election timeout is 4 to 9 s,
	// a graceful shutdown hands leadership over well before.
	electionBound = 15 * time.Second
	// recoverTimeout bounds the wait for the first answer after the loss.
	recoverTimeout = 90 * time.Second
	// drainTimeout bounds the wait for the attempts work queue to empty: an
	// attempt held by a verifier whose node went away comes back after the
	// ack wait and back-off (10 s, then 10, 20, 30 s).
	drainTimeout = 3 * time.Minute
	// viewCatchUp bounds how long a verifier's project view may lag behind
	// the bucket after the loss: a KV watch whose consumer was on the lost
	// node is replaced after nats.go misses two 5 s heartbeats, 10 to 20 s.
	viewCatchUp = 45 * time.Second
	// verifierAckWait is the verifiers' ack wait (their default).
	verifierAckWait = 10 * time.Second
	// testOrigin is the Origin the widgets send; the project allows any.
	testOrigin = "https://shop.example"
	// userAgentPrefix starts every request's User-Agent, followed by the
	// request's number, which the attempt carries: it ties an attempt seen
	// on the bus to its HTTP request, 503s included.
	userAgentPrefix = "hissuno-cluster-test/"
)

// notQueued starts the ingress's 503 when JetStream did not acknowledge the
// attempt; the other 503 ("no verifier answered") follows a stored attempt.
const notQueued = "the attempt could not be queued"

func TestClusterNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a three-node cluster losing a node under load; run without -short")
	}
	cases := []struct {
		name string
		// pick chooses the node to stop.
		pick func(t *testing.T, p *pipeline) *server.Server
	}{
		{name: "a follower node few roles use", pick: pickLeastUsed},
		{name: "the attempts stream leader", pick: pickAttemptsLeader},
		{name: "the node most roles use", pick: pickMostUsed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startPipeline(t)
			proj := createProject(t, p)

			obs := observeAttempts(t, p.cluster)
			ld := startLoad(t, p.ingressAddr, proj)
			stacktest.Eventually(t, time.Minute, "the pipeline answers 200 before the loss", func() error {
				if n := ld.okSince(time.Time{}); n < 2*loadClients {
					return fmt.Errorf("%d requests answered 200, want %d", n, 2*loadClients)
				}
				return nil
			})
			time.Sleep(loadBefore) // shape: steady load before the loss

			victim := tc.pick(t, p)
			t.Logf("before the loss: %s", p.layout(t))
			t.Logf("stopping node %s", victim.Name())
			lost := time.Now()
			victim.Shutdown()
			victim.WaitForShutdown()
			down := time.Now()
			stacktest.Eventually(t, recoverTimeout, "a request sent after the loss is answered 200", func() error {
				if ld.okSince(down) == 0 {
					return fmt.Errorf("none answered 200 in the %s since the node went down", time.Since(down).Round(time.Millisecond))
				}
				return nil
			})
			recovered := ld.firstOKSince(down)
			// Shape: keep the load going loadAfter past the loss, and at
			// least a second past the recovery.
			time.Sleep(max(time.Until(lost.Add(loadAfter)), time.Until(recovered.Add(time.Second))))
			results := ld.stop()
			t.Logf("after the loss: %s", p.layout(t))

			p.waitDrained(t)
			decisions := p.readDecisions(t)
			checkNoLoss(t, p, results, obs.attempts(t), decisions, lost, recovered)
			p.checkNoDeadLetters(t)
			checkRotate(t, p, proj)
			if err := p.err(); err != nil {
				t.Errorf("a role stopped: %v", err)
			}
		})
	}
}

// pipeline is the cluster and the roles running on it.
type pipeline struct {
	cluster *stacktest.Cluster
	urls    string
	// nc and js are the test's own client, connected to every node.
	nc *nats.Conn
	js jetstream.JetStream
	// conns are the roles' connections, by role.
	conns       map[string]*nats.Conn
	verifiers   []*verifier.Verifier
	ingressAddr string

	mu   sync.Mutex
	errs []error
}

// startPipeline starts the cluster, the streams with three replicas and the
// roles: two verifiers, a rotator and an ingress, each on its own connection
// to every node. Everything stops when the test ends.
func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	log := stacktest.Logger(t)
	c := stacktest.StartCluster(t, clusterNodes)
	p := &pipeline{cluster: c, urls: c.URLs(), conns: map[string]*nats.Conn{}}
	p.js = p.connect(t, "test")
	p.nc = p.js.Conn()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.Ensure(ctx, p.js, bus.Topology{Replicas: clusterNodes}); err != nil {
		t.Fatalf("ensure the streams with %d replicas: %v", clusterNodes, err)
	}

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sealer, err := project.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("verifier-%d", i)
		p.connect(t, name)
		v, err := verifier.New(verifier.Config{NATS: p.conns[name], Sealer: sealer, Instance: name, AckWait: verifierAckWait}, log)
		if err != nil {
			t.Fatal(err)
		}
		p.verifiers = append(p.verifiers, v)
		p.run(t, name, v.Run)
	}
	p.connect(t, "rotator")
	rot, err := rotator.New(rotator.Config{NATS: p.conns["rotator"], Sealer: sealer, Instance: "rotator"}, log)
	if err != nil {
		t.Fatal(err)
	}
	p.run(t, "rotator", rot.Run)
	p.connect(t, "ingress")
	in, err := ingress.New(ingress.Config{NATS: p.conns["ingress"], Listen: "127.0.0.1:0", Instance: "ingress", Limits: ingress.NoLimits}, log)
	if err != nil {
		t.Fatal(err)
	}
	p.run(t, "ingress", in.Run)
	select {
	case <-in.Listening():
		p.ingressAddr = in.Addr()
	case <-time.After(time.Minute):
		t.Fatalf("the ingress does not listen after a minute: %v", p.err())
	}
	stacktest.Eventually(t, time.Minute, "every verifier decides", func() error {
		for _, v := range p.verifiers {
			if !v.Ready() {
				return fmt.Errorf("%s is not ready", v.Instance())
			}
		}
		return nil
	})
	return p
}

// connect opens a connection named role to every node, closed when the
// test ends; it returns a JetStream client of it.
func (p *pipeline) connect(t *testing.T, role string) jetstream.JetStream {
	t.Helper()
	nc, err := bus.Connect(bus.ConnConfig{URL: p.urls, Name: "hissuno-" + role}, stacktest.Logger(t).With().Str("conn", role).Logger())
	if err != nil {
		t.Fatalf("connect %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	if role != "test" {
		p.conns[role] = nc
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// run runs a role until the test ends. A role that stops before, or with
// an error, is recorded for p.err; one that does not stop within a minute
// of the end fails the test.
func (p *pipeline) run(t *testing.T, name string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := run(ctx)
		switch {
		case ctx.Err() == nil:
			p.fail(fmt.Errorf("%s returned while the test ran: %v", name, err))
		case err != nil:
			p.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Errorf("%s did not stop within a minute", name)
		}
	})
}

func (p *pipeline) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, err)
}

// err is what the roles stopped with, if any stopped.
func (p *pipeline) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) == 0 {
		return nil
	}
	msgs := make([]string, len(p.errs))
	for i, e := range p.errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// rolesPerNode counts the roles' connections by the node they use now.
func (p *pipeline) rolesPerNode() map[string]int {
	n := map[string]int{}
	for _, s := range p.cluster.Servers {
		if s.Running() {
			n[s.Name()] = 0
		}
	}
	for _, nc := range p.conns {
		if name := p.cluster.NameOf(nc.ConnectedUrl()); name != "" {
			n[name]++
		}
	}
	return n
}

// leaders names the nodes leading the meta group, the attempts stream and
// the verifiers' consumer ("" when unknown).
func (p *pipeline) leaders(t *testing.T) (meta, attempts, consumer string) {
	t.Helper()
	if l := p.cluster.MetaLeader(); l != nil {
		meta = l.Name()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.js.Stream(ctx, events.StreamAttempts)
	if err != nil {
		return meta, "", ""
	}
	if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
		attempts = info.Cluster.Leader
	}
	c, err := s.Consumer(ctx, events.ConsumerVerifiers)
	if err != nil {
		return meta, attempts, ""
	}
	if info, err := c.Info(ctx); err == nil && info.Cluster != nil {
		consumer = info.Cluster.Leader
	}
	return meta, attempts, consumer
}

// layout describes where the roles are connected and who leads, for logs.
func (p *pipeline) layout(t *testing.T) string {
	t.Helper()
	per := p.rolesPerNode()
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("roles per node:")
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, per[n])
	}
	meta, attempts, consumer := p.leaders(t)
	fmt.Fprintf(&b, "; leaders: meta %s, %s %s, consumer %s %s", meta, events.StreamAttempts, attempts, events.ConsumerVerifiers, consumer)
	return b.String()
}

// pickLeastUsed is the node fewest roles are connected to, preferring one
// that does not lead the attempts stream: the loss of a follower.
func pickLeastUsed(t *testing.T, p *pipeline) *server.Server {
	t.Helper()
	per := p.rolesPerNode()
	_, leader, _ := p.leaders(t)
	var best *server.Server
	score := func(s *server.Server) int {
		n := per[s.Name()]
		if s.Name() == leader {
			n += 100
		}
		return n
	}
	for _, s := range p.cluster.Servers {
		if best == nil || score(s) < score(best) {
			best = s
		}
	}
	return best
}

// pickMostUsed is the node most roles are connected to: they all lose their
// connection and fail over.
func pickMostUsed(t *testing.T, p *pipeline) *server.Server {
	t.Helper()
	per := p.rolesPerNode()
	var best *server.Server
	for _, s := range p.cluster.Servers {
		if best == nil || per[s.Name()] > per[best.Name()] {
			best = s
		}
	}
	return best
}

// pickAttemptsLeader is the node leading the attempts stream.
func pickAttemptsLeader(t *testing.T, p *pipeline) *server.Server {
	t.Helper()
	var s *server.Server
	stacktest.Eventually(t, 30*time.Second, "the attempts stream has a leader", func() error {
		_, leader, _ := p.leaders(t)
		if s = p.cluster.Server(leader); s == nil {
			return fmt.Errorf("the stream's leader is %q, no node of the cluster", leader)
		}
		return nil
	})
	return s
}

// testProject is a project as its admin knows it.
type testProject struct {
	ID     string
	Secret string
}

// keyAnswer is the --json answer of `project create` and `project rotate`.
type keyAnswer struct {
	ProjectID   string              `json:"projectId"`
	SecretKey   string              `json:"secretKey"`
	KeyVersion  int                 `json:"keyVersion"`
	Project     *events.ProjectView `json:"project"`
	Confirmed   []string            `json:"confirmed"`
	Unconfirmed []string            `json:"unconfirmed"`
}

// runCLI runs `hissuno ARGS… --json --nats URLS` in-process and decodes its
// answer; a non-zero exit fails the test.
func runCLI(t *testing.T, p *pipeline, args ...string) keyAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	args = append(args, "--json", "--timeout", "45s", "--nats", p.urls)
	code := cli.Run(cli.Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	if code != 0 {
		t.Fatalf("hissuno %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	var a keyAnswer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("hissuno %s: --json output is not JSON: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	if a.ProjectID == "" || !strings.HasPrefix(a.SecretKey, "sk_live_") {
		t.Fatalf("hissuno %s: no projectId or secretKey in %s", strings.Join(args, " "), out.String())
	}
	return a
}

// createProject creates a project that requires a token and allows any
// origin.
func createProject(t *testing.T, p *pipeline) testProject {
	t.Helper()
	a := runCLI(t, p, "project", "create", "--name", "cluster", "--require-token")
	return testProject{ID: a.ProjectID, Secret: a.SecretKey}
}

// mint signs a token of userID, valid for an hour, as a customer's backend
// does.
func mint(t testing.TB, secret, userID string) string {
	t.Helper()
	return stacktest.Mint(t, secret, widgettoken.For(userID, nil, time.Now(), time.Hour))
}

// result is one HTTP request of the load and its answer.
type result struct {
	n          int64
	start, end time.Time
	status     int // 0: no HTTP answer
	decision   events.Outcome
	decisionID string
	err        string
}

// load is the widgets' continuous HTTP load.
type load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []result
}

// startLoad starts loadClients widgets, each sending connect requests with
// a valid token one after another until stop.
func startLoad(t *testing.T, addr string, proj testProject) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients}
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	var seq atomic.Int64
	url := "http://" + addr + ingress.ConnectPath
	for i := 0; i < loadClients; i++ {
		body, err := json.Marshal(map[string]string{"projectId": proj.ID, "widgetToken": mint(t, proj.Secret, fmt.Sprintf("user-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				r := send(client, url, body, seq.Add(1))
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				time.Sleep(loadPause) // shape the load
			}
		}()
	}
	t.Cleanup(func() { l.stop(); tr.CloseIdleConnections() })
	return l
}

// send sends request n and reads its answer.
func send(client *http.Client, url string, body []byte, n int64) (r result) {
	r = result{n: n, start: time.Now()}
	defer func() { r.end = time.Now() }()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		r.err = err.Error()
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", testOrigin)
	req.Header.Set("User-Agent", fmt.Sprintf("%s%d", userAgentPrefix, n))
	resp, err := client.Do(req)
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r.status = resp.StatusCode
	if err != nil {
		r.err = err.Error()
		return r
	}
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode >= 500 {
		var e ingress.ErrorResponse
		_ = json.Unmarshal(raw, &e)
		r.err = e.Error
		return r
	}
	var a ingress.Response
	if err := json.Unmarshal(raw, &a); err != nil {
		r.err = fmt.Sprintf("answer is not JSON: %v: %s", err, raw)
		return r
	}
	r.decision, r.decisionID = a.Decision, a.DecisionID
	return r
}

// okSince counts the requests sent after since that were answered 200.
func (l *load) okSince(since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if r.status == http.StatusOK && !r.start.Before(since) {
			n++
		}
	}
	return n
}

// firstOKSince is when the first request sent after since was answered 200.
func (l *load) firstOKSince(since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, r := range l.results {
		if r.status == http.StatusOK && !r.start.Before(since) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first
}

// stop ends the load, waits for the requests in flight and returns every
// result.
func (l *load) stop() []result {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.results...)
}

// observer records every attempt published on the bus (core NATS), with a
// subscription on every node so that the loss of one misses nothing.
type observer struct {
	mu sync.Mutex
	// byID maps an attempt id to its request's number.
	byID map[string]int64
	bad  []string
}

func observeAttempts(t *testing.T, c *stacktest.Cluster) *observer {
	t.Helper()
	o := &observer{byID: map[string]int64{}}
	for _, s := range c.Servers {
		nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect(), nats.Name("hissuno-test-observer"))
		if err != nil {
			t.Fatalf("observer on %s: %v", s.Name(), err)
		}
		t.Cleanup(nc.Close)
		sub, err := nc.Subscribe(events.SubjectAttempts+".>", o.record)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func (o *observer) record(m *nats.Msg) {
	var a events.Attempt
	err := json.Unmarshal(m.Data, &a)
	var n int64
	if err == nil {
		_, err = fmt.Sscanf(strings.TrimPrefix(a.UserAgent, userAgentPrefix), "%d", &n)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil || a.AttemptID == "" {
		o.bad = append(o.bad, string(m.Data))
		return
	}
	o.byID[a.AttemptID] = n
}

// attempts returns the attempts seen, by id, with their request's number.
func (o *observer) attempts(t *testing.T) map[string]int64 {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.bad) > 0 {
		t.Errorf("attempts not understood: %q", o.bad)
	}
	out := make(map[string]int64, len(o.byID))
	for id, n := range o.byID {
		out[id] = n
	}
	return out
}

// waitDrained waits until no attempt waits in the work queue.
func (p *pipeline) waitDrained(t *testing.T) {
	t.Helper()
	start := time.Now()
	var last jetstream.StreamState
	stacktest.Eventually(t, drainTimeout, "the attempts work queue empties", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := p.js.Stream(ctx, events.StreamAttempts)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		last = info.State
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d attempts left", info.State.Msgs)
		}
		return nil
	})
	t.Logf("attempts work queue empty %s after the load stopped; %d attempts stored in all", time.Since(start).Round(time.Millisecond), last.LastSeq)
}

// streamState is a stream's state now.
func (p *pipeline) streamState(t *testing.T, name string) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := p.js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return info.State
}

// readDecisions reads every decision stored.
func (p *pipeline) readDecisions(t *testing.T) []events.Decision {
	t.Helper()
	var out []events.Decision
	for _, m := range stacktest.ReadStream(t, p.js, events.StreamDecisions) {
		var d events.Decision
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			t.Fatalf("a stored decision is not JSON: %v: %s", err, m.Data())
		}
		out = append(out, d)
	}
	return out
}

// checkNoDeadLetters asserts that no attempt was given up on.
func (p *pipeline) checkNoDeadLetters(t *testing.T) {
	t.Helper()
	if st := p.streamState(t, events.StreamDeadLetter); st.Msgs != 0 {
		t.Errorf("%d messages were dead-lettered during the loss: they are never decided", st.Msgs)
	}
}

// checkNoLoss checks the load's answers and the stored decisions: no
// attempt lost or decided twice, every answer 200 but 503s while leaders
// were elected, and every 503 whose attempt was stored decided later.
func checkNoLoss(t *testing.T, p *pipeline, results []result, published map[string]int64, decisions []events.Decision, lost, recovered time.Time) {
	t.Helper()
	// Decisions: one per attempt, each for an attempt the bus carried.
	decided := map[string]events.Decision{}
	for _, d := range decisions {
		if prev, dup := decided[d.AttemptID]; dup {
			t.Errorf("attempt %s decided twice: %s by %s at %s, and %s by %s at %s", d.AttemptID, prev.DecisionID, prev.Verifier, prev.Time, d.DecisionID, d.Verifier, d.Time)
		}
		decided[d.AttemptID] = d
		if d.DecisionID != events.DecisionIDFor(d.AttemptID) {
			t.Errorf("decision %s of attempt %s: want id %s", d.DecisionID, d.AttemptID, events.DecisionIDFor(d.AttemptID))
		}
		if d.Decision != events.OutcomeAccept {
			t.Errorf("attempt %s refused (%s %s: %s): every token of the load is valid", d.AttemptID, d.Decision, d.Reason, d.Message)
		}
		if _, ok := published[d.AttemptID]; !ok {
			t.Errorf("attempt %s decided but never seen on %s", d.AttemptID, events.SubjectAttempts)
		}
	}
	// Every attempt JetStream stored was decided: the work queue is empty,
	// and it stored as many attempts as there are decisions.
	if st := p.streamState(t, events.StreamAttempts); st.LastSeq != uint64(len(decided)) {
		t.Errorf("%s stored %d attempts, %d were decided: %d lost", events.StreamAttempts, st.LastSeq, len(decided), int64(st.LastSeq)-int64(len(decided)))
	}

	attemptOf := map[int64][]string{}
	for id, n := range published {
		attemptOf[n] = append(attemptOf[n], id)
	}
	var ok, unavailable, notStored, decidedLate, before, during, after int
	var firstBad, lastBad time.Time
	why := map[string]int{}
	for _, r := range results {
		ids := attemptOf[r.n]
		switch {
		case r.status == http.StatusOK:
			ok++
			switch {
			case r.end.Before(lost):
				before++
			case r.start.Before(recovered):
				during++
			default:
				after++
			}
			if r.decision != events.OutcomeAccept {
				t.Errorf("request %d: 200 with decision %q", r.n, r.decision)
			}
			attempt := strings.TrimPrefix(r.decisionID, "dec_")
			if _, ok := decided[attempt]; !ok {
				t.Errorf("request %d answered 200 (%s), but no decision is stored for it", r.n, r.decisionID)
			}
			if len(ids) != 1 || ids[0] != attempt {
				t.Errorf("request %d answered %s; the bus carried attempts %v for it", r.n, r.decisionID, ids)
			}
		case r.status == http.StatusServiceUnavailable:
			unavailable++
			why[r.err]++
			if firstBad.IsZero() || r.start.Before(firstBad) {
				firstBad = r.start
			}
			if r.end.After(lastBad) {
				lastBad = r.end
			}
			stored, detail := false, "never decided"
			for _, id := range ids {
				if d, ok := decided[id]; ok {
					stored = true
					detail = fmt.Sprintf("decided by %s %s after it was received", d.Verifier, d.Time.Sub(d.ReceivedAt).Round(time.Millisecond))
				}
			}
			if r.end.Before(lost) || r.start.After(lost.Add(electionBound)) {
				t.Errorf("request %d sent %s after the loss answered 503 (%s; %s): only the %s of leader election may", r.n, r.start.Sub(lost).Round(time.Millisecond), r.err, detail, electionBound)
			}
			switch {
			case stored:
				decidedLate++
			case strings.HasPrefix(r.err, notQueued):
				// JetStream never acknowledged it and the stream count
				// above shows it was not stored: the widget retries.
				notStored++
			default:
				t.Errorf("request %d answered 503 (%s) after its attempt %v was stored, but it was never decided", r.n, r.err, ids)
			}
		default:
			t.Errorf("request %d sent %s after the loss: status %d, %s", r.n, r.start.Sub(lost).Round(time.Millisecond), r.status, r.err)
		}
	}
	for id, n := range published {
		if _, ok := decided[id]; !ok && !isNotQueued(results, n) {
			t.Errorf("attempt %s (request %d) was published and never decided", id, n)
		}
	}
	t.Logf("%d requests: %d answered 200 (%d before the loss, %d during, %d after the recovery), %d answered 503 (%d decided later, %d never stored, the widget retries)",
		len(results), ok, before, during, after, unavailable, decidedLate, notStored)
	perVerifier, perVerifierAfter := map[string]int{}, map[string]int{}
	for _, d := range decisions {
		perVerifier[d.Verifier]++
		if d.Time.After(recovered) {
			perVerifierAfter[d.Verifier]++
		}
	}
	t.Logf("%d attempts seen on the bus, %d decisions stored; by verifier %v, after the recovery %v", len(published), len(decisions), perVerifier, perVerifierAfter)
	t.Logf("failover: the first request sent after the loss was answered 200 %s after the node began to stop", recovered.Sub(lost).Round(time.Millisecond))
	if unavailable > 0 {
		t.Logf("503s from requests sent %s to %s after the loss: %v", firstBad.Sub(lost).Round(time.Millisecond), lastBad.Sub(lost).Round(time.Millisecond), why)
	}
}

// isNotQueued reports whether request n was answered 503 because JetStream
// did not acknowledge its attempt.
func isNotQueued(results []result, n int64) bool {
	for _, r := range results {
		if r.n == n {
			return r.status == http.StatusServiceUnavailable && strings.HasPrefix(r.err, notQueued)
		}
	}
	return false
}

// checkRotate rotates the project's key with a node gone (compare-and-set
// on the three-replica bucket), waits until every verifier holds the new
// revision, and checks the new key verifies and the retired one no longer
// does.
func checkRotate(t *testing.T, p *pipeline, proj testProject) {
	t.Helper()
	start := time.Now()
	a := runCLI(t, p, "project", "rotate", proj.ID)
	t.Logf("project rotate with a node gone took %s; confirmed by %v, unconfirmed %v", time.Since(start).Round(time.Millisecond), a.Confirmed, a.Unconfirmed)
	if a.KeyVersion != 2 || a.SecretKey == proj.Secret || a.Project == nil {
		t.Fatalf("rotate: key version %d, want 2 and a new key", a.KeyVersion)
	}
	// Known (issue 6): a verifier whose KV watch consumer lived on the lost
	// node holds a frozen view until nats.go misses two 5 s heartbeats and
	// replaces the watch, so it may not confirm in time; and the rotator's
	// 50 ms discovery window sometimes misses a verifier on a busy machine.
	// Neither is a wrong decision: an unconfirmed verifier refuses the
	// project until it catches up. What must hold is that every verifier
	// catches up.
	if len(a.Confirmed)+len(a.Unconfirmed) != len(p.verifiers) {
		t.Logf("rotate: the rotator asked only %d of the %d verifiers (confirmed %v, unconfirmed %v)", len(a.Confirmed)+len(a.Unconfirmed), len(p.verifiers), a.Confirmed, a.Unconfirmed)
	}
	for _, v := range p.verifiers {
		var rev uint64
		stacktest.Eventually(t, viewCatchUp, v.Instance()+" holds the rotation", func() error {
			if rev = p.verifierRevision(t, v.Instance()); rev < a.Project.Revision {
				return fmt.Errorf("it holds revision %d, the rotation made %d", rev, a.Project.Revision)
			}
			return nil
		})
		t.Logf("%s holds revision %d %s after the rotate began", v.Instance(), rev, time.Since(start).Round(time.Millisecond))
	}
	url := "http://" + p.ingressAddr + ingress.ConnectPath
	client := &http.Client{Timeout: 30 * time.Second}
	for _, tc := range []struct {
		name   string
		secret string
		want   int
	}{
		{name: "a token of the new key", secret: a.SecretKey, want: http.StatusOK},
		{name: "a token of the retired key", secret: proj.Secret, want: http.StatusUnauthorized},
	} {
		body, err := json.Marshal(map[string]string{"projectId": proj.ID, "widgetToken": mint(t, tc.secret, "after-rotate")})
		if err != nil {
			t.Fatal(err)
		}
		if r := send(client, url, body, 0); r.status != tc.want {
			t.Errorf("after the rotation, %s: status %d (%s), want %d", tc.name, r.status, r.err, tc.want)
		}
	}
}

// verifierRevision asks a verifier's status endpoint for the last bucket
// revision its view holds; 0 when it does not answer.
func (p *pipeline) verifierRevision(t *testing.T, instance string) uint64 {
	t.Helper()
	m, err := p.nc.Request("hissuno.verifier."+instance+".status", nil, 2*time.Second)
	if err != nil {
		return 0
	}
	var st struct {
		Revision uint64 `json:"revision"`
	}
	if err := json.Unmarshal(m.Data, &st); err != nil {
		t.Fatalf("status of %s: %v: %s", instance, err, m.Data)
	}
	return st.Revision
}

package main

// End-to-end proofs of issue 5, "Rotation that bites at once", with real
// processes (the harness of e2e_test.go): three verifier processes, an
// ingress and a rotator against an embedded JetStream server, driven by the
// CLI and HTTP as admins and widgets do.
//
// What they prove, from the decisions the verifiers stored:
//   - after `hissuno project rotate` returns, no verifier accepts the old key;
//   - with --grace, the old key verifies until the deadline (server time) and
//     never after it, at every verifier;
//   - a verifier restarting around a rotation comes back with the new key;
//   - concurrent rotations serialize, a redelivered rotation applies once;
//   - revoke-user refuses the user's earlier tokens, and only those;
//   - the rotation latency, from the command to its answer (logged);
//   - a verifier frozen (SIGSTOP) during a rotation is named, and does not
//     accept the retired key once thawed.
//
// Helpers here are prefixed rot so that they cannot clash with e2e_test.go's.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/redact"
)

// rotVerifierNames are the three verifier instances of every test here.
var rotVerifierNames = []string{"rot-verifier-1", "rot-verifier-2", "rot-verifier-3"}

// rotAnswer is the --json answer of `hissuno project rotate`.
type rotAnswer struct {
	ProjectID      string   `json:"projectId"`
	SecretKey      string   `json:"secretKey"`
	KeyVersion     int      `json:"keyVersion"`
	Confirmed      []string `json:"confirmed"`
	Unconfirmed    []string `json:"unconfirmed"`
	AlreadyApplied bool     `json:"alreadyApplied"`
}

// rotRun is one CLI invocation, timed from the start of its process to its
// exit.
type rotRun struct {
	cliResult
	start, end time.Time
	err        error // the process could not run at all
}

func (r rotRun) took() time.Duration { return r.end.Sub(r.start) }

// rotExec runs `hissuno ARGS --nats URL` and times it. It does not touch
// the test, so any goroutine may call it.
func (e *e2e) rotExec(args ...string) rotRun {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append(slices.Clone(args), "--nats", e.url)...)
	cmd.Env = e.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := rotRun{start: time.Now()}
	err := cmd.Run()
	r.end = time.Now()
	r.stdout, r.stderr = stdout.String(), stderr.String()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.err = err
	}
	e.mu.Lock()
	e.cliStderr = append(e.cliStderr, r.stderr)
	e.mu.Unlock()
	return r
}

// rotParse checks that a `project rotate --json` run succeeded and returns
// its answer.
func (e *e2e) rotParse(r rotRun) rotAnswer {
	e.t.Helper()
	if r.err != nil || r.code != 0 {
		e.t.Fatalf("hissuno project rotate: exit %d (%v)\nstdout: %s\nstderr: %s", r.code, r.err, redact.String(r.stdout), r.stderr)
	}
	var a rotAnswer
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || a.ProjectID == "" || !strings.HasPrefix(a.SecretKey, "sk_live_") {
		e.t.Fatalf("project rotate --json: an answer without projectId and secretKey (%v): %s", err, redact.String(r.stdout))
	}
	return a
}

// rotRotate runs `hissuno project rotate ID --json EXTRA...` and returns its
// answer and its timing.
func (e *e2e) rotRotate(projectID string, extra ...string) (rotAnswer, rotRun) {
	e.t.Helper()
	r := e.rotExec(append([]string{"project", "rotate", projectID, "--json"}, extra...)...)
	return e.rotParse(r), r
}

// rotCheckConfirmedByAll asserts that a rotation's answer names every
// verifier in want as confirmed and none as unconfirmed.
func rotCheckConfirmedByAll(t *testing.T, what string, a rotAnswer, want []string) {
	t.Helper()
	got := slices.Sorted(slices.Values(a.Confirmed))
	if !slices.Equal(got, slices.Sorted(slices.Values(want))) || len(a.Unconfirmed) > 0 {
		t.Errorf("%s: confirmed %v, unconfirmed %v; want confirmed exactly %v and none unconfirmed", what, a.Confirmed, a.Unconfirmed, want)
	}
}

// rotProject reads a project with `hissuno project get ID --json`.
func (e *e2e) rotProject(projectID string) events.ProjectView {
	e.t.Helper()
	r := e.mustCLI("project", "get", projectID, "--json")
	var v events.ProjectView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.ProjectID != projectID {
		e.t.Fatalf("project get --json: not a project view of %s (%v): %s", projectID, err, r.stdout)
	}
	return v
}

// rotSystem starts an ingress, a rotator (with rotatorArgs) and the three
// verifiers, creates a project that requires tokens, and records every
// decision from now on.
func rotSystem(t *testing.T, rotatorArgs ...string) (e *e2e, in *proc, verifiers []*proc, p keyAnswer, decisions *decisionLog) {
	t.Helper()
	e = newE2E(t)
	in = e.startIngress("rot-ingress")
	e.start("rot-rotator", "rotator", rotatorArgs...)
	e.waitService(events.ServiceRotator, "rot-rotator")
	verifiers = e.startVerifiers(rotVerifierNames)
	p = e.createProject(t.Name(), true)
	decisions = e.recordDecisions()
	return e, in, verifiers, p, decisions
}

// rotFingerprints is the set of the tokens' fingerprints, as decisions
// carry them.
func rotFingerprints(tokens ...string) map[string]bool {
	out := map[string]bool{}
	for _, tok := range tokens {
		out[redact.Fingerprint(tok)] = true
	}
	return out
}

// rotMintN mints n tokens with key, one per user prefix-0 … prefix-(n-1),
// issued now and valid for an hour.
func rotMintN(t *testing.T, key, prefix string, n int) []string {
	t.Helper()
	now := time.Now()
	out := make([]string, n)
	for i := range out {
		out[i] = mint(t, key, fmt.Sprintf("%s-%d", prefix, i), now, now.Add(time.Hour))
	}
	return out
}

// rotWant is the outcome every request of a rotAtEveryVerifier check must
// get, at the ingress and in the stored decision.
type rotWant struct {
	status     int
	reason     events.Reason
	keyVersion int // of an accept
}

func (w rotWant) String() string {
	if w.status == http.StatusOK {
		return fmt.Sprintf("200 accept with key version %d", w.keyVersion)
	}
	return fmt.Sprintf("%d %s", w.status, w.reason)
}

func (w rotWant) decision(d events.Decision) bool {
	if w.status == http.StatusOK {
		return d.Decision == events.OutcomeAccept && d.KeyVersion == w.keyVersion
	}
	return d.Decision != events.OutcomeAccept && d.Reason == w.reason
}

// rotAtEveryVerifier sends the tokens through the ingress, again and again,
// until each verifier in names has decided at least perVerifier of them;
// every answer, and every decision on these tokens by any verifier from now
// on, must be want.
func (e *e2e) rotAtEveryVerifier(addr, projectID string, decisions *decisionLog, names []string, perVerifier int, what string, want rotWant, tokens ...string) map[string]int {
	t := e.t
	t.Helper()
	since := time.Now()
	fps := rotFingerprints(tokens...)
	errs := 0
	byVerifier := map[string]int{}
	checked := map[string]bool{} // decision ids already checked
	count := func() bool {
		byVerifier = map[string]int{}
		for _, d := range decisions.all() {
			if d.ProjectID != projectID || !fps[d.TokenFingerprint] || d.Time.Before(since) {
				continue
			}
			byVerifier[d.Verifier]++
			seen := checked[d.DecisionID]
			checked[d.DecisionID] = true
			if !seen && !want.decision(d) && errs < 10 {
				errs++
				t.Errorf("%s: %s decided %s %s (key version %d) at %s, want %s", what, d.Verifier, d.Decision, d.Reason, d.KeyVersion, d.Time.Format(time.StampMilli), want)
			}
		}
		for _, n := range names {
			if byVerifier[n] < perVerifier {
				return false
			}
		}
		return true
	}
	rounds := 0
	deadline := time.Now().Add(60 * time.Second)
	for !count() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s: each of %v deciding %d requests (decisions by verifier: %v)", what, names, perVerifier, byVerifier)
		}
		e.rotCheckRunning()
		rounds++
		var wg sync.WaitGroup
		answers := make([]answer, len(tokens)*2)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = e.post(addr, request{projectID: projectID, token: tokens[i%len(tokens)]})
			}()
		}
		wg.Wait()
		for _, a := range answers {
			ok := a.err == nil && a.status == want.status && a.body.Reason == string(want.reason)
			if want.status == http.StatusOK {
				ok = ok && a.body.Decision == string(events.OutcomeAccept)
			}
			if !ok && errs < 10 {
				errs++
				t.Errorf("%s: answer %d %+v (%v), want %s", what, a.status, a.body, a.err, want)
			}
		}
	}
	t.Logf("%s: %s at every verifier (%d rounds; decisions by verifier %v)", what, want, rounds, byVerifier)
	return byVerifier
}

// rotCheckRunning fails the test when a role process exited unexpectedly.
func (e *e2e) rotCheckRunning() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		if p.exited() && !p.expected() {
			e.t.Fatalf("%s exited with %v; its stderr ends with:\n%s", p.name, p.cmd.ProcessState, tail(p.stderrPath, 20))
		}
	}
}

// rotAdminEvents reads the admin events of a kind recorded for a project.
func (e *e2e) rotAdminEvents(kind events.AdminEventKind, projectID string) []events.AdminEvent {
	e.t.Helper()
	var out []events.AdminEvent
	for _, m := range e.readStream(events.StreamAdmin) {
		if m.Subject() != kind.Subject() {
			continue
		}
		var ev events.AdminEvent
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			e.t.Fatalf("an admin event on %s is not JSON: %v: %s", m.Subject(), err, m.Data())
		}
		if ev.ProjectID == projectID {
			out = append(out, ev)
		}
	}
	return out
}

// rotAdminConn is an admin client's connection: its inboxes are under the
// admin prefix, where the rotator's answers (which carry keys) go.
func (e *e2e) rotAdminConn() *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(e.url, nats.CustomInboxPrefix(events.AdminInboxPrefix), nats.Name("rotation-e2e-admin"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// rotCommand is a rotate command as `hissuno project rotate` builds it,
// with the answer key that opens the new key in its answer.
func rotCommand(t *testing.T, projectID string) (events.Command, *admin.AnswerKey) {
	t.Helper()
	key, err := admin.NewAnswerKey()
	if err != nil {
		t.Fatal(err)
	}
	cmd := admin.NewCommand(events.CommandRotateKey, projectID, "rotation-e2e-test")
	cmd.ReplyKey = key.Public()
	return cmd, key
}

// rotPublish stores cmd in JetStream with the given Nats-Msg-Id, asking for
// the answer on replyTo.
func rotPublish(ctx context.Context, nc *nats.Conn, cmd events.Command, msgID, replyTo string) error {
	body, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	m := nats.NewMsg(cmd.Kind.SubjectFrom(events.SourceAdmin))
	m.Data = body
	m.Header.Set(events.HeaderMsgID, msgID)
	m.Header.Set(events.HeaderReplyTo, replyTo)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return fmt.Errorf("publish command %s: %w", cmd.CommandID, err)
	}
	if ack.Duplicate {
		return fmt.Errorf("command %s with Nats-Msg-Id %s was taken for a duplicate by JetStream", cmd.CommandID, msgID)
	}
	return nil
}

// rotNextResult waits on sub for the answer to commandID and opens its key
// with the command's answer key.
func rotNextResult(ctx context.Context, sub *nats.Subscription, commandID string, key *admin.AnswerKey) (admin.Result, error) {
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return admin.Result{}, fmt.Errorf("no answer to %s: %w", commandID, err)
		}
		var res events.CommandResult
		if err := json.Unmarshal(m.Data, &res); err != nil {
			return admin.Result{}, fmt.Errorf("an answer that is not JSON: %w: %s", err, redact.String(string(m.Data)))
		}
		if res.CommandID == commandID {
			return key.Open(res)
		}
	}
}

// rotPercentile is the nearest-rank percentile p (0 < p ≤ 1) of sorted ds.
func rotPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func rotMs(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// rotLatencyLine is the ROTATION_LATENCY line of one way of rotating.
func rotLatencyLine(way string, ds []time.Duration) string {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("ROTATION_LATENCY %s n=%d p50=%s p99=%s max=%s min=%s ms", way, len(s), rotMs(rotPercentile(s, 0.50)), rotMs(rotPercentile(s, 0.99)), rotMs(s[len(s)-1]), rotMs(s[0]))
}

// TestRotationBitesAtOnce rotates a project's key under a continuous load
// of tokens signed with the old key, across three verifier processes: once
// `hissuno project rotate` has returned, no verifier accepts one.
func TestRotationBitesAtOnce(t *testing.T) {
	skipUnlessE2E(t)
	e, in, _, p, decisions := rotSystem(t)
	const clients = 12
	oldTokens := rotMintN(t, p.SecretKey, "user", clients)
	oldFP := rotFingerprints(oldTokens...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan []answer, 1)
	loadStart := time.Now()
	go func() {
		loaded <- load(ctx, clients, func(c int) answer {
			return e.post(in.addr, request{projectID: p.ProjectID, token: oldTokens[c]})
		})
	}()
	// The load is shared: every verifier accepts old-key tokens before the
	// rotation.
	e.eventually(30*time.Second, "every verifier accepted old-key tokens", func() error {
		seen := map[string]bool{}
		for _, d := range decisions.all() {
			if d.Decision == events.OutcomeAccept && oldFP[d.TokenFingerprint] {
				seen[d.Verifier] = true
			}
		}
		if len(seen) != len(rotVerifierNames) {
			return fmt.Errorf("%d of %d verifiers did: %v", len(seen), len(rotVerifierNames), slices.Sorted(maps.Keys(seen)))
		}
		return nil
	})
	time.Sleep(time.Second - time.Since(loadStart)) // shapes the load: rotate after about a second

	rot := e.rotExec("project", "rotate", p.ProjectID, "--json")
	returned := rot.end // the rotate process has exited
	a := e.rotParse(rot)
	time.Sleep(2 * time.Second) // shapes the load: two more seconds of old-key tokens
	cancel()
	answers := <-loaded

	if a.ProjectID != p.ProjectID || a.KeyVersion != 2 {
		t.Errorf("rotate answered project %s key version %d, want %s version 2", a.ProjectID, a.KeyVersion, p.ProjectID)
	}
	rotCheckConfirmedByAll(t, "rotate --json", a, rotVerifierNames)

	// What the browsers got: an accept, or 401 token_bad_signature; only
	// refusals for the requests sent after rotate returned.
	counts := map[string]int{}
	for _, ans := range answers {
		switch {
		case ans.err != nil:
			counts["no answer"]++
			t.Errorf("request at %s: no answer: %v", ans.start.Format(time.StampMilli), ans.err)
		case ans.status == http.StatusOK && ans.body.Decision == string(events.OutcomeAccept):
			counts["200"]++
			if ans.start.After(returned) {
				t.Errorf("a request sent %v after rotate returned was accepted with the old key (%s)", ans.start.Sub(returned), ans.body.DecisionID)
			}
		case ans.status == http.StatusUnauthorized && ans.body.Reason == string(events.ReasonTokenBadSignature):
			counts["401 token_bad_signature"]++
			if ans.end.Before(rot.start) {
				t.Errorf("an old-key token was refused %v before the rotation started (%s)", rot.start.Sub(ans.end), ans.body.DecisionID)
			}
		default:
			counts[fmt.Sprint(ans.status)]++
			t.Errorf("answer %d %+v, want 200 accept or 401 token_bad_signature", ans.status, ans.body)
		}
	}

	// What the verifiers decided, from the decisions stream.
	e.waitAttemptsDrained(drainTimeout)
	type tally struct{ acceptsBefore, acceptsDuring, lateAccepts, refusedAfter int }
	byVerifier := map[string]*tally{}
	for _, n := range rotVerifierNames {
		byVerifier[n] = &tally{}
	}
	var lastAccept time.Time
	firstRefusal := map[string]time.Time{}
	total := 0
	for _, d := range e.readDecisions() {
		if d.ProjectID != p.ProjectID || !oldFP[d.TokenFingerprint] {
			continue
		}
		total++
		tl := byVerifier[d.Verifier]
		if tl == nil {
			t.Errorf("a decision by %q, which is none of the three verifiers", d.Verifier)
			continue
		}
		accept := d.Decision == events.OutcomeAccept
		switch {
		case accept && d.KeyVersion != 1:
			t.Errorf("%s accepted an old-key token with key version %d (%s)", d.Verifier, d.KeyVersion, d.DecisionID)
		case !accept && d.Reason != events.ReasonTokenBadSignature:
			t.Errorf("%s refused an old-key token with %s, want token_bad_signature (%s)", d.Verifier, d.Reason, d.DecisionID)
		}
		switch {
		case accept && d.Time.After(returned):
			tl.lateAccepts++
			t.Errorf("%s ACCEPTED an old-key token at %s, %v after `project rotate` returned (%s)", d.Verifier, d.Time.Format(time.StampMicro), d.Time.Sub(returned), d.DecisionID)
		case accept && d.Time.Before(rot.start):
			tl.acceptsBefore++
		case accept:
			tl.acceptsDuring++
		case d.Time.After(returned):
			tl.refusedAfter++
		}
		if accept && d.Time.After(lastAccept) {
			lastAccept = d.Time
		}
		if !accept {
			if f, ok := firstRefusal[d.Verifier]; !ok || d.Time.Before(f) {
				firstRefusal[d.Verifier] = d.Time
			}
		}
	}
	late := 0
	for _, n := range rotVerifierNames {
		tl := byVerifier[n]
		late += tl.lateAccepts
		if tl.acceptsBefore == 0 {
			t.Errorf("%s accepted nothing before the rotation: the load was not shared", n)
		}
		if tl.refusedAfter == 0 {
			t.Errorf("%s decided no old-key token after rotate returned", n)
		}
		t.Logf("%s: %d old-key accepts before the rotation, %d while it ran, %d AFTER it returned; %d refusals after it returned; first refusal %v after the rotation started",
			n, tl.acceptsBefore, tl.acceptsDuring, tl.lateAccepts, tl.refusedAfter, firstRefusal[n].Sub(rot.start).Round(time.Millisecond))
	}
	t.Logf("requests %d %v; old-key decisions %d; rotate took %v (confirmed by %v); last old-key accept %v before rotate returned; accepts of old-key tokens after it returned: %d",
		len(answers), counts, total, rot.took().Round(time.Millisecond), a.Confirmed, returned.Sub(lastAccept).Round(time.Millisecond), late)

	// And, explicitly, each verifier refuses the old key from now on.
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 3, "old-key tokens after the rotation",
		rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature}, oldTokens[:4]...)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 3, "new-key tokens after the rotation",
		rotWant{status: http.StatusOK, keyVersion: 2}, rotMintN(t, a.SecretKey, "user", 4)...)
}

// TestRotationGrace rotates with --grace 2s under a load of old-key tokens:
// every verifier accepts them until the deadline (server time) and refuses
// them after; new-key tokens are accepted throughout.
func TestRotationGrace(t *testing.T) {
	skipUnlessE2E(t)
	e, in, _, p, decisions := rotSystem(t)
	const clients = 12
	oldTokens := rotMintN(t, p.SecretKey, "old", clients)
	oldFP := rotFingerprints(oldTokens...)
	var newTokens atomic.Pointer[[]string]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan []answer, 1)
	go func() {
		loaded <- load(ctx, clients, func(c int) answer {
			// Half the clients switch to the new key once rotate has printed it.
			if nt := newTokens.Load(); nt != nil && c%2 == 1 {
				return e.post(in.addr, request{projectID: p.ProjectID, token: (*nt)[c]})
			}
			return e.post(in.addr, request{projectID: p.ProjectID, token: oldTokens[c]})
		})
	}()
	time.Sleep(time.Second) // shapes the load: rotate after about a second

	a, rot := e.rotRotate(p.ProjectID, "--grace", "2s")
	returned := rot.end
	nt := rotMintN(t, a.SecretKey, "new", clients)
	newTokens.Store(&nt)
	newFP := rotFingerprints(nt...)
	if a.KeyVersion != 2 {
		t.Errorf("rotate --grace answered key version %d, want 2", a.KeyVersion)
	}
	rotCheckConfirmedByAll(t, "rotate --grace 2s --json", a, rotVerifierNames)

	var graceUntil time.Time
	view := e.rotProject(p.ProjectID)
	for _, k := range view.Keys {
		switch {
		case k.Version == 1 && k.ValidUntil != nil:
			graceUntil = *k.ValidUntil
		case k.Version == 2 && k.ValidUntil != nil:
			t.Errorf("the new key has a validUntil %s", k.ValidUntil)
		}
	}
	if graceUntil.IsZero() || view.KeyVersion != 2 || len(view.Keys) != 2 {
		t.Fatalf("project get after rotate --grace 2s: key version %d, keys %+v; want version 2 and key 1 with a validUntil", view.KeyVersion, view.Keys)
	}
	// By the rotator's clock (this machine's): now + 2 s, between the
	// command's start and its answer.
	if graceUntil.Before(rot.start.Add(2*time.Second)) || graceUntil.After(returned.Add(2*time.Second)) {
		t.Errorf("graceUntil %s is not 2 s after the rotation (which ran from %s to %s)", graceUntil.Format(time.StampMilli), rot.start.Format(time.StampMilli), returned.Format(time.StampMilli))
	}
	left := graceUntil.Sub(returned)
	// The load goes on past the deadline, so that every verifier refuses.
	e.eventually(30*time.Second, "the grace period is over", func() error {
		if left := time.Until(graceUntil.Add(1500 * time.Millisecond)); left >= 0 {
			return fmt.Errorf("%s to wait", left)
		}
		return nil
	})
	cancel()
	answers := <-loaded

	statuses := map[string]int{}
	for _, ans := range answers {
		switch {
		case ans.err != nil:
			t.Errorf("request at %s: no answer: %v", ans.start.Format(time.StampMilli), ans.err)
		case ans.status == http.StatusOK && ans.body.Decision == string(events.OutcomeAccept):
			statuses["200"]++
		case ans.status == http.StatusUnauthorized && ans.body.Reason == string(events.ReasonTokenBadSignature):
			statuses["401 token_bad_signature"]++
			if ans.end.Before(graceUntil) {
				t.Errorf("a token was refused %v before the grace deadline (%s)", graceUntil.Sub(ans.end), ans.body.DecisionID)
			}
		default:
			statuses[fmt.Sprint(ans.status)]++
			t.Errorf("answer %d %+v, want 200 accept or 401 token_bad_signature", ans.status, ans.body)
		}
	}

	e.waitAttemptsDrained(drainTimeout)
	type tally struct{ acceptsAfterReturn, refusalsAfterDeadline, newAccepts int }
	byVerifier := map[string]*tally{}
	for _, n := range rotVerifierNames {
		byVerifier[n] = &tally{}
	}
	var lastOldAccept, firstOldRefusal time.Time
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, d := range e.readDecisions() {
		if d.ProjectID != p.ProjectID {
			continue
		}
		tl := byVerifier[d.Verifier]
		if tl == nil {
			fail("a decision by %q, which is none of the three verifiers", d.Verifier)
			continue
		}
		accept := d.Decision == events.OutcomeAccept
		switch {
		case oldFP[d.TokenFingerprint]:
			if accept {
				if d.KeyVersion != 1 {
					fail("%s accepted an old-key token with key version %d (%s)", d.Verifier, d.KeyVersion, d.DecisionID)
				}
				if !d.Time.Before(graceUntil) {
					fail("%s ACCEPTED an old-key token at %s, %v after the grace deadline %s (%s)", d.Verifier, d.Time.Format(time.StampMicro), d.Time.Sub(graceUntil), graceUntil.Format(time.StampMicro), d.DecisionID)
				}
				if d.Time.After(returned) {
					tl.acceptsAfterReturn++
				}
				if d.Time.After(lastOldAccept) {
					lastOldAccept = d.Time
				}
				continue
			}
			if d.Reason != events.ReasonTokenBadSignature {
				fail("%s refused an old-key token with %s, want token_bad_signature (%s)", d.Verifier, d.Reason, d.DecisionID)
			}
			if d.Time.Before(graceUntil) {
				fail("%s refused an old-key token at %s, %v BEFORE the grace deadline (%s)", d.Verifier, d.Time.Format(time.StampMicro), graceUntil.Sub(d.Time), d.DecisionID)
			} else {
				tl.refusalsAfterDeadline++
			}
			if firstOldRefusal.IsZero() || d.Time.Before(firstOldRefusal) {
				firstOldRefusal = d.Time
			}
		case newFP[d.TokenFingerprint]:
			if !accept || d.KeyVersion != 2 {
				fail("%s decided a new-key token %s %s with key version %d, want an accept with version 2 (%s)", d.Verifier, d.Decision, d.Reason, d.KeyVersion, d.DecisionID)
			} else {
				tl.newAccepts++
			}
		default:
			fail("a decision on a token of neither key: %+v", d)
		}
	}
	for _, n := range rotVerifierNames {
		tl := byVerifier[n]
		if tl.acceptsAfterReturn == 0 {
			t.Errorf("%s accepted no old-key token between rotate's return and the grace deadline (%v of grace were left)", n, left.Round(time.Millisecond))
		}
		if tl.refusalsAfterDeadline == 0 {
			t.Errorf("%s refused no old-key token after the grace deadline", n)
		}
		if tl.newAccepts == 0 {
			t.Errorf("%s accepted no new-key token", n)
		}
		t.Logf("%s: %d old-key accepts after rotate returned, %d old-key refusals after the deadline, %d new-key accepts", n, tl.acceptsAfterReturn, tl.refusalsAfterDeadline, tl.newAccepts)
	}
	t.Logf("requests %d %v; rotate took %v, %v of grace left when it returned; last old-key accept %v before the deadline, first refusal %v after it",
		len(answers), statuses, rot.took().Round(time.Millisecond), left.Round(time.Millisecond), graceUntil.Sub(lastOldAccept), firstOldRefusal.Sub(graceUntil))

	// The grace is over for good at every verifier.
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "old-key tokens after the grace",
		rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature}, oldTokens[:3]...)
}

// TestRotationWhileAVerifierRestarts kills one of three verifiers, rotates
// while it is down, and starts it again: it comes back with the new key and
// never accepts the old one. Then the restart and the rotation race, at
// several offsets.
func TestRotationWhileAVerifierRestarts(t *testing.T) {
	skipUnlessE2E(t)
	e, in, vs, p, decisions := rotSystem(t, "--confirm-timeout", "30s")
	victimName := rotVerifierNames[2]
	victim := vs[2]
	keys := []string{p.SecretKey}
	oldTokens := rotMintN(t, p.SecretKey, "user", 6)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "key 1 before the restart",
		rotWant{status: http.StatusOK, keyVersion: 1}, oldTokens...)

	// restart starts the victim again under the same instance name (its log
	// file gets a name of its own).
	restarts := 0
	restart := func() *proc {
		restarts++
		return e.start(fmt.Sprintf("%s-run%d", victimName, restarts+1), "verifier", "--instance", victimName)
	}
	// victimGone is nil once the victim answers no PING.
	victimGone := func() error {
		for _, pg := range e.ping("$SRV.PING."+events.ServiceVerifier, 200*time.Millisecond) {
			if pg.Metadata["instance"] == victimName {
				return fmt.Errorf("%s still answers", victimName)
			}
		}
		return nil
	}
	// accepts counts the victim's accepts of the tokens since a time.
	victimAccepts := func(since time.Time, tokens []string) (accepts, decided int) {
		fps := rotFingerprints(tokens...)
		for _, d := range decisions.all() {
			if d.Verifier == victimName && d.ProjectID == p.ProjectID && fps[d.TokenFingerprint] && !d.Time.Before(since) {
				decided++
				if d.Decision == events.OutcomeAccept {
					accepts++
				}
			}
		}
		return accepts, decided
	}

	// 1. Down during the rotation.
	victim.kill(t)
	e.eventually(30*time.Second, victimName+" no longer answers $SRV.PING", victimGone)
	a, rot := e.rotRotate(p.ProjectID)
	keys = append(keys, a.SecretKey)
	// Killed a moment ago, the victim is still among the verifiers heard
	// from recently (its heartbeats stop; dead and stalled look the same):
	// it may be named unconfirmed, never confirmed.
	if slices.Contains(a.Confirmed, victimName) {
		t.Errorf("rotate says %s, which was down, confirmed: confirmed %v", victimName, a.Confirmed)
	}
	a.Unconfirmed = slices.DeleteFunc(a.Unconfirmed, func(v string) bool { return v == victimName })
	rotCheckConfirmedByAll(t, "rotate while "+victimName+" is down", a, rotVerifierNames[:2])
	restartAt := time.Now()
	victim = restart()
	e.waitService(events.ServiceVerifier, victimName)
	t.Logf("rotated in %v while %s was down; restarted it, answering $SRV.PING %v later", rot.took().Round(time.Millisecond), victimName, time.Since(restartAt).Round(time.Millisecond))
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, []string{victimName}, 20, "key 1 after a rotation during the restart",
		rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature}, oldTokens...)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "key 2 after a rotation during the restart",
		rotWant{status: http.StatusOK, keyVersion: 2}, rotMintN(t, a.SecretKey, "user", 6)...)
	if acc, n := victimAccepts(restartAt, oldTokens); acc > 0 || n == 0 {
		t.Errorf("%s after its restart: %d accepts of key-1 tokens among %d decisions on them; want none, and some decisions", victimName, acc, n)
	}

	// 2. Deterministic: the victim comes up while a rotation is under way.
	// A stand-in verifier of this test (a micro service answering $SRV.PING
	// as hissuno-verifier) holds its confirmation until the restarted
	// verifier is up and deciding: the rotation has written the bucket,
	// broadcast the invalidation and discovered its verifiers, and has not
	// answered yet. (The rotator waits up to --confirm-timeout 30s.)
	const heldName = "rot-held-verifier"
	held := make(chan events.SyncRequest, 1)
	release := make(chan struct{})
	var holdOnce, releaseOnce sync.Once
	releaseHeld := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseHeld)
	svc, err := micro.AddService(e.nc, micro.Config{Name: events.ServiceVerifier, Version: "1.0.0", Metadata: map[string]string{"instance": heldName}})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.AddEndpoint("sync", micro.HandlerFunc(func(r micro.Request) {
		var req events.SyncRequest
		_ = json.Unmarshal(r.Data(), &req)
		holdOnce.Do(func() {
			held <- req
			<-release
		})
		_ = r.RespondJSON(events.SyncReply{Verifier: heldName, Revision: req.Revision, OK: true})
	}), micro.WithEndpointSubject(events.SyncSubject(heldName)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	victim.kill(t)
	e.eventually(30*time.Second, victimName+" no longer answers $SRV.PING", victimGone)
	retired := rotMintN(t, keys[len(keys)-1], "held", 6)
	rotDone := make(chan rotRun, 1)
	go func() { rotDone <- e.rotExec("project", "rotate", p.ProjectID, "--json") }()
	var req events.SyncRequest
	select {
	case req = <-held:
	case r := <-rotDone:
		t.Fatalf("the rotation answered without asking %s to confirm: exit %d, %s %s", heldName, r.code, redact.String(r.stdout), r.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("the rotation did not ask %s to confirm within 30 s", heldName)
	}
	heldAt := time.Now()
	if v := e.rotProject(p.ProjectID); v.KeyVersion != len(keys)+1 || v.Revision != req.Revision {
		t.Fatalf("while the rotation waits: project at key version %d, revision %d; the sync request names revision %d", v.KeyVersion, v.Revision, req.Revision)
	}
	restartAt = time.Now()
	victim = restart()
	e.waitService(events.ServiceVerifier, victimName)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, []string{victimName}, 10, "the retired key while the rotation is under way",
		rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature}, retired...)
	select {
	case r := <-rotDone:
		t.Fatalf("the rotation answered while %s had not confirmed: %s", heldName, redact.String(r.stdout))
	default:
	}
	releaseHeld()
	r := <-rotDone
	a = e.rotParse(r)
	keys = append(keys, a.SecretKey)
	// The victim, restarted while the rotation was under way, was known
	// alive by its last heartbeats before the kill: it may be named
	// unconfirmed if its new run answered after the confirm timeout.
	a.Unconfirmed = slices.DeleteFunc(a.Unconfirmed, func(v string) bool { return v == victimName })
	a.Confirmed = slices.DeleteFunc(a.Confirmed, func(v string) bool { return v == victimName })
	rotCheckConfirmedByAll(t, "the rotation held open", a, append(slices.Clone(rotVerifierNames[:2]), heldName))
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, []string{victimName}, 3, "the key of the rotation held open",
		rotWant{status: http.StatusOK, keyVersion: a.KeyVersion}, rotMintN(t, a.SecretKey, "held", 3)...)
	if acc, n := victimAccepts(restartAt, retired); acc > 0 || n == 0 {
		t.Errorf("%s, restarted during the rotation: %d accepts of retired-key tokens among %d decisions on them; want none, and some decisions", victimName, acc, n)
	}
	t.Logf("the rotation held open for %v by %s: %s restarted in it and refused the retired key before the rotation answered (confirmed %v)",
		time.Since(heldAt).Round(time.Millisecond), heldName, victimName, a.Confirmed)

	// 3. The restart races the rotation. Which one wins depends on the
	// scheduler, so each offset of the verifier's start relative to the
	// rotate command's is tried; the property holds whatever the order: a
	// verifier that becomes discoverable before the rotator's discovery is
	// asked to confirm, and one that comes later catches up with the bucket
	// (the barrier) before it decides anything.
	offsets := []time.Duration{-300 * time.Millisecond, -100 * time.Millisecond, -30 * time.Millisecond, 0, 30 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond}
	named := 0
	for i, off := range offsets {
		victim.kill(t)
		e.eventually(30*time.Second, victimName+" no longer answers $SRV.PING", victimGone)
		prevKey := keys[len(keys)-1]
		prevTokens := rotMintN(t, prevKey, fmt.Sprintf("race%d", i), 6)

		rotDone := make(chan rotRun, 1)
		var restartAt time.Time
		if off < 0 {
			restartAt = time.Now()
			victim = restart()
			time.Sleep(-off) // shapes the race
			go func() { rotDone <- e.rotExec("project", "rotate", p.ProjectID, "--json") }()
		} else {
			go func() { rotDone <- e.rotExec("project", "rotate", p.ProjectID, "--json") }()
			time.Sleep(off) // shapes the race
			restartAt = time.Now()
			victim = restart()
		}
		r := <-rotDone
		a := e.rotParse(r)
		keys = append(keys, a.SecretKey)
		e.waitService(events.ServiceVerifier, victimName)
		where := "not asked (it came up after the rotator's discovery)"
		switch {
		case slices.Contains(a.Confirmed, victimName):
			where = "confirmed"
			named++
		case slices.Contains(a.Unconfirmed, victimName):
			where = "UNCONFIRMED"
			named++
		}
		t.Logf("race %d: %s started at %+v from the start of the rotate command (negative: before it), which took %v: %s (confirmed %v, unconfirmed %v)",
			i+1, victimName, restartAt.Sub(r.start).Round(time.Millisecond), r.took().Round(time.Millisecond), where, a.Confirmed, a.Unconfirmed)
		for _, n := range rotVerifierNames[:2] {
			if !slices.Contains(a.Confirmed, n) {
				t.Errorf("race %d: %s, up all along, did not confirm: confirmed %v, unconfirmed %v", i+1, n, a.Confirmed, a.Unconfirmed)
			}
		}
		e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, []string{victimName}, 10, fmt.Sprintf("race %d: the retired key", i+1),
			rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature}, prevTokens...)
		if acc, n := victimAccepts(restartAt, prevTokens); acc > 0 || n == 0 {
			t.Errorf("race %d: %s after its restart: %d accepts of retired-key tokens among %d decisions on them; want none, and some decisions", i+1, victimName, acc, n)
		}
		e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, []string{victimName}, 3, fmt.Sprintf("race %d: the new key", i+1),
			rotWant{status: http.StatusOK, keyVersion: a.KeyVersion}, rotMintN(t, a.SecretKey, fmt.Sprintf("race%d", i), 3)...)
	}
	t.Logf("in %d races, the restarted verifier was asked to confirm the rotation %d times", len(offsets), named)

	// Over the whole test: no verifier ever accepted a token signed with a
	// key after the rotation that retired it.
	e.waitAttemptsDrained(drainTimeout)
	accepts := map[int]int{}
	for _, d := range e.readDecisions() {
		if d.ProjectID == p.ProjectID && d.Decision == events.OutcomeAccept {
			accepts[d.KeyVersion]++
		}
	}
	t.Logf("accepts by key version over the test: %v", accepts)
}

// TestConcurrentRotations runs two `project rotate` at once: both succeed
// with versions 2 and 3, the final state has one key, both rotations are
// recorded, and only the final key verifies.
func TestConcurrentRotations(t *testing.T) {
	skipUnlessE2E(t)
	e, in, _, p, decisions := rotSystem(t)

	concurrently := func(n int) []rotRun {
		runs := make([]rotRun, n)
		var wg sync.WaitGroup
		for i := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs[i] = e.rotExec("project", "rotate", p.ProjectID, "--json")
			}()
		}
		wg.Wait()
		return runs
	}

	runs := concurrently(2)
	byVersion := map[int]rotAnswer{}
	for i, r := range runs {
		a := e.rotParse(r)
		byVersion[a.KeyVersion] = a
		rotCheckConfirmedByAll(t, fmt.Sprintf("rotation %d", i+1), a, rotVerifierNames)
		t.Logf("rotation %d: key version %d, %v (from %s)", i+1, a.KeyVersion, r.took().Round(time.Millisecond), r.start.Format(time.StampMilli))
	}
	if len(byVersion) != 2 || byVersion[2].SecretKey == "" || byVersion[3].SecretKey == "" {
		t.Fatalf("two concurrent rotations reported key versions %v, want 2 and 3", slices.Sorted(maps.Keys(byVersion)))
	}
	if byVersion[2].SecretKey == byVersion[3].SecretKey {
		t.Fatal("two rotations printed the same key")
	}
	view := e.rotProject(p.ProjectID)
	if view.KeyVersion != 3 || len(view.Keys) != 1 || view.Keys[0].Version != 3 || view.Keys[0].ValidUntil != nil {
		t.Errorf("project after two rotations: key version %d, keys %+v; want version 3 and only key 3, current", view.KeyVersion, view.Keys)
	}
	rotated := e.rotAdminEvents(events.AdminKeyRotated, p.ProjectID)
	var versions, previous []int
	for _, ev := range rotated {
		versions = append(versions, ev.KeyVersion)
		previous = append(previous, ev.PreviousKeyVersion)
		if ev.Actor == "" || ev.Time.IsZero() || ev.KeyFingerprint == "" || ev.CommandID == "" {
			t.Errorf("key.rotated event without actor, time, fingerprint or command id: %+v", ev)
		}
	}
	slices.Sort(versions)
	slices.Sort(previous)
	if !slices.Equal(versions, []int{2, 3}) || !slices.Equal(previous, []int{1, 2}) {
		t.Errorf("HISSUNO_ADMIN holds key.rotated events with versions %v (previous %v), want 2 and 3 (previous 1 and 2)", versions, previous)
	}

	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "the key of the final rotation",
		rotWant{status: http.StatusOK, keyVersion: 3}, rotMintN(t, byVersion[3].SecretKey, "user", 4)...)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "the key of the first rotation",
		rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature}, rotMintN(t, byVersion[2].SecretKey, "user", 4)...)

	// More contention: four at once, twice.
	for round := range 2 {
		base := e.rotProject(p.ProjectID).KeyVersion
		var got []int
		for _, r := range concurrently(4) {
			got = append(got, e.rotParse(r).KeyVersion)
		}
		slices.Sort(got)
		want := []int{base + 1, base + 2, base + 3, base + 4}
		if !slices.Equal(got, want) {
			t.Errorf("round %d: four concurrent rotations reported versions %v, want %v", round+1, got, want)
		}
		if v := e.rotProject(p.ProjectID); v.KeyVersion != base+4 || len(v.Keys) != 1 {
			t.Errorf("round %d: after four concurrent rotations: key version %d with %d keys, want %d with one", round+1, v.KeyVersion, len(v.Keys), base+4)
		}
	}
	if n := len(e.rotAdminEvents(events.AdminKeyRotated, p.ProjectID)); n != 10 {
		t.Errorf("HISSUNO_ADMIN holds %d key.rotated events after 10 rotations", n)
	}
}

// TestRedeliveredRotationAppliesOnce stores one rotation command twice in
// JetStream under different message ids (so de-duplication does not hide
// the second): the key rotates once, and the second answer says so without
// a key.
func TestRedeliveredRotationAppliesOnce(t *testing.T) {
	skipUnlessE2E(t)
	e, in, _, p, decisions := rotSystem(t)
	nc := e.rotAdminConn()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	cmd, key := rotCommand(t, p.ProjectID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rotPublish(ctx, nc, cmd, cmd.CommandID, inbox); err != nil {
		t.Fatal(err)
	}
	if err := rotPublish(ctx, nc, cmd, cmd.CommandID+"-redelivered", inbox); err != nil {
		t.Fatal(err)
	}
	var results []admin.Result
	for range 2 {
		res, err := rotNextResult(ctx, sub, cmd.CommandID, key)
		if err != nil {
			t.Fatal(err)
		}
		if res.Error != "" {
			t.Fatalf("the rotator answered an error: %s", res.Error)
		}
		results = append(results, res)
	}
	first, second := results[0], results[1]
	if first.AlreadyApplied || !strings.HasPrefix(first.SecretKey, "sk_live_") || first.Project == nil || first.Project.KeyVersion != 2 {
		t.Errorf("first answer: alreadyApplied %v, a key %v, project %+v; want a rotation to version 2 with its key", first.AlreadyApplied, first.SecretKey != "", first.Project)
	}
	if !second.AlreadyApplied || second.SecretKey != "" || second.Project == nil || second.Project.KeyVersion != 2 {
		t.Errorf("second answer: alreadyApplied %v, a key %v, project %+v; want alreadyApplied, no key, version 2", second.AlreadyApplied, second.SecretKey != "", second.Project)
	}
	if view := e.rotProject(p.ProjectID); view.KeyVersion != 2 || len(view.Keys) != 1 {
		t.Errorf("after one rotation delivered twice: key version %d with keys %+v, want version 2, one key", view.KeyVersion, view.Keys)
	}
	stored := 0
	for _, m := range e.readStream(events.StreamAdmin) {
		if m.Subject() == events.CommandRotateKey.SubjectFrom(events.SourceAdmin) {
			stored++
		}
	}
	if stored != 2 {
		t.Errorf("HISSUNO_ADMIN holds %d rotate commands, want the 2 published", stored)
	}
	if evs := e.rotAdminEvents(events.AdminKeyRotated, p.ProjectID); len(evs) != 1 || evs[0].KeyVersion != 2 || evs[0].CommandID != cmd.CommandID {
		t.Errorf("HISSUNO_ADMIN holds key.rotated events %+v, want one, to version 2, of command %s", evs, cmd.CommandID)
	}
	// The key the first answer carried is the one that verifies.
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 1, "the key of the one rotation",
		rotWant{status: http.StatusOK, keyVersion: 2}, rotMintN(t, first.SecretKey, "user", 3)...)
	t.Logf("one command delivered twice: answers %v/%v (alreadyApplied), confirmed by %v then %v", first.AlreadyApplied, second.AlreadyApplied, first.Confirmed, second.Confirmed)
}

// TestRevokeUser revokes a user's tokens: the user's earlier tokens (and
// those without iat) get 401 token_revoked at every verifier; the user's
// later tokens and other users' tokens are accepted.
func TestRevokeUser(t *testing.T) {
	skipUnlessE2E(t)
	e, in, _, p, decisions := rotSystem(t)
	now := time.Now()
	u1Old := mint(t, p.SecretKey, "u1", now.Add(-10*time.Second), now.Add(time.Hour))
	u1NoIat := mint(t, p.SecretKey, "u1", time.Time{}, now.Add(time.Hour))
	u2Old := mint(t, p.SecretKey, "u2", now.Add(-10*time.Second), now.Add(time.Hour))
	accepted := rotWant{status: http.StatusOK, keyVersion: 1}
	// Accepted before the revocation, at every verifier (and so in each
	// verifier's token cache).
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "u1 and u2 before the revocation", accepted, u1Old, u1NoIat, u2Old)

	r := e.rotExec("project", "revoke-user", p.ProjectID, "--user", "u1")
	if r.err != nil || r.code != 0 {
		t.Fatalf("hissuno project revoke-user: exit %d (%v): %s", r.code, r.err, r.stderr)
	}
	if strings.Contains(r.stderr, "did not confirm") {
		t.Errorf("revoke-user: verifiers did not confirm: %s", r.stderr)
	}
	revoked := e.rotAdminEvents(events.AdminUserRevoked, p.ProjectID)
	if len(revoked) != 1 || revoked[0].UserID != "u1" || revoked[0].RevokedBefore == nil || revoked[0].Actor == "" {
		t.Fatalf("HISSUNO_ADMIN holds user.revoked events %+v, want one for u1 with revokedBefore and actor", revoked)
	}
	revokedAt := *revoked[0].RevokedBefore
	if revokedAt.Before(r.start) || revokedAt.After(r.end) {
		t.Errorf("revokedBefore %s is not within the command's run (%s to %s)", revokedAt.Format(time.StampMicro), r.start.Format(time.StampMicro), r.end.Format(time.StampMicro))
	}
	nextSecond := revokedAt.Truncate(time.Second).Add(time.Second)
	u1New := mint(t, p.SecretKey, "u1", nextSecond, now.Add(time.Hour))
	u1LastSecond := mint(t, p.SecretKey, "u1", nextSecond.Add(-time.Second), now.Add(time.Hour))

	refused := rotWant{status: http.StatusUnauthorized, reason: events.ReasonTokenRevoked}
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "u1's token issued before the revocation", refused, u1Old)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "u1's token without iat", refused, u1NoIat)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "u1's token issued in the second of the revocation", refused, u1LastSecond)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "u1's token issued at the next whole second", accepted, u1New)
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 2, "u2's token issued before the revocation", accepted, u2Old)

	// From the decisions stream: after revoke-user returned, no accept of
	// u1's earlier tokens anywhere.
	e.waitAttemptsDrained(drainTimeout)
	early := rotFingerprints(u1Old, u1NoIat, u1LastSecond)
	late := 0
	for _, d := range e.readDecisions() {
		if d.ProjectID == p.ProjectID && early[d.TokenFingerprint] && d.Decision == events.OutcomeAccept && d.Time.After(r.end) {
			late++
			t.Errorf("%s accepted a revoked token of u1 at %s, %v after revoke-user returned", d.Verifier, d.Time.Format(time.StampMicro), d.Time.Sub(r.end))
		}
	}
	t.Logf("revoked u1 at %s (revoke-user took %v); accepts of u1's earlier tokens after it returned: %d", revokedAt.Format(time.StampMicro), r.took().Round(time.Millisecond), late)
}

// TestRotationLatency measures the rotation latency with three verifiers,
// from the command to its answer: 100 rotations through the CLI (a process
// each, from its start to its exit), then 100 through an admin client in
// this process (from the publish to the answer), which leaves the CLI's
// start-up out. It logs the figures and asserts no timing.
func TestRotationLatency(t *testing.T) {
	skipUnlessE2E(t)
	e, in, _, p, decisions := rotSystem(t)
	const n = 100
	version := 1
	var last string

	cliTimes := make([]time.Duration, 0, n)
	cliStart := time.Now()
	for i := range n {
		a, r := e.rotRotate(p.ProjectID)
		version++
		if a.KeyVersion != version {
			t.Fatalf("CLI rotation %d: key version %d, want %d", i+1, a.KeyVersion, version)
		}
		rotCheckConfirmedByAll(t, fmt.Sprintf("CLI rotation %d", i+1), a, rotVerifierNames)
		cliTimes = append(cliTimes, r.took())
		last = a.SecretKey
	}

	nc := e.rotAdminConn()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cliWall := time.Since(cliStart)
	inTimes := make([]time.Duration, 0, n)
	inStart := time.Now()
	for i := range n {
		cmd, key := rotCommand(t, p.ProjectID)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := rotPublish(ctx, nc, cmd, cmd.CommandID, inbox)
		var res admin.Result
		if err == nil {
			res, err = rotNextResult(ctx, sub, cmd.CommandID, key)
		}
		took := time.Since(start)
		cancel()
		if err != nil {
			t.Fatalf("in-process rotation %d: %v", i+1, err)
		}
		version++
		if res.Error != "" || res.Project == nil || res.Project.KeyVersion != version || !strings.HasPrefix(res.SecretKey, "sk_live_") {
			t.Fatalf("in-process rotation %d: error %q, project %+v; want key version %d and its key", i+1, res.Error, res.Project, version)
		}
		rotCheckConfirmedByAll(t, fmt.Sprintf("in-process rotation %d", i+1), rotAnswer{Confirmed: res.Confirmed, Unconfirmed: res.Unconfirmed}, rotVerifierNames)
		inTimes = append(inTimes, took)
		last = res.SecretKey
	}

	t.Logf("%d rotations through the CLI in %v, %d in process in %v", n, cliWall.Round(time.Millisecond), n, time.Since(inStart).Round(time.Millisecond))
	// The last key verifies everywhere (the system is not just fast).
	e.rotAtEveryVerifier(in.addr, p.ProjectID, decisions, rotVerifierNames, 1, "the key of the last rotation",
		rotWant{status: http.StatusOK, keyVersion: version}, rotMintN(t, last, "user", 3)...)
	t.Log(rotLatencyLine("cli", cliTimes))
	t.Log(rotLatencyLine("inprocess", inTimes))
}

// TestRotationWhileAVerifierIsFrozen freezes one of three verifiers
// (SIGSTOP: still connected but silent, like a process in a long pause or
// a paused VM) under a load of tokens of the current key, rotates, then
// thaws it; three times. The rotation must name it (live: connected, not
// confirmed), and once rotate has returned the verifier must not accept a
// token of the retired key (DESIGN.md, "What never happens"). The attempts
// that reached it while it was frozen race, when it thaws, with the KV
// update and the invalidation waiting in the same connection; whether one
// of them wins depends on the scheduler, hence the three rounds.
func TestRotationWhileAVerifierIsFrozen(t *testing.T) {
	skipUnlessE2E(t)
	e, in, vs, p, decisions := rotSystem(t)
	frozen := vs[2]
	thaw := func() { _ = frozen.cmd.Process.Signal(syscall.SIGCONT) }
	t.Cleanup(thaw) // before the process's own cleanup stops it
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	const clients = 12
	tokens := rotMintN(t, p.SecretKey, "round0", clients)
	var current atomic.Pointer[[]string]
	current.Store(&tokens)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded := make(chan []answer, 1)
	go func() {
		loaded <- load(ctx, clients, func(c int) answer {
			return e.post(in.addr, request{projectID: p.ProjectID, token: (*current.Load())[c]})
		})
	}()
	// decidedSince reports whether the verifier decided a token of the set
	// since a time.
	// decidedSince is nil once name decided one of the tokens fps after
	// since.
	decidedSince := func(name string, since time.Time, fps map[string]bool) error {
		all := decisions.all()
		for _, d := range all {
			if d.Verifier == name && fps[d.TokenFingerprint] && d.Time.After(since) {
				return nil
			}
		}
		return fmt.Errorf("none of the %d decisions seen is one by %s of these %d tokens after %s", len(all), name, len(fps), since.Format(time.StampMilli))
	}

	type round struct {
		retired  map[string]bool // fingerprints of tokens of the key the round retired
		returned time.Time
	}
	var rounds []round
	unnamed := 0
	for r := range 3 {
		fps := rotFingerprints(*current.Load()...)
		for _, n := range rotVerifierNames {
			e.eventually(30*time.Second, fmt.Sprintf("round %d: %s decides tokens of the current key", r+1, n), func() error { return decidedSince(n, time.Time{}, fps) })
		}
		if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		frozenAt := time.Now()
		// Besides the browsers', attempts another ingress publishes (nobody
		// waits for their answers): some reach the frozen verifier's pull
		// requests and wait in its connection.
		for i := range 120 {
			now := time.Now().UTC().Truncate(time.Millisecond)
			body, _ := json.Marshal(events.Attempt{
				SchemaVersion: events.SchemaVersion,
				AttemptID:     events.NewAttemptID(now),
				ProjectID:     p.ProjectID,
				WidgetToken:   (*current.Load())[i%clients],
				ReceivedAt:    now,
				Deadline:      now.Add(ingressDeadline),
				Ingress:       "ingress.rot-direct",
			})
			m := nats.NewMsg(events.AttemptSubject("ingress.rot-direct"))
			m.Data = body
			pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := js.PublishMsg(pctx, m)
			pcancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(500*time.Millisecond - time.Since(frozenAt)) // shapes the load: attempts reach the frozen verifier

		a, rot := e.rotRotate(p.ProjectID)
		next := rotMintN(t, a.SecretKey, fmt.Sprintf("round%d", r+1), clients)
		current.Store(&next)
		time.Sleep(300 * time.Millisecond) // shapes the race: thaw after rotate returned
		thaw()
		thawedAt := time.Now()
		rounds = append(rounds, round{retired: fps, returned: rot.end})
		t.Logf("round %d: froze %s %v before the rotation; rotate took %v: confirmed %v, unconfirmed %v; thawed %v after it returned",
			r+1, frozen.name, rot.start.Sub(frozenAt).Round(time.Millisecond), rot.took().Round(time.Millisecond), a.Confirmed, a.Unconfirmed, thawedAt.Sub(rot.end).Round(time.Millisecond))
		if !slices.Contains(a.Unconfirmed, frozen.name) {
			unnamed++
		}
		newFPs := rotFingerprints(next...)
		e.eventually(30*time.Second, fmt.Sprintf("round %d: %s, thawed, decides tokens of the new key", r+1, frozen.name), func() error { return decidedSince(frozen.name, thawedAt, newFPs) })
	}
	cancel()
	answers := <-loaded
	if unnamed > 0 {
		t.Errorf("in %d of %d rounds, rotate's answer did not name %s (connected, frozen, not confirming) as unconfirmed", unnamed, len(rounds), frozen.name)
	}

	e.waitAttemptsDrained(drainTimeout)
	late := map[string]int{}
	var examples []string
	for _, d := range e.readDecisions() {
		if d.ProjectID != p.ProjectID || d.Decision != events.OutcomeAccept {
			continue
		}
		for r, rd := range rounds {
			if rd.retired[d.TokenFingerprint] && d.Time.After(rd.returned) {
				late[fmt.Sprintf("round %d by %s", r+1, d.Verifier)]++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("round %d: %s accepted a key-%d token %v after rotate returned (attempt received %v before it; a browser still waiting: %v)",
						r+1, d.Verifier, d.KeyVersion, d.Time.Sub(rd.returned).Round(time.Millisecond), rd.returned.Sub(d.ReceivedAt).Round(time.Millisecond), d.Time.Before(d.ReceivedAt.Add(ingressDeadline))))
				}
			}
		}
	}
	if len(late) > 0 {
		t.Errorf("accepts of retired-key tokens decided after rotate returned: %v; e.g.\n%s", late, strings.Join(examples, "\n"))
	}
	t.Logf("requests %d; late accepts of retired-key tokens: %v", len(answers), late)
}

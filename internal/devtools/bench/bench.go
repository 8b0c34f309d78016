// Package bench measures the whole pipeline (HTTP ingress → JetStream →
// verifiers → reply, audit into ClickHouse) against the bare JetStream round
// trip on the same machine, in one run: the same attempt payloads published
// to a work-queue stream, consumed by a pull consumer that replies to an
// inbox and publishes to a second stream, then acks, at the same
// concurrency. `hissuno bench` runs it.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
)

// benchUser is the NATS user of the bench's own clients (seeding the
// projects, the baseline's streams): the stack's superuser.
const benchUser = "bench"

// Config configures a bench run.
type Config struct {
	// Duration is how long each load runs; default 10 s.
	Duration time.Duration
	// Warmup runs the e2e load this long before measuring; default 2 s.
	Warmup time.Duration
	// Concurrency is the number of concurrent keep-alive clients; default 64.
	Concurrency int
	// Verifiers is the number of verifiers (and baseline consumers);
	// default 1.
	Verifiers int
	// Projects is the number of projects in the KV; default 100.
	Projects int
	// Requests is the size of the prepared request pool, each with its own
	// token; the load cycles through it, so a token comes back every
	// Requests requests, as a widget reconnects with the token its page
	// holds. Default 5000.
	Requests int
	// ClickHouseDSN is where the audit goes; empty starts a private
	// clickhouse-server when one is installed, else the audit is skipped.
	ClickHouseDSN string
	// DataDir holds the run's files; default a temporary directory.
	DataDir string
	// ScaleCheck starts a separate verifier process once the projects are in
	// the KV and reports its start time and memory.
	ScaleCheck bool
	// SkipBaseline runs only the e2e load (for profiling it alone); the
	// ratio is then not measured.
	SkipBaseline bool
	// HTTPFloor also measures the HTTP exchange alone (httpFloor), to show
	// what share of the e2e cost it is.
	HTTPFloor bool
	// Rounds splits each load into this many slices of Duration/Rounds,
	// run alternately (e2e, baseline, e2e, …) so that the machine's drift
	// during the run touches both loads alike; default 1.
	Rounds int
	// BlockProfileRate, when above zero, turns on block profiling
	// (runtime.SetBlockProfileRate) once the pipeline runs: the embedded
	// NATS server sets the process's rate to its own (off) when it starts.
	BlockProfileRate int
	// Rates, when set, runs the open-loop bench instead of the closed
	// loops: for each rate in turn (requests per second, cfg.Rounds
	// times), the pipeline, the bare JetStream round trip and the inline
	// verifier, each sent the same requests at that fixed arrival rate for
	// StepDuration, each request measured from its scheduled send.
	Rates []float64
	// StepDuration is how long each open-loop load runs; default 10 s.
	StepDuration time.Duration
	// MaxSenders bounds the connections an open-loop load opens (one more
	// whenever every one is busy); default 5,000.
	MaxSenders int
	// AuditBatchSize and AuditBatchWait tune the auditor's inserts (at
	// most that many rows, or that long); zero keeps auditor's defaults.
	AuditBatchSize int
	AuditBatchWait time.Duration
	// AuditorProcess runs the auditor as its own process (`hissuno
	// auditor`, as production does) at nice level AuditorNice (0–19);
	// otherwise it runs inside the bench's process with the other roles.
	AuditorProcess bool
	AuditorNice    int
	// Vegeta, when set, is the path of a vegeta binary: after each
	// open-loop e2e load, vegeta loads the pipeline too, at the same rate
	// with the same requests, and the report shows its figures beside the
	// bench's own.
	Vegeta string
	// Out receives the report.
	Out io.Writer
}

func (c *Config) setDefaults() {
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Verifiers == 0 {
		c.Verifiers = 1
	}
	if c.Projects == 0 {
		c.Projects = 100
	}
	if c.Requests == 0 {
		c.Requests = 5000
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.StepDuration == 0 {
		c.StepDuration = 10 * time.Second
	}
	if c.MaxSenders == 0 {
		c.MaxSenders = 5000
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Duration < time.Second:
		return errors.New("bench: --duration must be at least 1s")
	case c.Rounds < 1 || c.Duration/time.Duration(c.Rounds) < 500*time.Millisecond:
		return errors.New("bench: --rounds must be at least 1, with slices (--duration / --rounds) of at least 500ms")
	case c.AuditorProcess && (c.AuditorNice < 0 || c.AuditorNice > 19):
		return fmt.Errorf("bench: --auditor-nice %d: give 0 to 19, or -1 for the auditor inside the bench's process", c.AuditorNice)
	case c.Concurrency < 1 || c.Concurrency > 10000:
		return errors.New("bench: --concurrency must be 1 to 10000")
	case c.Verifiers < 1 || c.Verifiers > 64:
		return errors.New("bench: --verifiers must be 1 to 64")
	case c.Projects < 2:
		return errors.New("bench: --projects must be at least 2")
	case len(c.Rates) > 0 && c.StepDuration < 200*time.Millisecond:
		return errors.New("bench: --step-duration must be at least 200ms")
	case c.MaxSenders < 1:
		return errors.New("bench: --max-senders must be at least 1")
	}
	for _, r := range c.Rates {
		if r <= 0 || r > 1e6 {
			return fmt.Errorf("bench: --rate %v: want 1 to 1,000,000 requests per second", r)
		}
	}
	return nil
}

// Result is what a run measured.
type Result struct {
	E2E      Load
	Baseline Load
	// Floor is the HTTP exchange alone; measured with Config.HTTPFloor.
	Floor Load
	// AuditLag is the time from the end of the e2e load until ClickHouse
	// held every decision (the longest over the rounds); zero when the
	// audit was not measured.
	AuditLag time.Duration
	// Lost and Doubled count decisions answered over HTTP that the audit
	// lacks, or holds more than once.
	Lost, Doubled int
	// Audited says whether the audit was measured.
	Audited bool
	// Ratio is e2e throughput over baseline throughput.
	Ratio float64
	// Scale is the separate verifier's start with every project.
	Scale Scale
	// Open is, with Config.Rates, each rate's open-loop step.
	Open []OpenStep
	// openIDs are the decision ids the open-loop e2e loads were answered.
	openIDs []string
}

// Load is the outcome of one load.
type Load struct {
	Requests   int
	Errors     int
	Unexpected int // an answer with another status than the mix expects
	Elapsed    time.Duration
	Latencies  []time.Duration
	// CPU is the CPU time (user + system) this process spent during the
	// load: the load generator, the roles and the embedded NATS server, not
	// ClickHouse.
	CPU time.Duration
	// ids are the decision ids answered (e2e only).
	ids []string
}

// CPUPerRequest is the process's CPU time per answered request.
func (l Load) CPUPerRequest() time.Duration {
	if l.Requests == 0 {
		return 0
	}
	return l.CPU / time.Duration(l.Requests)
}

// cpuTime is the CPU time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Throughput is requests per second.
func (l Load) Throughput() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Requests) / l.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (0 < p ≤ 100).
func (l Load) Percentile(p float64) time.Duration {
	if len(l.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(l.Latencies)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Run starts the pipeline, runs the e2e load and the baseline, checks the
// audit, and prints the report, ending with the ratio line.
func Run(ctx context.Context, cfg Config, log zerolog.Logger) (Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "hissuno-bench-")
		if err != nil {
			return Result{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfg.DataDir = dir
	dsn := cfg.ClickHouseDSN
	if dsn == "" && localclickhouse.Available() {
		srv, err := localclickhouse.Start(ctx, filepath.Join(dir, "clickhouse"))
		if err != nil {
			return Result{}, err
		}
		defer srv.Stop()
		dsn = srv.DSN
	}
	if dsn != "" {
		// A database of the run's own: the audit counts only this run.
		runDSN, drop, err := audit.CreateDatabase(ctx, dsn, "hissuno_bench_")
		if err != nil {
			return Result{}, err
		}
		defer drop()
		dsn = runDSN
	}
	inProcessAudit := dsn
	if cfg.AuditorProcess {
		inProcessAudit = ""
	}
	st, err := stack.Start(ctx, stack.Config{
		DataDir:       filepath.Join(dir, "stack"),
		Verifiers:     cfg.Verifiers,
		ClickHouseDSN: inProcessAudit,
		Superuser:     benchUser,
		Auditor:       auditor.Config{BatchSize: cfg.AuditBatchSize, BatchWait: cfg.AuditBatchWait},
		// The load comes from one address at full speed, up to 10,000
		// connections: it measures the pipeline, not the limits.
		Ingress: ingress.Config{Limits: ingress.NoLimits, MaxConnsPerIP: -1, MaxConns: -1},
	}, log)
	if err != nil {
		return Result{}, err
	}
	defer st.Stop()
	if dsn != "" && inProcessAudit == "" {
		ap, err := startAuditorProcess(ctx, st, dsn, cfg)
		if err != nil {
			return Result{}, err
		}
		defer ap.stop()
		nices, threads, err := ap.threadNices()
		if err != nil {
			return Result{}, err
		}
		fmt.Fprintf(cfg.Out, "auditor: its own process (hissuno auditor), nice %d; its %d threads at nice %v\n", cfg.AuditorNice, threads, nices)
	}
	if cfg.BlockProfileRate > 0 {
		runtime.SetBlockProfileRate(cfg.BlockProfileRate)
	}
	fmt.Fprintf(cfg.Out, "machine: %s\n", machine())
	if len(cfg.Rates) > 0 {
		fmt.Fprintf(cfg.Out, "open loop: %d verifier(s), %d projects, a pool of %d requests (each token comes back every %[3]d requests); a closed-loop warm-up of %s with %d clients\n",
			cfg.Verifiers, cfg.Projects, cfg.Requests, cfg.Warmup, cfg.Concurrency)
		fmt.Fprintf(cfg.Out, "open loop: %d round(s) of %v req/s, %s a load, e2e → baseline → inline verifier at each rate (vegeta beside e2e with --vegeta); latency from each request's scheduled send; at most %d connections a load\n",
			cfg.Rounds, cfg.Rates, cfg.StepDuration, cfg.MaxSenders)
	} else {
		fmt.Fprintf(cfg.Out, "load: %s, %d keep-alive clients, %d verifier(s), %d projects, a pool of %d requests (each token comes back every %[5]d requests)\n",
			cfg.Duration, cfg.Concurrency, cfg.Verifiers, cfg.Projects, cfg.Requests)
	}
	if len(cfg.Rates) == 0 && cfg.Rounds > 1 {
		fmt.Fprintf(cfg.Out, "rounds: %d, e2e and baseline alternating in slices of %s\n", cfg.Rounds, cfg.Duration/time.Duration(cfg.Rounds))
	}

	nc, err := st.ConnectAs(benchUser, "bench-seed")
	if err != nil {
		return Result{}, err
	}
	projects, err := seedProjects(ctx, nc, st.Sealer(), cfg.Projects)
	if err != nil {
		return Result{}, err
	}
	if err := waitProjects(ctx, st, cfg.Projects); err != nil {
		return Result{}, err
	}
	var res Result
	if cfg.ScaleCheck {
		creds, _ := st.Credentials("verifier")
		if res.Scale, err = verifierScale(ctx, creds, filepath.Join(dir, "stack", "master.key"), cfg.Projects); err != nil {
			return Result{}, err
		}
		fmt.Fprintf(cfg.Out, "separate verifier ready with %d projects in %s, RSS %.0f MiB (peak %.0f MiB)\n",
			res.Scale.Projects, ms(res.Scale.Ready), res.Scale.RSSMiB, res.Scale.PeakMiB)
	}
	reqs, err := buildRequests(projects, cfg.Requests, newRand())
	if err != nil {
		return Result{}, err
	}

	var audit *auditCheck
	if dsn != "" {
		if audit, err = newAuditCheck(ctx, dsn); err != nil {
			return Result{}, err
		}
		defer audit.close()
	}
	if cfg.Warmup > 0 {
		warm, err := httpLoad(ctx, st.HTTPAddr, reqs, cfg.Concurrency, cfg.Warmup)
		if err != nil {
			return Result{}, err
		}
		if audit != nil {
			// The warm-up's decisions are audited before the measured load,
			// so that the audit's lag is the measured load's alone.
			if _, err := audit.waitFor(ctx, len(warm.ids), time.Now()); err != nil {
				return Result{}, err
			}
		}
	}
	if len(cfg.Rates) > 0 {
		return res, runOpen(ctx, cfg, st, projects, reqs, audit, &res)
	}
	// The loads alternate in cfg.Rounds slices (e2e, audit caught up,
	// baseline, e2e, …): the machine's drift then touches both alike.
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	var rig *baselineRig
	defer func() {
		if rig != nil {
			rig.stop()
		}
	}()
	for r := 0; r < cfg.Rounds; r++ {
		e2e, err := httpLoad(ctx, st.HTTPAddr, reqs, cfg.Concurrency, slice)
		if err != nil {
			return Result{}, err
		}
		res.E2E.add(e2e)
		if audit != nil {
			// The slice's decisions are audited before the baseline runs,
			// so that the auditor's catching up does not slow it down.
			lag, err := audit.waitFor(ctx, audit.seen+len(e2e.ids), time.Now())
			if err != nil {
				return Result{}, err
			}
			res.AuditLag = max(res.AuditLag, lag)
		}
		if cfg.SkipBaseline {
			continue
		}
		if rig == nil {
			if rig, err = startBaseline(ctx, st, reqs, cfg.Verifiers); err != nil {
				return Result{}, err
			}
		}
		base, err := rig.run(ctx, cfg.Concurrency, slice)
		if err != nil {
			return Result{}, err
		}
		res.Baseline.add(base)
	}
	if audit != nil {
		res.Audited = true
		if res.Lost, res.Doubled, err = audit.exact(ctx, res.E2E.ids); err != nil {
			return Result{}, err
		}
	}
	if cfg.HTTPFloor {
		if res.Floor, err = httpFloor(ctx, reqs, cfg.Concurrency, cfg.Duration); err != nil {
			return Result{}, err
		}
	}
	if b := res.Baseline.Throughput(); b > 0 {
		res.Ratio = res.E2E.Throughput() / b
	}
	report(cfg.Out, res)
	return res, nil
}

// waitProjects waits until every verifier holds the seeded projects.
func waitProjects(ctx context.Context, st *stack.Stack, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, v := range st.Verifiers() {
		for v.Projects() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("verifier %s holds %d of %d projects after 2 minutes", v.Instance(), v.Projects(), n)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// httpLoad drives the ingress with c keep-alive clients for d, each cycling
// through the pool from its own offset.
func httpLoad(ctx context.Context, addr string, reqs []request, c int, d time.Duration) (Load, error) {
	wires := make([][]byte, len(reqs))
	for i, r := range reqs {
		wires[i] = wire(addr, r)
	}
	return drive(ctx, c, d, func(w int, l *Load, stop *atomic.Bool) {
		cl := &conn{addr: addr}
		defer cl.close()
		var body []byte
		for i := w * (len(reqs) / c); !stop.Load() && ctx.Err() == nil; i++ {
			r := reqs[i%len(reqs)]
			t0 := time.Now()
			status, err := cl.do(wires[i%len(wires)], &body)
			if err != nil {
				l.Errors++
				continue
			}
			l.Latencies = append(l.Latencies, time.Since(t0))
			l.Requests++
			if status != r.status {
				l.Unexpected++
			}
			if id := decisionID(body); id != "" {
				l.ids = append(l.ids, id)
			}
		}
	})
}

// drive runs c clients for d, each recording into its own Load until stop
// is set, and adds their loads up, with the process's CPU time meanwhile.
func drive(ctx context.Context, c int, d time.Duration, client func(w int, l *Load, stop *atomic.Bool)) (Load, error) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	loads := make([]Load, c)
	start, cpu0 := time.Now(), cpuTime()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client(w, &loads[w], &stop)
		}(w)
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	total := sum(loads, time.Since(start))
	total.CPU = cpuTime() - cpu0
	return total, ctx.Err()
}

// add adds another slice of the same load to l.
func (l *Load) add(o Load) {
	l.Requests += o.Requests
	l.Errors += o.Errors
	l.Unexpected += o.Unexpected
	l.Elapsed += o.Elapsed
	l.CPU += o.CPU
	l.Latencies = append(l.Latencies, o.Latencies...)
	l.ids = append(l.ids, o.ids...)
}

// sum adds up the loads of the clients of one run (theirs carry no time).
func sum(loads []Load, elapsed time.Duration) Load {
	total := Load{Elapsed: elapsed}
	for _, l := range loads {
		total.add(l)
	}
	return total
}

// decisionID reads "decisionId" from an answer without decoding it all.
func decisionID(body []byte) string {
	const key = `"decisionId":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// auditCheck watches the run's audit table.
type auditCheck struct {
	conn driver.Conn
	// seen is how many decisions the table held at the last waitFor.
	seen int
}

func newAuditCheck(ctx context.Context, dsn string) (*auditCheck, error) {
	conn, err := audit.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &auditCheck{conn: conn}, nil
}

func (a *auditCheck) close() { a.conn.Close() }

// waitFor waits until the table holds n distinct decisions and returns the
// time since from, or an error after two minutes.
func (a *auditCheck) waitFor(ctx context.Context, n int, from time.Time) (time.Duration, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var got uint64
		// The table exists once the auditor reached ClickHouse.
		err := a.conn.QueryRow(ctx, "SELECT uniqExact(decision_id) FROM hissuno_decisions").Scan(&got)
		if err == nil && got >= uint64(n) {
			a.seen = int(got)
			return time.Since(from), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the audit holds %d of %d decisions after two minutes", got, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exact counts the decisions answered over HTTP that the audit lacks or
// stores more than once.
func (a *auditCheck) exact(ctx context.Context, ids []string) (lost, doubled int, err error) {
	counts, err := idCounts(ctx, a.conn)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		switch c := counts[id]; {
		case c == 0:
			lost++
		case c > 1:
			doubled++
		}
	}
	return lost, doubled, nil
}

// idCounts counts the rows of each decision id as stored, without FINAL,
// as the audit's questions count them: a copy stored (a redelivered batch
// the auditor inserted again) shows as a decision doubled, merged or not.
func idCounts(ctx context.Context, conn driver.Conn) (map[string]int, error) {
	rows, err := conn.Query(ctx, "SELECT decision_id, count() FROM hissuno_decisions GROUP BY decision_id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = int(n)
	}
	return out, rows.Err()
}

// newRand is the bench's fixed-seed generator: every run draws the same mix.
func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/hissuno/widgetauth/internal/stack"
)

// OpenStep is what one arrival rate measured, over every round: the
// pipeline (E2E), the bare JetStream round trip (Baseline) and the inline
// verifier (Inline), each sent the same requests at the same rate.
type OpenStep struct {
	Rate                  float64
	E2E, Baseline, Inline OpenLoad
	// Hops is where the e2e requests' time went, from the roles'
	// latency-budget histograms over the e2e loads of this rate.
	Hops []HopStat
	// Vegeta is, with Config.Vegeta, vegeta's measure of the pipeline at
	// the same rate, one a round.
	Vegeta []VegetaLoad
	// Rounds are the step's loads round by round (E2E, Baseline, Inline
	// above add them up), so that a figure's spread shows.
	Rounds []OpenRound

	hops []promHist
}

// OpenRound is one round's loads of a step.
type OpenRound struct{ E2E, Baseline, Inline OpenLoad }

// ParseRates reads a list of arrival rates, "1000,3000,5000".
func ParseRates(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("bench: --rate %q: want positive requests per second, e.g. 1000,3000", f)
		}
		out = append(out, r)
	}
	return out, nil
}

// addStep adds another round of the same step to l.
func (l *OpenLoad) addStep(o OpenLoad) {
	if l.Latency == nil {
		l.Latency, l.SendLag = &histogram{}, &histogram{}
	}
	l.SendLag.merge(o.SendLag)
	l.Rate = o.Rate
	l.Scheduled += o.Scheduled
	l.Errors += o.Errors
	l.Elapsed += o.Elapsed
	l.Senders = max(l.Senders, o.Senders)
	l.Latency.merge(o.Latency)
}

// httpTarget sends the prepared requests to an HTTP server (the ingress,
// or the inline verifier) with the bench's lean keep-alive client; an
// answer with another status than the mix expects is an error. With
// collect, it keeps the decision ids answered (for the audit check).
type httpTarget struct {
	wires   [][]byte
	status  []int
	addr    string
	collect bool

	mu  sync.Mutex
	ids []string
}

func newHTTPTarget(addr string, reqs []request, collect bool) *httpTarget {
	t := &httpTarget{addr: addr, collect: collect, wires: make([][]byte, len(reqs)), status: make([]int, len(reqs))}
	for i, r := range reqs {
		t.wires[i], t.status[i] = wire(addr, r), r.status
	}
	return t
}

type httpClient struct {
	t    *httpTarget
	c    conn
	body []byte
	ids  []string
}

func (t *httpTarget) newClient() openClient { return &httpClient{t: t, c: conn{addr: t.addr}} }

func (c *httpClient) do(i int) error {
	status, err := c.c.do(c.t.wires[i], &c.body)
	if err != nil {
		return err
	}
	if status != c.t.status[i] {
		return fmt.Errorf("status %d, want %d", status, c.t.status[i])
	}
	if c.t.collect {
		if id := decisionID(c.body); id != "" {
			c.ids = append(c.ids, id)
		}
	}
	return nil
}

func (c *httpClient) close() {
	c.c.close()
	c.t.mu.Lock()
	c.t.ids = append(c.t.ids, c.ids...)
	c.t.mu.Unlock()
}

// takeIDs returns the decision ids collected so far and forgets them.
func (t *httpTarget) takeIDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := t.ids
	t.ids = nil
	return ids
}

// baselineTarget sends the attempt payloads through the baseline rig, one
// publish and its reply per request, as its closed loop does.
type baselineTarget struct{ rig *baselineRig }

func (t baselineTarget) newClient() openClient { return t }

func (t baselineTarget) do(i int) error {
	b := t.rig
	id := nuid.Next()
	ch := make(chan struct{})
	b.mu.Lock()
	b.waiting[id] = ch
	b.mu.Unlock()
	m := nats.NewMsg(baseInSubj)
	m.Data = b.payloads[i%len(b.payloads)]
	m.Header.Set(baseReplyHdr, baseReply+id)
	ctx, cancel := context.WithTimeout(context.Background(), basePublishTO)
	defer cancel()
	_, err := b.pjs.PublishMsg(ctx, m)
	if err == nil {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	b.mu.Lock()
	delete(b.waiting, id)
	b.mu.Unlock()
	return err
}

func (baselineTarget) close() {}

// openTargets are the three systems an open-loop step loads in turn.
type openTargets struct {
	e2e      *httpTarget
	baseline openTarget
	inline   *httpTarget
	// vegeta is the file of vegeta's targets, when it runs too.
	vegeta string
}

// runOpenSteps runs cfg.Rounds rounds of every rate, each step loading the
// pipeline, then the baseline, then the inline verifier for
// cfg.StepDuration at the step's rate, the audit caught up after each
// e2e load (its lag the longest over the steps).
func runOpenSteps(ctx context.Context, cfg Config, t openTargets, audit *auditCheck, res *Result) error {
	res.Open = make([]OpenStep, len(cfg.Rates))
	n := len(t.e2e.wires)
	offset := 0
	for r := 0; r < cfg.Rounds; r++ {
		for s, rate := range cfg.Rates {
			step := &res.Open[s]
			step.Rate = rate
			var round OpenRound
			e2e := func() error {
				before, err := gatherHops()
				if err != nil {
					return err
				}
				round.E2E = openLoop(ctx, t.e2e, rate, cfg.StepDuration, cfg.MaxSenders, n, offset)
				end := time.Now()
				after, err := gatherHops()
				if err != nil {
					return err
				}
				step.hops = addHops(step.hops, diffHops(before, after))
				step.Hops = hopStats(step.hops)
				step.E2E.addStep(round.E2E)
				ids := t.e2e.takeIDs()
				res.openIDs = append(res.openIDs, ids...)
				if audit != nil {
					lag, err := audit.waitFor(ctx, audit.seen+len(ids), end)
					if err != nil {
						return err
					}
					res.AuditLag = max(res.AuditLag, lag)
				}
				return nil
			}
			vegeta := func() error {
				if t.vegeta == "" {
					return nil
				}
				before, err := gatherHops()
				if err != nil {
					return err
				}
				v, err := runVegeta(ctx, cfg.Vegeta, t.vegeta, rate, cfg.StepDuration)
				if err != nil {
					return err
				}
				after, err := gatherHops()
				if err != nil {
					return err
				}
				for _, h := range hopStats(diffHops(before, after)) {
					if h.Name == hopHTTP {
						v.Server = h
					}
				}
				step.Vegeta = append(step.Vegeta, v)
				if audit != nil {
					// Its decisions are audited before the next load.
					n := v.StatusCodes["200"] + v.StatusCodes["401"] + v.StatusCodes["403"]
					if _, err := audit.waitFor(ctx, audit.seen+n, time.Now()); err != nil {
						return err
					}
				}
				return nil
			}
			// Vegeta runs after the bench's e2e load in odd rounds, before
			// it in even ones: neither always inherits the other's state.
			order := []func() error{e2e, vegeta}
			if r%2 == 1 {
				order = []func() error{vegeta, e2e}
			}
			for _, f := range order {
				if err := f(); err != nil {
					return err
				}
			}
			round.Baseline = openLoop(ctx, t.baseline, rate, cfg.StepDuration, cfg.MaxSenders, n, offset)
			round.Inline = openLoop(ctx, t.inline, rate, cfg.StepDuration, cfg.MaxSenders, n, offset)
			step.Baseline.addStep(round.Baseline)
			step.Inline.addStep(round.Inline)
			step.Rounds = append(step.Rounds, round)
			offset += int(rate * cfg.StepDuration.Seconds())
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// reportOpen prints, per rate, each target's latencies from the scheduled
// send, the ratios of the pipeline's and the baseline's to the inline
// verifier's, and where the pipeline's time went.
func reportOpen(w io.Writer, r Result) {
	for _, s := range r.Open {
		fmt.Fprintf(w, "rate %.0f req/s\n", s.Rate)
		in := s.Inline.Latency
		row := func(name string, l OpenLoad) {
			fmt.Fprintf(w, "  %-9s sent %7d  answered %7d  errors/lost %d  p50 %7s  p90 %7s  p99 %7s  p99.9 %7s  max %7s  connections %d  sent late p50/p99 %s/%s",
				name, l.Scheduled, l.Answered(), l.Errors, ms(l.Latency.percentile(50)), ms(l.Latency.percentile(90)),
				ms(l.Latency.percentile(99)), ms(l.Latency.percentile(99.9)), ms(l.Latency.percentile(100)), l.Senders,
				ms(l.SendLag.percentile(50)), ms(l.SendLag.percentile(99)))
			if name != "inline" && in.percentile(99) > 0 {
				fmt.Fprintf(w, "  p50 %.1f× p99 %.1f× inline's", ratio(l.Latency.percentile(50), in.percentile(50)), ratio(l.Latency.percentile(99), in.percentile(99)))
			}
			fmt.Fprintln(w)
		}
		row("e2e", s.E2E)
		for _, v := range s.Vegeta {
			fmt.Fprintf(w, "  %-9s sent %7d  statuses %v  p50 %7s  p90 %7s  p99 %7s  max %7s  (vegeta's own timing; p50 %.2f× p99 %.2f× the bench's e2e)\n",
				"e2e/vegeta", v.Requests, v.StatusCodes, ms(v.Latencies["50th"]), ms(v.Latencies["90th"]), ms(v.Latencies["99th"]), ms(v.Latencies["max"]),
				ratio(v.Latencies["50th"], s.E2E.Latency.percentile(50)), ratio(v.Latencies["99th"], s.E2E.Latency.percentile(99)))
		}
		row("baseline", s.Baseline)
		row("inline", s.Inline)
		if len(s.Rounds) > 1 {
			for i, r := range s.Rounds {
				fmt.Fprintf(w, "  round %d: p50 / p99  e2e %s / %s  baseline %s / %s  inline %s / %s  e2e p99 %.1f× inline's, errors %d/%d/%d",
					i+1, ms(r.E2E.Latency.percentile(50)), ms(r.E2E.Latency.percentile(99)),
					ms(r.Baseline.Latency.percentile(50)), ms(r.Baseline.Latency.percentile(99)),
					ms(r.Inline.Latency.percentile(50)), ms(r.Inline.Latency.percentile(99)),
					ratio(r.E2E.Latency.percentile(99), r.Inline.Latency.percentile(99)), r.E2E.Errors, r.Baseline.Errors, r.Inline.Errors)
				if i < len(s.Vegeta) {
					v := s.Vegeta[i]
					fmt.Fprintf(w, "  vegeta %s / %s (the ingress's timing of them %s / %s)", ms(v.Latencies["50th"]), ms(v.Latencies["99th"]), ms(v.Server.P50), ms(v.Server.P99))
				}
				fmt.Fprintln(w)
			}
		}
		if len(s.Hops) > 0 {
			fmt.Fprintf(w, "  e2e hops, p50 / p99 (from the roles' histograms, bucket-interpolated):\n")
			for _, h := range s.Hops {
				fmt.Fprintf(w, "    %-28s %7s / %7s  (%d)\n", h.Name, ms(h.P50), ms(h.P99), h.Count)
			}
		}
	}
	if r.Audited {
		fmt.Fprintf(w, "audit complete %s after an e2e step's end (the longest); lost %d, doubled %d (of %d decisions answered)\n", ms(r.AuditLag), r.Lost, r.Doubled, len(r.openIDs))
	} else {
		fmt.Fprintln(w, "audit not measured: no ClickHouse (give --clickhouse DSN or install clickhouse-server)")
	}
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// runOpen runs the open-loop steps (Config.Rates) on the started stack:
// the inline verifier and the baseline are started beside it, each target
// warmed up, then the audit of the e2e loads checked and the report
// printed.
func runOpen(ctx context.Context, cfg Config, st *stack.Stack, projects []benchProject, reqs []request, audit *auditCheck, res *Result) error {
	inline, err := startInline(projects)
	if err != nil {
		return err
	}
	defer inline.stop()
	rig, err := startBaseline(ctx, st, reqs, cfg.Verifiers)
	if err != nil {
		return err
	}
	defer rig.stop()
	t := openTargets{e2e: newHTTPTarget(st.HTTPAddr, reqs, true), baseline: baselineTarget{rig}, inline: newHTTPTarget(inline.addr, reqs, false)}
	if cfg.Vegeta != "" {
		if t.vegeta, err = vegetaTargets(cfg.DataDir, st.HTTPAddr, reqs); err != nil {
			return err
		}
	}
	if cfg.Warmup > 0 {
		// The e2e pipeline was warmed by the closed loop; the inline
		// verifier's token cache and the baseline's streams are warmed here.
		if _, err := httpLoad(ctx, inline.addr, reqs, cfg.Concurrency, cfg.Warmup/2); err != nil {
			return err
		}
		if _, err := rig.run(ctx, cfg.Concurrency, cfg.Warmup/2); err != nil {
			return err
		}
	}
	if err := runOpenSteps(ctx, cfg, t, audit, res); err != nil {
		return err
	}
	if audit != nil {
		res.Audited = true
		if res.Lost, res.Doubled, err = audit.exact(ctx, res.openIDs); err != nil {
			return err
		}
	}
	reportOpen(cfg.Out, *res)
	return nil
}

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/stack"
)

// Baseline stream and subject names; nothing else uses them.
const (
	baseIn        = "BENCH_BASELINE_IN"
	baseOut       = "BENCH_BASELINE_OUT"
	baseInSubj    = "bench.baseline.in"
	baseOutSubj   = "bench.baseline.out"
	baseReply     = "bench.baseline.reply."
	baseReplyHdr  = "Bench-Reply-To"
	baseConsumer  = "baseline"
	baseInflight  = 256
	basePublishTO = 5 * time.Second
)

// baselineRig is the bare JetStream round trip with the same payloads: c
// clients publish attempts to a work-queue stream and wait for a reply on
// one reply subscription; `consumers` pull consumers reply to the inbox,
// publish the payload to a second stream (waiting for its ack), then ack.
// No HTTP, no JSON decoding, no decision. It is set up once and driven in
// one or more slices (run).
type baselineRig struct {
	payloads [][]byte
	pjs      jetstream.JetStream

	mu      sync.Mutex
	waiting map[string]chan struct{}

	stopAll func()
}

// startBaseline creates the baseline's streams, consumers and publisher.
func startBaseline(ctx context.Context, st *stack.Stack, reqs []request, consumers int) (rig *baselineRig, err error) {
	admin, err := st.ConnectAs(benchUser, "bench-baseline-admin")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(admin)
	if err != nil {
		return nil, err
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: baseIn, Subjects: []string{baseInSubj}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage},
		{Name: baseOut, Subjects: []string{baseOutSubj}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("baseline stream %s: %w", sc.Name, err)
		}
	}
	rig = &baselineRig{payloads: attemptPayloads(reqs), waiting: map[string]chan struct{}{}}

	// Consumers: one connection each, like verifiers.
	cctx, stopConsumers := context.WithCancel(context.Background())
	var cwg sync.WaitGroup
	var ccs []jetstream.ConsumeContext
	var sub *nats.Subscription
	// Stop consuming before waiting for the handlers: a message delivered
	// after the wait began would Add to a WaitGroup being waited on.
	rig.stopAll = func() {
		stopConsumers()
		for _, cc := range ccs {
			cc.Stop()
			<-cc.Closed()
		}
		cwg.Wait()
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
	defer func() {
		if err != nil {
			rig.stopAll()
		}
	}()
	for i := 0; i < consumers; i++ {
		nc, err := st.ConnectAs(benchUser, "bench-baseline-consumer")
		if err != nil {
			return nil, err
		}
		cjs, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		cons, err := cjs.CreateOrUpdateConsumer(ctx, baseIn, jetstream.ConsumerConfig{
			Durable: baseConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 10 * time.Second, MaxAckPending: 4096,
		})
		if err != nil {
			return nil, err
		}
		sem := make(chan struct{}, baseInflight)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			sem <- struct{}{}
			cwg.Add(1)
			go func() {
				defer func() { <-sem; cwg.Done() }()
				if reply := m.Headers().Get(baseReplyHdr); reply != "" {
					_ = nc.Publish(reply, m.Data())
				}
				pctx, cancel := context.WithTimeout(cctx, basePublishTO)
				_, err := cjs.Publish(pctx, baseOutSubj, m.Data())
				cancel()
				if err != nil {
					_ = m.Nak()
					return
				}
				_ = m.Ack()
			}()
		}, jetstream.PullMaxMessages(512))
		if err != nil {
			return nil, err
		}
		ccs = append(ccs, cc)
	}

	// Publishers: one connection, one reply subscription, like an ingress.
	pub, err := st.ConnectAs(benchUser, "bench-baseline-publisher")
	if err != nil {
		return nil, err
	}
	if rig.pjs, err = jetstream.New(pub); err != nil {
		return nil, err
	}
	sub, err = pub.Subscribe(baseReply+"*", func(m *nats.Msg) {
		id := strings.TrimPrefix(m.Subject, baseReply)
		rig.mu.Lock()
		ch := rig.waiting[id]
		delete(rig.waiting, id)
		rig.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	})
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	return rig, nil
}

// stop stops the consumers and waits for their handlers.
func (b *baselineRig) stop() { b.stopAll() }

// run drives the baseline with c clients for d.
func (b *baselineRig) run(ctx context.Context, c int, d time.Duration) (Load, error) {
	return drive(ctx, c, d, func(w int, l *Load, stop *atomic.Bool) {
		for i := w * (len(b.payloads) / c); !stop.Load() && ctx.Err() == nil; i++ {
			id := nuid.Next()
			ch := make(chan struct{})
			b.mu.Lock()
			b.waiting[id] = ch
			b.mu.Unlock()
			m := nats.NewMsg(baseInSubj)
			m.Data = b.payloads[i%len(b.payloads)]
			m.Header.Set(baseReplyHdr, baseReply+id)
			t0 := time.Now()
			pctx, cancel := context.WithTimeout(ctx, basePublishTO)
			_, err := b.pjs.PublishMsg(pctx, m)
			if err == nil {
				select {
				case <-ch:
				case <-pctx.Done():
					err = pctx.Err()
				}
			}
			cancel()
			if err != nil {
				b.mu.Lock()
				delete(b.waiting, id)
				b.mu.Unlock()
				l.Errors++
				continue
			}
			l.Latencies = append(l.Latencies, time.Since(t0))
			l.Requests++
		}
	})
}

// attemptPayloads are the attempt events the ingress would publish for the
// requests.
func attemptPayloads(reqs []request) [][]byte {
	out := make([][]byte, 0, len(reqs))
	now := time.Now().UTC()
	for _, r := range reqs {
		var body struct {
			ProjectID    string            `json:"projectId"`
			WidgetToken  string            `json:"widgetToken"`
			UserID       string            `json:"userId"`
			UserMetadata map[string]string `json:"userMetadata"`
		}
		_ = json.Unmarshal(r.body, &body)
		id := "att_" + nuid.Next()
		a := events.Attempt{
			SchemaVersion: events.SchemaVersion, AttemptID: id, ProjectID: body.ProjectID, Origin: r.origin,
			WidgetToken: body.WidgetToken, UserID: body.UserID, UserMetadata: body.UserMetadata,
			ReceivedAt: now, Deadline: now.Add(3 * time.Second), ReplyTo: events.SubjectReplyPrefix + "ingress-bench." + id,
			Ingress: "ingress-bench", ClientIP: "127.0.0.1", UserAgent: "Go-http-client/1.1",
		}
		b, _ := json.Marshal(a)
		out = append(out, b)
	}
	return out
}

func report(w io.Writer, r Result) {
	row := func(name string, l Load) {
		fmt.Fprintf(w, "%-9s %8d requests in %5.1fs  %8.0f req/s  p50 %7s  p90 %7s  p99 %7s  max %7s  cpu/req %6.1fµs  errors %d",
			name, l.Requests, l.Elapsed.Seconds(), l.Throughput(), ms(l.Percentile(50)), ms(l.Percentile(90)), ms(l.Percentile(99)), ms(l.Percentile(100)),
			float64(l.CPUPerRequest())/float64(time.Microsecond), l.Errors)
		if name == "e2e" {
			fmt.Fprintf(w, "  unexpected statuses %d", l.Unexpected)
		}
		fmt.Fprintln(w)
	}
	row("e2e", r.E2E)
	row("baseline", r.Baseline)
	if r.Floor.Requests > 0 {
		row("http-only", r.Floor)
	}
	if r.Audited {
		fmt.Fprintf(w, "audit complete %s after the load's end; lost %d, doubled %d (of %d decisions answered)\n", ms(r.AuditLag), r.Lost, r.Doubled, len(r.E2E.ids))
	} else {
		fmt.Fprintln(w, "audit not measured: no ClickHouse (give --clickhouse DSN or install clickhouse-server)")
	}
	fmt.Fprintf(w, "e2e/baseline throughput ratio: %.2f\n", r.Ratio)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func machine() string {
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

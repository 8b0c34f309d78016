package bench

import (
	"fmt"
	"math"
	rmetrics "runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hissuno/widgetauth/internal/metrics"
)

// promHist is one Prometheus histogram as gathered: its buckets' upper
// bounds (seconds) and cumulative counts.
type promHist struct {
	name   string
	upper  []float64
	counts []uint64
	total  uint64
}

// HopStat is where the e2e requests of one rate spent their time on one
// hop of the latency budget, from the roles' histograms: p50 and p99
// interpolated within their bucket.
type HopStat struct {
	Name     string
	Count    uint64
	P50, P99 time.Duration
}

// hopNames are what the report prints, in a request's order: the roles'
// hops, the whole request as the ingress timed it, and the auditor's
// inserts (one an audit batch, not one a request).
func hopNames() []string {
	return append(append([]string{}, metrics.Hops...), hopHTTP, "audit_insert (decisions)", hopSched, hopGCPause)
}

// The Go runtime's own histograms of this process (every role of the
// bench's stack, its NATS server and its load generator): how long a
// goroutine made runnable waited for a CPU (a hand-off's cost), and the
// garbage collector's stop-the-world pauses.
const (
	hopSched   = "go: runnable → running"
	hopGCPause = "go: GC stop-the-world"
)

// runtimeHists reads the runtime's scheduler-latency and GC-pause
// histograms (runtime/metrics) as cumulative Prometheus-style buckets.
func runtimeHists() map[string]*promHist {
	samples := []rmetrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/pauses/total/gc:seconds"}}
	rmetrics.Read(samples)
	out := map[string]*promHist{}
	for i, name := range []string{hopSched, hopGCPause} {
		if samples[i].Value.Kind() != rmetrics.KindFloat64Histogram {
			continue
		}
		rh := samples[i].Value.Float64Histogram()
		h := &promHist{name: name}
		var cum uint64
		for j, c := range rh.Counts {
			cum += c
			h.upper = append(h.upper, rh.Buckets[j+1])
			h.counts = append(h.counts, cum)
		}
		h.total = cum
		out[name] = h
	}
	return out
}

// hopHTTP is the whole request as the ingress timed it.
const hopHTTP = "http_request (ingress)"

// gatherHops reads the latency-budget histograms of this process (every
// role of the bench's stack registers in the default registry).
func gatherHops() ([]promHist, error) {
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return nil, fmt.Errorf("bench: gather metrics: %w", err)
	}
	byName := map[string]*promHist{}
	for _, n := range hopNames() {
		byName[n] = &promHist{name: n}
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var name string
			switch f.GetName() {
			case "hissuno_hop_duration_seconds":
				name = label(m, "hop")
			case "hissuno_http_request_duration_seconds":
				name = hopHTTP
			case "hissuno_audit_insert_seconds":
				if label(m, "table") == "hissuno_decisions" {
					name = "audit_insert (decisions)"
				}
			}
			if h := byName[name]; h != nil && m.GetHistogram() != nil {
				h.add(m.GetHistogram())
			}
		}
	}
	for name, h := range runtimeHists() {
		byName[name] = h
	}
	out := make([]promHist, 0, len(byName))
	for _, n := range hopNames() {
		out = append(out, *byName[n])
	}
	return out, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// add adds a gathered histogram's counts (several label values of one
// metric, the HTTP codes, add up).
func (h *promHist) add(g *dto.Histogram) {
	if h.upper == nil {
		for _, b := range g.GetBucket() {
			h.upper = append(h.upper, b.GetUpperBound())
		}
		h.counts = make([]uint64, len(h.upper))
	}
	for i, b := range g.GetBucket() {
		if i < len(h.counts) {
			h.counts[i] += b.GetCumulativeCount()
		}
	}
	h.total += g.GetSampleCount()
}

// diffHops is what was observed between two gatherings.
func diffHops(before, after []promHist) []promHist {
	out := make([]promHist, len(after))
	for i, a := range after {
		d := promHist{name: a.name, upper: a.upper, counts: make([]uint64, len(a.counts)), total: a.total}
		if i < len(before) && len(before[i].counts) == len(a.counts) {
			d.total -= before[i].total
			for j := range a.counts {
				d.counts[j] = a.counts[j] - before[i].counts[j]
			}
		} else {
			copy(d.counts, a.counts)
		}
		out[i] = d
	}
	return out
}

// addHops adds another round's observations.
func addHops(sum, more []promHist) []promHist {
	if sum == nil {
		return more
	}
	for i := range sum {
		if i < len(more) && len(more[i].counts) == len(sum[i].counts) {
			sum[i].total += more[i].total
			for j := range sum[i].counts {
				sum[i].counts[j] += more[i].counts[j]
			}
		}
	}
	return sum
}

// quantile interpolates the q-th quantile (0 < q < 1) linearly within its
// bucket, as PromQL's histogram_quantile does.
func (h promHist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := q * float64(h.total)
	lower, below := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank {
			in := float64(c - below)
			frac := 1.0
			if in > 0 {
				frac = (rank - float64(below)) / in
			}
			return seconds(lower + (h.upper[i]-lower)*frac)
		}
		lower, below = h.upper[i], c
	}
	// Above the last bound: the last bound, as histogram_quantile says.
	return seconds(lower)
}

func seconds(s float64) time.Duration {
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// hopStats are the p50 and p99 of each hop observed.
func hopStats(hs []promHist) []HopStat {
	var out []HopStat
	for _, h := range hs {
		if h.total == 0 {
			continue
		}
		out = append(out, HopStat{Name: h.name, Count: h.total, P50: h.quantile(0.5), P99: h.quantile(0.99)})
	}
	return out
}

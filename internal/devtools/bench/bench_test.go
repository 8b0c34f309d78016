package bench

import (
	"bytes"
	"context"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestRunReportsBothLoads runs a short bench in two rounds: both loads and
// the HTTP floor answer, each load runs its whole duration, the mix gets the statuses it expects, the audit holds every
// decision once, the report ends with the ratio line, and the block profile
// holds the load's waits (the embedded NATS server once switched block
// profiling off as it started, so --blockprofile recorded nothing of them).
func TestRunReportsBothLoads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline twice")
	}
	dsn := stacktest.ClickHouse(t)
	var out bytes.Buffer
	t.Cleanup(func() { runtime.SetBlockProfileRate(0) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Duration: 2 * time.Second, Rounds: 2, Warmup: 200 * time.Millisecond, Concurrency: 8, Projects: 20, Requests: 500,
		ClickHouseDSN: dsn, DataDir: t.TempDir(), HTTPFloor: true, BlockProfileRate: int(time.Microsecond), Out: &out,
	}, stacktest.Logger(t))
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	switch {
	case res.E2E.Requests == 0 || res.Baseline.Requests == 0 || res.Floor.Requests == 0:
		t.Errorf("a load answered nothing: e2e %d, baseline %d, http-only %d", res.E2E.Requests, res.Baseline.Requests, res.Floor.Requests)
	case res.Floor.Errors != 0 || !bytes.Contains(out.Bytes(), []byte("\nhttp-only ")):
		t.Errorf("http floor: %d errors, or no http-only line in the report", res.Floor.Errors)
	case res.E2E.Errors != 0 || res.E2E.Unexpected != 0:
		t.Errorf("e2e: %d errors, %d answers with another status than the mix expects", res.E2E.Errors, res.E2E.Unexpected)
	case !res.Audited || res.Lost != 0 || res.Doubled != 0:
		t.Errorf("audit: measured %v, lost %d, doubled %d", res.Audited, res.Lost, res.Doubled)
	case res.Ratio <= 0:
		t.Errorf("ratio %v", res.Ratio)
	case res.E2E.Elapsed < 2*time.Second || res.Baseline.Elapsed < 2*time.Second:
		t.Errorf("two rounds of 1s: e2e ran %s, baseline %s, want 2s each", res.E2E.Elapsed, res.Baseline.Elapsed)
	}
	var block bytes.Buffer
	if err := pprof.Lookup("block").WriteTo(&block, 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(block.Bytes(), []byte("ingress.(*Ingress).roundTrip")) {
		t.Errorf("the block profile has no wait of the ingress for a reply:\n%.2000s", block.String())
	}
	if !regexp.MustCompile(`(?m)\Ae2e/baseline throughput ratio: \d+\.\d\d\n\z|\ne2e/baseline throughput ratio: \d+\.\d\d\n\z`).Match(out.Bytes()) {
		t.Errorf("the report does not end with the ratio line:\n%s", out.String())
	}
}

// TestMixMatchesTheIssue checks the request mix: 70 % authenticated
// accepts, 15 % anonymous, 10 % 401, 5 % blocked origins (±2 points).
func TestMixMatchesTheIssue(t *testing.T) {
	projects := make([]benchProject, 8)
	for i := range projects {
		projects[i] = benchProject{id: "p" + string(rune('a'+i)), secret: "sk_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", requireToken: i%4 != 0, origin: "https://shop.example"}
	}
	reqs, err := buildRequests(projects, 10000, newRand())
	if err != nil {
		t.Fatal(err)
	}
	count := map[kind]int{}
	for _, r := range reqs {
		count[r.kind]++
	}
	for k, want := range map[kind]float64{kindAuthenticated: 70, kindAnonymous: 15, kindUnauthorized: 10, kindBlocked: 5} {
		if got := float64(count[k]) / 100; got < want-2 || got > want+2 {
			t.Errorf("kind %d: %.1f %%, want %.0f %%", k, got, want)
		}
	}
}

// TestConfigValidate checks the refusals of bad bench settings, each naming
// the flag to fix.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // "" when valid
	}{
		{name: "defaults", edit: func(c *Config) {}},
		{name: "five rounds of 2s", edit: func(c *Config) { c.Rounds = 5 }},
		{name: "short duration", edit: func(c *Config) { c.Duration = 500 * time.Millisecond }, want: "--duration"},
		{name: "negative rounds", edit: func(c *Config) { c.Rounds = -1 }, want: "--rounds"},
		{name: "slices under 500ms", edit: func(c *Config) { c.Duration, c.Rounds = 2*time.Second, 5 }, want: "--rounds"},
		{name: "no clients", edit: func(c *Config) { c.Concurrency = -1 }, want: "--concurrency"},
		{name: "open loop", edit: func(c *Config) { c.Rates = []float64{1000, 3000} }},
		{name: "open loop, short steps", edit: func(c *Config) { c.Rates, c.StepDuration = []float64{1000}, time.Millisecond }, want: "--step-duration"},
		{name: "open loop, negative rate", edit: func(c *Config) { c.Rates = []float64{-5} }, want: "--rate"},
		{name: "open loop, no senders", edit: func(c *Config) { c.Rates, c.MaxSenders = []float64{1000}, -1 }, want: "--max-senders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.setDefaults()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestRunOpenLoop runs the open-loop bench at one low rate: the pipeline,
// the baseline and the inline verifier each get every scheduled request
// and answer it with the status the mix expects, the audit holds each e2e
// decision once, and the report shows the three loads and every hop of the
// latency budget, observed once per e2e request.
func TestRunOpenLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	dsn := stacktest.ClickHouse(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Duration: time.Second, Warmup: 200 * time.Millisecond, Concurrency: 4, Projects: 20, Requests: 300,
		Rates: []float64{200}, StepDuration: time.Second, ClickHouseDSN: dsn, DataDir: t.TempDir(), Out: &out,
	}, stacktest.Logger(t))
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	if len(res.Open) != 1 {
		t.Fatalf("%d steps, want 1", len(res.Open))
	}
	s := res.Open[0]
	for _, l := range []struct {
		name string
		load OpenLoad
	}{{"e2e", s.E2E}, {"baseline", s.Baseline}, {"inline", s.Inline}} {
		if l.load.Scheduled != 200 || l.load.Answered() != 200 || l.load.Errors != 0 {
			t.Errorf("%s: scheduled %d, answered %d, errors %d; want 200, 200, 0", l.name, l.load.Scheduled, l.load.Answered(), l.load.Errors)
		}
		if !bytes.Contains(out.Bytes(), []byte("\n  "+l.name+" ")) {
			t.Errorf("no %s line in the report", l.name)
		}
	}
	if !res.Audited || res.Lost != 0 || res.Doubled != 0 || len(res.openIDs) != 200 {
		t.Errorf("audit: measured %v, lost %d, doubled %d, of %d decisions; want 200", res.Audited, res.Lost, res.Doubled, len(res.openIDs))
	}
	seen := map[string]uint64{}
	for _, h := range s.Hops {
		seen[h.Name] = h.Count
	}
	for _, name := range metrics.Hops {
		if seen[name] != 200 {
			t.Errorf("hop %s observed %d times during the e2e load, want 200", name, seen[name])
		}
	}
}

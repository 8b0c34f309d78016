package cli

import (
	"os"
	"runtime/pprof"
	"time"

	"github.com/hissuno/widgetauth/internal/devtools/bench"
)

func runBench(env Env, args []string) error {
	fs := newFlags("bench", "hissuno bench [--duration 10s] [--concurrency 64] [--verifiers 1] [--projects 100] [--clickhouse DSN] [--rate R[,R…] --step-duration 10s]", env.Stderr)
	var lf logFlags
	lf.register(fs, "console")
	var cfg bench.Config
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long each load (e2e, baseline) runs")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "e2e load before measuring")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "concurrent keep-alive clients")
	fs.IntVar(&cfg.Verifiers, "verifiers", 1, "verifiers (and baseline consumers)")
	fs.IntVar(&cfg.Projects, "projects", 100, "projects in the KV, spread over by the load")
	fs.IntVar(&cfg.Requests, "requests", 5000, "size of the prepared request pool, each with its own token; a token comes back every that many requests")
	fs.BoolVar(&cfg.ScaleCheck, "scale-check", true, "start a separate verifier process once the projects are in the KV and report its start time and memory")
	fs.StringVar(&cfg.ClickHouseDSN, "clickhouse", "", "ClickHouse for the audit; default: start clickhouse-server from PATH, or skip the audit check")
	fs.BoolVar(&cfg.SkipBaseline, "skip-baseline", false, "run only the e2e load (to profile it alone); no ratio")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "split each load into this many slices, run alternately (e2e, baseline, e2e, …), so that the machine's drift touches both alike")
	fs.BoolVar(&cfg.HTTPFloor, "http-floor", false, "also measure the HTTP exchange alone (a handler that answers at once), the floor under the e2e cost")
	rates := fs.String("rate", "", "open loop: send at this fixed arrival rate (req/s), or each of a list (1000,3000,5000) in turn, to the pipeline, the bare JetStream round trip and an inline verifier alike, each request timed from its scheduled send")
	fs.DurationVar(&cfg.StepDuration, "step-duration", 10*time.Second, "open loop: how long each load of a rate runs")
	fs.IntVar(&cfg.MaxSenders, "max-senders", 5000, "open loop: most connections a load opens (one more whenever every one is busy)")
	fs.StringVar(&cfg.Vegeta, "vegeta", "", "open loop: path of a vegeta binary (go install github.com/tsenart/vegeta/v12@v12.12.0) to load the pipeline with too, after the bench's own e2e load at each rate, to compare their figures")
	fs.IntVar(&cfg.AuditBatchSize, "audit-batch-size", 0, "the auditor's most rows an insert (0: its default, 10,000)")
	fs.DurationVar(&cfg.AuditBatchWait, "audit-batch-wait", 0, "the auditor's longest wait to fill an insert (0: its default, 1s)")
	auditorNice := fs.Int("auditor-nice", -1, "run the auditor as its own process (`hissuno auditor`, as in production) at this nice level, 0–19; -1: inside the bench's process")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile to this file at the end")
	blockProfile := fs.String("blockprofile", "", "write a blocking profile to this file at the end")
	_, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *auditorNice != -1 {
		cfg.AuditorProcess, cfg.AuditorNice = true, *auditorNice
	}
	if *rates != "" {
		if cfg.Rates, err = bench.ParseRates(*rates); err != nil {
			return err
		}
	}
	if lf.level == "info" {
		lf.level = "warn"
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	cfg.Out = env.Stdout
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *blockProfile != "" {
		cfg.BlockProfileRate = int(time.Microsecond)
		defer writeProfile("block", *blockProfile)
	}
	if *memProfile != "" {
		defer writeProfile("allocs", *memProfile)
	}
	_, err = bench.Run(env.Ctx, cfg, log)
	return err
}

func writeProfile(name, path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup(name).WriteTo(f, 0)
}

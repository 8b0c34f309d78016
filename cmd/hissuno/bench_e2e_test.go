package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestBenchAuditorProcess runs the open-loop bench with the auditor as its
// own process at a lower priority (--auditor-nice): every decision it
// answered must reach ClickHouse through that process, none lost, none
// twice, and the report must say how the auditor ran.
func TestBenchAuditorProcess(t *testing.T) {
	skipUnlessE2E(t)
	dsn := stacktest.ClickHouse(t)
	bin := hissunoBinary(t)
	ctx := stacktest.Context(t, 3*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "bench", "--rate", "200", "--step-duration", "1s", "--rounds", "1", "--warmup", "500ms",
		"--scale-check=false", "--requests", "200", "--projects", "10", "--clickhouse", dsn, "--auditor-nice", "10", "--log-level", "warn")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	report := string(out)
	if !regexp.MustCompile(`auditor: its own process \(hissuno auditor\), nice 10; its \d+ threads at nice \[10\]\n`).MatchString(report) {
		t.Errorf("the report does not say the auditor ran as its own process, every thread at nice 10:\n%s", report)
	}
	m := regexp.MustCompile(`lost (\d+), doubled (\d+) \(of (\d+) decisions answered\)`).FindStringSubmatch(report)
	if m == nil || m[1] != "0" || m[2] != "0" || m[3] == "0" {
		t.Errorf("audit check %v, want nothing lost or doubled of some decisions:\n%s", m, report)
	}
	if !strings.Contains(report, "go: runnable → running") {
		t.Errorf("the report lacks the scheduler's wait:\n%s", report)
	}
}

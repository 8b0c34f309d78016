package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// VegetaLoad is what vegeta (github.com/tsenart/vegeta, a load generator
// nobody here wrote) measured of the pipeline at one rate: its report's
// latencies and status codes.
type VegetaLoad struct {
	Requests int
	// Latencies are vegeta's, in nanoseconds: "50th", "90th", "99th", "max".
	Latencies map[string]time.Duration
	// StatusCodes counts the answers by status ("0": no answer).
	StatusCodes map[string]int
	// Server is the ingress's own timing of vegeta's requests
	// (hissuno_http_request_duration_seconds over vegeta's load): whether
	// the pipeline was slow, whatever vegeta's own clock says.
	Server HopStat
}

// vegetaTargets writes the requests as vegeta's JSON targets for the
// ingress at addr, one a line, in the pool's order; vegeta cycles through
// them as the bench does.
func vegetaTargets(dir, addr string, reqs []request) (string, error) {
	type target struct {
		Method string              `json:"method"`
		URL    string              `json:"url"`
		Body   string              `json:"body"`
		Header map[string][]string `json:"header"`
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range reqs {
		if err := enc.Encode(target{
			Method: "POST", URL: "http://" + addr + "/v1/widget/connect", Body: base64.StdEncoding.EncodeToString(r.body),
			Header: map[string][]string{"Content-Type": {"application/json"}, "Origin": {r.origin}},
		}); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "vegeta-targets.json")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("vegeta targets: %w", err)
	}
	return path, nil
}

// runVegeta runs `vegeta attack` at rate for d against the targets and
// reads `vegeta report -type=json` of it.
func runVegeta(ctx context.Context, bin, targets string, rate float64, d time.Duration) (VegetaLoad, error) {
	attack := exec.CommandContext(ctx, bin, "attack", "-format=json", "-targets="+targets,
		"-rate="+strconv.FormatFloat(rate, 'f', -1, 64)+"/s", "-duration="+d.String(), "-timeout=10s")
	var results, stderr bytes.Buffer
	attack.Stdout, attack.Stderr = &results, &stderr
	if err := attack.Run(); err != nil {
		return VegetaLoad{}, fmt.Errorf("vegeta attack: %w: %s", err, stderr.String())
	}
	report := exec.CommandContext(ctx, bin, "report", "-type=json")
	report.Stdin = &results
	out, err := report.Output()
	if err != nil {
		return VegetaLoad{}, fmt.Errorf("vegeta report: %w", err)
	}
	var r struct {
		Requests    int              `json:"requests"`
		Latencies   map[string]int64 `json:"latencies"`
		StatusCodes map[string]int   `json:"status_codes"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return VegetaLoad{}, fmt.Errorf("vegeta report: %w", err)
	}
	v := VegetaLoad{Requests: r.Requests, StatusCodes: r.StatusCodes, Latencies: map[string]time.Duration{}}
	for k, ns := range r.Latencies {
		v.Latencies[k] = time.Duration(ns)
	}
	return v, nil
}

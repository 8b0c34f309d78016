package widget_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// retryHarness runs widget.js in node with a stub page whose fetch answers
// every connect with STATUS and Retry-After RETRY_AFTER, and prints the
// widget's state and the delay it set for its next attempt.
const retryHarness = `
const fs = require("fs"), vm = require("vm");
const [src, status, retryAfter] = [fs.readFileSync(process.argv[2], "utf8"), Number(process.argv[3]), process.argv[4]];
const timers = [];
const noop = () => {};
const el = () => ({ style: {}, setAttribute: noop, appendChild: noop, remove: noop, textContent: "" });
const document = {
  currentScript: null, baseURI: "https://shop.example/", body: { appendChild: noop },
  getElementById: () => null, createElement: el, querySelector: () => null,
  addEventListener: noop, removeEventListener: noop, visibilityState: "visible",
};
const fetch = () => Promise.resolve({
  status,
  headers: { get: (n) => (n.toLowerCase() === "retry-after" ? (retryAfter || null) : null) },
  json: () => Promise.resolve({ error: "busy", reason: "ip_rate" }),
});
const window = { console: { warn: noop } };
const ctx = { window, document, fetch, console: { warn: noop, log: noop }, URL, Date, Math, JSON, Promise, Number, isFinite,
  setTimeout: (fn, ms) => { timers.push(ms); return timers.length; }, clearTimeout: noop };
vm.createContext(ctx);
vm.runInContext(src, ctx);
window.Hissuno.init({ projectId: "proj_shop", ingress: "https://ingress.example" });
setImmediate(() => setImmediate(() => setImmediate(() => {
  process.stdout.write(JSON.stringify({ state: window.Hissuno.state, timers }));
})));
`

// TestRetryAfter: the widget backs a 429 off like a 503, and waits at
// least the answer's Retry-After (capped at 300 s).
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	harness := filepath.Join(t.TempDir(), "harness.js")
	if err := os.WriteFile(harness, []byte(retryHarness), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, status, retryAfter string
		min, max                 float64 // the next attempt's delay, ms
	}{
		{name: "503 backs off", status: "503", min: 2000, max: 2400},
		{name: "429 without Retry-After backs off like a 503", status: "429", min: 2000, max: 2400},
		{name: "429 short Retry-After keeps the back-off", status: "429", retryAfter: "1", min: 2000, max: 2400},
		{name: "429 long Retry-After is waited", status: "429", retryAfter: "45", min: 45000, max: 54000},
		{name: "429 huge Retry-After is capped", status: "429", retryAfter: "99999", min: 300000, max: 360000},
		{name: "429 garbage Retry-After is ignored", status: "429", retryAfter: "soon", min: 2000, max: 2400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(node, harness, filepath.Join("widget.js"), tc.status, tc.retryAfter).CombinedOutput()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, out)
			}
			var got struct {
				State  string    `json:"state"`
				Timers []float64 `json:"timers"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("harness output %q: %v", out, err)
			}
			if got.State != "retrying" || len(got.Timers) == 0 {
				t.Fatalf("state %q, timers %v; want retrying with a timer", got.State, got.Timers)
			}
			if ms := got.Timers[len(got.Timers)-1]; ms < tc.min || ms > tc.max {
				t.Errorf("next attempt in %v ms, want %v to %v", ms, tc.min, tc.max)
			}
		})
	}
}

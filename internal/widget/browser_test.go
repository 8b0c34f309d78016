package widget_test

// Browser tests: the loader in Debian's chromium, driven by playwright-core
// (browsertest/run.mjs), against a real stack and demo customer sites. Each
// scenario saves screenshots of the states it reaches in
// artifacts/browser/ at the repository root.
//
// Without chromium or browsertest/node_modules the test is skipped on a
// developer's machine and fails in CI (CI non-empty), naming the command
// that installs what is missing.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/devtools/demosite"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// browserDir holds run.mjs, package.json and package-lock.json.
const browserDir = "browsertest"

// chromiumPath is Debian's chromium; playwright-core never downloads one.
const chromiumPath = "/usr/bin/chromium"

// scenarioTimeout bounds one scenario's browser run.
const scenarioTimeout = 3 * time.Minute

// needBrowser fails the test in CI and skips it elsewhere when chromium,
// node or the locked playwright-core is missing, naming the fix.
func needBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests are slow; not run with -short")
	}
	err := checkBrowser()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the browser tests cannot run: %v", err)
	}
	t.Skipf("the browser tests cannot run: %v", err)
}

// checkBrowser reports what is missing to run the browser tests, with the
// command that installs it.
func checkBrowser() error {
	if _, err := os.Stat(chromiumPath); err != nil {
		return fmt.Errorf("%s is missing; fix: apt-get install -y chromium (or scripts/deps as root)", chromiumPath)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not installed; fix: apt-get install -y nodejs npm (or scripts/deps as root)")
	}
	const fix = "fix: cd internal/widget/browsertest && npm ci (or scripts/deps)"
	b, err := os.ReadFile(filepath.Join(browserDir, "package-lock.json"))
	if err != nil {
		return err
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return fmt.Errorf("browsertest/package-lock.json: %w", err)
	}
	want := lock.Packages["node_modules/playwright-core"].Version
	if want == "" {
		return errors.New("browsertest/package-lock.json does not lock playwright-core")
	}
	b, err = os.ReadFile(filepath.Join(browserDir, "node_modules", "playwright-core", "package.json"))
	if err != nil {
		return fmt.Errorf("playwright-core is not installed in internal/widget/browsertest; %s", fix)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != want {
		return fmt.Errorf("widget/browsertest/node_modules has playwright-core %q, package-lock.json pins %s; %s", pkg.Version, want, fix)
	}
	return nil
}

// step is one step of run.mjs (see its header).
type step struct {
	Do        string `json:"do"`
	Name      string `json:"name,omitempty"`
	URL       string `json:"url,omitempty"`
	State     string `json:"state,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Shown     bool   `json:"shown"`
	Text      string `json:"text,omitempty"`
	Contains  string `json:"contains,omitempty"`
	Count     int    `json:"count,omitempty"`
	TimeoutMS int    `json:"timeoutMs,omitempty"`
}

func visit(url string) step               { return step{Do: "goto", URL: url} }
func reload() step                        { return step{Do: "reload"} }
func waitState(state, reason string) step { return step{Do: "waitState", State: state, Reason: reason} }
func shown(text string) step              { return step{Do: "expectWidget", Shown: true, Text: text} }
func hidden() step                        { return step{Do: "expectWidget", Shown: false} }
func warned(s string) step                { return step{Do: "expectWarning", Contains: s} }
func screenshot(name string) step         { return step{Do: "screenshot", Name: name} }
func pause(name string) step              { return step{Do: "pause", Name: name} }

// runConfig is run.mjs's config.
type runConfig struct {
	Name          string `json:"name"`
	ScreenshotDir string `json:"screenshotDir"`
	TimeoutMS     int    `json:"timeoutMs"`
	Steps         []step `json:"steps"`
}

// result is run.mjs's final line.
type result struct {
	Event       string         `json:"event"`
	OK          bool           `json:"ok"`
	Error       string         `json:"error"`
	Steps       []stepResult   `json:"steps"`
	Warnings    []string       `json:"warnings"`
	Console     []consoleEntry `json:"console"`
	PageErrors  []string       `json:"pageErrors"`
	Screenshots []string       `json:"screenshots"`
	Requests    struct {
		Token    int `json:"token"`
		Connect  int `json:"connect"`
		WidgetJS int `json:"widgetJs"`
	} `json:"requests"`
}

type consoleEntry struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type stepResult struct {
	Do       string   `json:"do"`
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Error    string   `json:"error"`
	Observed observed `json:"observed"`
}

// observed is what window.Hissuno and the page showed after a step.
type observed struct {
	State      string         `json:"state"`
	Reason     string         `json:"reason"`
	Decision   map[string]any `json:"decision"`
	Shown      bool           `json:"shown"`
	WidgetText string         `json:"widgetText"`
	Stats      struct {
		TokenFetches  int      `json:"tokenFetches"`
		Connects      int      `json:"connects"`
		Refreshes     int      `json:"refreshes"`
		LastRefreshAt float64  `json:"lastRefreshAt"`
		TokenExp      *float64 `json:"tokenExp"`
	} `json:"stats"`
	Decisions []struct {
		Status   int    `json:"status"`
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
	} `json:"decisions"`
}

// last is what the last step observed.
func (r result) last() observed {
	if len(r.Steps) == 0 {
		return observed{}
	}
	return r.Steps[len(r.Steps)-1].Observed
}

// at is what the first step of that kind and name observed.
func (r result) at(t *testing.T, do, name string) observed {
	t.Helper()
	for _, s := range r.Steps {
		if s.Do == do && s.Name == name {
			return s.Observed
		}
	}
	t.Fatalf("no %s step %q in the result", do, name)
	return observed{}
}

// harness is one stack shared by the scenarios.
type harness struct {
	st         *stack.Stack
	ingressURL string
	artifacts  string
}

// createProject creates a project with the CLI, as an admin would, and
// returns its secret key.
func (h *harness) createProject(t *testing.T, id string, flags ...string) string {
	t.Helper()
	out := h.cli(t, append([]string{"project", "create", "--name", id, "--id", id, "--json"}, flags...)...)
	return secretKey(t, out)
}

// rotate rotates a project's key at once and returns the new key.
func (h *harness) rotate(t *testing.T, id string) string {
	t.Helper()
	return secretKey(t, h.cli(t, "project", "rotate", id, "--json"))
}

func (h *harness) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append(args, stacktest.NATSArgs(t, h.st, events.SourceAdmin)...)
	if code := cli.Run(cli.Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}, args); code != 0 {
		t.Fatalf("hissuno %s: exit %d: %s", args[:2], code, stderr.String())
	}
	return stdout.String()
}

func secretKey(t *testing.T, out string) string {
	t.Helper()
	var ans struct {
		SecretKey string `json:"secretKey"`
	}
	if err := json.Unmarshal([]byte(out), &ans); err != nil || ans.SecretKey == "" {
		t.Fatalf("no secretKey in the CLI's JSON answer (%v)", err)
	}
	return ans.SecretKey
}

// writeKey puts the project's key where the demo site reads it.
func writeKey(t *testing.T, path, key string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSite runs a demo site for the test on a free 127.0.0.1 port.
func (h *harness) startSite(t *testing.T, cfg demosite.Config) *demosite.Site {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.IngressURL = h.ingressURL
	site, err := demosite.New(cfg, stacktest.Logger(t))
	if err != nil {
		t.Fatalf("demo site: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- site.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo site: %v", err)
		}
	})
	select {
	case <-site.Listening():
	case err := <-done:
		t.Fatalf("demo site: %v", err)
	}
	return site
}

// localhostURL is the site's URL by the name localhost: the same server,
// another origin than http://127.0.0.1:PORT.
func localhostURL(t *testing.T, site *demosite.Site) string {
	t.Helper()
	_, port, err := net.SplitHostPort(site.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return "http://localhost:" + port
}

// run drives the browser through the steps, calling the Go side's action
// at each pause, and returns run.mjs's result. A run that fails fails the
// test with its error and the steps' observations.
func (h *harness) run(t *testing.T, name string, steps []step, pauses map[string]func()) result {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	b, err := json.Marshal(runConfig{Name: name, ScreenshotDir: h.artifacts, TimeoutMS: 20000, Steps: steps})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "run.mjs", cfgPath)
	cmd.Dir = browserDir
	// SIGTERM lets playwright close chromium; SIGKILL would orphan it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	var res result
	var got bool
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var ev struct {
			Event string `json:"event"`
			Name  string `json:"name"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Logf("run.mjs: %s", sc.Text())
			continue
		}
		switch ev.Event {
		case "pause":
			act, ok := pauses[ev.Name]
			if !ok {
				t.Fatalf("run.mjs paused at %q, which the test does not handle", ev.Name)
			}
			act()
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				t.Fatalf("resume run.mjs: %v", err)
			}
		case "result":
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatalf("run.mjs result: %v", err)
			}
			got = true
		}
	}
	_ = stdin.Close()
	waitErr := cmd.Wait()
	for _, p := range res.Screenshots {
		t.Logf("screenshot: %s", p)
	}
	for _, w := range res.Warnings {
		t.Logf("console.warn: %s", w)
	}
	if !got {
		t.Fatalf("run.mjs gave no result (%v); stderr:\n%s", waitErr, stderr.String())
	}
	checkNoSecrets(t, res)
	if !res.OK || waitErr != nil {
		for i, s := range res.Steps {
			t.Logf("step %d %s %s: ok=%v state=%q reason=%q shown=%v text=%q %s", i+1, s.Do, s.Name, s.OK, s.Observed.State, s.Observed.Reason, s.Observed.Shown, s.Observed.WidgetText, s.Error)
		}
		t.Logf("console: %+v", res.Console)
		t.Fatalf("scenario %s failed (exit: %v): %s; stderr:\n%s", name, waitErr, res.Error, stderr.String())
	}
	return res
}

// checkNoSecrets fails when a token or a key reached the console.
func checkNoSecrets(t *testing.T, r result) {
	t.Helper()
	for _, c := range r.Console {
		if strings.Contains(c.Text, "eyJ") || strings.Contains(c.Text, "sk_live_") {
			t.Errorf("the console shows a secret: %s: %q", c.Type, c.Text)
		}
	}
}

// expiredToken is a token for the demo user that expired an hour ago, as
// a page rendered yesterday would hold.
func expiredToken(t *testing.T, key string) string {
	t.Helper()
	now := time.Now()
	return stacktest.Mint(t, key, widgettoken.Claims{UserID: "demo-user", UserMetadata: map[string]string{"name": "Ada Lovelace"},
		IssuedAt: now.Add(-25 * time.Hour), Expires: now.Add(-time.Hour)})
}

// artifactsDir is artifacts/browser at the repository root, emptied of
// earlier screenshots.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "artifacts", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return dir
}

func TestBrowser(t *testing.T) {
	needBrowser(t)
	st := stacktest.Start(t, stack.Config{})
	h := &harness{st: st, ingressURL: "http://" + st.HTTPAddr, artifacts: artifactsDir(t)}

	tests := []struct {
		name string
		// setup creates the project and the demo site, and returns the
		// browser's steps and the test's actions at the pauses.
		setup func(t *testing.T) ([]step, map[string]func())
		// check looks at the result beyond the steps' own expectations.
		check func(t *testing.T, r result)
	}{
		{
			name: "allowed-origin",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				keyFile := filepath.Join(t.TempDir(), "key")
				site := h.startSite(t, demosite.Config{ProjectID: "shop-allowed", SecretKey: demosite.KeyFile(keyFile)})
				writeKey(t, keyFile, h.createProject(t, "shop-allowed", "--require-token", "--origin", site.URL()))
				return []step{
					visit(site.URL()),
					waitState("ready", ""),
					shown("Ada Lovelace (demo-user)"),
					screenshot("allowed-origin"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				d := r.last().Decision
				if d["session"] != "authenticated" || d["userId"] != "demo-user" {
					t.Errorf("decision %v, want an authenticated session of demo-user", d)
				}
				if len(r.Warnings) != 0 {
					t.Errorf("warnings on an accepted widget: %q", r.Warnings)
				}
			},
		},
		{
			name: "no-code-embed",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				keyFile := filepath.Join(t.TempDir(), "key")
				site := h.startSite(t, demosite.Config{ProjectID: "shop-no-code", SecretKey: demosite.KeyFile(keyFile)})
				writeKey(t, keyFile, h.createProject(t, "shop-no-code", "--require-token", "--origin", site.URL()))
				return []step{
					visit(site.URL() + demosite.NoCodePath),
					waitState("ready", ""),
					shown("Ada Lovelace (demo-user)"),
					screenshot("no-code-embed"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				if d := r.last().Decision; d["session"] != "authenticated" {
					t.Errorf("decision %v, want an authenticated session", d)
				}
			},
		},
		{
			// The README's embedding example, run as written: only the
			// ingress's address, the project and the page's user are
			// filled in.
			name: "readme-snippet",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				page := readmeSnippetSite(t, h)
				return []step{
					visit(page),
					waitState("ready", ""),
					shown("u-42"),
					screenshot("readme-snippet"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				if d := r.last().Decision; d["session"] != "authenticated" || d["userId"] != "u-42" {
					t.Errorf("decision %v, want an authenticated session of u-42", d)
				}
			},
		},
		{
			name: "blocked-origin",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				keyFile := filepath.Join(t.TempDir(), "key")
				site := h.startSite(t, demosite.Config{ProjectID: "shop-blocked", SecretKey: demosite.KeyFile(keyFile)})
				writeKey(t, keyFile, h.createProject(t, "shop-blocked", "--require-token", "--origin", site.URL()))
				return []step{
					visit(localhostURL(t, site)),
					waitState("blocked", "origin_not_allowed"),
					hidden(),
					warned("Hissuno widget blocked: origin_not_allowed"),
					screenshot("blocked-origin"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				if d := r.last().Decision; d["decision"] != "origin_blocked" {
					t.Errorf("decision %v, want origin_blocked", d)
				}
			},
		},
		{
			name: "token-required",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				h.createProject(t, "shop-token-required", "--require-token")
				site := h.startSite(t, demosite.Config{
					ProjectID:   "shop-token-required",
					SecretKey:   func() (string, error) { return "", errors.New("this page has no token endpoint") },
					InitOptions: map[string]any{"tokenUrl": nil},
				})
				return []step{
					visit(site.URL()),
					waitState("unauthorized", "token_required"),
					hidden(),
					warned("token_required"),
					screenshot("token-required"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				if r.Requests.Token != 0 {
					t.Errorf("%d token requests from a page without tokenUrl", r.Requests.Token)
				}
			},
		},
		{
			name: "expired-token-refreshed",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				keyFile := filepath.Join(t.TempDir(), "key")
				key := h.createProject(t, "shop-expired", "--require-token")
				writeKey(t, keyFile, key)
				site := h.startSite(t, demosite.Config{
					ProjectID:   "shop-expired",
					SecretKey:   demosite.KeyFile(keyFile),
					InitOptions: map[string]any{"widgetToken": expiredToken(t, key)},
				})
				return []step{
					visit(site.URL()),
					waitState("ready", ""),
					shown("Ada Lovelace (demo-user)"),
					screenshot("expired-token-refreshed"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				ds := r.last().Decisions
				if len(ds) != 2 || ds[0].Reason != "token_expired" || ds[1].Decision != "accept" {
					t.Errorf("decisions %+v, want token_expired then accept", ds)
				}
				if r.Requests.Token != 1 {
					t.Errorf("%d token requests, want 1", r.Requests.Token)
				}
			},
		},
		{
			name: "rotation",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				keyFile := filepath.Join(t.TempDir(), "key")
				site := h.startSite(t, demosite.Config{ProjectID: "shop-rotation", SecretKey: demosite.KeyFile(keyFile)})
				writeKey(t, keyFile, h.createProject(t, "shop-rotation", "--require-token", "--origin", site.URL()))
				var newKey string
				return []step{
						visit(site.URL()),
						waitState("ready", ""),
						shown("demo-user"),
						screenshot("rotation-1-ready-key-v1"),
						pause("rotate"),
						reload(),
						waitState("retrying", "token_bad_signature"),
						hidden(),
						warned("token_bad_signature"),
						screenshot("rotation-2-old-key-refused"),
						pause("replace-key"),
						{Do: "waitState", State: "ready", TimeoutMS: 60000},
						shown("demo-user"),
						screenshot("rotation-3-recovered-key-v2"),
					}, map[string]func(){
						"rotate":      func() { newKey = h.rotate(t, "shop-rotation") },
						"replace-key": func() { writeKey(t, keyFile, newKey) },
					}
			},
			check: func(t *testing.T, r result) {
				if v := r.last().Decision["keyVersion"]; v != float64(2) {
					t.Errorf("accepted with key version %v, want 2", v)
				}
				if ready := r.at(t, "screenshot", "rotation-1-ready-key-v1").Decision["keyVersion"]; ready != float64(1) {
					t.Errorf("first accept with key version %v, want 1", ready)
				}
			},
		},
		{
			name: "proactive-refresh",
			setup: func(t *testing.T) ([]step, map[string]func()) {
				keyFile := filepath.Join(t.TempDir(), "key")
				writeKey(t, keyFile, h.createProject(t, "shop-refresh", "--require-token"))
				// With 70 s tokens the widget refreshes 60 s before exp,
				// about 10 s after it connected.
				site := h.startSite(t, demosite.Config{ProjectID: "shop-refresh", SecretKey: demosite.KeyFile(keyFile), TokenTTL: 70 * time.Second})
				return []step{
					visit(site.URL()),
					waitState("ready", ""),
					shown("demo-user"),
					screenshot("proactive-refresh-1-first-token"),
					{Do: "waitRefresh", Count: 1, TimeoutMS: 45000},
					{Do: "expectNoInterruption"},
					shown("demo-user"),
					screenshot("proactive-refresh-2-refreshed"),
				}, nil
			},
			check: func(t *testing.T, r result) {
				before := r.at(t, "screenshot", "proactive-refresh-1-first-token").Stats
				after := r.last().Stats
				if before.TokenExp == nil || after.TokenExp == nil {
					t.Fatalf("no token exp observed: before %+v, after %+v", before, after)
				}
				if after.LastRefreshAt/1000 >= *before.TokenExp {
					t.Errorf("refreshed at %.0f, not before the first token's exp %.0f", after.LastRefreshAt/1000, *before.TokenExp)
				}
				if *after.TokenExp <= *before.TokenExp {
					t.Errorf("the token's exp did not move: %.0f then %.0f", *before.TokenExp, *after.TokenExp)
				}
				if after.TokenFetches < 2 || r.Requests.Token < 2 {
					t.Errorf("token fetches: widget %d, network %d; want 2 or more", after.TokenFetches, r.Requests.Token)
				}
				if len(r.Warnings) != 0 {
					t.Errorf("warnings during a quiet refresh: %q", r.Warnings)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			steps, pauses := tc.setup(t)
			r := h.run(t, tc.name, steps, pauses)
			tc.check(t, r)
		})
	}
}

// readmeSnippetSite serves the README's html example on a 127.0.0.1 page
// with a token endpoint minting like the docs' Express example, creates the
// project it names (proj_shop) restricted to that page's origin, and
// returns the page's URL.
func readmeSnippetSite(t *testing.T, h *harness) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	snippet := ""
	for _, block := range strings.Split(string(readme), "```")[1:] {
		if strings.HasPrefix(block, "html\n") {
			snippet = strings.TrimPrefix(block, "html\n")
			break
		}
	}
	if !strings.Contains(snippet, "Hissuno.init") {
		t.Fatal("README.md has no html block calling Hissuno.init")
	}
	snippet = strings.ReplaceAll(snippet, "https://auth.example", h.ingressURL)
	const projectID = "proj_shop"
	var key string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><body><h1>README example</h1>\n"+
			"<script>const currentUser = {id: \"u-42\", name: \"Ada\"};</script>\n%s</body></html>", snippet)
	})
	mux.HandleFunc("GET /api/hissuno-token", func(w http.ResponseWriter, _ *http.Request) {
		tok, err := widgettoken.Mint(key, widgettoken.For("u-42", map[string]string{"name": "Ada"}, time.Now(), 24*time.Hour))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
	})
	srv := httptest.NewUnstartedServer(mux)
	url := "http://" + srv.Listener.Addr().String()
	key = h.createProject(t, projectID, "--require-token", "--origin", url)
	srv.Start()
	t.Cleanup(srv.Close)
	return url
}

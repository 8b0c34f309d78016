package console_test

// The Go side of browsertest/driver.mjs: one node process holding one
// chromium, asked for one step at a time, and a tab (a browser context
// with its page) per role.
//
// Without chromium, node or the locked packages of browsertest/ the
// browser test is skipped on a developer's machine and fails in CI (CI
// non-empty), naming the command that installs what is missing.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// browserDir holds driver.mjs, package.json and package-lock.json.
const browserDir = "browsertest"

// chromiumPath is Debian's chromium; playwright-core never downloads one.
const chromiumPath = "/usr/bin/chromium"

// needBrowser fails the test in CI and skips it elsewhere when chromium,
// node or a locked package is missing, naming the fix; and skips it under
// -short.
func needBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("the browser test is slow; not run with -short")
	}
	err := checkBrowser()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the browser test cannot run: %v", err)
	}
	t.Skipf("the browser test cannot run: %v", err)
}

// checkBrowser reports what is missing to run the browser test, with the
// command that installs it.
func checkBrowser() error {
	if _, err := os.Stat(chromiumPath); err != nil {
		return fmt.Errorf("%s is missing; fix: apt-get install -y chromium (or scripts/deps as root)", chromiumPath)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not installed; fix: apt-get install -y nodejs npm (or scripts/deps as root)")
	}
	const fix = "fix: cd internal/console/browsertest && npm ci (or scripts/deps)"
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
	for _, name := range []string{"playwright-core", "axe-core"} {
		want := lock.Packages["node_modules/"+name].Version
		if want == "" {
			return fmt.Errorf("browsertest/package-lock.json does not lock %s", name)
		}
		b, err := os.ReadFile(filepath.Join(browserDir, "node_modules", name, "package.json"))
		if err != nil {
			return fmt.Errorf("%s is not installed in internal/console/browsertest; %s", name, fix)
		}
		var pkg struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != want {
			return fmt.Errorf("console/browsertest/node_modules has %s %q, package-lock.json pins %s; %s", name, pkg.Version, want, fix)
		}
	}
	return nil
}

// opTimeout bounds one op of the driver, beyond its own waits.
const opTimeout = 45 * time.Second

// chrome is the running driver.
type chrome struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers chan driverAnswer
	stderr  *lockedBuffer
	next    int
	// Version is chromium's.
	Version string
}

type driverAnswer struct {
	ID    int             `json:"id"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

// lockedBuffer is a bytes.Buffer that a process writes while a test may
// read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChrome runs driver.mjs, stopped when the test ends.
func startChrome(t *testing.T) *chrome {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "driver.mjs")
	cmd.Dir = browserDir
	// SIGTERM lets playwright close chromium; SIGKILL would orphan it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	c := &chrome{t: t, cmd: cmd, answers: make(chan driverAnswer, 1), stderr: &lockedBuffer{}}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node: %v", err)
	}
	go func() {
		defer close(c.answers)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		for sc.Scan() {
			var a driverAnswer
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				continue
			}
			c.answers <- a
		}
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(c.stdin, `{"op":"quit"}`+"\n")
		_ = c.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("driver.mjs: %v; stderr:\n%s", err, c.stderr.String())
			}
		case <-time.After(20 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	select {
	case a, ok := <-c.answers:
		if !ok || !a.OK {
			t.Fatalf("chromium did not start: %s; stderr:\n%s", a.Error, c.stderr.String())
		}
		_ = json.Unmarshal(a.Value, &c.Version)
	case <-time.After(opTimeout):
		t.Fatalf("chromium did not start within %s; stderr:\n%s", opTimeout, c.stderr.String())
	}
	return c
}

// try sends an op and returns its value or its error.
func (c *chrome) try(op string, args map[string]any) (json.RawMessage, error) {
	c.next++
	cmd := map[string]any{"id": c.next, "op": op}
	for k, v := range args {
		cmd[k] = v
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("driver.mjs is gone (%v); stderr:\n%s", err, c.stderr.String())
	}
	select {
	case a, ok := <-c.answers:
		if !ok {
			return nil, fmt.Errorf("driver.mjs ended; stderr:\n%s", c.stderr.String())
		}
		if a.ID != c.next {
			return nil, fmt.Errorf("driver.mjs answered %d to %d", a.ID, c.next)
		}
		if !a.OK {
			return nil, errors.New(a.Error)
		}
		return a.Value, nil
	case <-time.After(opTimeout):
		return nil, fmt.Errorf("%s: no answer within %s", op, opTimeout)
	}
}

// tab is a browser context of the driver with its page, on the console.
type tab struct {
	t    *testing.T
	c    *chrome
	name string
	base string
	// width is the viewport's width, for the screenshots' names.
	width int
}

// tabOptions are a new tab's.
type tabOptions struct {
	width, height int
	timezone      string
	clipboard     bool
}

// newTab opens a browser context.
func (c *chrome) newTab(t *testing.T, name, base string, o tabOptions) *tab {
	t.Helper()
	args := map[string]any{"ctx": name, "width": o.width, "height": o.height, "timezoneId": o.timezone}
	if o.clipboard {
		args["clipboardOrigin"] = base
	}
	tb := &tab{t: t, c: c, name: name, base: base, width: o.width}
	tb.do("newContext", args)
	return tb
}

// in is the tab for another (sub)test.
func (tb *tab) in(t *testing.T) *tab {
	cp := *tb
	cp.t = t
	return &cp
}

// do runs an op on the tab's page, failing the test on an error.
func (tb *tab) do(op string, args map[string]any) json.RawMessage {
	tb.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	args["ctx"] = tb.name
	v, err := tb.c.try(op, args)
	if err != nil {
		url, _ := tb.c.try("url", map[string]any{"ctx": tb.name})
		tb.t.Fatalf("%s %s %v (at %s): %v", tb.name, op, args, url, err)
	}
	return v
}

func (tb *tab) decode(op string, args map[string]any, v any) {
	tb.t.Helper()
	raw := tb.do(op, args)
	if err := json.Unmarshal(raw, v); err != nil {
		tb.t.Fatalf("%s: %v: %s", op, err, raw)
	}
}

// tid is the selector of a data-testid.
func tid(id string) string { return `[data-testid="` + id + `"]` }

// goTo opens a path of the console and waits until its parts loaded.
func (tb *tab) goTo(path string) int {
	tb.t.Helper()
	var status int
	tb.decode("goto", map[string]any{"url": tb.base + path}, &status)
	return status
}

func (tb *tab) reload()          { tb.t.Helper(); tb.do("reload", nil) }
func (tb *tab) settle()          { tb.t.Helper(); tb.do("settle", nil) }
func (tb *tab) click(sel string) { tb.t.Helper(); tb.do("click", map[string]any{"sel": sel}) }
func (tb *tab) fill(sel, value string) {
	tb.t.Helper()
	tb.do("fill", map[string]any{"sel": sel, "value": value})
}
func (tb *tab) check(sel string) { tb.t.Helper(); tb.do("check", map[string]any{"sel": sel}) }
func (tb *tab) choose(sel, value string) {
	tb.t.Helper()
	tb.do("select", map[string]any{"sel": sel, "value": value})
}
func (tb *tab) focus(sel string)   { tb.t.Helper(); tb.do("focus", map[string]any{"sel": sel}) }
func (tb *tab) press(key string)   { tb.t.Helper(); tb.do("press", map[string]any{"key": key}) }
func (tb *tab) waitFor(sel string) { tb.t.Helper(); tb.do("wait", map[string]any{"sel": sel}) }
func (tb *tab) waitGone(sel string) {
	tb.t.Helper()
	tb.do("wait", map[string]any{"sel": sel, "state": "detached"})
}
func (tb *tab) waitURL(pattern string) {
	tb.t.Helper()
	tb.do("waitURL", map[string]any{"pattern": pattern})
}
func (tb *tab) waitTextOf(sel, s string) string {
	tb.t.Helper()
	var v string
	tb.decode("waitText", map[string]any{"sel": sel, "contains": s}, &v)
	return v
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	var v string
	tb.decode("text", map[string]any{"sel": sel}, &v)
	return v
}

func (tb *tab) texts(sel string) []string {
	tb.t.Helper()
	var v []string
	tb.decode("texts", map[string]any{"sel": sel}, &v)
	return v
}

func (tb *tab) attr(sel, name string) string {
	tb.t.Helper()
	var v *string
	tb.decode("attr", map[string]any{"sel": sel, "name": name}, &v)
	if v == nil {
		return ""
	}
	return *v
}

func (tb *tab) attrs(sel, name string) []string {
	tb.t.Helper()
	var v []string
	tb.decode("attrs", map[string]any{"sel": sel, "name": name}, &v)
	return v
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	var v string
	tb.decode("value", map[string]any{"sel": sel}, &v)
	return v
}

func (tb *tab) count(sel string) int {
	tb.t.Helper()
	var v int
	tb.decode("count", map[string]any{"sel": sel}, &v)
	return v
}

func (tb *tab) url() string {
	tb.t.Helper()
	var v string
	tb.decode("url", nil, &v)
	return v
}

// eval evaluates a JavaScript expression in the page into v.
func (tb *tab) eval(expr string, v any) {
	tb.t.Helper()
	tb.decode("eval", map[string]any{"expr": expr}, v)
}

// everything is the page's markup, text and form values.
func (tb *tab) everything() string {
	tb.t.Helper()
	var v string
	tb.decode("everything", nil, &v)
	return v
}

// focused is the focused element's testid (or id, or tag), and whether it
// is inside the element of sel.
func (tb *tab) focused(sel string) (string, bool) {
	tb.t.Helper()
	var v struct {
		Inside bool   `json:"inside"`
		What   string `json:"what"`
	}
	tb.decode("focused", map[string]any{"sel": sel}, &v)
	return v.What, v.Inside
}

// resize changes the viewport.
func (tb *tab) resize(width, height int) {
	tb.t.Helper()
	tb.do("viewport", map[string]any{"width": width, "height": height})
	tb.width = width
}

// axeViolation is a serious or critical finding of axe-core.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// accessible runs axe-core on the page as it is and fails the test on a
// serious or critical violation.
func (tb *tab) accessible(what string) {
	tb.t.Helper()
	var vs []axeViolation
	tb.decode("axe", nil, &vs)
	for _, v := range vs {
		tb.t.Errorf("axe at %d px, %s: %s %s: %s\n\t%s", tb.width, what, v.Impact, v.ID, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
}

// noSideScroll fails the test when the page scrolls sideways.
func (tb *tab) noSideScroll(what string) {
	tb.t.Helper()
	var l struct {
		ScrollWidth int `json:"scrollWidth"`
		InnerWidth  int `json:"innerWidth"`
	}
	tb.decode("layout", nil, &l)
	if l.ScrollWidth > l.InnerWidth {
		tb.t.Errorf("%s at %d px scrolls sideways: scrollWidth %d > innerWidth %d", what, tb.width, l.ScrollWidth, l.InnerWidth)
	}
}

// shot saves a screenshot of the whole page as dir/NAME-WIDTH.png.
func (tb *tab) shot(dir, name string) string {
	tb.t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, tb.width))
	tb.do("screenshot", map[string]any{"path": path})
	return path
}

// shotView saves a screenshot of the viewport (a dialog as a person sees
// it) as dir/NAME-WIDTH.png.
func (tb *tab) shotView(dir, name string) string {
	tb.t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, tb.width))
	tb.do("screenshot", map[string]any{"path": path, "fullPage": false})
	return path
}

// drainProblems returns the uncaught exceptions, console errors and CSP
// violations the tab met since the last call.
func (tb *tab) drainProblems() []string {
	tb.t.Helper()
	var ps []string
	tb.decode("problems", nil, &ps)
	return ps
}

// problems fails the test on every uncaught exception, console error and
// CSP violation the tab met since the last call.
func (tb *tab) problems() {
	tb.t.Helper()
	for _, p := range tb.drainProblems() {
		tb.t.Errorf("%s: %s", tb.name, p)
	}
}

// checkTheChecks breaks the page on purpose, to see that each check of
// the test notices: a console error, an uncaught exception, an inline
// script the CSP blocks, an image without a text alternative (axe) and
// an element wider than the viewport. It then reloads the page.
func (tb *tab) checkTheChecks() {
	tb.t.Helper()
	var ok bool
	tb.eval(`(() => {
		console.error('check-the-checks: a console error');
		setTimeout(() => { throw new Error('check-the-checks: uncaught'); });
		const s = document.createElement('script');
		s.textContent = 'window.inlineRan = true';
		document.head.append(s);
		const img = document.createElement('img');
		img.src = '/static/favicon.svg';
		img.id = 'check-the-checks-img';
		document.querySelector('main').append(img);
		const wide = document.createElement('div');
		wide.style.width = '3000px';
		wide.style.height = '1px';
		document.querySelector('main').append(wide);
		return true;
	})()`, &ok)
	want := map[string]bool{"console error": false, "uncaught exception": false, "CSP violation": false}
	var seen []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		seen = append(seen, tb.drainProblems()...)
		done := true
		for kind := range want {
			for _, p := range seen {
				if strings.HasPrefix(p, kind) {
					want[kind] = true
				}
			}
			done = done && want[kind]
		}
		if done {
			break
		}
	}
	for kind, found := range want {
		if !found {
			tb.t.Errorf("check of the checks: no %s reported (reported: %q)", kind, seen)
		}
	}
	var ran bool
	tb.eval(`window.inlineRan === true`, &ran)
	if ran {
		tb.t.Error("check of the checks: an inline script ran despite the CSP")
	}
	var vs []axeViolation
	tb.decode("axe", nil, &vs)
	found := false
	for _, v := range vs {
		found = found || (v.ID == "image-alt" && strings.Contains(strings.Join(v.Nodes, " "), "check-the-checks-img"))
	}
	if !found {
		tb.t.Errorf("check of the checks: axe did not report the image without alt: %+v", vs)
	}
	var l struct {
		ScrollWidth int `json:"scrollWidth"`
		InnerWidth  int `json:"innerWidth"`
	}
	tb.decode("layout", nil, &l)
	if l.ScrollWidth <= l.InnerWidth {
		tb.t.Errorf("check of the checks: a 3000 px element does not make the page scroll sideways (%+v)", l)
	}
	tb.reload()
	tb.drainProblems()
}

// trapsFocus checks that Tab and Shift+Tab keep focus inside the open
// dialog of sel, and that Escape closes it and gives focus back to opener
// (a testid; empty to skip that check).
func (tb *tab) trapsFocus(sel, opener string) {
	tb.t.Helper()
	var seen []struct {
		Key    string `json:"key"`
		Inside bool   `json:"inside"`
		What   string `json:"what"`
	}
	tb.decode("focusTrap", map[string]any{"sel": sel, "presses": 7}, &seen)
	for _, s := range seen {
		if !s.Inside {
			tb.t.Errorf("%s at %d px: %s moved focus out of the dialog, to %q (every press: %+v)", sel, tb.width, s.Key, s.What, seen)
			break
		}
	}
	tb.press("Escape")
	tb.waitGone(sel)
	if opener != "" {
		if what, _ := tb.focused(""); what != opener {
			tb.t.Errorf("%s at %d px: after Escape focus is on %q, want the control that opened it, %q", sel, tb.width, what, opener)
		}
	}
}

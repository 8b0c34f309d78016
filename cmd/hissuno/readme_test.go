package main

// The README's promises, checked the way a reader follows them: every
// example in README.md is run by a test (TestReadmeExamples), and the run
// command works from a fresh clone and prints how to try it
// (TestReadmeRunCommand).
//
// Blocks are classified by their info string:
//
//	sh        run, in order, in one bash session against a `hissuno dev`
//	sh norun  the two set-up commands: the run command (TestReadmeRunCommand)
//	          and the test command (which CI itself runs)
//	json      directly after an sh block: the shape of the last JSON line
//	          that block printed; "…" marks a placeholder
//	sql       run against the dev ClickHouse; must not error
//	sh compose  docker compose commands (no Docker engine here): the files
//	          they name must exist and every `docker compose run --rm admin
//	          ARGS` must be a command line hissuno accepts
//	          (TestReadmeComposeExample); deploy/compose_test.go checks the
//	          compose file itself
//	html      run in headless Chromium by widget/browser_test.go
//	xml       a ClickHouse config fragment: well-formed, and the cluster's
//	          is exactly what the cluster tests write (checkReadmeXML)
//	(none)    diagrams and synopses, not run
//
// Any other info string fails the test, so a new kind of example cannot
// slip in untested.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

const (
	// readmePath is the README, from this package's directory.
	readmePath = "../../README.md"
	// readmeHTTPDefault and readmeNATSDefault are the default addresses the
	// README's examples use; the tests rewrite them to free ports.
	readmeHTTPDefault = "127.0.0.1:8080"
	readmeNATSDefault = "nats://127.0.0.1:4222"
	// readmeConsoleDefault is the console's default address.
	readmeConsoleDefault = "127.0.0.1:8090"
	// readmeStartTimeout bounds how long dev (and its ClickHouse) may take
	// to become ready; readmeBuildTimeout adds the compilation `go run` does.
	readmeStartTimeout = 3 * time.Minute
	readmeBuildTimeout = 5 * time.Minute
	// readmeScriptTimeout bounds the run of every sh block together.
	readmeScriptTimeout = 5 * time.Minute
	// readmeStopGrace is how long dev may take to stop after SIGTERM
	// (it stops its ClickHouse too) before it is killed.
	readmeStopGrace = 45 * time.Second
)

// readmeBlock is one fenced code block of the README.
type readmeBlock struct {
	info string // the info string, trimmed: "sh", "sh norun", "json", …
	line int    // 1-based line of the opening fence
	text string // the content, without the fence's indentation
	// prev is the index of the block right before this one when only blank
	// lines separate them, else -1.
	prev int
}

// readmeBlocks parses the README's fenced code blocks in order.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks  []readmeBlock
		cur     *readmeBlock
		indent  string
		content []string
		// onlyBlank is true while nothing but blank lines followed the
		// last closing fence.
		onlyBlank bool
	)
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == nil {
			if rest, ok := strings.CutPrefix(trimmed, "```"); ok {
				cur = &readmeBlock{info: strings.TrimSpace(rest), line: i + 1, prev: -1}
				if onlyBlank && len(blocks) > 0 {
					cur.prev = len(blocks) - 1
				}
				indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
				content = nil
				continue
			}
			if trimmed != "" {
				onlyBlank = false
			}
			continue
		}
		if trimmed == "```" {
			cur.text = strings.Join(content, "\n")
			blocks = append(blocks, *cur)
			cur, onlyBlank = nil, true
			continue
		}
		content = append(content, strings.TrimPrefix(line, indent))
	}
	if cur != nil {
		t.Fatalf("%s: the code block opened on line %d is never closed", readmePath, cur.line)
	}
	if len(blocks) == 0 {
		t.Fatalf("%s: no code blocks found", readmePath)
	}
	return blocks
}

// readmeEnv is the test's environment without HISSUNO_ variables (so the
// examples run with their defaults), plus extra.
func readmeEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HISSUNO_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// readmeDev is a `hissuno dev` started for the examples.
type readmeDev struct {
	httpAddr    string
	natsURL     string
	consoleAddr string
	stderrPath  string
	cmd         *exec.Cmd
	done        chan struct{}
}

func (d *readmeDev) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// readmeStartDev starts `hissuno dev` in dir on free ports, with the README's
// default data directory, waits until its /readyz answers 200 and it has
// printed its banner (as a reader waits for it: the demo project and its key
// file exist only then), and stops it with SIGTERM at cleanup.
func readmeStartDev(t *testing.T, bin, dir string) *readmeDev {
	t.Helper()
	logs := t.TempDir()
	d := &readmeDev{
		httpAddr:    stacktest.FreeAddr(t),
		natsURL:     "nats://" + stacktest.FreeAddr(t),
		consoleAddr: stacktest.FreeAddr(t),
		stderrPath:  filepath.Join(logs, "dev.stderr"),
		done:        make(chan struct{}),
	}
	stdout, err := os.Create(filepath.Join(logs, "dev.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(d.stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "dev", "--listen", d.httpAddr, "--nats-listen", strings.TrimPrefix(d.natsURL, "nats://"),
		"--demo-listen", stacktest.FreeAddr(t), "--console-listen", d.consoleAddr)
	d.cmd.Dir = dir
	d.cmd.Env = readmeEnv("PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"))
	d.cmd.Stdout, d.cmd.Stderr = stdout, stderr
	// If the test process dies without its cleanups, dev dies too (and its
	// ClickHouse, whose parent-death signal is SIGTERM).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start hissuno dev: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		_ = stdout.Close()
		_ = stderr.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		if d.exited() {
			t.Errorf("hissuno dev exited on its own: %v; its stderr ends with:\n%s", d.cmd.ProcessState, tail(d.stderrPath, 30))
			return
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
			if code := d.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("hissuno dev exited with %v after SIGTERM, want 0; its stderr ends with:\n%s", d.cmd.ProcessState, tail(d.stderrPath, 30))
			}
		case <-time.After(readmeStopGrace):
			_ = d.cmd.Process.Kill()
			<-d.done
			t.Errorf("hissuno dev did not exit within %s of SIGTERM; killed", readmeStopGrace)
		}
		if t.Failed() {
			t.Logf("--- hissuno dev's stderr ends with:\n%s", tail(d.stderrPath, 30))
		}
	})
	readmeWaitReady(t, "http://"+d.httpAddr+"/readyz", readmeStartTimeout, d.done, d.stderrPath)
	readmeWaitBanner(t, stdout.Name(), readmeStartTimeout, d.done, d.stderrPath)
	return d
}

// readmeWaitBanner waits until the file of dev's stdout holds the banner's
// last line, failing the test after timeout or as soon as exited is closed.
func readmeWaitBanner(t *testing.T, stdoutPath string, timeout time.Duration, exited <-chan struct{}, stderrPath string) {
	t.Helper()
	const last = "Stop with Ctrl-C"
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(stdoutPath); err == nil && bytes.Contains(b, []byte(last)) {
			return
		}
		select {
		case <-exited:
			t.Fatalf("hissuno dev exited before its banner; its stderr ends with:\n%s", tail(stderrPath, 30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hissuno dev printed no banner within %s; its stderr ends with:\n%s", timeout, tail(stderrPath, 30))
		}
	}
}

// readmeWaitReady polls url until it answers 200, failing the test after
// timeout or as soon as exited is closed.
func readmeWaitReady(t *testing.T, url string, timeout time.Duration, exited <-chan struct{}, stderrPath string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		resp, err := client.Get(url)
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(body.String()))
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			t.Fatalf("waiting for %s: the process exited; its stderr ends with:\n%s", url, tail(stderrPath, 30))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s (last: %s); stderr ends with:\n%s", url, timeout, last, tail(stderrPath, 30))
		}
	}
}

// readmeRewrite points a block's default addresses at the test's dev.
func readmeRewrite(text string, d *readmeDev) string {
	text = strings.ReplaceAll(text, readmeNATSDefault, d.natsURL)
	text = strings.ReplaceAll(text, readmeConsoleDefault, d.consoleAddr)
	return strings.ReplaceAll(text, readmeHTTPDefault, d.httpAddr)
}

// readmeNeedsClickHouse reports whether an sh block queries the audit.
func readmeNeedsClickHouse(text string) bool {
	return strings.Contains(text, "hissuno audit ") || strings.Contains(text, "/api/v1/audit/")
}

// readmeMarker separates the blocks' output; it starts on a line of its
// own even when a block's output does not end with a newline (curl's).
var readmeMarker = regexp.MustCompile(`(?m)^@@BLOCK (\d+)@@$`)

// readmeSplit splits a script's output by block marker: block index → output.
func readmeSplit(out string) map[int]string {
	parts := map[int]string{}
	locs := readmeMarker.FindAllStringSubmatchIndex(out, -1)
	for i, loc := range locs {
		n, _ := strconv.Atoi(out[loc[2]:loc[3]])
		end := len(out)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		parts[n] = strings.Trim(out[loc[1]:end], "\n")
	}
	return parts
}

// readmeLastJSON returns the last line of out that is a JSON object.
func readmeLastJSON(out string) (map[string]any, string, bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil {
			return v, line, true
		}
	}
	return nil, "", false
}

// readmeMatch checks got against the README's example want: every key of
// an object present with a matching value; a string with "…" matches any
// string starting with the text before "…".
func readmeMatch(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an object", path, readmeJSON(got))}
		}
		var diffs []string
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, readmeMatch(path+"."+k, w[k], gv)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, readmeJSON(got), readmeJSON(want))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, readmeMatch(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	case string:
		if prefix, _, ok := strings.Cut(w, "…"); ok {
			if prefix == "" {
				return nil // a placeholder: the key only needs to be present
			}
			if g, isString := got.(string); !isString || !strings.HasPrefix(g, prefix) {
				return []string{fmt.Sprintf("%s: got %s, want a string starting with %q", path, readmeJSON(got), prefix)}
			}
			return nil
		}
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: got %s, want %s", path, readmeJSON(got), readmeJSON(want))}
	}
	return nil
}

func readmeJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// readmeClickHouse reports whether dev can start a ClickHouse; without one
// the examples that query the audit cannot run: CI must have it, elsewhere
// they are skipped.
func readmeClickHouse(t *testing.T) bool {
	t.Helper()
	if localclickhouse.Available() {
		return true
	}
	if os.Getenv("CI") != "" {
		t.Fatal("clickhouse-server is not on PATH; CI must run every README example, the audit ones need it (scripts/deps installs it)")
	}
	t.Log("clickhouse-server is not on PATH: the README's audit examples (sql blocks and `hissuno audit` commands) are skipped; install it to run them")
	return false
}

// readmeRunSQL runs the README's sql blocks against dev's ClickHouse.
func readmeRunSQL(t *testing.T, dir string, blocks []readmeBlock) {
	t.Helper()
	dsnFile := filepath.Join(dir, "hissuno-data", "clickhouse-dsn")
	b, err := os.ReadFile(dsnFile)
	if err != nil {
		t.Fatalf("hissuno dev should have written its ClickHouse DSN: %v", err)
	}
	opts, err := clickhouse.ParseDSN(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", dsnFile, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, blk := range blocks {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := func() (int, error) {
			rows, err := conn.Query(ctx, blk.text)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			return n, rows.Err()
		}()
		cancel()
		if err != nil {
			t.Errorf("README line %d: the sql block fails: %v\n%s", blk.line, err, blk.text)
			continue
		}
		t.Logf("README line %d: sql block ran, %d rows", blk.line, n)
	}
}

func TestReadmeExamples(t *testing.T) {
	skipUnlessE2E(t)
	blocks := readmeBlocks(t)
	var sh, sql, jsons []int
	for i, b := range blocks {
		switch b.info {
		case "sh":
			sh = append(sh, i)
		case "sql":
			sql = append(sql, i)
		case "json":
			if b.prev < 0 || blocks[b.prev].info != "sh" {
				t.Errorf("README line %d: a json block must directly follow an sh block (the output it shows)", b.line)
				continue
			}
			jsons = append(jsons, i)
		case "sh norun", "sh compose", "":
		case "html":
			// Run in headless Chromium by widget/browser_test.go (the
			// readme-snippet scenario), which reads it from README.md.
		case "xml":
			checkReadmeXML(t, b)
		default:
			t.Errorf("README line %d: code block %q: no test knows how to run it (use sh, sh norun, sh compose, sql, json, html, xml, or no info string)", b.line, b.info)
		}
	}
	if len(sh) == 0 {
		t.Fatal("the README has no sh examples")
	}
	withCH := readmeClickHouse(t)

	bin := hissunoBinary(t)
	dir := t.TempDir()
	dev := readmeStartDev(t, bin, dir)

	var script strings.Builder
	ran := map[int]bool{}
	for _, i := range sh {
		if !withCH && readmeNeedsClickHouse(blocks[i].text) {
			t.Logf("README line %d: skipped without ClickHouse:\n%s", blocks[i].line, blocks[i].text)
			continue
		}
		ran[i] = true
		fmt.Fprintf(&script, "printf '\\n@@BLOCK %[1]d@@\\n'; printf '\\n@@BLOCK %[1]d@@\\n' >&2\n", i)
		script.WriteString(readmeRewrite(blocks[i].text, dev))
		script.WriteString("\n")
	}
	end := len(blocks) // a marker no block has: the script's end
	fmt.Fprintf(&script, "printf '\\n@@BLOCK %[1]d@@\\n'; printf '\\n@@BLOCK %[1]d@@\\n' >&2\n", end)
	scriptPath := filepath.Join(t.TempDir(), "readme.sh")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), readmeScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", scriptPath)
	cmd.Dir = dir
	cmd.Env = readmeEnv(
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HISSUNO_NATS_URL="+dev.natsURL,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	outs, errs := readmeSplit(stdout.String()), readmeSplit(stderr.String())

	for _, i := range sh {
		if !ran[i] {
			continue
		}
		out, started := outs[i]
		if !started {
			t.Errorf("README line %d: the sh block did not run (an earlier block failed)", blocks[i].line)
			continue
		}
		t.Logf("README line %d: sh block output:\n%s\n--- stderr:\n%s", blocks[i].line, out, errs[i])
	}
	if _, finished := outs[end]; !finished || runErr != nil {
		failed := -1
		for _, i := range sh {
			if _, ok := outs[i]; ok {
				failed = i
			}
		}
		if failed < 0 {
			t.Fatalf("the README's sh blocks did not start: %v\nstderr:\n%s", runErr, stderr.String())
		}
		t.Fatalf("README line %d: the sh block failed (%v):\n%s\n--- stdout:\n%s\n--- stderr:\n%s",
			blocks[failed].line, runErr, readmeRewrite(blocks[failed].text, dev), outs[failed], errs[failed])
	}

	for _, j := range jsons {
		i := blocks[j].prev
		if !ran[i] {
			continue
		}
		var want any
		if err := json.Unmarshal([]byte(blocks[j].text), &want); err != nil {
			t.Errorf("README line %d: the json block does not parse: %v", blocks[j].line, err)
			continue
		}
		got, line, ok := readmeLastJSON(outs[i])
		if !ok {
			t.Errorf("README line %d: the sh block printed no JSON line; the json block on line %d expects one; output:\n%s",
				blocks[i].line, blocks[j].line, outs[i])
			continue
		}
		if diffs := readmeMatch("$", want, got); len(diffs) > 0 {
			t.Errorf("README line %d: the sh block's output does not match the json block on line %d:\n  %s\ngot:  %s\nwant: %s",
				blocks[i].line, blocks[j].line, strings.Join(diffs, "\n  "), line, strings.TrimSpace(blocks[j].text))
		}
	}

	var sqlBlocks []readmeBlock
	for _, i := range sql {
		sqlBlocks = append(sqlBlocks, blocks[i])
	}
	if withCH {
		readmeRunSQL(t, dir, sqlBlocks)
	} else {
		t.Logf("%d sql blocks skipped without ClickHouse", len(sqlBlocks))
	}
}

// readmeBanner collects a process's stdout and closes found once it holds
// want.
type readmeBanner struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func (b *readmeBanner) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if strings.Contains(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.found) })
	}
	return len(p), nil
}

func (b *readmeBanner) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestReadmeRunCommand(t *testing.T) {
	skipUnlessE2E(t)
	var norun []readmeBlock
	for _, b := range readmeBlocks(t) {
		if b.info == "sh norun" {
			norun = append(norun, b)
		}
	}
	if len(norun) != 2 {
		t.Fatalf("the README has %d `sh norun` blocks, want 2: the run command and the test command", len(norun))
	}
	if got := strings.TrimSpace(norun[1].text); got != "scripts/test" {
		t.Errorf("README line %d: the test command is %q, want %q (what CI runs)", norun[1].line, got, "scripts/test")
	}
	run := norun[0].text
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	listen, natsListen, demo := stacktest.FreeAddr(t), stacktest.FreeAddr(t), stacktest.FreeAddr(t)
	stderrPath := filepath.Join(t.TempDir(), "run.stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()

	banner := &readmeBanner{want: "Stop with Ctrl-C", found: make(chan struct{})}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", run)
	cmd.Dir = root
	cmd.Env = readmeEnv(
		"HISSUNO_DATA="+data,
		"HISSUNO_LISTEN="+listen,
		"HISSUNO_NATS_LISTEN="+natsListen,
		// dev also serves the demo site, on 127.0.0.1:8081 by default.
		"HISSUNO_DEMO_LISTEN="+demo,
	)
	cmd.Stdout, cmd.Stderr = banner, stderr
	// go run starts the built binary as its child: one process group, so
	// the cleanup's SIGTERM reaches both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = readmeStopGrace
	if err := cmd.Start(); err != nil {
		t.Fatalf("run %q: %v", run, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(readmeStopGrace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			t.Errorf("%q did not exit within %s of SIGTERM; killed", run, readmeStopGrace)
		}
		// Wait for every process of the group (dev, after go run) to go.
		deadline := time.Now().Add(readmeStopGrace)
		for syscall.Kill(-pgid, 0) == nil {
			if time.Now().After(deadline) {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				t.Errorf("%q: processes left %s after SIGTERM; killed", run, readmeStopGrace)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(data, "clickhouse-dsn")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after SIGTERM, dev should have stopped its ClickHouse and removed %s (stat: %v)", filepath.Join(data, "clickhouse-dsn"), err)
		}
		if t.Failed() {
			t.Logf("--- stderr of %q ends with:\n%s", run, tail(stderrPath, 30))
		}
	})

	select {
	case <-banner.found:
	case <-done:
		t.Fatalf("%q exited before its banner: %v\nstdout:\n%s\nstderr ends with:\n%s", run, cmd.ProcessState, banner, tail(stderrPath, 30))
	case <-time.After(readmeBuildTimeout):
		t.Fatalf("%q printed no banner within %s; stdout:\n%s", run, readmeBuildTimeout, banner)
	}
	out := banner.String()
	t.Logf("%q printed:\n%s", run, out)

	api := "http://" + listen + "/v1/widget/connect"
	var curl string
	apiShown, demoShown := false, false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "Widget API") && strings.Contains(line, api) {
			apiShown = true
		}
		if strings.HasPrefix(line, "Demo site") && strings.Contains(line, "http://"+demo) {
			demoShown = true
		}
		if strings.HasPrefix(line, "curl ") && strings.Contains(line, "visitor-1") && curl == "" {
			curl = line
		}
	}
	if !apiShown {
		t.Errorf("the banner does not show the widget API's address %s", api)
	}
	if !demoShown {
		t.Errorf("the banner does not show the demo site's address http://%s", demo)
	}
	if !strings.Contains(out, "proj_demo") {
		t.Error("the banner does not name the demo project proj_demo")
	}
	if curl == "" {
		t.Fatal("the banner has no ready-to-paste curl line for visitor-1")
	}
	if !strings.Contains(curl, api) {
		t.Errorf("the banner's curl does not call %s: %s", api, curl)
	}

	// The curl as printed, plus the status on a last line of its own.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	try := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", curl+` -w '\n%{http_code}'`)
	try.Dir = t.TempDir()
	try.Env = readmeEnv()
	answer, err := try.CombinedOutput()
	if err != nil {
		t.Fatalf("the banner's curl failed: %v\n%s\n%s", err, curl, answer)
	}
	text := strings.TrimSpace(string(answer))
	cut := strings.LastIndex(text, "\n")
	body, status := strings.TrimSpace(text[:max(cut, 0)]), text[cut+1:]
	var got map[string]any
	if status != "200" || json.Unmarshal([]byte(body), &got) != nil || got["decision"] != "accept" || got["userId"] != "visitor-1" {
		t.Errorf("the banner's curl: got status %q, body %s; want 200 and an accept for visitor-1\n%s", status, body, curl)
	}
}

// TestReadmeComposeExample checks the README's docker compose example as far
// as this machine can (it runs no Docker engine): the files it copies exist,
// and the admin commands it runs through the image are command lines the
// binary accepts (parsed up to --help, which stops before any connection).
func TestReadmeComposeExample(t *testing.T) {
	skipUnlessE2E(t)
	bin := hissunoBinary(t)
	found := 0
	for _, b := range readmeBlocks(t) {
		if b.info != "sh compose" {
			continue
		}
		found++
		for _, line := range strings.Split(b.text, "\n") {
			line, _, _ = strings.Cut(line, "#")
			fields := strings.Fields(line)
			switch {
			case len(fields) == 0:
			case fields[0] == "cp":
				if _, err := os.Stat(filepath.Join("..", "..", fields[1])); err != nil {
					t.Errorf("README line %d: %q copies %s, which does not exist", b.line, line, fields[1])
				}
			case len(fields) > 5 && strings.Join(fields[:4], " ") == "docker compose run --rm" && (fields[4] == "admin" || fields[4] == "console"):
				// The admin service's entrypoint is hissuno; any other
				// service's arguments replace its command.
				args := append(readmeUnquote(fields[5:]), "--help")
				out, err := exec.Command(bin, args...).CombinedOutput()
				if err != nil {
					t.Errorf("README line %d: hissuno %s: %v\n%s", b.line, strings.Join(args, " "), err, out)
				}
			case strings.HasPrefix(line, "docker compose "):
			default:
				t.Errorf("README line %d: %q in a compose example is neither cp nor docker compose", b.line, line)
			}
		}
	}
	if found == 0 {
		t.Fatal("the README has no `sh compose` example")
	}
}

// readmeUnquote drops the shell quotes of simple arguments.
func readmeUnquote(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.Trim(a, `'"`)
	}
	return out
}

// checkReadmeXML checks an xml block: a fragment of a ClickHouse config.xml
// (inside <yandex>) that parses, and, for the replicated audit's, exactly
// what localclickhouse.ClusterConfig writes for the cluster tests, with
// the README's host names.
func checkReadmeXML(t *testing.T, b readmeBlock) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<yandex>" + b.text + "</yandex>"))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Errorf("README line %d: xml block: %v", b.line, err)
			return
		}
	}
	if strings.Contains(b.text, "<remote_servers>") {
		want := localclickhouse.ClusterConfig("hissuno", "zk1:2181", []string{"ch1:9000", "ch2:9000"}, 0)
		if strings.TrimSpace(b.text) != strings.TrimSpace(want) {
			t.Errorf("README line %d: the cluster's config is not what the cluster tests write (localclickhouse.ClusterConfig):\n%s\nwant:\n%s", b.line, b.text, want)
		}
	}
}

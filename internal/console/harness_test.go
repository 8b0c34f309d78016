package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/danielgtaylor/huma/v2"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/console"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// env is a whole stack with the console, a real ClickHouse for the audit,
// and every log line of every role captured for the secret scans.
type env struct {
	t    testing.TB
	st   *stack.Stack
	base string
	dsn  string
	ch   driver.Conn
	logs *stacktest.SyncBuffer
	doc  *huma.OpenAPI
	// rt is the clients' transport: nil (the default) on plain HTTP, one
	// trusting the console's certificate when it serves TLS.
	rt http.RoundTripper

	mu sync.Mutex
	// seen are the operations and statuses the tests met, for the
	// conformance test.
	seen map[string]bool
}

// envOption changes the stack an env starts.
type envOption func(*stack.Config)

// withClock gives the console (sessions, tokens, throttle) a clock.
func withClock(now func() time.Time) envOption {
	return func(c *stack.Config) { c.Console.Clock = now }
}

// withAccounts tunes the console's account store.
func withAccounts(a account.Config) envOption {
	return func(c *stack.Config) { c.Console.Accounts = a }
}

// newEnv starts a stack with the console on a free port and the auditor on
// a fresh ClickHouse database.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	dsn, ch := stacktest.MigratedClickHouse(t)
	logs := &stacktest.SyncBuffer{}
	var w io.Writer = logs
	if os.Getenv("HISSUNO_TEST_LOG") != "" {
		w = io.MultiWriter(logs, zerolog.NewTestWriter(t))
	}
	cfg := stack.Config{DataDir: t.TempDir(), Superuser: stacktest.Superuser, ClickHouseDSN: dsn, ConsoleListen: "127.0.0.1:0"}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, cfg, zerolog.New(w).With().Timestamp().Logger().Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(st.Stop)
	e := &env{t: t, st: st, base: "http://" + st.ConsoleAddr, dsn: dsn, ch: ch, logs: logs, doc: st.Console.OpenAPI(), seen: map[string]bool{}}
	if cfg.Console.TLSCertFile != "" {
		e.base, e.rt = "https://"+st.ConsoleAddr, trusting(t, cfg.Console.TLSCertFile)
	}
	return e
}

// account creates a console account and returns its password.
func (e *env) account(t testing.TB, email string, role account.Role, projects ...string) string {
	t.Helper()
	pw, err := account.GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Console.Accounts().CreateAccount(stacktest.Context(t, 30*time.Second), email, role, projects, pw); err != nil {
		t.Fatalf("create account %s: %v", email, err)
	}
	return pw
}

// signIn makes an account and a browser signed in as it.
func (e *env) signIn(t testing.TB, email string, role account.Role, projects ...string) *client {
	t.Helper()
	pw := e.account(t, email, role, projects...)
	c := e.browser(t)
	c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": pw}).want(t, http.StatusOK)
	c.password = pw
	return c
}

// browser is a client with a cookie jar that sends what a browser sends
// from the console's own pages (Sec-Fetch-Site: same-origin).
func (e *env) browser(t testing.TB) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{e: e, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: e.rt}, headers: http.Header{"Sec-Fetch-Site": {"same-origin"}}}
}

// bearer is a client sending an API token, as automation does (no
// Sec-Fetch-Site, no cookies).
func (e *env) bearer(token string) *client {
	return &client{e: e, hc: &http.Client{Timeout: 60 * time.Second, Transport: e.rt}, headers: http.Header{"Authorization": {"Bearer " + token}}}
}

// client talks to the console's API.
type client struct {
	e        *env
	hc       *http.Client
	headers  http.Header
	password string
}

// resp is an answer.
type resp struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

// do sends a request (body as JSON unless it is nil) and checks the answer
// against the OpenAPI document: the status is one the operation declares,
// a JSON body matches its schema.
func (c *client) do(t testing.TB, method, path string, body any, header ...string) *resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(stacktest.Context(t, time.Minute), method, c.e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	r := &resp{method: method, path: path, status: res.StatusCode, header: res.Header, body: b}
	c.e.conform(t, r)
	return r
}

// want fails the test unless the answer has the status.
func (r *resp) want(t testing.TB, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, r.status, status, r.body)
	}
	return r
}

// decode decodes the JSON answer into v.
func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s %s: answer is not JSON (%v): %s", r.method, r.path, err, r.body)
	}
}

// conform checks an answer against the OpenAPI document.
func (e *env) conform(t testing.TB, r *resp) {
	t.Helper()
	path := strings.SplitN(r.path, "?", 2)[0]
	tmpl, op := e.operation(r.method, path)
	if op == nil {
		if strings.HasPrefix(path, console.APIPrefix+"/") && r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s answered %d but the OpenAPI document has no such operation", r.method, path, r.status)
		}
		return
	}
	e.mu.Lock()
	e.seen[r.method+" "+tmpl+" "+strconv.Itoa(r.status)] = true
	e.mu.Unlock()
	coverage.add(op.OperationID, r.status)
	res := op.Responses[strconv.Itoa(r.status)]
	if res == nil {
		res = op.Responses["default"]
	}
	if res == nil {
		t.Errorf("%s %s answered %d, which the OpenAPI document does not declare for %s", r.method, path, r.status, op.OperationID)
		return
	}
	ct := strings.TrimSpace(strings.SplitN(r.header.Get("Content-Type"), ";", 2)[0])
	if len(r.body) == 0 || !strings.HasSuffix(ct, "json") {
		return
	}
	mt := res.Content[ct]
	if mt == nil || mt.Schema == nil {
		t.Errorf("%s %s answered %d with %s, which the document does not declare", r.method, path, r.status, ct)
		return
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Errorf("%s %s: invalid JSON: %v", r.method, path, err)
		return
	}
	var result huma.ValidateResult
	huma.Validate(e.doc.Components.Schemas, mt.Schema, huma.NewPathBuffer([]byte(""), 0), huma.ModeReadFromServer, v, &result)
	for _, err := range result.Errors {
		t.Errorf("%s %s answered %d off its OpenAPI schema: %v\n%s", r.method, path, r.status, err, r.body)
	}
}

// operation finds the operation of a request in the document: the path
// template whose segments match.
func (e *env) operation(method, path string) (string, *huma.Operation) {
	segs := strings.Split(path, "/")
	for tmpl, item := range e.doc.Paths {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		match := true
		for i := range ts {
			if !strings.HasPrefix(ts[i], "{") && ts[i] != segs[i] {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		var op *huma.Operation
		switch method {
		case http.MethodGet:
			op = item.Get
		case http.MethodPost:
			op = item.Post
		case http.MethodPut:
			op = item.Put
		case http.MethodPatch:
			op = item.Patch
		case http.MethodDelete:
			op = item.Delete
		}
		if op != nil {
			return tmpl, op
		}
	}
	return "", nil
}

// problem is the error answer of the API (RFC 9457).
type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (r *resp) problem(t testing.TB) problem {
	t.Helper()
	var p problem
	r.decode(t, &p)
	return p
}

// createProject creates a project through the API and returns its id and
// secret key.
func (c *client) createProject(t testing.TB, name string, body map[string]any) (string, string) {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["name"] = name
	var out struct {
		Project   struct{ ProjectID string } `json:"project"`
		SecretKey string                     `json:"secretKey"`
	}
	c.do(t, http.MethodPost, "/api/v1/projects", body).want(t, http.StatusCreated).decode(t, &out)
	if out.Project.ProjectID == "" || !strings.HasPrefix(out.SecretKey, "sk_live_") {
		t.Fatalf("create project: %+v", out)
	}
	return out.Project.ProjectID, out.SecretKey
}

func (r *resp) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.method, r.path, r.status, r.body)
}

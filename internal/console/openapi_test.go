package console_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// coverage is every operation of the OpenAPI document and the statuses the
// tests got from it, over every env of the package's run: e.conform adds
// each answer, TestOpenAPIDocument declares the operations of the served
// document, and TestMain fails a whole run that left one unexercised.
var coverage = &opCoverage{hits: map[string]map[int]bool{}}

type opCoverage struct {
	mu sync.Mutex
	// declared are the served document's operations: operationId →
	// "METHOD path", and whether it declares security.
	declared map[string]declaredOp
	hits     map[string]map[int]bool
}

type declaredOp struct {
	route   string
	secured bool
}

func (c *opCoverage) add(operationID string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hits[operationID] == nil {
		c.hits[operationID] = map[int]bool{}
	}
	c.hits[operationID][status] = true
}

func (c *opCoverage) declare(ops map[string]declaredOp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.declared = ops
}

// missing says what the run left unexercised: an operation never answered
// with a success, a secured one never refused with 401.
func (c *opCoverage) missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id, op := range c.declared {
		hit := c.hits[id]
		if !slices.ContainsFunc(mapKeys(hit), func(s int) bool { return s >= 200 && s < 300 }) {
			out = append(out, fmt.Sprintf("%s (%s): no test got a success from it (statuses seen: %v)", id, op.route, mapKeys(hit)))
		}
		if op.secured && !hit[http.StatusUnauthorized] {
			out = append(out, fmt.Sprintf("%s (%s): no test called it unauthenticated (401)", id, op.route))
		}
	}
	sort.Strings(out)
	return out
}

// TestMain runs the package's tests and then, on a whole run (no -run or
// -skip) that served the document, fails it when an operation of the
// OpenAPI document was never exercised, whatever else failed: a new
// endpoint needs its tests.
func TestMain(m *testing.M) {
	code := m.Run()
	c := coverage
	c.mu.Lock()
	declared := len(c.declared)
	c.mu.Unlock()
	if declared > 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		if missing := c.missing(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: what the tests leave of the OpenAPI document unexercised:\n\t%s\n", strings.Join(missing, "\n\t"))
			code = 1
		}
	}
	os.Exit(code)
}

// servedDoc is the OpenAPI document the console serves, as a client
// reads it.
type servedDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		OperationID string                `json:"operationId"`
		Summary     string                `json:"summary"`
		Security    []map[string][]string `json:"security"`
		Responses   map[string]any        `json:"responses"`
	} `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			In     string `json:"in"`
			Name   string `json:"name"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
	} `json:"components"`
}

// servedDoc fetches the OpenAPI document the console serves.
func (e *env) servedDoc(t testing.TB) servedDoc {
	t.Helper()
	req, err := http.NewRequestWithContext(stacktest.Context(t, 30*time.Second), http.MethodGet, e.base+"/api/v1/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || !strings.Contains(ct, "json") {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", res.StatusCode, ct)
	}
	var doc servedDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the served OpenAPI document does not decode: %v", err)
	}
	return doc
}

// docOp is one operation of a document.
type docOp struct {
	method, path, id, summary string
	security                  []map[string][]string
	responses                 []string
}

func (o docOp) String() string { return o.method + " " + o.path }

// operations lists the served document's operations, sorted by path and
// method.
func (d servedDoc) operations() []docOp {
	var out []docOp
	for path, item := range d.Paths {
		for method, op := range item {
			out = append(out, docOp{method: strings.ToUpper(method), path: path, id: op.OperationID, summary: op.Summary,
				security: op.Security, responses: mapKeys(op.Responses)})
		}
	}
	sortOps(out)
	return out
}

// generatedOps lists the operations of the handlers' document.
func generatedOps(doc *huma.OpenAPI) []docOp {
	var out []docOp
	for path, item := range doc.Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put, http.MethodPatch: item.Patch,
			http.MethodDelete: item.Delete, http.MethodHead: item.Head, http.MethodOptions: item.Options, http.MethodTrace: item.Trace,
		} {
			if op != nil {
				out = append(out, docOp{method: method, path: path, id: op.OperationID, summary: op.Summary, security: op.Security})
			}
		}
	}
	sortOps(out)
	return out
}

func sortOps(ops []docOp) {
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].path != ops[j].path {
			return ops[i].path < ops[j].path
		}
		return ops[i].method < ops[j].method
	})
}

// publicOps are the operations anyone may call: signing in. (/healthz,
// /readyz and /metrics are outside the API and its document.)
var publicOps = map[string]bool{"POST /api/v1/session": true}

// TestOpenAPIDocument: the console serves an OpenAPI 3.1.0 document, the
// one the handlers generate, whose every operation has an id and a
// summary, declares the session or bearer scheme (but signing in), and
// answers 401 when it needs someone; the operations it lists are those
// TestMain requires the tests to exercise.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := e.servedDoc(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("the document is OpenAPI %q, want 3.1.0", doc.OpenAPI)
	}
	served := doc.operations()
	if generated := generatedOps(e.doc); len(served) == 0 || !slices.EqualFunc(served, generated, func(a, b docOp) bool { return a.String() == b.String() && a.id == b.id }) {
		t.Errorf("the served document's operations %v are not the handlers' %v", served, generated)
	}
	schemes := doc.Components.SecuritySchemes
	if s := schemes["session"]; s.Type != "apiKey" || s.In != "cookie" || s.Name == "" {
		t.Errorf("security scheme session: %+v, want the session cookie", s)
	}
	if s := schemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("security scheme bearer: %+v, want an HTTP bearer token", s)
	}
	declared := map[string]declaredOp{}
	for _, o := range served {
		if _, twice := declared[o.id]; o.id == "" || o.summary == "" || twice {
			t.Errorf("%s: operation id %q (once only) and summary %q are required", o, o.id, o.summary)
		}
		if !strings.HasPrefix(o.path, "/api/v1/") {
			t.Errorf("%s: outside /api/v1/", o)
		}
		secured := len(o.security) > 0
		declared[o.id] = declaredOp{route: o.String(), secured: secured}
		if secured == publicOps[o.String()] {
			t.Errorf("%s: security %v; every operation but signing in declares the session or bearer scheme", o, o.security)
		}
		for _, req := range o.security {
			for name := range req {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s: security scheme %q is not in the document's components", o, name)
				}
			}
		}
		if secured && !slices.Contains(o.responses, "401") {
			t.Errorf("%s: secured but does not declare 401", o)
		}
		if secured {
			r := e.browser(t).do(t, o.method, fillPath(o.path), nil)
			r.wantProblem(t, http.StatusUnauthorized, "sign in")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", o)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if _, ok := doc.Paths[path]; ok {
			t.Errorf("%s is in the API's document; the health endpoints are outside it", path)
		}
	}
	coverage.declare(declared)
}

// fillPath puts placeholder values in a path template's parameters.
func fillPath(tmpl string) string {
	return strings.NewReplacer("{projectId}", "proj_x", "{userId}", "u", "{decisionId}", "dec_x",
		"{email}", "a@example.com", "{tokenId}", "tok_x").Replace(tmpl)
}

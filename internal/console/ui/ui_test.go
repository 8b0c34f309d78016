package ui

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// examplePaths are a request path for every page pattern.
var examplePaths = map[string]string{
	"GET /{$}":                                 "/",
	"GET /projects":                            "/projects",
	"GET /projects/{projectId}/security":       "/projects/proj_shop/security",
	"GET /projects/{projectId}/users":          "/projects/proj_shop/users",
	"GET /projects/{projectId}/users/{userId}": "/projects/proj_shop/users/u%2F7%20%3Cb%3E",
	"GET /audit":                               "/audit",
	"GET /admin-events":                        "/admin-events",
	"GET /accounts":                            "/accounts",
	"GET /account":                             "/account",
	"GET /sign-in":                             "/sign-in",
}

func server(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	Mount(mux, "/api/v1")
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
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
	return res, b
}

// TestEveryPageAnswersHTML asks every page: 200, HTML, no caching without
// revalidation, its own script, and the path's ids escaped into the page.
func TestEveryPageAnswersHTML(t *testing.T) {
	t.Parallel()
	srv := server(t)
	if len(examplePaths) != len(pages) {
		t.Fatalf("examplePaths has %d paths for %d pages: add the new page's", len(examplePaths), len(pages))
	}
	for _, p := range pages {
		t.Run(p.name+" "+p.pattern, func(t *testing.T) {
			t.Parallel()
			target, ok := examplePaths[p.pattern]
			if !ok {
				t.Fatalf("no example path for %s", p.pattern)
			}
			res, body := get(t, srv.URL+target)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", target, res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", target, ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("GET %s: Cache-Control %q", target, cc)
			}
			if !bytes.Contains(body, []byte(`<script type="module" src="/static/js/pages/`+p.name+`.js?v=`)) {
				t.Errorf("GET %s does not load its script pages/%s.js", target, p.name)
			}
			if !bytes.Contains(body, []byte("<h1")) || !bytes.Contains(body, []byte("<main")) {
				t.Errorf("GET %s has no <main> or <h1>", target)
			}
			if bytes.Contains(body, []byte("<b>")) {
				t.Errorf("GET %s put the path's user id into the page unescaped", target)
			}
			lint(t, target, body)
		})
	}
}

func TestUnknownPathsAnswer404(t *testing.T) {
	t.Parallel()
	srv := server(t)
	for _, tc := range []struct {
		name, path, contentType string
	}{
		{name: "page", path: "/nope", contentType: "text/html; charset=utf-8"},
		{name: "under a page", path: "/projects/proj_shop/keys", contentType: "text/html; charset=utf-8"},
		{name: "trailing slash", path: "/audit/", contentType: "text/html; charset=utf-8"},
		{name: "asset", path: "/static/js/nope.js", contentType: "text/plain; charset=utf-8"},
		{name: "template", path: "/static/../templates/layout.html", contentType: "text/html; charset=utf-8"},
		{name: "api", path: "/api/v1/nope", contentType: "application/problem+json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, body := get(t, srv.URL+tc.path)
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("GET %s: %d, want 404", tc.path, res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("GET %s: Content-Type %q, want %q", tc.path, ct, tc.contentType)
			}
			if strings.HasPrefix(tc.contentType, "text/html") {
				lint(t, tc.path, body)
				if !bytes.Contains(body, []byte("Page not found")) {
					t.Errorf("GET %s: the 404 page does not say so: %s", tc.path, body)
				}
			}
		})
	}
}

func TestAssetsHaveTheirContentTypes(t *testing.T) {
	t.Parallel()
	srv := server(t)
	want := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
		".svg": "image/svg+xml",
	}
	n := 0
	for p, a := range assets {
		ct, ok := want[path.Ext(p)]
		if path.Base(p) == "LICENSE" {
			ct, ok = "text/plain; charset=utf-8", true
		}
		if !ok {
			t.Errorf("static/%s: no content type is expected for its kind; add it to contentTypes and this test", p)
			continue
		}
		res, body := get(t, srv.URL+StaticPrefix+p)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct || !bytes.Equal(body, a.body) {
			t.Errorf("GET %s%s: %d %q (%d bytes), want 200 %q (%d bytes)", StaticPrefix, p, res.StatusCode, res.Header.Get("Content-Type"), len(body), ct, len(a.body))
		}
		if res.Header.Get("ETag") == "" {
			t.Errorf("GET %s%s: no ETag", StaticPrefix, p)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d assets", n)
	}
}

func TestAssetCaching(t *testing.T) {
	t.Parallel()
	srv := server(t)
	u := assetURL("js/api.js")
	res, _ := get(t, srv.URL+u)
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("GET %s: Cache-Control %q, want immutable for a versioned URL", u, cc)
	}
	etag := res.Header.Get("ETag")
	res, _ = get(t, srv.URL+StaticPrefix+"js/api.js?v=old")
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("an asset asked with a stale version: Cache-Control %q, want no-cache", cc)
	}
	res, _ = get(t, srv.URL+StaticPrefix+"js/api.js", "If-None-Match", etag)
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", res.StatusCode)
	}
}

// TestTemplatesHaveNoInlineScriptOrStyle parses every embedded template
// (the CSP forbids inline script and style, so they would not run): no
// <script> without src or with a body, no <style>, no style= or on…=
// attribute, no javascript: URL.
func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	t.Parallel()
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil || len(names) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		lint(t, n, b)
	}
	// The linter itself, on what it must refuse.
	for _, bad := range []string{
		`<script>alert(1)</script>`,
		`<script src="/x.js">alert(1)</script>`,
		`<style>p{}</style>`,
		`<p style="color:red">x</p>`,
		`<button onclick="x()">x</button>`,
		`<a href="javascript:x()">x</a>`,
		`<svg><style>p{}</style></svg>`,
	} {
		if problems(strings.NewReader(bad)) == nil {
			t.Errorf("the linter accepts %s", bad)
		}
	}
}

// lint fails the test on inline script or style in an HTML document.
func lint(t *testing.T, name string, doc []byte) {
	t.Helper()
	for _, p := range problems(bytes.NewReader(doc)) {
		t.Errorf("%s: %s", name, p)
	}
}

func problems(r io.Reader) []string {
	var out []string
	z := html.NewTokenizer(r)
	inScript := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return out
		case html.TextToken:
			if inScript && strings.TrimSpace(string(z.Text())) != "" {
				out = append(out, "a <script> with a body (inline script)")
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "script" {
				inScript = false
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			src := false
			for _, a := range tok.Attr {
				key := strings.ToLower(a.Key)
				switch {
				case key == "style":
					out = append(out, "<"+tok.Data+"> has a style attribute")
				case strings.HasPrefix(key, "on"):
					out = append(out, "<"+tok.Data+"> has an event handler attribute "+key)
				case key == "src":
					src = strings.TrimSpace(a.Val) != ""
				}
				if strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
					out = append(out, "<"+tok.Data+"> has a javascript: URL")
				}
			}
			switch tok.Data {
			case "style":
				out = append(out, "a <style> element")
			case "script":
				if !src {
					out = append(out, "a <script> without src")
				}
				inScript = tt == html.StartTagToken
			}
		}
	}
}

// importRE finds the module specifiers of static imports.
var importRE = regexp.MustCompile(`(?m)^\s*import\s+(?:[^'";]+\s+from\s+)?['"]([^'"]+)['"]`)

// TestScriptsImportOnlyShippedModules resolves every import of every
// module the console ships: each is a relative path to an embedded file,
// never another origin.
func TestScriptsImportOnlyShippedModules(t *testing.T) {
	t.Parallel()
	for p, a := range assets {
		if path.Ext(p) != ".js" || strings.HasPrefix(p, "vendor/") {
			continue
		}
		for _, m := range importRE.FindAllSubmatch(a.body, -1) {
			spec := string(m[1])
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("static/%s imports %q: only relative imports of shipped modules", p, spec)
				continue
			}
			target := path.Join(path.Dir(p), spec)
			if _, ok := assets[target]; !ok {
				t.Errorf("static/%s imports %s, which is not shipped", p, target)
			}
		}
	}
	for _, p := range pages {
		if _, ok := assets["js/pages/"+p.name+".js"]; !ok {
			t.Errorf("page %s has no script static/js/pages/%s.js", p.pattern, p.name)
		}
	}
}

// forbidden are what the console's own scripts never do: parse strings as
// markup or code, or write a style attribute (the CSP refuses it).
var forbidden = []string{".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'", `setAttribute("style"`, "style.cssText"}

func TestScriptsNeverParseMarkup(t *testing.T) {
	t.Parallel()
	for p, a := range assets {
		if path.Ext(p) != ".js" || strings.HasPrefix(p, "vendor/") {
			continue
		}
		for _, f := range forbidden {
			if bytes.Contains(a.body, []byte(f)) {
				t.Errorf("static/%s uses %s", p, f)
			}
		}
	}
}

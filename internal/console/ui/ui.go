// Package ui is the console's pages: html/template shells and small plain
// JavaScript modules, embedded in the binary, that a browser runs against
// the admin API under /api/v1.
//
// The pages hold no data and decide nothing: every figure they show and
// every change they make goes through the same API automation uses (fetch,
// same origin, the session cookie), so that the console can do nothing a
// script cannot. This package must never read a project, an account or the
// audit itself, nor grow a route that does; it also must never serve an
// inline script or style (the console's CSP forbids them), which its tests
// check of every template.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates static
var files embed.FS

// StaticPrefix starts the path of every asset.
const StaticPrefix = "/static/"

// page is one page of the console: a mux pattern and its template.
type page struct {
	// pattern is the ServeMux pattern, GET only.
	pattern string
	// name is the template's file (without .html) and the page's script
	// under static/js/pages/.
	name string
	// title is the page's <title>, before " · Hissuno console".
	title string
	// nav is the navigation entry marked current.
	nav string
	// public pages do not need a session (signing in).
	public bool
}

// pages are every page the console serves.
var pages = []page{
	{pattern: "GET /{$}", name: "projects", title: "Projects", nav: "projects"},
	{pattern: "GET /projects", name: "projects", title: "Projects", nav: "projects"},
	{pattern: "GET /projects/{projectId}/security", name: "security", title: "Settings › Widget › Security", nav: "projects"},
	{pattern: "GET /projects/{projectId}/users", name: "users", title: "Users", nav: "projects"},
	{pattern: "GET /projects/{projectId}/users/{userId}", name: "user", title: "A user's history", nav: "projects"},
	{pattern: "GET /audit", name: "audit", title: "Audit explorer", nav: "audit"},
	{pattern: "GET /admin-events", name: "admin-events", title: "Admin events", nav: "admin-events"},
	{pattern: "GET /accounts", name: "accounts", title: "Accounts and API tokens", nav: "accounts"},
	{pattern: "GET /account", name: "account", title: "Your account", nav: "account"},
	{pattern: "GET /sign-in", name: "sign-in", title: "Sign in", public: true},
}

// view is what a page's template is rendered with.
type view struct {
	// Page names the page (its template and script).
	Page string
	// Title is the <title>.
	Title string
	// Nav is the current navigation entry.
	Nav string
	// Public is true for the sign-in page, which shows no navigation.
	Public bool
	// ProjectID and UserID are the path's, for the scripts.
	ProjectID, UserID string
	// Asset maps a static path to its URL with a version for caches.
	Asset func(string) string
}

// templates are every page's template set: the layout and the page.
var templates = parseTemplates()

func parseTemplates() map[string]*template.Template {
	layout := template.Must(template.ParseFS(files, "templates/layout.html"))
	out := map[string]*template.Template{}
	names := []string{"not-found"}
	for _, p := range pages {
		names = append(names, p.name)
	}
	for _, n := range names {
		if out[n] != nil {
			continue
		}
		t := template.Must(layout.Clone())
		out[n] = template.Must(t.ParseFS(files, "templates/"+n+".html"))
	}
	return out
}

// asset is one embedded static file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets are the static files by path under static/.
var assets = loadAssets()

func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: contentType(p), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return out
}

// contentTypes are the types of the files under static/; a file of
// another kind is served as application/octet-stream.
var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".txt":  "text/plain; charset=utf-8",
	".json": "application/json",
}

func contentType(p string) string {
	if strings.HasSuffix(p, "/LICENSE") {
		return "text/plain; charset=utf-8"
	}
	if ct, ok := contentTypes[path.Ext(p)]; ok {
		return ct
	}
	return "application/octet-stream"
}

// assetURL is an asset's URL, versioned by its content so that a cached
// copy of an older build is never used.
func assetURL(p string) string {
	a, ok := assets[p]
	if !ok {
		panic("ui: no asset " + p)
	}
	return StaticPrefix + p + "?v=" + strings.Trim(a.etag, `"`)
}

// Mount adds the pages, the assets under StaticPrefix and an HTML 404 for
// every other GET outside the API to mux. apiPrefix is where the API is
// mounted; an unknown path under it answers a problem document, as the API
// does.
func Mount(mux *http.ServeMux, apiPrefix string) {
	for _, p := range pages {
		mux.Handle(p.pattern, pageHandler(p))
	}
	mux.HandleFunc("GET "+StaticPrefix+"{path...}", serveAsset)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == apiPrefix || strings.HasPrefix(r.URL.Path, apiPrefix+"/") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"title":"Not Found","status":404,"detail":"no such endpoint; the API is described at ` + apiPrefix + `/openapi.json"}`))
			return
		}
		render(w, http.StatusNotFound, "not-found", view{Page: "not-found", Title: "Page not found", Public: true})
	})
}

func pageHandler(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		render(w, http.StatusOK, p.name, view{Page: p.name, Title: p.title, Nav: p.nav, Public: p.public,
			ProjectID: r.PathValue("projectId"), UserID: r.PathValue("userId")})
	})
}

// render writes a page: rendered whole before the first byte, so that a
// template error is a 500, not half a page.
func render(w http.ResponseWriter, status int, name string, v view) {
	v.Asset = assetURL
	var b bytes.Buffer
	if err := templates[name].ExecuteTemplate(&b, "layout", v); err != nil {
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// serveAsset serves an embedded file with its type and an ETag; browsers
// revalidate (no-cache), and a versioned URL from a page may be kept.
func serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.PathValue("path")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	if r.URL.Query().Get("v") == strings.Trim(a.etag, `"`) {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

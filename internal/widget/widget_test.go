package widget_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widget"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	etag := func() string {
		rec := httptest.NewRecorder()
		widget.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, widget.Path, nil))
		return rec.Header().Get("ETag")
	}()
	if etag == "" {
		t.Fatal("no ETag")
	}
	tests := []struct {
		name       string
		method     string
		header     map[string]string
		wantStatus int
		wantBody   bool
	}{
		{name: "get", method: http.MethodGet, wantStatus: http.StatusOK, wantBody: true},
		{name: "get from another origin", method: http.MethodGet, header: map[string]string{"Origin": "https://shop.example"}, wantStatus: http.StatusOK, wantBody: true},
		{name: "head", method: http.MethodHead, wantStatus: http.StatusOK},
		{name: "revalidation with the current etag", method: http.MethodGet, header: map[string]string{"If-None-Match": etag}, wantStatus: http.StatusNotModified},
		{name: "revalidation with an old etag", method: http.MethodGet, header: map[string]string{"If-None-Match": `"0000"`}, wantStatus: http.StatusOK, wantBody: true},
		{name: "post", method: http.MethodPost, wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, widget.Path, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			widget.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusMethodNotAllowed {
				if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow %q", got)
				}
				return
			}
			h := rec.Header()
			want := map[string]string{
				"Cache-Control":                widget.CacheControl,
				"ETag":                         etag,
				"Access-Control-Allow-Origin":  "*",
				"Cross-Origin-Resource-Policy": "cross-origin",
				"X-Content-Type-Options":       "nosniff",
			}
			if tc.wantStatus == http.StatusOK {
				want["Content-Type"] = "application/javascript; charset=utf-8"
			}
			for k, v := range want {
				if got := h.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if got := rec.Body.Len() > 0; got != tc.wantBody {
				t.Errorf("body of %d bytes; want one: %v", rec.Body.Len(), tc.wantBody)
			}
			if tc.wantBody && !bytes.Equal(rec.Body.Bytes(), widget.Source()) {
				t.Error("the body is not the loader")
			}
		})
	}
}

// TestSource checks the loader keeps the surface that sites and the browser
// tests rely on.
func TestSource(t *testing.T) {
	t.Parallel()
	src := string(widget.Source())
	for _, want := range []string{
		"/v1/widget/connect", "Hissuno.init", "hissuno-widget", "data-state",
		"token_expired", "token_bad_signature", "origin_blocked", "console.warn",
		"data-project-id", "data-token-url",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("widget.js lacks %q", want)
		}
	}
}

// TestIngressServesLoader: the ingress of a running stack serves the loader.
func TestIngressServesLoader(t *testing.T) {
	st := stacktest.Start(t, stack.Config{})
	res, err := http.Get("http://" + st.HTTPAddr + widget.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, widget.Source()) {
		t.Fatalf("GET %s: %d, %d bytes; want 200 and the loader", widget.Path, res.StatusCode, len(body))
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

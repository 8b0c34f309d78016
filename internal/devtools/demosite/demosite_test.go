package demosite_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/devtools/demosite"
)

const (
	keyV1 = "sk_live_test_key_version_one_0123456789"
	keyV2 = "sk_live_test_key_version_two_9876543210"
)

// newSite makes a demo site whose key source is a file the test writes.
func newSite(t *testing.T, cfg demosite.Config) (*demosite.Site, string) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "demo-secret-key")
	if cfg.IngressURL == "" {
		cfg.IngressURL = "http://127.0.0.1:8080"
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = "proj_demo"
	}
	if cfg.SecretKey == nil {
		cfg.SecretKey = demosite.KeyFile(keyFile)
	}
	site, err := demosite.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return site, keyFile
}

func writeKey(t *testing.T, path, key string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// token gets a token from the site's endpoint.
func token(t *testing.T, site *demosite.Site) string {
	t.Helper()
	rec := get(t, site.Handler(), demosite.TokenPath)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", demosite.TokenPath, rec.Code, rec.Body)
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Token == "" {
		t.Fatalf("GET %s: body %s is not {\"token\": …}", demosite.TokenPath, rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	return body.Token
}

// parse verifies tok with key as the docs' HS256 and returns its claims.
func parse(t *testing.T, tok, key string) (jwt.MapClaims, error) {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(key), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	return claims, err
}

func TestTokenEndpointMintsLikeTheDocsExpressExample(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name    string
		cfg     demosite.Config
		wantTTL int64
		wantID  string
		wantMD  map[string]any
	}{
		{
			name:    "defaults",
			cfg:     demosite.Config{},
			wantTTL: 24 * 3600,
			wantID:  "demo-user",
			wantMD:  map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"},
		},
		{
			name:    "a short-lived token for another user",
			cfg:     demosite.Config{UserID: "u-42", UserName: "Grace", UserEmail: "grace@example.com", TokenTTL: 70 * time.Second},
			wantTTL: 70,
			wantID:  "u-42",
			wantMD:  map[string]any{"name": "Grace", "email": "grace@example.com"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Clock = func() time.Time { return now }
			site, keyFile := newSite(t, tc.cfg)
			writeKey(t, keyFile, keyV1)
			tok := token(t, site)
			var header struct {
				Alg string `json:"alg"`
			}
			p, _ := jwt.NewParser().DecodeSegment(strings.Split(tok, ".")[0])
			if err := json.Unmarshal(p, &header); err != nil || header.Alg != "HS256" {
				t.Fatalf("header %s: alg %q, want HS256", p, header.Alg)
			}
			claims := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
				t.Fatal(err)
			}
			if _, err := jwt.NewParser(jwt.WithTimeFunc(func() time.Time { return now })).ParseWithClaims(tok, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return []byte(keyV1), nil }); err != nil {
				t.Fatalf("the token does not verify with the key: %v", err)
			}
			if claims["userId"] != tc.wantID {
				t.Errorf("userId %v, want %s", claims["userId"], tc.wantID)
			}
			md, _ := claims["userMetadata"].(map[string]any)
			if len(md) != len(tc.wantMD) || md["name"] != tc.wantMD["name"] || md["email"] != tc.wantMD["email"] {
				t.Errorf("userMetadata %v, want %v", claims["userMetadata"], tc.wantMD)
			}
			iat, _ := claims["iat"].(float64)
			exp, _ := claims["exp"].(float64)
			if int64(iat) != now.Unix() || int64(exp-iat) != tc.wantTTL {
				t.Errorf("iat %v exp %v, want iat %d and exp iat+%d", iat, exp, now.Unix(), tc.wantTTL)
			}
		})
	}
}

// TestKeyReplacedAfterRotation: the key file is read for every token, so a
// key written after a rotation signs the next token.
func TestKeyReplacedAfterRotation(t *testing.T) {
	t.Parallel()
	site, keyFile := newSite(t, demosite.Config{})
	writeKey(t, keyFile, keyV1)
	if _, err := parse(t, token(t, site), keyV1); err != nil {
		t.Fatalf("first token: %v", err)
	}
	writeKey(t, keyFile, keyV2)
	tok := token(t, site)
	if _, err := parse(t, tok, keyV2); err != nil {
		t.Fatalf("token after the key was replaced: %v", err)
	}
	if _, err := parse(t, tok, keyV1); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Fatalf("token after the key was replaced verifies with the old key (%v)", err)
	}
}

func TestTokenEndpointWithoutKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string // "" leaves the file missing
	}{
		{name: "missing file"},
		{name: "not a key", content: "hunter2-not-a-key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			site, keyFile := newSite(t, demosite.Config{})
			if tc.content != "" {
				writeKey(t, keyFile, tc.content)
			}
			rec := get(t, site.Handler(), demosite.TokenPath)
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500", rec.Code)
			}
			if body := rec.Body.String(); strings.Contains(body, "token\"") || (tc.content != "" && strings.Contains(body, tc.content)) {
				t.Errorf("body %s", body)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	writeKey(t, path, "  "+keyV1+"  ")
	key, err := demosite.KeyFile(path)()
	if err != nil || key != keyV1 {
		t.Fatalf("KeyFile: %q, %v; want the trimmed key", key, err)
	}
	writeKey(t, path, "not-a-key-value")
	if _, err := demosite.KeyFile(path)(); err == nil || strings.Contains(err.Error(), "not-a-key-value") {
		t.Fatalf("KeyFile of a file without a key: %v; want an error that does not quote the file", err)
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		path        string // default "/"
		cfg         demosite.Config
		want        []string
		wantMissing []string
	}{
		{
			name: "defaults load the widget from the ingress with a token endpoint",
			cfg:  demosite.Config{IngressURL: "http://127.0.0.1:9999/"},
			want: []string{
				`<script src="http://127.0.0.1:9999/widget.js"></script>`,
				`"projectId":"proj_demo"`, `"tokenUrl":"/api/hissuno-token"`, `"userId":"demo-user"`,
				`"userMetadata":{"name":"Ada Lovelace"}`,
			},
		},
		{
			name: "the no-code embed puts the options in data- attributes",
			path: demosite.NoCodePath,
			cfg:  demosite.Config{IngressURL: "http://127.0.0.1:9999", InitOptions: map[string]any{"widgetToken": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}},
			want: []string{
				`<script src="http://127.0.0.1:9999/widget.js" data-project-id="proj_demo" data-token-url="/api/hissuno-token" data-user-id="demo-user" data-user-metadata="{&#34;name&#34;:&#34;Ada Lovelace&#34;}" data-widget-token="eyJhbGciOiJIUzI1NiJ9.e30.sig"></script>`,
				`data-widget-token=&#34;…&#34;`,
			},
			wantMissing: []string{"Hissuno.init(opts)"},
		},
		{
			name:        "a nil option removes it",
			cfg:         demosite.Config{InitOptions: map[string]any{"tokenUrl": nil}},
			wantMissing: []string{`"tokenUrl"`},
		},
		{
			name:        "a token rendered into the page is elided from the snippet",
			cfg:         demosite.Config{InitOptions: map[string]any{"widgetToken": "eyJhbGciOiJIUzI1NiJ9.e30.sig", "refreshMarginSeconds": 5}},
			want:        []string{`"widgetToken":"eyJhbGciOiJIUzI1NiJ9.e30.sig"`, `"refreshMarginSeconds":5`, `&#34;widgetToken&#34;: &#34;…&#34;`},
			wantMissing: []string{`&#34;widgetToken&#34;: &#34;eyJ`},
		},
		{
			name:        "a name cannot break out of the script",
			cfg:         demosite.Config{UserName: `</script><script>alert(1)</script>`},
			wantMissing: []string{`<script>alert(1)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			site, _ := newSite(t, tc.cfg)
			if tc.path == "" {
				tc.path = "/"
			}
			rec := get(t, site.Handler(), tc.path)
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("GET /: %d %s", rec.Code, rec.Header().Get("Content-Type"))
			}
			page := rec.Body.String()
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("the page lacks %s", w)
				}
			}
			for _, w := range tc.wantMissing {
				if strings.Contains(page, w) {
					t.Errorf("the page has %s", w)
				}
			}
		})
	}
	site, _ := newSite(t, demosite.Config{})
	if rec := get(t, site.Handler(), "/nothing-here"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", rec.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	key := func() (string, error) { return keyV1, nil }
	tests := []struct {
		name    string
		cfg     demosite.Config
		wantErr string
	}{
		{name: "valid", cfg: demosite.Config{IngressURL: "https://ingress.example", ProjectID: "p", SecretKey: key}},
		{name: "no ingress", cfg: demosite.Config{ProjectID: "p", SecretKey: key}, wantErr: "no ingress URL"},
		{name: "ingress with a path", cfg: demosite.Config{IngressURL: "http://h/x", ProjectID: "p", SecretKey: key}, wantErr: "must be http(s)://HOST[:PORT]"},
		{name: "ingress without a scheme", cfg: demosite.Config{IngressURL: "127.0.0.1:8080", ProjectID: "p", SecretKey: key}, wantErr: "must be http(s)://HOST[:PORT]"},
		{name: "no project", cfg: demosite.Config{IngressURL: "http://h", SecretKey: key}, wantErr: "no project id"},
		{name: "no key source", cfg: demosite.Config{IngressURL: "http://h", ProjectID: "p"}, wantErr: "no secret key source"},
		{name: "negative ttl", cfg: demosite.Config{IngressURL: "http://h", ProjectID: "p", SecretKey: key, TokenTTL: -time.Second}, wantErr: "cannot be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := demosite.New(tc.cfg, zerolog.Nop())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("New: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestRun serves the site on a real port until the context ends.
func TestRun(t *testing.T) {
	t.Parallel()
	site, keyFile := newSite(t, demosite.Config{Listen: "127.0.0.1:0"})
	writeKey(t, keyFile, keyV1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- site.Run(ctx) }()
	t.Cleanup(cancel)
	select {
	case <-site.Listening():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if !strings.HasPrefix(site.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %q", site.URL())
	}
	res, err := http.Get(site.URL() + demosite.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"token"`) {
		t.Fatalf("GET %s: %d %s", demosite.TokenPath, res.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}

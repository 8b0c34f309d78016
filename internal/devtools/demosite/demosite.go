// Package demosite is a demo customer site: the page a newcomer opens in a
// browser to see the Hissuno widget work, and the token endpoint a
// customer's backend would have. `hissuno dev` serves it on a second port;
// the browser tests start their own.
//
// Its page loads INGRESS/widget.js and calls Hissuno.init with tokenUrl
// "/api/hissuno-token". That endpoint mints tokens exactly as the docs'
// Express example does: HS256 with the project's secret key as the raw HMAC
// key, claims {userId, userMetadata: {name, email}}, iat, and exp 24 hours
// later. The key is asked for on every token (Config.SecretKey), so that an
// admin can replace it after a rotation without a restart.
//
// It never logs, shows or returns the secret key; a token goes only to the
// page that asked for it.
package demosite

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/redact"
)

// TokenPath is the site's token endpoint, as in the docs' examples.
const TokenPath = "/api/hissuno-token"

// NoCodePath serves the same page with the no-code embed: the options as
// data- attributes of the script tag instead of a Hissuno.init call.
const NoCodePath = "/no-code"

// Config configures a demo site.
type Config struct {
	// Listen is the HTTP address; default 127.0.0.1:8081.
	Listen string
	// IngressURL is the base URL of the ingress that serves /widget.js and
	// /v1/widget/connect, e.g. http://127.0.0.1:8080; required.
	IngressURL string
	// ProjectID is the project the page's widget connects to; required.
	ProjectID string
	// SecretKey returns the project's secret key (sk_live_…). It is called
	// for every token, so a key replaced after a rotation is used at once;
	// KeyFile reads one from a file. Required.
	SecretKey func() (string, error)
	// UserID is the demo visitor's userId claim; default "demo-user".
	UserID string
	// UserName is the demo visitor's name (userMetadata.name); default
	// "Ada Lovelace".
	UserName string
	// UserEmail is the demo visitor's email (userMetadata.email); default
	// "ada@example.com".
	UserEmail string
	// TokenTTL is how long a minted token is valid (exp = iat + TokenTTL);
	// default 24 hours, as the docs recommend.
	TokenTTL time.Duration
	// InitOptions are added to the page's Hissuno.init options, replacing
	// the defaults (projectId, tokenUrl, userId, userMetadata); a nil value
	// removes an option, e.g. {"tokenUrl": nil} for a page without a token
	// endpoint, or {"widgetToken": "…"} for a token rendered into the page.
	InitOptions map[string]any
	// Clock is the site's clock; default time.Now.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8081"
	}
	if c.UserID == "" {
		c.UserID = "demo-user"
	}
	if c.UserName == "" {
		c.UserName = "Ada Lovelace"
	}
	if c.UserEmail == "" {
		c.UserEmail = "ada@example.com"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.IngressURL)
	switch {
	case c.IngressURL == "":
		return errors.New("demosite: no ingress URL")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("demosite: ingress URL %q must be http(s)://HOST[:PORT]", c.IngressURL)
	case c.ProjectID == "":
		return errors.New("demosite: no project id")
	case c.SecretKey == nil:
		return errors.New("demosite: no secret key source")
	case c.TokenTTL < 0:
		return errors.New("demosite: the token TTL cannot be negative")
	}
	return nil
}

// KeyFile returns a key source that reads the secret key from path on every
// call, so that replacing the file's content takes effect at once. Its
// errors name the file, never its content.
func KeyFile(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read the secret key: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if !strings.HasPrefix(key, redact.KeyPrefix) {
			return "", fmt.Errorf("%s does not hold a secret key (%s…); write the project's key into it", path, redact.KeyPrefix)
		}
		return key, nil
	}
}

// Site is a running demo site.
type Site struct {
	cfg  Config
	log  zerolog.Logger
	page *template.Template
	mux  *http.ServeMux

	listening chan struct{} // closed once the listener is bound
	addr      string        // the bound address
}

//go:embed page.html
var pageHTML string

// New makes a demo site.
func New(cfg Config, log zerolog.Logger) (*Site, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.IngressURL = strings.TrimSuffix(cfg.IngressURL, "/")
	s := &Site{
		cfg:       cfg,
		log:       log.With().Str("component", "demosite").Logger(),
		page:      template.Must(template.New("page").Parse(pageHTML)),
		mux:       http.NewServeMux(),
		listening: make(chan struct{}),
	}
	s.mux.HandleFunc("GET /{$}", s.servePage)
	s.mux.HandleFunc("GET "+NoCodePath, s.servePage)
	s.mux.HandleFunc("GET "+TokenPath, s.serveToken)
	return s, nil
}

// Handler is the site's HTTP handler.
func (s *Site) Handler() http.Handler { return s.mux }

// Listening is closed once the listener is bound; Addr and URL are then
// valid.
func (s *Site) Listening() <-chan struct{} { return s.listening }

// Addr is the bound address (after Listening).
func (s *Site) Addr() string { return s.addr }

// URL is the site's base URL (after Listening), with 127.0.0.1 for an
// unspecified host so that a browser can open it.
func (s *Site) URL() string {
	host, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		return "http://" + s.addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Run serves the site until ctx ends.
func (s *Site) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("demosite: listen on %s: %w (is the port taken? change the demo site's address)", s.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	s.addr = ln.Addr().String()
	close(s.listening)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info().Str("url", s.URL()).Msg("demo site serving")
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("demosite: serve: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("demosite: shutdown: %w", err)
	}
	return nil
}

// pageData fills page.html.
type pageData struct {
	IngressURL  string
	ProjectID   string
	UserID      string
	UserName    string
	TokenPath   string
	TokenTTL    string
	InitOptions map[string]any
	// NoCode embeds with the script tag's data- attributes (Data).
	NoCode bool
	Data   dataAttrs
	// Snippet is the embed as the page's source has it, a token rendered
	// into the page elided.
	Snippet string
}

// dataAttrs are the no-code embed's data- attributes.
type dataAttrs struct {
	ProjectID, TokenURL, UserID, UserMetadata, WidgetToken string
}

// initOptions are the page's Hissuno.init options: the defaults, then
// Config.InitOptions (a nil value removes one).
func (s *Site) initOptions() map[string]any {
	opts := map[string]any{
		"projectId":    s.cfg.ProjectID,
		"tokenUrl":     TokenPath,
		"userId":       s.cfg.UserID,
		"userMetadata": map[string]string{"name": s.cfg.UserName},
	}
	maps.Copy(opts, s.cfg.InitOptions)
	maps.DeleteFunc(opts, func(_ string, v any) bool { return v == nil })
	return opts
}

// attrs are the options as data- attributes.
func attrs(opts map[string]any) dataAttrs {
	str := func(k string) string {
		if v, ok := opts[k]; ok {
			return fmt.Sprint(v)
		}
		return ""
	}
	d := dataAttrs{ProjectID: str("projectId"), TokenURL: str("tokenUrl"), UserID: str("userId"), WidgetToken: str("widgetToken")}
	if md, ok := opts["userMetadata"]; ok {
		b, _ := json.Marshal(md)
		d.UserMetadata = string(b)
	}
	return d
}

// snippet is the embed as the page's source has it, a token elided.
func snippet(ingress string, opts map[string]any, noCode bool) string {
	src := ingress + "/widget.js"
	if noCode {
		d := attrs(opts)
		var b strings.Builder
		fmt.Fprintf(&b, "<script src=%q\n  data-project-id=%q", src, d.ProjectID)
		for _, a := range [][2]string{{"data-token-url", d.TokenURL}, {"data-user-id", d.UserID}, {"data-user-metadata", d.UserMetadata}, {"data-widget-token", d.WidgetToken}} {
			if a[1] == "" {
				continue
			}
			if a[0] == "data-widget-token" {
				a[1] = "…"
			}
			if a[0] == "data-user-metadata" {
				fmt.Fprintf(&b, "\n  %s='%s'", a[0], a[1])
			} else {
				fmt.Fprintf(&b, "\n  %s=%q", a[0], a[1])
			}
		}
		b.WriteString("></script>")
		return b.String()
	}
	shown := maps.Clone(opts)
	if _, ok := shown["widgetToken"]; ok {
		shown["widgetToken"] = "…"
	}
	js, _ := json.MarshalIndent(shown, "  ", "  ")
	return fmt.Sprintf("<script src=%q></script>\n<script>\n  Hissuno.init(%s);\n</script>", src, js)
}

func (s *Site) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	opts := s.initOptions()
	noCode := r.URL.Path == NoCodePath
	err := s.page.Execute(w, pageData{
		IngressURL:  s.cfg.IngressURL,
		ProjectID:   s.cfg.ProjectID,
		UserID:      s.cfg.UserID,
		UserName:    s.cfg.UserName,
		TokenPath:   TokenPath,
		TokenTTL:    humanDuration(s.cfg.TokenTTL),
		InitOptions: opts,
		NoCode:      noCode,
		Data:        attrs(opts),
		Snippet:     snippet(s.cfg.IngressURL, opts, noCode),
	})
	if err != nil {
		s.log.Error().Err(err).Msg("page not rendered")
	}
}

// mint signs a token for the demo visitor the way the docs' Express example
// does: HS256, {userId, userMetadata: {name, email}}, iat, exp.
func (s *Site) mint(key string) (string, error) {
	now := s.cfg.Clock()
	claims := jwt.MapClaims{
		"userId":       s.cfg.UserID,
		"userMetadata": map[string]string{"name": s.cfg.UserName, "email": s.cfg.UserEmail},
		"iat":          now.Unix(),
		"exp":          now.Add(s.cfg.TokenTTL).Unix(),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
}

// tokenResponse is the token endpoint's answer, as in the docs.
type tokenResponse struct {
	Token string `json:"token"`
}

func (s *Site) serveToken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	key, err := s.cfg.SecretKey()
	if err != nil {
		s.log.Error().Str("error", redact.String(err.Error())).Msg("no secret key to mint with")
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the demo site has no secret key to mint with; see its log"})
		return
	}
	tok, err := s.mint(key)
	if err != nil {
		s.log.Error().Str("error", redact.String(err.Error())).Msg("token not signed")
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the token could not be signed"})
		return
	}
	s.log.Debug().Str("token", redact.Fingerprint(tok)).Str("key", redact.Fingerprint(key)).Msg("minted a widget token")
	writeJSON(w, http.StatusOK, tokenResponse{Token: tok})
}

// humanDuration writes 24h0m0s as 24h and 1m10s as 70s.
func humanDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Package console is the admin role: an authenticated HTTP API under
// /api/v1/ (the console pages are built on it) for the two users the
// machine half does not serve, admins and security teams.
//
// It never changes a project itself: every change is an admin command sent
// through internal/admin as source console, which the rotator applies and
// records with the console account or API token that asked
// ("console:ada@example.com", "token:tok_…"): NATS lets only the console's
// user publish commands as the console. It reads the audit from ClickHouse
// as `hissuno audit` does, and keeps its accounts, sessions, API tokens
// and sign-in throttle in KV buckets only its NATS user may read
// (internal/account). Its OpenAPI 3.1 document, generated from the
// handlers, is served at /api/v1/openapi.json.
package console

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/danielgtaylor/huma/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/console/ui"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/project"
)

// Defaults of Config, one source for the flags too.
const (
	DefaultListen         = "127.0.0.1:8090"
	DefaultCommandTimeout = 20 * time.Second
)

// APIPrefix starts every path of the API.
const APIPrefix = "/api/v1"

// Config configures a console.
type Config struct {
	// NATS is the connection as the console's NATS user, with its inbox
	// prefix (events.InboxPrefix(events.SourceConsole)); required.
	NATS *nats.Conn
	// ClickHouseDSN is where the audit is read from. The console starts
	// without ClickHouse (or without a DSN): the audit endpoints answer 503
	// until it is reachable.
	ClickHouseDSN string
	// Listen is the HTTP address; default DefaultListen. Never the widget
	// port: the console is for admins only.
	Listen string
	// TLSCertFile and TLSKeyFile, both or neither, serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// TLSProxy says a reverse proxy in front terminates HTTPS: the session
	// cookie is Secure and __Host- prefixed, and answers carry HSTS, even
	// on a loopback address. Without it, plain HTTP on loopback is taken
	// for a developer's machine.
	TLSProxy bool
	// Instance names this console in logs; default: a random name.
	Instance string
	// Accounts configures sessions and sign-in throttling.
	Accounts account.Config
	// CommandTimeout is how long a change waits for the rotator's answer;
	// default DefaultCommandTimeout.
	CommandTimeout time.Duration
	// Checks receives the console's readiness checks and is served on
	// /readyz; default: a new set.
	Checks *health.Checks
	// Clock is the server clock; default time.Now.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Instance == "" {
		c.Instance = bus.InstanceName("console")
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.Checks == nil {
		c.Checks = &health.Checks{}
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Accounts.Clock == nil {
		c.Accounts.Clock = c.Clock
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil:
		return errors.New("console: no NATS connection")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("console: give both --tls-cert and --tls-key, or neither")
	case c.TLSProxy && c.TLSCertFile != "":
		return errors.New("console: --tls-proxy says a proxy in front terminates HTTPS; with --tls-cert the console does itself: give one of them")
	case c.CommandTimeout < time.Second:
		return errors.New("console: the command timeout must be at least 1s")
	case !events.ValidToken(c.Instance):
		return fmt.Errorf("console: instance name %q must be one NATS subject token: 1 to 64 letters, digits, '-' or '_'", c.Instance)
	}
	return nil
}

// Console is the console role.
type Console struct {
	cfg      Config
	log      zerolog.Logger
	js       jetstream.JetStream
	projects *project.Store
	accounts *account.Store
	admin    *admin.Client
	api      huma.API
	handler  http.Handler
	// secure is whether the session cookie is Secure (and __Host-): always,
	// except on plain HTTP on a loopback address.
	secure bool

	chMu sync.Mutex
	ch   driver.Conn

	listening chan struct{}
	addr      string
}

// New makes a console: it binds the projects bucket and the console's
// buckets (`hissuno setup` or `hissuno dev` made them).
func New(ctx context.Context, cfg Config, log zerolog.Logger) (*Console, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("console: jetstream: %w", err)
	}
	kv, err := js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		return nil, fmt.Errorf("console: bucket %s: %w (run `hissuno setup`)", events.BucketProjects, err)
	}
	accounts, err := account.Open(ctx, js, cfg.Accounts)
	if err != nil {
		return nil, fmt.Errorf("console: %w (run `hissuno setup`)", err)
	}
	client, err := admin.New(cfg.NATS, events.SourceConsole)
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg:       cfg,
		log:       log.With().Str("component", "console").Str("instance", cfg.Instance).Logger(),
		js:        js,
		projects:  project.NewStore(kv),
		accounts:  accounts,
		admin:     client,
		secure:    cfg.TLSCertFile != "" || cfg.TLSProxy || !loopback(cfg.Listen),
		listening: make(chan struct{}),
	}
	mux := http.NewServeMux()
	health.Mount(mux, cfg.Checks, nil)
	c.api = c.newAPI(mux)
	ui.Mount(mux, APIPrefix)
	c.handler = c.protect(mux)
	cfg.Checks.Add("nats", health.NATSConnected(cfg.NATS))
	cfg.Checks.Add("streams", func(ctx context.Context) error { return bus.Check(ctx, js) })
	return c, nil
}

// Handler is the console's whole HTTP handler: the pages (internal/console/ui),
// the API, /healthz, /readyz and /metrics, behind the security headers and
// cross-origin protection.
func (c *Console) Handler() http.Handler { return c.handler }

// OpenAPI is the API's OpenAPI document.
func (c *Console) OpenAPI() *huma.OpenAPI { return c.api.OpenAPI() }

// Listening is closed once the HTTP listener is bound; Addr is then valid.
func (c *Console) Listening() <-chan struct{} { return c.listening }

// Addr is the address the console listens on (after Listening).
func (c *Console) Addr() string { return c.addr }

// SecureCookies reports whether the session cookie is Secure and
// __Host- prefixed.
func (c *Console) SecureCookies() bool { return c.secure }

// Accounts is the console's account store (for `hissuno dev`'s owner).
func (c *Console) Accounts() *account.Store { return c.accounts }

// Run serves the console until ctx ends, then lets the requests in flight
// finish.
func (c *Console) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("console: listen on %s: %w (use --listen)", c.cfg.Listen, err)
	}
	scheme := "http"
	if c.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.cfg.TLSCertFile, c.cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("console: TLS certificate: %w (check --tls-cert and --tls-key)", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	c.addr = ln.Addr().String()
	close(c.listening)
	srv := &http.Server{
		Handler:           c.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          nil,
	}
	if !c.secure {
		c.log.Warn().Msg("serving plain HTTP on a loopback address: the session cookie is not Secure; put the console behind TLS (--tls-cert/--tls-key, or a reverse proxy and --tls-proxy) before exposing it")
	} else if c.cfg.TLSCertFile == "" && !c.cfg.TLSProxy {
		c.log.Info().Msg("plain HTTP on a non-loopback address: the session cookie is Secure, so browsers send it only through an HTTPS reverse proxy in front")
	}
	c.log.Info().Str("listen", c.addr).Str("url", scheme+"://"+c.addr+"/").Msg("console serving")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		c.closeAudit()
		return fmt.Errorf("console: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-errc
	c.closeAudit()
	if err != nil {
		return fmt.Errorf("console: shutdown: %w", err)
	}
	return nil
}

// auditConn returns the ClickHouse connection, connecting on first use
// (and again after a failure), or ErrAuditUnavailable.
func (c *Console) auditConn(ctx context.Context) (driver.Conn, error) {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	if c.ch != nil {
		return c.ch, nil
	}
	if c.cfg.ClickHouseDSN == "" {
		return nil, fmt.Errorf("%w: no ClickHouse DSN was given (--clickhouse)", ErrAuditUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := audit.Open(ctx, c.cfg.ClickHouseDSN)
	if err != nil {
		c.log.Warn().Err(err).Msg("the audit is not reachable")
		return nil, fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
	}
	c.ch = conn
	return conn, nil
}

func (c *Console) closeAudit() {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	if c.ch != nil {
		_ = c.ch.Close()
		c.ch = nil
	}
}

// ErrAuditUnavailable means ClickHouse could not be reached: the audit
// endpoints answer 503.
var ErrAuditUnavailable = errors.New("the audit (ClickHouse) is not reachable")

// loopback reports whether a listen address is on a loopback interface.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

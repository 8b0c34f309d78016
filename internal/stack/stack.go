// Package stack runs the whole system in one process: an embedded NATS
// server with JetStream and every role (ingress, verifiers, rotator, and the
// auditor when a ClickHouse is given). `hissuno dev`, the benchmarks and the
// end-to-end tests start it; production runs each role as its own process.
package stack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/console"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/rotator"
	"github.com/hissuno/widgetauth/internal/verifier"
)

// Config configures a stack.
type Config struct {
	// DataDir holds JetStream's store and, unless MasterKey is set, the
	// master key file; required.
	DataDir string
	// NATSListen is the embedded NATS server's client address; default
	// 127.0.0.1:0 (a free port).
	NATSListen string
	// HTTPListen is the ingress's address; default 127.0.0.1:0.
	HTTPListen string
	// MasterKey seals project keys; default: read from, or created in,
	// DataDir/master.key (mode 0600).
	MasterKey []byte
	// Verifiers is how many verifier roles run; default 1.
	Verifiers int
	// IngressDeadline is the ingress's wait for a verifier; default 3 s.
	IngressDeadline time.Duration
	// Ingress tunes the ingress: its trusted proxies and limits (its NATS,
	// address, checks, mux and deadline are set by the stack).
	Ingress ingress.Config
	// Topology sizes the streams; zero fields get defaults.
	Topology bus.Topology
	// Mux receives the ingress's routes; other parts (the widget loader)
	// may add theirs. Default: a new mux.
	Mux *http.ServeMux
	// ClickHouseDSN, when set, runs an auditor copying the audit into that
	// ClickHouse; without it the audit waits in JetStream.
	ClickHouseDSN string
	// ClickHouseReaderDSN is the DSN the console reads the audit with (a
	// read-only user, as in docker-compose.yml); default ClickHouseDSN.
	ClickHouseReaderDSN string
	// Auditor tunes the auditor (its NATS and DSN are set by the stack).
	Auditor auditor.Config
	// ConsoleListen, when set, runs the console (the admin API) on that
	// address ("127.0.0.1:0" for a free port).
	ConsoleListen string
	// Console tunes the console (its NATS, DSN and address are set by the
	// stack).
	Console console.Config
	// Superuser, in tests and benchmarks only, names an extra NATS user
	// with every permission (ConnectAs it), to watch or seed what no role
	// may; `hissuno dev` never sets it.
	Superuser string
}

// Stack is a running system.
type Stack struct {
	// Server is the embedded NATS server.
	Server *server.Server
	// NATSURL is its client URL.
	NATSURL string
	// HTTPAddr is the ingress's bound address.
	HTTPAddr string
	// MasterKeyCreated is true when this start created the master key file.
	MasterKeyCreated bool
	// Checks are the readiness checks of every role.
	Checks *health.Checks
	// Console is the console, when ConsoleListen was set; ConsoleAddr is
	// its bound address.
	Console     *console.Console
	ConsoleAddr string

	log       zerolog.Logger
	sealer    *project.Sealer
	creds     map[string]Credentials
	connsMu   sync.Mutex // ConnectAs may be called concurrently (parallel tests)
	conns     []*nats.Conn
	ingress   *ingress.Ingress
	verifiers []*verifier.Verifier
	auditor   *auditor.Auditor

	ingressStop context.CancelFunc
	rolesStop   context.CancelFunc
	ingressDone chan struct{}
	rolesWG     sync.WaitGroup
	errMu       sync.Mutex
	errs        []error
	failed      chan struct{} // closed at the first role's failure
	failOnce    sync.Once
}

// Start starts the embedded server and every role, and returns once the
// ingress listens and every verifier holds every project.
func Start(ctx context.Context, cfg Config, log zerolog.Logger) (s *Stack, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("stack: no data directory")
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:0"
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.Verifiers == 0 {
		cfg.Verifiers = 1
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s = &Stack{log: log, Checks: &health.Checks{}, ingressDone: make(chan struct{}), failed: make(chan struct{})}
	key := cfg.MasterKey
	if key == nil {
		if key, s.MasterKeyCreated, err = project.LoadOrCreateMasterKeyFile(filepath.Join(cfg.DataDir, "master.key")); err != nil {
			return nil, err
		}
	}
	if s.sealer, err = project.NewSealer(key); err != nil {
		return nil, err
	}
	// The embedded server has the users and permissions of production
	// (deploy/nats/nats.conf), with passwords made for this start: every
	// role connects as its own user, and nothing connects anonymously.
	passwords := map[string]string{}
	users := append(slices.Clone(deploy.NATSUsers), cfg.Superuser)
	for _, u := range users {
		if u == "" {
			continue
		}
		if passwords[u], err = newPassword(); err != nil {
			return nil, err
		}
	}
	conf, err := deploy.NATSConfig(passwords)
	if err != nil {
		return nil, err
	}
	var extra []*server.User
	if cfg.Superuser != "" {
		extra = append(extra, &server.User{Username: cfg.Superuser, Password: passwords[cfg.Superuser]})
	}
	s.Server, err = bus.RunEmbedded(bus.EmbeddedConfig{
		Listen:     cfg.NATSListen,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		ServerName: "hissuno-dev",
		Config:     conf,
		Users:      extra,
	}, log)
	if err != nil {
		return nil, err
	}
	s.NATSURL = s.Server.ClientURL()
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	s.creds = make(map[string]Credentials, len(passwords))
	for u, pw := range passwords {
		s.creds[u] = Credentials{URL: s.NATSURL, User: u, Password: pw}
		if u == cfg.Superuser {
			continue // never on disk
		}
		if err := writeCredentials(cfg.DataDir, s.creds[u]); err != nil {
			return nil, err
		}
	}

	admin, err := s.ConnectAs("setup", "setup")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(admin)
	if err != nil {
		return nil, err
	}
	if err := bus.Ensure(ctx, js, cfg.Topology); err != nil {
		return nil, err
	}

	rolesCtx, rolesStop := context.WithCancel(context.WithoutCancel(ctx))
	s.rolesStop = rolesStop
	for i := 0; i < cfg.Verifiers; i++ {
		nc, err := s.ConnectAs("verifier", "verifier")
		if err != nil {
			return nil, err
		}
		v, err := verifier.New(verifier.Config{NATS: nc, Sealer: s.sealer}, log)
		if err != nil {
			return nil, err
		}
		s.verifiers = append(s.verifiers, v)
		s.goRole(rolesCtx, "verifier "+v.Instance(), v.Run)
	}
	s.Checks.Add("verifiers", func(context.Context) error {
		for _, v := range s.verifiers {
			if !v.Ready() {
				return fmt.Errorf("verifier %s: project view not complete yet", v.Instance())
			}
		}
		return nil
	})
	nc, err := s.ConnectAs("rotator", "rotator")
	if err != nil {
		return nil, err
	}
	rot, err := rotator.New(rotator.Config{NATS: nc, Sealer: s.sealer}, log)
	if err != nil {
		return nil, err
	}
	s.goRole(rolesCtx, "rotator", rot.Run)

	if cfg.ClickHouseDSN != "" {
		nc, err := s.ConnectAs("auditor", "auditor")
		if err != nil {
			return nil, err
		}
		acfg := cfg.Auditor
		acfg.NATS, acfg.ClickHouseDSN = nc, cfg.ClickHouseDSN
		if s.auditor, err = auditor.New(acfg, log); err != nil {
			return nil, err
		}
		s.Checks.Add("clickhouse", s.auditor.Ready)
		s.goRole(rolesCtx, "auditor", s.auditor.Run)
	}

	if cfg.ConsoleListen != "" {
		if err := s.startConsole(ctx, rolesCtx, cfg); err != nil {
			return nil, err
		}
	}

	nc, err = s.ConnectAs("ingress", "ingress")
	if err != nil {
		return nil, err
	}
	icfg := cfg.Ingress
	icfg.NATS, icfg.Listen, icfg.Deadline, icfg.Checks, icfg.Mux = nc, cfg.HTTPListen, cfg.IngressDeadline, s.Checks, cfg.Mux
	s.ingress, err = ingress.New(icfg, log)
	if err != nil {
		return nil, err
	}
	ingressCtx, ingressStop := context.WithCancel(context.WithoutCancel(ctx))
	s.ingressStop = ingressStop
	go func() {
		defer close(s.ingressDone)
		if err := s.ingress.Run(ingressCtx); err != nil {
			s.fail(fmt.Errorf("ingress: %w", err))
		}
	}()
	select {
	case <-s.ingress.Listening():
		s.HTTPAddr = s.ingress.Addr()
	case <-s.ingressDone:
		return nil, s.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// startConsole starts the console as the console's NATS user and waits
// until it listens.
func (s *Stack) startConsole(ctx, rolesCtx context.Context, cfg Config) error {
	nc, err := s.ConnectAs("console", "console")
	if err != nil {
		return err
	}
	ccfg := cfg.Console
	ccfg.NATS, ccfg.ClickHouseDSN, ccfg.Listen = nc, cmp.Or(cfg.ClickHouseReaderDSN, cfg.ClickHouseDSN), cfg.ConsoleListen
	if s.Console, err = console.New(ctx, ccfg, s.log); err != nil {
		return err
	}
	s.goRole(rolesCtx, "console", s.Console.Run)
	select {
	case <-s.Console.Listening():
		s.ConsoleAddr = s.Console.Addr()
		return nil
	case <-s.failed:
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ConnectAs opens a connection to the embedded server as a NATS user of
// deploy/nats/nats.conf (or the Superuser), with that user's inbox prefix,
// named "hissuno-"+name; Stop closes it.
func (s *Stack) ConnectAs(user, name string) (*nats.Conn, error) {
	c, ok := s.creds[user]
	if !ok {
		return nil, fmt.Errorf("stack: no NATS user %q", user)
	}
	cfg := c.ConnConfig("hissuno-" + name)
	cfg.InProcess = s.Server
	nc, err := bus.Connect(cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.connsMu.Lock()
	s.conns = append(s.conns, nc)
	s.connsMu.Unlock()
	return nc, nil
}

// Credentials are the credentials of a NATS user of the embedded server
// (as `hissuno dev` writes them into its data directory, ReadCredentials).
func (s *Stack) Credentials(user string) (Credentials, bool) {
	c, ok := s.creds[user]
	return c, ok
}

// Sealer opens and seals keys under the stack's master key.
func (s *Stack) Sealer() *project.Sealer { return s.sealer }

// Verifiers are the running verifiers.
func (s *Stack) Verifiers() []*verifier.Verifier { return s.verifiers }

func (s *Stack) goRole(ctx context.Context, name string, run func(context.Context) error) {
	s.rolesWG.Add(1)
	go func() {
		defer s.rolesWG.Done()
		if err := run(ctx); err != nil {
			s.log.Error().Err(err).Str("role", name).Msg("role stopped with an error")
			s.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (s *Stack) fail(err error) {
	s.errMu.Lock()
	s.errs = append(s.errs, err)
	s.errMu.Unlock()
	s.failOnce.Do(func() { close(s.failed) })
}

// Failed is closed when a role stops with an error (Err says which).
func (s *Stack) Failed() <-chan struct{} { return s.failed }

// Err returns the errors roles stopped with, if any.
func (s *Stack) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return errors.Join(s.errs...)
}

// waitReady waits until every verifier decides. The auditor is not waited
// for: without ClickHouse the system runs and the audit waits in JetStream;
// nor is the decisions stream's fill (the ingress's check
// health.DecisionsStream, in Checks for /readyz): a stream nearly full of a
// backlog must not stop the stack from starting, it warns.
func (s *Stack) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		failed := s.Checks.Run(ctx)
		delete(failed, "clickhouse")
		delete(failed, health.DecisionsStreamCheck)
		if len(failed) == 0 {
			return nil
		}
		if err := s.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack not ready after 30 s: %v", failed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StopIngress stops the ingress only: it stops taking requests, finishes
// those in flight and publishes its counts of throttled requests; the other
// roles and the server keep running until Stop.
func (s *Stack) StopIngress() {
	if s.ingressStop != nil {
		s.ingressStop()
		<-s.ingressDone
	}
}

// Stop shuts down in order: the ingress stops taking requests and finishes
// those in flight; then the verifiers finish what they hold and the other
// roles stop; then the connections and the server close.
func (s *Stack) Stop() {
	if s.ingressStop != nil {
		s.ingressStop()
		<-s.ingressDone
	}
	if s.rolesStop != nil {
		s.rolesStop()
		s.rolesWG.Wait()
	}
	s.connsMu.Lock()
	conns := s.conns
	s.connsMu.Unlock()
	for _, nc := range conns {
		_ = nc.Drain()
	}
	if s.Server != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
}

// Package ingress is the HTTP front of Hissuno widget authentication: it
// turns a widget's POST /v1/widget/connect into an attempt event, publishes
// it to JetStream, waits for a verifier's reply on its one reply
// subscription, and answers the browser (DESIGN.md "Public contract").
//
// It decides nothing itself and never logs a token: a malformed request is
// refused with 400 before anything is published; everything else is the
// verifier's decision.
package ingress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/clientip"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/widget"
)

// Limits of a connect request.
const (
	// MaxBodyBytes bounds the request body; a larger one gets 400.
	MaxBodyBytes = 16 << 10
	// ConnectPath is the widget's endpoint.
	ConnectPath = "/v1/widget/connect"
)

// Defaults of Config, one source for the flags too.
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultDeadline = 3 * time.Second
	// DefaultMaxConns caps the connections open at once.
	DefaultMaxConns = 10_000
	// DefaultMaxConnsPerIP caps the connections one client address (its
	// /64 for IPv6) holds open; a browser opens at most 6 to a host.
	DefaultMaxConnsPerIP = 256
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection idle that long.
	DefaultIdleTimeout = 2 * time.Minute
)

// Config configures an ingress.
type Config struct {
	// NATS is the connection to publish attempts on; required.
	NATS *nats.Conn
	// Listen is the HTTP address; default DefaultListen.
	Listen string
	// Instance names this ingress in attempts, logs and the reply subject;
	// default: a random name.
	Instance string
	// Source is the NATS identity the ingress publishes attempts as: its
	// NATS user's name, under which nats.conf lets it publish
	// (hissuno.attempts.<source>.*) and receive replies; default
	// events.SourceIngress.
	Source string
	// Deadline is how long a request waits for a verifier before it gets
	// 503; default DefaultDeadline.
	Deadline time.Duration
	// Checks receives the ingress's readiness checks and is served on
	// /readyz; default: a new set.
	Checks *health.Checks
	// Mux, when set, receives the ingress's routes in addition to /healthz,
	// /readyz and /metrics, so other parts (the widget loader) can add
	// theirs; default: a new mux.
	Mux *http.ServeMux
	// Clock is the server clock; default time.Now.
	Clock func() time.Time
	// TrustedProxies are the prefixes of the load balancers in front: only
	// from a TCP peer inside one are Forwarded and X-Forwarded-For read
	// for the client's address (internal/clientip); default none, the
	// client is the TCP peer.
	TrustedProxies []netip.Prefix
	// MaxConns caps the connections open at once; a connection over it is
	// closed as soon as it is accepted. Default DefaultMaxConns; negative:
	// no cap.
	MaxConns int
	// MaxConnsPerIP caps the connections one client address (/64 for
	// IPv6; the TCP peer, a trusted proxy exempt) holds open. Default
	// DefaultMaxConnsPerIP; negative: no cap.
	MaxConnsPerIP int
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout bound reading a
	// request's headers, the whole request, and a keep-alive connection's
	// idle time (http.Server's); defaults DefaultReadHeaderTimeout, ….
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// Limits are the rate limits checked before anything is published;
	// zero fields get defaults (DefaultIPLimit, …), NoLimits turns them off.
	Limits Limits
	// Rollup bounds and times the counts of throttled requests published
	// for the audit (events.Throttled); zero fields get defaults
	// (DefaultRollupKeys keys a minute, published every minute).
	Rollup Rollup
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Instance == "" {
		c.Instance = bus.InstanceName("ingress")
	}
	if c.Source == "" {
		c.Source = events.SourceIngress
	}
	if c.Deadline == 0 {
		c.Deadline = DefaultDeadline
	}
	if c.Checks == nil {
		c.Checks = &health.Checks{}
	}
	if c.Mux == nil {
		c.Mux = http.NewServeMux()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	c.Limits.setDefaults()
	c.Rollup.setDefaults()
	for _, d := range []struct {
		v   *int
		def int
	}{{&c.MaxConns, DefaultMaxConns}, {&c.MaxConnsPerIP, DefaultMaxConnsPerIP}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&c.ReadTimeout, DefaultReadTimeout}, {&c.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil:
		return errors.New("ingress: no NATS connection")
	case c.Deadline < 10*time.Millisecond:
		return errors.New("ingress: the deadline must be at least 10 ms")
	case c.Deadline > events.AttemptWindow/2:
		// Republished attempts must reach JetStream within the window a
		// verifier accepts them in.
		return fmt.Errorf("ingress: the deadline must be at most %s", events.AttemptWindow/2)
	case !events.ValidToken(c.Instance):
		return fmt.Errorf("ingress: instance name %q must be one NATS subject token: 1 to 64 letters, digits, '-' or '_'", c.Instance)
	case !events.ValidToken(c.Source):
		return fmt.Errorf("ingress: source %q must be one NATS subject token: its NATS user's name", c.Source)
	case c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.IdleTimeout < 0:
		return errors.New("ingress: the read and idle timeouts must be positive")
	case c.ReadTimeout < c.ReadHeaderTimeout:
		return errors.New("ingress: the read timeout bounds the whole request, headers included: it must be at least the header timeout")
	}
	if err := c.Rollup.validate(); err != nil {
		return err
	}
	return c.Limits.validate()
}

// Ingress is the ingress role.
type Ingress struct {
	cfg    Config
	log    zerolog.Logger
	js     jetstream.JetStream
	ips    *clientip.Resolver
	limits *limiter
	rollup *rollup

	unsentMu sync.Mutex         // one publishing of the rollup at a time
	unsent   []events.Throttled // counts JetStream has not taken yet

	name        string // in attempts: events.IngressName(source, instance)
	subject     string // attempts are published on it
	replyPrefix string // verifiers' replies: replyPrefix + attempt id
	ackPrefix   string // JetStream's acknowledgements: ackPrefix + attempt id
	mu          sync.Mutex
	waiting     map[string]*pending

	listening chan struct{} // closed once the HTTP listener is bound
	addr      string        // the bound address
}

// New makes an ingress.
func New(cfg Config, log zerolog.Logger) (*Ingress, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("ingress: jetstream: %w", err)
	}
	in := &Ingress{
		cfg:         cfg,
		log:         log.With().Str("component", "ingress").Str("instance", cfg.Instance).Logger(),
		js:          js,
		ips:         clientip.New(cfg.TrustedProxies),
		limits:      newLimiter(cfg.Limits),
		rollup:      newRollup(cfg.Rollup.Keys),
		name:        events.IngressName(cfg.Source, cfg.Instance),
		subject:     events.AttemptSubject(events.IngressName(cfg.Source, cfg.Instance)),
		replyPrefix: events.ReplySubject(events.IngressName(cfg.Source, cfg.Instance), ""),
		ackPrefix:   cfg.NATS.NewInbox() + ".",
		waiting:     make(map[string]*pending),
		listening:   make(chan struct{}),
	}
	cfg.Mux.HandleFunc(ConnectPath, in.serveConnect)
	cfg.Mux.Handle("GET "+widget.Path, widget.Handler())
	health.Mount(cfg.Mux, cfg.Checks, nil)
	cfg.Checks.Add("nats", health.NATSConnected(cfg.NATS))
	cfg.Checks.Add("streams", func(ctx context.Context) error { return bus.Check(ctx, js) })
	cfg.Checks.Add(health.DecisionsStreamCheck, health.DecisionsStream(js))
	return in, nil
}

// Listening is closed once the HTTP listener is bound; Addr is then valid.
func (in *Ingress) Listening() <-chan struct{} { return in.listening }

// Addr is the address the ingress listens on (after Listening).
func (in *Ingress) Addr() string { return in.addr }

// Run subscribes to replies and serves HTTP until ctx ends; then it stops
// accepting requests and lets those in flight finish.
func (in *Ingress) Run(ctx context.Context) error {
	sub, err := in.cfg.NATS.Subscribe(in.replyPrefix+"*", in.onReply)
	if err != nil {
		return fmt.Errorf("ingress: subscribe to replies: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	defer func() { _ = sub.Unsubscribe() }()
	acks, err := in.cfg.NATS.Subscribe(in.ackPrefix+"*", in.onAck)
	if err != nil {
		return fmt.Errorf("ingress: subscribe to acknowledgements: %w", err)
	}
	_ = acks.SetPendingLimits(-1, -1)
	defer func() { _ = acks.Unsubscribe() }()
	// Every goroutine below is joined before Run returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	wg.Go(func() { in.republish(sweepCtx) })

	svc, err := bus.AddService(in.cfg.NATS, bus.Service{
		Name:        events.ServiceIngress,
		Role:        "ingress",
		Instance:    in.cfg.Instance,
		Description: "HTTP ingress of widget connection attempts",
		Metadata:    map[string]string{"listen": in.cfg.Listen, "source": in.cfg.Source},
		Status: func() any {
			in.mu.Lock()
			n := len(in.waiting)
			in.mu.Unlock()
			return map[string]any{"instance": in.cfg.Instance, "source": in.cfg.Source, "listen": in.cfg.Listen, "waiting": n}
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = svc.Stop() }()

	ln, err := net.Listen("tcp", in.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ingress: listen on %s: %w (is the port taken? use --listen)", in.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           in.cfg.Mux,
		ReadHeaderTimeout: in.cfg.ReadHeaderTimeout,
		ReadTimeout:       in.cfg.ReadTimeout,
		WriteTimeout:      in.cfg.ReadTimeout + in.cfg.Deadline + 10*time.Second,
		IdleTimeout:       in.cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
	}
	in.addr = ln.Addr().String()
	cl := newConnLimiter(ln, in.cfg.MaxConns, in.cfg.MaxConnsPerIP, in.ips)
	cl.refused = func(ip string, why events.Throttle) {
		in.rollup.add(in.cfg.Clock(), events.ThrottledUnknownProject, ip, why)
	}
	ln = cl
	wg.Go(func() { in.publishRollupsEvery(sweepCtx) })
	close(in.listening)
	errc := make(chan error, 1)
	wg.Go(func() { errc <- srv.Serve(ln) })
	in.log.Info().Str("listen", ln.Addr().String()).Msg("ingress serving")
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("ingress: serve: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), in.cfg.Deadline+5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	// The counts of throttled requests so far, the current minute's too:
	// the ingress answers nothing more.
	stopSweep()
	wg.Wait()
	if n := in.publishRollups(context.Background(), true); n > 0 {
		in.log.Info().Int("counts", n).Msg("counts of throttled requests published")
	}
	if err != nil {
		return fmt.Errorf("ingress: shutdown: %w", err)
	}
	in.log.Info().Msg("ingress stopped")
	return nil
}

func (in *Ingress) serveConnect(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if r.Method == http.MethodPost {
		start = time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		w = sw
		defer func() {
			metrics.HTTPRequests.WithLabelValues(strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
		}()
	}
	setCORS(w, r)
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "use POST " + ConnectPath})
		return
	}
	// The limits come before anything is published: the address's before
	// the body is read, the project's once it is.
	ip, ipOK := in.ips.ClientIP(r.RemoteAddr, r.Header)
	ipText := ""
	if ipOK {
		ipText = ipKey(ip)
	}
	if ok, after := in.limits.allowIP(ip, ipOK, in.cfg.Clock()); !ok {
		in.throttled(w, events.ThrottledUnknownProject, ipText, events.ThrottleIP, after)
		return
	}
	a, err := in.parse(r, ip, ipOK)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	if ok, after, why := in.limits.allowProject(a.ProjectID, in.cfg.Clock()); !ok {
		project := a.ProjectID
		if why != events.ThrottleProject {
			project = events.ThrottledUnknownProject
		}
		in.throttled(w, project, ipText, why, after)
		return
	}
	body, repliedAt, status, err := in.roundTrip(r.Context(), a, start)
	if err != nil {
		writeJSON(w, status, ErrorResponse{Error: err.Error()})
		return
	}
	in.answer(w, a, body)
	metrics.IngressAnswer.Observe(time.Since(repliedAt).Seconds())
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/rotator"
	"github.com/hissuno/widgetauth/internal/verifier"
)

// roleFlags are the flags every production role takes.
type roleFlags struct {
	nats          natsFlags
	log           logFlags
	instance      string
	metricsListen string
	ensureStreams bool
	topo          topologyFlags
}

// register adds the flags; the ingress serves health and metrics on its
// --listen (and --metrics-listen when given), the other roles on
// --metrics-listen.
func (r *roleFlags) register(fs *flag.FlagSet, role string) {
	r.nats.register(fs)
	r.log.register(fs, "json")
	fs.StringVar(&r.instance, "instance", "", "this instance's name in logs, decisions and discovery; default: "+role+"-HOST-RANDOM [HISSUNO_INSTANCE]")
	if role == "ingress" {
		fs.StringVar(&r.metricsListen, "metrics-listen", "", "another address of /healthz, /readyz and /metrics (they are on --listen too); empty: none [HISSUNO_METRICS_LISTEN]")
	} else {
		fs.StringVar(&r.metricsListen, "metrics-listen", "127.0.0.1:9090", "address of /healthz, /readyz and /metrics; empty disables [HISSUNO_METRICS_LISTEN]")
	}
	fs.BoolVar(&r.ensureStreams, "ensure-streams", "true" != "false", "create or update the streams at start; false: only check they exist (hissuno setup made them) [HISSUNO_ENSURE_STREAMS]")
	r.topo.register(fs)
}

// topologyFlags size the streams a role creates or updates at start.
type topologyFlags struct{ t bus.Topology }

func (f *topologyFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.t.Replicas, "replicas", bus.DefaultReplicas, "replicas of every stream and the projects bucket (3 on a three-node cluster) [HISSUNO_REPLICAS]")
	fs.DurationVar(&f.t.DecisionsMaxAge, "decisions-max-age", bus.DefaultDecisionsMaxAge, "how long a decision may wait in JetStream for the auditor: the longest auditor outage without loss [HISSUNO_DECISIONS_MAX_AGE]")
	fs.Int64Var(&f.t.DecisionsMaxBytes, "decisions-max-bytes", bus.DefaultDecisionsMaxBytes, "size bound of the decisions not yet stored in ClickHouse (stored ones leave the stream); when full, new decisions are refused (503), never old ones dropped [HISSUNO_DECISIONS_MAX_BYTES]")
}

// connectRole connects a role to NATS and makes sure the streams exist.
func connectRole(ctx context.Context, f *roleFlags, role string, log zerolog.Logger) (*nats.Conn, error) {
	cfg, err := f.nats.config("hissuno-"+role, role)
	if err != nil {
		return nil, err
	}
	cfg.InboxPrefix = events.InboxPrefix(role)
	nc, err := bus.Connect(cfg, log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := ensureStreams(ctx, js, f.topo.t, f.ensureStreams, log); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nil
}

// start builds a parsed role's logger and connects it to NATS; the caller
// closes the connection.
func (f *roleFlags) start(env Env, role string) (zerolog.Logger, *nats.Conn, error) {
	log, err := f.log.logger(env.Stderr)
	if err != nil {
		return log, nil, err
	}
	nc, err := connectRole(env.Ctx, f, role, log)
	return log, nc, err
}

// serve serves the role's /healthz, /readyz (NATS connected, and the
// role's own checks) and /metrics on --metrics-listen until the role stops.
func (f *roleFlags) serve(env Env, nc *nats.Conn, log zerolog.Logger, checks *health.Checks) error {
	checks.Add("nats", health.NATSConnected(nc))
	return serveHealth(env.Ctx, f.metricsListen, checks, log)
}

// ensureStreams makes sure the topology exists: with ensure, it creates or
// updates it and falls back to the existing streams when this role's NATS
// user may not (the server drops such a request unanswered, hence the short
// timeout); without, it only checks.
func ensureStreams(ctx context.Context, js jetstream.JetStream, t bus.Topology, ensure bool, log zerolog.Logger) error {
	var ensureErr error
	if ensure {
		ectx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ensureErr = bus.Ensure(ectx, js, t)
		cancel()
		if ensureErr == nil {
			return nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := bus.Check(cctx, js); err != nil {
		if ensureErr != nil {
			return fmt.Errorf("streams: %w (and they do not exist yet: %v); run `hissuno setup` as a NATS user that may create them, or start `hissuno dev`", ensureErr, err)
		}
		return fmt.Errorf("streams: %w; run `hissuno setup` first", err)
	}
	if ensureErr != nil {
		log.Warn().Err(ensureErr).Msg("could not create or update the streams; using the existing ones (give --ensure-streams=false to this role, and run hissuno setup)")
	}
	return nil
}

// serveHealth serves /healthz, /readyz and /metrics until ctx ends.
func serveHealth(ctx context.Context, addr string, checks *health.Checks, log zerolog.Logger) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	health.Mount(mux, checks, nil)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen on %s: %w (use --metrics-listen)", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("health server stopped")
		}
	}()
	log.Info().Str("listen", ln.Addr().String()).Msg("serving /healthz, /readyz, /metrics")
	return nil
}

func runIngress(env Env, args []string) error {
	var f roleFlags
	fs := newFlags("ingress", "hissuno ingress [flags]", env.Stderr)
	f.register(fs, "ingress")
	listen := fs.String("listen", ingress.DefaultListen, "HTTP address of the widget API, /healthz, /readyz and /metrics [HISSUNO_LISTEN]")
	deadline := fs.Duration("deadline", ingress.DefaultDeadline, "how long a request waits for a verifier before it gets 503 [HISSUNO_DEADLINE]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	log, nc, err := f.start(env, "ingress")
	if err != nil {
		return err
	}
	defer nc.Close()
	checks := &health.Checks{}
	in, err := ingress.New(ingress.Config{NATS: nc, Listen: *listen, Instance: f.instance, Deadline: *deadline, Checks: checks}, log)
	if err != nil {
		return err
	}
	if err := f.serve(env, nc, log, checks); err != nil {
		return err
	}
	return in.Run(env.Ctx)
}

func runVerifier(env Env, args []string) error {
	var f roleFlags
	var mk masterKeyFlags
	fs := newFlags("verifier", "hissuno verifier [flags]", env.Stderr)
	f.register(fs, "verifier")
	mk.register(fs)
	concurrency := fs.Int("concurrency", verifier.DefaultConcurrency, "attempts decided at once [HISSUNO_CONCURRENCY]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	sealer, err := mk.sealer()
	if err != nil {
		return err
	}
	log, nc, err := f.start(env, "verifier")
	if err != nil {
		return err
	}
	defer nc.Close()
	v, err := verifier.New(verifier.Config{NATS: nc, Sealer: sealer, Instance: f.instance, Concurrency: *concurrency}, log)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	checks := &health.Checks{}
	checks.Add("projects", func(context.Context) error {
		if v.Ready() {
			return nil
		}
		return errors.New("project view not complete yet")
	})
	checks.Add(health.DecisionsStreamCheck, health.DecisionsStream(js))
	if err := f.serve(env, nc, log, checks); err != nil {
		return err
	}
	return v.Run(env.Ctx)
}

func runRotator(env Env, args []string) error {
	var f roleFlags
	var mk masterKeyFlags
	fs := newFlags("rotator", "hissuno rotator [flags]", env.Stderr)
	f.register(fs, "rotator")
	mk.register(fs)
	confirm := fs.Duration("confirm-timeout", rotator.DefaultConfirmTimeout, "how long a rotation waits for each verifier's confirmation [HISSUNO_CONFIRM_TIMEOUT]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	sealer, err := mk.sealer()
	if err != nil {
		return err
	}
	log, nc, err := f.start(env, "rotator")
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := rotator.New(rotator.Config{NATS: nc, Sealer: sealer, Instance: f.instance, ConfirmTimeout: *confirm}, log)
	if err != nil {
		return err
	}
	checks := &health.Checks{}
	checks.Add("rotator", func(context.Context) error {
		if r.Ready() {
			return nil
		}
		return errors.New("not handling admin commands yet")
	})
	if err := f.serve(env, nc, log, checks); err != nil {
		return err
	}
	return r.Run(env.Ctx)
}

func runSetup(env Env, args []string) error {
	var n natsFlags
	var topo topologyFlags
	fs := newFlags("setup", "hissuno setup [--nats URL] [--replicas N] [--decisions-max-age D] [--decisions-max-bytes N]", env.Stderr)
	n.register(fs)
	topo.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	cfg, err := n.config("hissuno-setup", "setup")
	if err != nil {
		return err
	}
	cfg.InboxPrefix = events.InboxPrefix("setup")
	nc, err := bus.Connect(cfg, zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, 15*time.Second)
	defer cancel()
	if err := bus.Ensure(ctx, js, topo.t); err != nil {
		// A request the user may not make is dropped by the server, which
		// reports the violation on the connection, not in the answer.
		if last := nc.LastError(); last != nil && strings.Contains(strings.ToLower(last.Error()), "permissions violation") {
			return fmt.Errorf("this NATS user may not create or update the streams (%v): connect as the setup user of deploy/nats/nats.conf", last)
		}
		return fmt.Errorf("%w (can this NATS user create and update streams? see the setup user in deploy/nats/nats.conf)", err)
	}
	t := topo.t
	t.SetDefaults()
	for _, s := range t.Streams() {
		fmt.Fprintf(env.Stdout, "stream %-20s ready (%d replica(s))\n", s.Name, t.Replicas)
	}
	fmt.Fprintf(env.Stdout, "consumer %-18s ready (the auditor's, on %s: a decision leaves the stream once it has stored it)\n", events.ConsumerAuditDecisions, events.StreamDecisions)
	fmt.Fprintf(env.Stdout, "bucket %-20s ready (%d replica(s))\n", t.Bucket().Bucket, t.Replicas)
	return nil
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/project"
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
	if role == "ingress" || role == "console" {
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

// start builds a parsed role's logger, connects it to NATS as its user
// and makes sure the streams exist; the caller closes the connection.
func (f *roleFlags) start(env Env, role string) (zerolog.Logger, *nats.Conn, jetstream.JetStream, error) {
	log, err := f.log.logger(env.Stderr)
	if err != nil {
		return log, nil, nil, err
	}
	nc, js, err := f.nats.connectJS("hissuno-"+role, role, log)
	if err != nil {
		return log, nil, nil, err
	}
	if err := ensureStreams(env.Ctx, js, f.topo.t, f.ensureStreams, log); err != nil {
		nc.Close()
		return log, nil, nil, err
	}
	return log, nc, js, nil
}

// roleSpec is what one role's command adds to what every role's has.
type roleSpec struct {
	name string
	// keyed roles hold the master key (the verifier, the rotator).
	keyed bool
	// flags registers the role's own flags.
	flags func(fs *flag.FlagSet)
	// build makes the role from its connection; it adds the role's
	// readiness checks and returns its Run.
	build func(r roleEnv) (run func(context.Context) error, err error)
}

// roleEnv is what a role is made from.
type roleEnv struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	sealer   *project.Sealer
	instance string
	log      zerolog.Logger
	checks   *health.Checks
}

// runRole runs one role until the context ends: its flags, the master key
// for a keyed role, its NATS connection (the streams checked), the role,
// and /healthz, /readyz and /metrics on --metrics-listen; it returns once
// the role and the health server have stopped.
func runRole(env Env, args []string, spec roleSpec) error {
	var f roleFlags
	var mk masterKeyFlags
	fs := newFlags(spec.name, "hissuno "+spec.name+" [flags]", env.Stderr)
	f.register(fs, spec.name)
	if spec.keyed {
		mk.register(fs)
	}
	if spec.flags != nil {
		spec.flags(fs)
	}
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var sealer *project.Sealer
	if spec.keyed {
		var err error
		if sealer, err = mk.sealer(); err != nil {
			return err
		}
	}
	log, nc, js, err := f.start(env, spec.name)
	if err != nil {
		return err
	}
	defer nc.Close()
	checks := &health.Checks{}
	run, err := spec.build(roleEnv{nc: nc, js: js, sealer: sealer, instance: f.instance, log: log, checks: checks})
	if err != nil {
		return err
	}
	checks.Add("nats", health.NATSConnected(nc))
	ctx, stop := context.WithCancel(env.Ctx)
	defer stop()
	wait, err := serveHealth(ctx, f.metricsListen, checks, log)
	if err != nil {
		return err
	}
	defer wait()
	defer stop() // the health server stops with the role
	return run(ctx)
}

// ready is a readiness check of a role's Ready.
func ready(ok func() bool, why string) health.Check {
	return func(context.Context) error {
		if ok() {
			return nil
		}
		return errors.New(why)
	}
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

// serveHealth serves /healthz, /readyz and /metrics on addr ("" serves
// nothing) until ctx ends; wait returns once the server has stopped.
func serveHealth(ctx context.Context, addr string, checks *health.Checks, log zerolog.Logger) (wait func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	mux := http.NewServeMux()
	health.Mount(mux, checks, nil)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w (use --metrics-listen)", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("health server stopped")
		}
	})
	log.Info().Str("listen", ln.Addr().String()).Msg("serving /healthz, /readyz, /metrics")
	return wg.Wait, nil
}

func runIngress(env Env, args []string) error {
	var listen *string
	var deadline *time.Duration
	var edge edgeFlags
	return runRole(env, args, roleSpec{
		name: "ingress",
		flags: func(fs *flag.FlagSet) {
			listen = fs.String("listen", ingress.DefaultListen, "HTTP address of the widget API, /healthz, /readyz and /metrics [HISSUNO_LISTEN]")
			deadline = fs.Duration("deadline", ingress.DefaultDeadline, "how long a request waits for a verifier before it gets 503 [HISSUNO_DEADLINE]")
			edge.register(fs)
		},
		build: func(r roleEnv) (func(context.Context) error, error) {
			cfg := ingress.Config{NATS: r.nc, Listen: *listen, Instance: r.instance, Source: r.nc.Opts.User,
				Deadline: *deadline, Checks: r.checks}
			edge.apply(&cfg)
			in, err := ingress.New(cfg, r.log)
			if err != nil {
				return nil, err
			}
			return in.Run, nil
		},
	})
}

func runVerifier(env Env, args []string) error {
	var concurrency *int
	return runRole(env, args, roleSpec{
		name:  "verifier",
		keyed: true,
		flags: func(fs *flag.FlagSet) {
			concurrency = fs.Int("concurrency", verifier.DefaultConcurrency, "attempts decided at once [HISSUNO_CONCURRENCY]")
		},
		build: func(r roleEnv) (func(context.Context) error, error) {
			v, err := verifier.New(verifier.Config{NATS: r.nc, Sealer: r.sealer, Instance: r.instance, Concurrency: *concurrency}, r.log)
			if err != nil {
				return nil, err
			}
			r.checks.Add("projects", ready(v.Ready, "project view not complete yet"))
			r.checks.Add(health.DecisionsStreamCheck, health.DecisionsStream(r.js))
			return v.Run, nil
		},
	})
}

func runRotator(env Env, args []string) error {
	var confirm *time.Duration
	return runRole(env, args, roleSpec{
		name:  "rotator",
		keyed: true,
		flags: func(fs *flag.FlagSet) {
			confirm = fs.Duration("confirm-timeout", rotator.DefaultConfirmTimeout, "how long a rotation waits for each verifier's confirmation [HISSUNO_CONFIRM_TIMEOUT]")
		},
		build: func(r roleEnv) (func(context.Context) error, error) {
			rot, err := rotator.New(rotator.Config{NATS: r.nc, Sealer: r.sealer, Instance: r.instance, ConfirmTimeout: *confirm}, r.log)
			if err != nil {
				return nil, err
			}
			r.checks.Add("rotator", ready(rot.Ready, "not handling admin commands yet"))
			return rot.Run, nil
		},
	})
}

func runAuditor(env Env, args []string) error {
	var dsn, cluster *string
	var batchSize *int
	var batchWait *time.Duration
	decisionRetention, adminRetention := audit.DefaultDecisionRetention, time.Duration(audit.DefaultAdminRetention)
	return runRole(env, args, roleSpec{
		name: "auditor",
		flags: func(fs *flag.FlagSet) {
			dsn = fs.String("clickhouse", audit.DefaultDSN, "ClickHouse DSN, clickhouse://[user:password@]host:9000/db[?secure=true] [HISSUNO_CLICKHOUSE_DSN]")
			cluster = fs.String("cluster", "", "ClickHouse cluster (a <remote_servers> name) the audit tables are replicated on; empty: one server [HISSUNO_CLICKHOUSE_CLUSTER]")
			batchSize = fs.Int("batch-size", auditor.DefaultBatchSize, "rows per ClickHouse insert at most [HISSUNO_AUDIT_BATCH_SIZE]")
			batchWait = fs.Duration("batch-wait", auditor.DefaultBatchWait, "how long a batch waits to fill up at most [HISSUNO_AUDIT_BATCH_WAIT]")
			fs.Var(retentionFlag{&decisionRetention}, "retention", "how long decisions are kept in ClickHouse: days (400d) or whole days as a duration (9600h); 0 keeps them forever. A TTL on ClickHouse 19.6+, else month partitions entirely past it are dropped hourly [HISSUNO_AUDIT_RETENTION]")
			fs.Var(retentionFlag{&adminRetention}, "admin-retention", "how long admin events are kept, as --retention; 0 (the default) keeps them forever [HISSUNO_AUDIT_ADMIN_RETENTION]")
		},
		build: func(r roleEnv) (func(context.Context) error, error) {
			a, err := auditor.New(auditor.Config{
				NATS: r.nc, ClickHouseDSN: *dsn, Cluster: *cluster, Instance: r.instance, BatchSize: *batchSize, BatchWait: *batchWait,
				DecisionRetention: decisionRetention, AdminRetention: adminRetention,
			}, r.log)
			if err != nil {
				return nil, err
			}
			r.checks.Add("clickhouse", a.Ready)
			return a.Run, nil
		},
	})
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
	nc, js, err := n.connectJS("hissuno-setup", "setup", zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
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

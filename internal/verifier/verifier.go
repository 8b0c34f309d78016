package verifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/authz"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/worker"
)

// Defaults of Config, one source for the flags too.
const (
	DefaultConcurrency    = 256
	DefaultPublishTimeout = 5 * time.Second
	DefaultAckWait        = 10 * time.Second
)

// Config configures a verifier: one replica of the role that consumes
// attempts, decides, records the decision and replies.
type Config struct {
	// NATS is the connection the verifier uses; required.
	NATS *nats.Conn
	// Sealer opens the sealed keys of the projects bucket; required.
	Sealer *project.Sealer
	// Instance names this verifier in decisions, logs and micro-service
	// discovery (one NATS subject token); default: a random name.
	Instance string
	// Concurrency bounds the attempts decided at once; default
	// DefaultConcurrency.
	Concurrency int
	// CacheEntries bounds the verified-token cache; default
	// authz.DefaultCacheEntries, negative disables it.
	CacheEntries int
	// PublishTimeout bounds the wait for a decision's persistence ack;
	// default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// AckWait is how long JetStream waits for a verifier before it gives the
	// attempt to another; default DefaultAckWait.
	AckWait time.Duration
	// Clock is the server clock; default time.Now. Tests set it.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Instance == "" {
		c.Instance = bus.InstanceName("verifier")
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = authz.DefaultCacheEntries
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil:
		return errors.New("verifier: no NATS connection")
	case c.Sealer == nil:
		return errors.New("verifier: no master key to open project keys (set HISSUNO_MASTER_KEY)")
	case !events.ValidToken(c.Instance):
		return fmt.Errorf("verifier: instance name %q must be one NATS subject token: 1 to 64 letters, digits, '-' or '_'", c.Instance)
	case c.Concurrency < 1:
		return errors.New("verifier: concurrency must be at least 1")
	case c.AckWait < time.Second:
		return errors.New("verifier: ack wait must be at least 1 s")
	case c.PublishTimeout <= 0 || c.PublishTimeout > handleBudget(c.AckWait):
		return fmt.Errorf("verifier: the publish timeout must be positive and at most %s (three quarters of the ack wait)", handleBudget(c.AckWait))
	}
	return nil
}

// Verifier is the verifier role.
type Verifier struct {
	cfg     Config
	log     zerolog.Logger
	js      jetstream.JetStream
	decider *authz.Decider
	view    *view
	settler *worker.Settler
	// deciding is set once the view is complete, the verifier is
	// discoverable and it consumes attempts.
	deciding atomic.Bool
	// The freshness lease and the resync after a reconnect (lease.go).
	lease lease
	// rewatch asks the view to watch the bucket again.
	rewatch chan struct{}
}

// New makes a verifier.
func New(cfg Config, log zerolog.Logger) (*Verifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("verifier: jetstream: %w", err)
	}
	log = log.With().Str("component", "verifier").Str("instance", cfg.Instance).Logger()
	v := &Verifier{cfg: cfg, log: log, js: js, rewatch: make(chan struct{}, 1)}
	v.lease.init()
	v.decider = authz.NewDecider(max(cfg.CacheEntries, 0))
	v.view = newView(cfg.Sealer, log, v.decider.Purge)
	v.settler = &worker.Settler{
		JS:         js,
		Stream:     events.StreamAttempts,
		MaxDeliver: attemptsMaxDeliver,
		Backoff:    naksBackOff,
		Scrub:      scrubAttempt,
		Log:        log,
	}
	return v, nil
}

// Instance is the verifier's name.
func (v *Verifier) Instance() string { return v.cfg.Instance }

// Projects is the number of projects the verifier's view holds.
func (v *Verifier) Projects() int { return v.view.size() }

// Ready reports whether the verifier holds every project, answers rotation
// confirmations and decides attempts.
func (v *Verifier) Ready() bool { return v.deciding.Load() }

// Run loads the projects, then decides attempts until ctx ends; then it
// stops taking attempts, finishes those in flight and returns once every
// goroutine it started has ended and its NATS callbacks are removed.
func (v *Verifier) Run(ctx context.Context) (err error) {
	kv, err := v.js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		return fmt.Errorf("verifier: projects bucket: %w", err)
	}
	// Every goroutine below is joined before Run returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	// runCtx ends with ctx or when the watch fails.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	var watchErr error
	watchDone := make(chan struct{})
	wg.Go(func() {
		defer close(watchDone)
		if werr := v.view.watch(watchCtx, kv, v.rewatch); werr != nil && watchCtx.Err() == nil {
			watchErr = fmt.Errorf("verifier: watch projects: %w", werr)
			stopRun()
		}
	})
	defer func() {
		stopWatch()
		<-watchDone
		if err == nil {
			err = watchErr
		}
	}()

	// While disconnected, invalidations are lost: from the moment the
	// connection drops until the view has caught up after it returns, the
	// verifier decides nothing.
	restore := v.lease.watchConnection(runCtx, &wg, v.cfg.NATS, func(ctx context.Context) error { return v.catchUp(ctx, kv) }, v.log)
	defer restore()
	inval, err := v.cfg.NATS.Subscribe(events.SubjectInvalidate, v.onInvalidate)
	if err != nil {
		return fmt.Errorf("verifier: subscribe %s: %w", events.SubjectInvalidate, err)
	}
	defer func() { _ = inval.Unsubscribe() }()

	// Answer nothing until the view is complete.
	if !v.view.waitReady(runCtx) {
		return nil
	}
	svc, err := v.registerService()
	if err != nil {
		return err
	}
	defer func() { _ = svc.Stop() }()
	// Known to the rotator from now on: discovery finds the service, and
	// the first heartbeat goes out at once. Heartbeats and the freshness
	// lease outlive ctx until the attempts in hand are decided (the
	// deferred stop runs after the consumer loop has returned); the last
	// heartbeat says the verifier leaves.
	aliveCtx, stopAlive := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAlive()
	wg.Go(func() { v.heartbeat(aliveCtx) })
	// Barrier: a rotation that wrote the bucket before this verifier became
	// known did not ask it to confirm, so hold everything written so far
	// before deciding anything.
	for {
		cctx, cancel := context.WithTimeout(runCtx, 5*time.Second)
		err := v.catchUp(cctx, kv)
		cancel()
		if err == nil {
			break
		}
		if runCtx.Err() != nil {
			return nil
		}
		v.log.Warn().Err(err).Msg("the projects bucket does not answer yet; retrying before deciding")
	}
	wg.Go(func() { v.keepFresh(aliveCtx, kv) })

	cons, err := v.js.CreateOrUpdateConsumer(runCtx, events.StreamAttempts, AttemptsConsumer(v.cfg.AckWait))
	if err == nil {
		// On a cluster a new consumer's leader may not be elected yet; a
		// pull sent before it would go unanswered until the pull expires.
		err = waitLeader(runCtx, cons)
	}
	if err != nil {
		if runCtx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("verifier: consumer %s: %w", events.ConsumerVerifiers, err)
	}
	v.deciding.Store(true)
	defer v.deciding.Store(false)
	v.log.Info().Int("projects", v.view.size()).Msg("verifier deciding")
	// A fixed pool of workers: their stacks grow once (JSON, JWT) and stay.
	err = worker.Run(runCtx, worker.Config{
		Name:            events.ConsumerVerifiers,
		Consumer:        cons,
		Settler:         v.settler,
		Log:             v.log,
		Workers:         v.cfg.Concurrency,
		PullMaxMessages: min(v.cfg.Concurrency, 512),
		PullExpiry:      pullExpiry,
	}, v.handle)
	v.log.Info().Msg("verifier stopped")
	return err
}

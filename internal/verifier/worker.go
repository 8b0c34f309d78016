package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/worker"
)

// Config configures a verifier: one replica of the role that consumes
// attempts, decides, records the decision and replies.
type Config struct {
	// NATS is the connection the verifier uses; required.
	NATS *nats.Conn
	// Sealer opens the sealed keys of the projects bucket; required.
	Sealer *project.Sealer
	// Instance names this verifier in decisions, logs and micro-service
	// discovery; default: a random name.
	Instance string
	// Concurrency bounds the attempts decided at once; default 256.
	Concurrency int
	// CacheEntries bounds the verified-token cache; default
	// DefaultCacheEntries, negative disables it.
	CacheEntries int
	// PublishTimeout bounds the wait for a decision's persistence ack;
	// default 5 s.
	PublishTimeout time.Duration
	// AckWait is how long JetStream waits for a verifier before it gives the
	// attempt to another; default 10 s.
	AckWait time.Duration
	// Clock is the server clock; default time.Now. Tests set it.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Instance == "" {
		c.Instance = bus.InstanceName("verifier")
	}
	if c.Concurrency == 0 {
		c.Concurrency = 256
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 10 * time.Second
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
	case c.Concurrency < 1:
		return errors.New("verifier: concurrency must be at least 1")
	case c.AckWait < time.Second:
		return errors.New("verifier: ack wait must be at least 1 s")
	case c.PublishTimeout <= 0 || c.PublishTimeout > handleBudget(c.AckWait):
		return fmt.Errorf("verifier: the publish timeout must be positive and at most %s (three quarters of the ack wait)", handleBudget(c.AckWait))
	}
	return nil
}

// handleBudget bounds the handling of one attempt, its decision's publish
// included: well below the ack wait, after which JetStream hands the
// attempt to another verifier. So every decision on one stored attempt is
// published within the ack wait of one of its deliveries, and all of them
// within the streams' duplicate window, which de-duplicates them.
func handleBudget(ackWait time.Duration) time.Duration { return ackWait * 3 / 4 }

// Consumer settings of the shared durable consumer on the attempts stream.
// Every redelivery of an attempt happens within the streams' duplicate
// window (2 min by default): ack wait plus back-off sum to 70 s over 5
// deliveries, so a decision stored twice for one attempt is de-duplicated by
// its Nats-Msg-Id and the audit never holds two.
const (
	// attemptsMaxDeliver bounds deliveries of one attempt; the last failing
	// delivery dead-letters it (scrubbed of its token).
	attemptsMaxDeliver = 5
	// attemptsMaxAckPending bounds the attempts in flight across every
	// verifier.
	attemptsMaxAckPending = 4096
)

// attemptsBackOff spaces redeliveries of an attempt whose verifier went
// silent (crashed, partitioned), after the first ack wait.
var attemptsBackOff = []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}

// naksBackOff spaces retries after a transient error (decision not stored).
var naksBackOff = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, time.Second, 5 * time.Second}

// Freshness. The KV revision is the truth; invalidations only make changes
// arrive fast, and a verifier that stalls (paused, starved, partitioned)
// can miss them while attempts pile up in its buffer. So a verifier decides
// only while it holds a lease: the proof, at most FreshnessLease old, that
// its view held every revision the bucket had. It renews the lease every
// leaseRenewEvery; a verifier that stalled longer than the lease checks the
// bucket again before it decides anything. The rotator waits longer than
// the lease for a verifier it knows to be alive (HeartbeatEvery) before it
// names it unconfirmed, so a verifier that did not confirm a rotation in
// time cannot decide with the retired key once it returns.
const (
	// FreshnessLease is how long a check that the view is current lets the
	// verifier decide.
	FreshnessLease = time.Second
	// leaseRenewEvery is how often the lease is renewed.
	leaseRenewEvery = 250 * time.Millisecond
	// HeartbeatEvery is how often a verifier says it is alive.
	HeartbeatEvery = time.Second
)

// staleWait bounds how long an attempt waits for the view to catch up with
// an announced change before it is handed back; staleRetry is how soon it
// is then tried again.
const (
	staleWait  = 5 * time.Second
	staleRetry = time.Second
)

// Verifier is the verifier role.
type Verifier struct {
	cfg     Config
	log     zerolog.Logger
	js      jetstream.JetStream
	decider *Decider
	view    *view
	settler *worker.Settler
	handler worker.Handler
	// deciding is set once the view is complete, the verifier is
	// discoverable and it consumes attempts.
	deciding atomic.Bool
	// resyncing is set while the view catches up after a reconnect.
	resyncing atomic.Bool
	// start anchors the monotonic clock of the freshness lease; leaseFrom
	// is when (since start) the last successful freshness check began.
	start     time.Time
	leaseFrom atomic.Int64
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
	v := &Verifier{cfg: cfg, log: log, js: js, start: time.Now(), rewatch: make(chan struct{}, 1)}
	v.leaseFrom.Store(-int64(FreshnessLease))
	cacheEntries := max(cfg.CacheEntries, 0)
	v.decider = NewDecider(cacheEntries)
	v.view = newView(cfg.Sealer, log, v.decider.Purge)
	v.settler = &worker.Settler{
		JS:         js,
		Stream:     events.StreamAttempts,
		MaxDeliver: attemptsMaxDeliver,
		Backoff:    naksBackOff,
		Scrub:      scrubAttempt,
		Log:        log,
	}
	v.handler = worker.Chain(v.handle, worker.Recover(log))
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
// stops taking attempts, finishes those in flight and returns.
func (v *Verifier) Run(ctx context.Context) error {
	kv, err := v.js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		return fmt.Errorf("verifier: projects bucket: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	watchErr := make(chan error, 1)
	go func() { watchErr <- v.view.watch(watchCtx, kv, v.rewatch) }()

	// While disconnected, invalidations are lost: from the moment the
	// connection drops until the view has caught up after it returns, the
	// verifier decides nothing.
	prevDisconnect, prevReconnect := v.cfg.NATS.Opts.DisconnectedErrCB, v.cfg.NATS.Opts.ReconnectedCB
	v.cfg.NATS.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		v.resyncing.Store(true)
		if prevDisconnect != nil {
			prevDisconnect(nc, err)
		}
	})
	v.cfg.NATS.SetReconnectHandler(func(nc *nats.Conn) {
		if prevReconnect != nil {
			prevReconnect(nc)
		}
		v.resync(kv)
	})
	inval, err := v.cfg.NATS.Subscribe(events.SubjectInvalidate, v.onInvalidate)
	if err != nil {
		return fmt.Errorf("verifier: subscribe %s: %w", events.SubjectInvalidate, err)
	}
	defer func() { _ = inval.Unsubscribe() }()

	// Answer nothing until the view is complete.
	for !v.view.ready.Load() {
		select {
		case <-ctx.Done():
			return nil
		case err := <-watchErr:
			return fmt.Errorf("verifier: watch projects: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	svc, err := v.registerService()
	if err != nil {
		return err
	}
	defer func() { _ = svc.Stop() }()
	// Known to the rotator from now on: discovery finds the service, and
	// the first heartbeat goes out at once. Heartbeats and the freshness
	// lease outlive ctx until the attempts in hand are decided (the
	// deferred stop runs after the workers' below); the last heartbeat
	// says the verifier leaves.
	aliveCtx, stopAlive := context.WithCancel(context.WithoutCancel(ctx))
	var alive sync.WaitGroup
	alive.Add(1)
	go func() { defer alive.Done(); v.heartbeat(aliveCtx) }()
	defer func() {
		stopAlive()
		alive.Wait()
	}()
	// Barrier: a rotation that wrote the bucket before this verifier became
	// known did not ask it to confirm, so hold everything written so far
	// before deciding anything.
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := v.catchUp(cctx, kv)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		v.log.Warn().Err(err).Msg("the projects bucket does not answer yet; retrying before deciding")
	}
	alive.Add(1)
	go func() { defer alive.Done(); v.keepFresh(aliveCtx, kv) }()

	cons, err := v.js.CreateOrUpdateConsumer(ctx, events.StreamAttempts, AttemptsConsumer(v.cfg.AckWait))
	if err == nil {
		// On a cluster a new consumer's leader may not be elected yet; a
		// pull sent before it would go unanswered until the pull expires.
		err = waitLeader(ctx, cons)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("verifier: consumer %s: %w", events.ConsumerVerifiers, err)
	}
	// A fixed pool of workers: their stacks grow once (JSON, JWT) and stay.
	var inflight sync.WaitGroup
	work := make(chan jetstream.Msg)
	workCtx := context.WithoutCancel(ctx)
	for range v.cfg.Concurrency {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			for msg := range work {
				v.settler.Settle(workCtx, msg, v.handler(workCtx, msg))
			}
		}()
	}
	defer func() {
		close(work)
		inflight.Wait()
	}()
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		work <- msg
	}, jetstream.PullMaxMessages(min(v.cfg.Concurrency, 512)), jetstream.PullExpiry(pullExpiry), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) || ctx.Err() == nil {
			v.log.Warn().Err(err).Msg("consume")
		}
	}))
	if err != nil {
		return fmt.Errorf("verifier: consume: %w", err)
	}
	v.deciding.Store(true)
	defer v.deciding.Store(false)
	go watchConsumer(ctx, cons, events.ConsumerVerifiers)
	v.log.Info().Int("projects", v.view.size()).Msg("verifier deciding")

	select {
	case <-ctx.Done():
	case err = <-watchErr:
		err = fmt.Errorf("verifier: watch projects: %w", err)
	}
	// Stop taking attempts; decide the ones already delivered (the deferred
	// close lets the workers finish).
	cc.Drain()
	<-cc.Closed()
	v.log.Info().Msg("verifier stopped")
	return err
}

// catchUp waits until the view holds every revision the bucket had when it
// was called.
// It renews the freshness lease from the moment it asked.
func (v *Verifier) catchUp(ctx context.Context, kv jetstream.KeyValue) error {
	asked := time.Since(v.start)
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("verifier: projects bucket status: %w", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return errors.New("verifier: projects bucket status of an unknown kind")
	}
	last := bs.StreamInfo().State.LastSeq
	for !v.view.waitFor(ctx, last) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	v.renewLease(asked)
	return nil
}

// renewLease records a successful freshness check that began at asked.
func (v *Verifier) renewLease(asked time.Duration) {
	for {
		cur := v.leaseFrom.Load()
		if int64(asked) <= cur || v.leaseFrom.CompareAndSwap(cur, int64(asked)) {
			return
		}
	}
}

// fresh reports whether the verifier holds a freshness lease now.
func (v *Verifier) fresh() bool {
	return time.Since(v.start)-time.Duration(v.leaseFrom.Load()) < FreshnessLease
}

// rewatchAfter is how long the view may stay behind the bucket before the
// watch is replaced.
const rewatchAfter = 2 * time.Second

// keepFresh renews the freshness lease every leaseRenewEvery until ctx
// ends. A check that fails (NATS away) simply lets the lease run out; a
// view that stays behind the bucket gets its watch replaced.
func (v *Verifier) keepFresh(ctx context.Context, kv jetstream.KeyValue) {
	t := time.NewTicker(leaseRenewEvery)
	defer t.Stop()
	var behindSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, FreshnessLease)
		err := v.catchUp(cctx, kv)
		cancel()
		switch {
		case err == nil:
			behindSince = time.Time{}
		case ctx.Err() != nil:
			return
		case behindSince.IsZero():
			behindSince = time.Now()
			v.log.Debug().Err(err).Msg("freshness check failed; the lease runs out")
		case time.Since(behindSince) > rewatchAfter:
			behindSince = time.Time{}
			select {
			case v.rewatch <- struct{}{}:
			default:
			}
		}
	}
}

// heartbeat tells the rotator, now and every HeartbeatEvery, that this
// verifier is alive, until ctx ends.
func (v *Verifier) heartbeat(ctx context.Context) {
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	send := func(leaving bool) {
		b, _ := json.Marshal(events.Heartbeat{SchemaVersion: events.SchemaVersion, Verifier: v.cfg.Instance,
			Revision: v.view.lastRev.Load(), Time: time.Now().UTC(), Leaving: leaving})
		_ = v.cfg.NATS.Publish(events.SubjectHeartbeat, b)
	}
	for {
		send(false)
		select {
		case <-ctx.Done():
			// Stopping: rotations need not wait for this verifier.
			send(true)
			_ = v.cfg.NATS.Flush()
			return
		case <-t.C:
		}
	}
}

// pullExpiry bounds one pull request: a pull lost (a cluster node left) is
// noticed after two missed heartbeats of half of it.
const pullExpiry = 5 * time.Second

// waitLeader waits, up to a minute, until the consumer answers with a
// leader (on a single server it always has one).
func waitLeader(ctx context.Context, cons jetstream.Consumer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		// Each ask bounded: while there is no leader a request can go
		// unanswered.
		ictx, icancel := context.WithTimeout(ctx, time.Second)
		info, err := cons.Info(ictx)
		icancel()
		if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// AttemptsConsumer is the configuration of the durable pull consumer every
// verifier shares.
func AttemptsConsumer(ackWait time.Duration) jetstream.ConsumerConfig {
	backoff := append([]time.Duration{ackWait}, attemptsBackOff...)
	return jetstream.ConsumerConfig{
		Durable:       events.ConsumerVerifiers,
		Description:   "Every verifier pulls attempts from this one consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		BackOff:       backoff,
		MaxDeliver:    attemptsMaxDeliver,
		MaxAckPending: attemptsMaxAckPending,
		FilterSubject: events.SubjectAttempts + ".>",
	}
}

// handle decides one attempt: decide, store the decision (waiting for its
// persistence ack), then reply if the ingress still waits.
func (v *Verifier) handle(ctx context.Context, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, handleBudget(v.cfg.AckWait))
	defer cancel()
	var a events.Attempt
	// By the schema's exact key names: other ingresses publish attempts.
	if err := events.Unmarshal(msg.Data(), &a); err != nil {
		return worker.Permanent(fmt.Errorf("attempt is not valid JSON: %w", err))
	}
	if a.SchemaVersion != events.SchemaVersion || a.AttemptID == "" {
		return worker.Permanent(fmt.Errorf("attempt %q: schema version %d or attempt id unsupported", a.AttemptID, a.SchemaVersion))
	}
	if err := checkProvenance(&a, msg); err != nil {
		return worker.Permanent(fmt.Errorf("attempt %q refused: %w", clip(a.AttemptID), err))
	}
	dec, ok := v.decide(ctx, &a)
	if !ok {
		// An invalidation announced a change the watch has not brought yet,
		// the connection came back and the view is catching up, or the
		// verifier stalled past its freshness lease: decide nothing for
		// this project until the view is current.
		return worker.Retry(errStale, staleRetry)
	}
	ev := DecisionEvent(&a, dec, v.cfg.Instance)
	body, err := json.Marshal(ev)
	if err != nil {
		return worker.Permanent(fmt.Errorf("encode decision: %w", err))
	}
	out := nats.NewMsg(events.SubjectDecisions)
	out.Data = body
	out.Header.Set(events.HeaderMsgID, ev.DecisionID)
	pctx, cancel := context.WithTimeout(ctx, v.cfg.PublishTimeout)
	ack, err := bus.Publish(pctx, v.cfg.NATS, out)
	cancel()
	if err != nil {
		return fmt.Errorf("store decision %s: %w", ev.DecisionID, err)
	}
	if ack.Duplicate {
		// An earlier delivery stored the decision on this attempt, and the
		// browser may only ever see the stored one: this one, made later,
		// can differ (settings changed meanwhile). The earlier delivery
		// replied.
		return nil
	}
	metrics.Decisions.WithLabelValues(string(dec.Outcome), string(dec.Reason)).Inc()
	if !a.ReceivedAt.IsZero() {
		metrics.DecisionLatency.Observe(time.Since(a.ReceivedAt).Seconds())
	}
	if a.ReplyTo != "" && v.cfg.Clock().Before(a.Deadline) {
		if err := v.cfg.NATS.Publish(a.ReplyTo, body); err != nil {
			v.log.Warn().Err(err).Str("attempt", a.AttemptID).Msg("reply not sent")
		}
	}
	return nil
}

// checkProvenance refuses an attempt that is not what it claims to be:
// published on a subject other than its ingress's (NATS lets each source
// publish under its own name only, so the subject proves who sent it), or
// under a Nats-Msg-Id other than its id, with an id not of
// events.NewAttemptID's form or whose time is not its
// receivedAt, stored by JetStream outside events.AttemptWindow of its
// receivedAt (an old attempt id published again), replying anywhere but to
// its ingress, or with a client address that is not an IP address.
func checkProvenance(a *events.Attempt, msg jetstream.Msg) error {
	if !events.ValidIngress(a.Ingress) || msg.Subject() != events.AttemptSubject(a.Ingress) {
		return fmt.Errorf("published on %q by an ingress other than the one it names (%q)", msg.Subject(), clip(a.Ingress))
	}
	if id := msg.Headers().Get(events.HeaderMsgID); id != a.AttemptID {
		// JetStream de-duplicates by this header: an attempt id stored
		// under another would be stored twice.
		return fmt.Errorf("its %s %q is not its attempt id", events.HeaderMsgID, clip(id))
	}
	idTime, ok := events.AttemptTime(a.AttemptID)
	if !ok {
		return errors.New("the attempt id is not att_<time><NUID>")
	}
	if !a.ReceivedAt.Truncate(time.Millisecond).Equal(idTime) {
		return fmt.Errorf("receivedAt %s is not the time its id carries (%s)", a.ReceivedAt.UTC().Format(time.RFC3339Nano), idTime.Format(time.RFC3339Nano))
	}
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("no stream metadata: %w", err)
	}
	if age := md.Timestamp.Sub(a.ReceivedAt); age > events.AttemptWindow || age < -events.AttemptClockSkew {
		return fmt.Errorf("stored %s after its receivedAt: outside [-%s, %s]; an attempt id is decided once", age.Round(time.Millisecond), events.AttemptClockSkew, events.AttemptWindow)
	}
	if a.ReplyTo != "" && a.ReplyTo != events.ReplySubject(a.Ingress, a.AttemptID) {
		return fmt.Errorf("replyTo %q is not its ingress's reply subject", clip(a.ReplyTo))
	}
	if a.ClientIP != "" {
		if _, err := netip.ParseAddr(a.ClientIP); err != nil {
			return fmt.Errorf("clientIp %q is not an IP address", clip(a.ClientIP))
		}
	}
	return nil
}

var errStale = errors.New("project view is behind an announced change")

// current returns the project as the view holds it once the view is not
// known to be behind for it and the freshness lease holds, waiting up to
// staleWait; ok is false when it is still behind.
func (v *Verifier) current(ctx context.Context, id string) (p *Project, ok bool) {
	deadline := time.Now().Add(staleWait)
	for {
		v.view.mu.RLock()
		changed := v.view.changed
		v.view.mu.RUnlock()
		p, stale := v.view.lookup(id)
		if !stale && !v.resyncing.Load() && v.fresh() {
			return p, true
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, false
		}
		select {
		case <-changed:
		case <-time.After(min(wait, 50*time.Millisecond)):
		case <-ctx.Done():
			return nil, false
		}
	}
}

// decide makes the decision on a current view, waiting up to staleWait for
// one. A decision counts only if, once made, the freshness lease still
// holds and the project it used is still the view's: a verifier paused
// between looking the project up and deciding would otherwise decide with
// what it held before the pause.
func (v *Verifier) decide(ctx context.Context, a *events.Attempt) (Decision, bool) {
	deadline := time.Now().Add(staleWait)
	for time.Now().Before(deadline) {
		p, ok := v.current(ctx, a.ProjectID)
		if !ok {
			return Decision{}, false
		}
		dec := v.decider.Decide(p, Request{
			ProjectID:    a.ProjectID,
			Origin:       a.Origin,
			Token:        a.WidgetToken,
			UserID:       a.UserID,
			UserMetadata: a.UserMetadata,
		}, v.cfg.Clock())
		if q, stale := v.view.lookup(a.ProjectID); q == p && !stale && v.fresh() {
			return dec, true
		}
	}
	return Decision{}, false
}

// resync makes the verifier decide nothing until its view holds everything
// the bucket holds now. It runs after the connection came back: the
// invalidations sent while it was away are lost, the KV revision is not.
func (v *Verifier) resync(kv jetstream.KeyValue) {
	v.resyncing.Store(true)
	go func() {
		defer v.resyncing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := v.catchUp(ctx, kv); err != nil || ctx.Err() != nil {
			v.log.Warn().Err(err).Msg("view did not catch up after a reconnect within a minute; deciding again")
			return
		}
		v.log.Info().Uint64("revision", v.view.lastRev.Load()).Msg("view caught up after a reconnect")
	}()
}

// DecisionEvent is the event recording a decision on an attempt: the
// audit record, and the reply the ingress answers from. Every string a
// client or an ingress chose goes through redact.String, so that a secret
// key or a JWT put in an Origin, a projectId, a userId, userMetadata or a
// User-Agent is never stored; the decision was made on the raw values. The
// attempt and decision ids are kept as they are: they identify the record.
func DecisionEvent(a *events.Attempt, d Decision, instance string) events.Decision {
	ev := events.Decision{
		SchemaVersion:    events.SchemaVersion,
		DecisionID:       events.DecisionIDFor(a.AttemptID),
		AttemptID:        a.AttemptID,
		Time:             d.ServerTime.UTC(),
		ReceivedAt:       a.ReceivedAt.UTC(),
		ProjectID:        redact.String(a.ProjectID),
		Decision:         d.Outcome,
		Reason:           d.Reason,
		Session:          d.Session,
		UserID:           redact.String(d.UserID),
		UserVerified:     d.UserVerified,
		UserMetadata:     redact.Map(d.UserMetadata),
		ClaimedUserID:    redact.String(d.ClaimedUserID),
		Origin:           redact.String(a.Origin),
		TokenFingerprint: d.TokenFingerprint,
		KeyVersion:       d.KeyVersion,
		SkewSeconds:      d.SkewSeconds,
		Verifier:         redact.String(instance),
		Ingress:          redact.String(a.Ingress),
		ClientIP:         redact.String(a.ClientIP),
		UserAgent:        redact.String(a.UserAgent),
	}
	if d.Err != nil {
		ev.Message = redact.String(d.Message())
	}
	if d.Reason == events.ReasonTokenExpired || d.Reason == events.ReasonTokenNotYetValid {
		ev.LeewaySeconds = int64(Leeway / time.Second)
	}
	if !a.ReceivedAt.IsZero() {
		ev.LatencyMicros = max(d.ServerTime.Sub(a.ReceivedAt).Microseconds(), 0)
	}
	return ev
}

// onInvalidate marks a project stale until the watch brings the announced
// revision.
func (v *Verifier) onInvalidate(m *nats.Msg) {
	var inv events.Invalidation
	if err := json.Unmarshal(m.Data, &inv); err != nil || inv.ProjectID == "" {
		v.log.Warn().Msg("invalidation not understood; ignored")
		return
	}
	v.view.require(inv.ProjectID, inv.Revision)
}

// registerService registers the verifier as a NATS micro service with a
// sync endpoint of its own: the rotator asks each live verifier, found by
// discovery, to confirm it holds a change.
func (v *Verifier) registerService() (micro.Service, error) {
	svc, err := micro.AddService(v.cfg.NATS, micro.Config{
		Name:        events.ServiceVerifier,
		Version:     "1.0.0",
		Description: "Decides widget connection attempts",
		Metadata:    map[string]string{"instance": v.cfg.Instance},
	})
	if err != nil {
		return nil, fmt.Errorf("verifier: micro service: %w", err)
	}
	err = svc.AddEndpoint("sync", micro.HandlerFunc(v.onSync),
		micro.WithEndpointSubject(SyncSubject(v.cfg.Instance)),
		micro.WithEndpointMetadata(map[string]string{"instance": v.cfg.Instance}))
	if err != nil {
		return nil, fmt.Errorf("verifier: micro endpoint: %w", err)
	}
	err = svc.AddEndpoint("status", micro.HandlerFunc(func(r micro.Request) {
		_ = r.RespondJSON(map[string]any{"instance": v.cfg.Instance, "ready": v.view.ready.Load(), "projects": v.view.size(), "revision": v.view.lastRev.Load()})
	}), micro.WithEndpointSubject("hissuno.verifier."+v.cfg.Instance+".status"))
	if err != nil {
		return nil, fmt.Errorf("verifier: micro endpoint: %w", err)
	}
	return svc, nil
}

// SyncSubject is the subject of one verifier's sync endpoint.
func SyncSubject(instance string) string { return "hissuno.verifier." + instance + ".sync" }

// syncWait bounds how long a verifier waits for its watch to bring a
// revision before it answers a sync request.
const syncWait = 2 * time.Second

func (v *Verifier) onSync(r micro.Request) {
	var req events.SyncRequest
	if err := json.Unmarshal(r.Data(), &req); err != nil {
		_ = r.Error("400", "sync request is not valid JSON", nil)
		return
	}
	v.view.require(req.ProjectID, req.Revision)
	ctx, cancel := context.WithTimeout(context.Background(), syncWait)
	ok := v.view.waitFor(ctx, req.Revision)
	cancel()
	_ = r.RespondJSON(events.SyncReply{Verifier: v.cfg.Instance, Revision: v.view.revision(req.ProjectID), OK: ok})
}

// scrubAttempt replaces the token of a dead-lettered attempt by its
// fingerprint.
func scrubAttempt(b []byte) []byte {
	var a map[string]any
	if json.Unmarshal(b, &a) != nil {
		return []byte(redact.String(string(b)))
	}
	if tok, ok := a["widgetToken"].(string); ok {
		delete(a, "widgetToken")
		a["tokenFingerprint"] = Fingerprint(tok)
	}
	out, err := json.Marshal(a)
	if err != nil {
		return []byte(redact.String(string(b)))
	}
	return out
}

// watchConsumer exposes a durable consumer's pending and redelivered counts
// every few seconds until ctx ends.
func watchConsumer(ctx context.Context, cons jetstream.Consumer, name string) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		metrics.ConsumerPending.WithLabelValues(name).Set(float64(info.NumPending + uint64(info.NumAckPending)))
		metrics.ConsumerRedelivered.WithLabelValues(name).Set(float64(info.NumRedelivered))
	}
}

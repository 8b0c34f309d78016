package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
)

// Topology sizes the streams and the bucket. The zero value is filled with
// defaults by SetDefaults.
type Topology struct {
	// Replicas of every stream and the bucket: 1 on one server, 3 on a
	// three-node cluster.
	Replicas int
	// AttemptsMaxAge bounds how long an undecided attempt waits.
	AttemptsMaxAge time.Duration
	// AttemptsMaxBytes bounds the undecided attempts; a full stream refuses
	// new attempts (the ingress answers 503) rather than drop any.
	AttemptsMaxBytes int64
	// DecisionsMaxAge is how long a decision may wait in the stream for the
	// auditor: the time an auditor outage can last before audit records
	// are lost.
	DecisionsMaxAge time.Duration
	// DecisionsMaxBytes bounds the decisions the auditor has not stored
	// yet (a stored one leaves the stream: interest retention); a full
	// stream refuses new decisions (verifiers then answer nothing, the
	// ingress 503) rather than drop audit records. Size it for the longest
	// ClickHouse outage to ride out (README, "ClickHouse outages").
	DecisionsMaxBytes int64
	// ThrottledMaxBytes bounds the counts of throttled requests the
	// auditor has not stored yet (interest retention, like decisions; they
	// wait as long as DecisionsMaxAge). A full stream refuses new counts
	// (the ingress keeps and retries them a while, then drops them): never
	// a decision. Default DefaultThrottledMaxBytes.
	ThrottledMaxBytes int64
	// AdminMaxAge is how long admin commands and events stay; zero keeps them.
	AdminMaxAge time.Duration
	// DuplicateWindow is how long a Nats-Msg-Id is remembered for
	// de-duplication; every redelivery of an attempt falls within it, so it
	// must stay above the verifiers' redelivery span (70 s). Default 2 min.
	DuplicateWindow time.Duration
}

// Defaults of Topology, one source for the flags too.
const (
	DefaultReplicas          = 1
	DefaultDecisionsMaxAge   = 30 * 24 * time.Hour
	DefaultDecisionsMaxBytes = 8 << 30
	// DefaultThrottledMaxBytes holds about 4 million counts: a month of
	// ClickHouse outage for an ingress writing 100 a minute.
	DefaultThrottledMaxBytes = 1 << 30
)

// SetDefaults fills unset fields.
func (t *Topology) SetDefaults() {
	if t.Replicas == 0 {
		t.Replicas = DefaultReplicas
	}
	if t.AttemptsMaxAge == 0 {
		t.AttemptsMaxAge = 24 * time.Hour
	}
	if t.AttemptsMaxBytes == 0 {
		t.AttemptsMaxBytes = 1 << 30
	}
	if t.DecisionsMaxAge == 0 {
		t.DecisionsMaxAge = DefaultDecisionsMaxAge
	}
	if t.DecisionsMaxBytes == 0 {
		t.DecisionsMaxBytes = DefaultDecisionsMaxBytes
	}
	if t.DuplicateWindow == 0 {
		t.DuplicateWindow = 2 * time.Minute
	}
	if t.ThrottledMaxBytes == 0 {
		t.ThrottledMaxBytes = DefaultThrottledMaxBytes
	}
}

// Validate checks the sizes.
func (t Topology) Validate() error {
	switch {
	case t.Replicas < 1 || t.Replicas > 5:
		return fmt.Errorf("replicas %d: use 1 to 5", t.Replicas)
	case t.DuplicateWindow > t.AttemptsMaxAge || t.DuplicateWindow > t.DecisionsMaxAge:
		return errors.New("the duplicate window must be shorter than the streams' max age")
	case t.DuplicateWindow < 90*time.Second:
		return errors.New("the duplicate window must cover the verifiers' redelivery span: at least 90 s")
	case t.DuplicateWindow <= events.AttemptWindow+events.AttemptClockSkew:
		// An attempt id stored twice must always be a duplicate JetStream
		// drops: verifiers accept an attempt only within this span of its id.
		return fmt.Errorf("the duplicate window must be longer than %s, the span verifiers accept an attempt in", events.AttemptWindow+events.AttemptClockSkew)
	case t.DecisionsMaxBytes < 1<<20:
		return errors.New("the decisions stream needs at least 1 MiB")
	case t.ThrottledMaxBytes < 1<<20:
		return errors.New("the throttled stream needs at least 1 MiB")
	}
	return nil
}

// Streams returns the stream configurations.
func (t Topology) Streams() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        events.StreamAttempts,
			Description: "Widget connection attempts, until a verifier has decided them",
			Subjects:    []string{events.SubjectAttempts + ".>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      t.AttemptsMaxAge,
			MaxBytes:    t.AttemptsMaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  t.DuplicateWindow,
		},
		{
			Name:        events.StreamDecisions,
			Description: "Every decision, persisted before the browser gets it, until the auditor has stored it in ClickHouse",
			Subjects:    []string{events.SubjectDecisions},
			// Interest: a decision leaves once every consumer that wants it
			// has it: the auditor's durable consumer acks it after the
			// ClickHouse insert (audit tail's ordered consumers once they
			// got it). Ensure makes that consumer before the stream keeps
			// anything, so no decision is ever without it.
			Retention:  jetstream.InterestPolicy,
			Storage:    jetstream.FileStorage,
			Replicas:   t.Replicas,
			MaxAge:     t.DecisionsMaxAge,
			MaxBytes:   t.DecisionsMaxBytes,
			Discard:    jetstream.DiscardNew,
			Duplicates: t.DuplicateWindow,
		},
		{
			Name:        events.StreamThrottled,
			Description: "The ingresses' counts of throttled requests, a bounded number a minute, until the auditor has stored them in ClickHouse",
			Subjects:    []string{events.SubjectThrottledPrefix + ">"},
			// Interest, as decisions: the auditor's durable consumer
			// (made by Ensure before the stream keeps anything) acks a
			// count after its insert, which removes it.
			Retention:  jetstream.InterestPolicy,
			Storage:    jetstream.FileStorage,
			Replicas:   t.Replicas,
			MaxAge:     t.DecisionsMaxAge,
			MaxBytes:   t.ThrottledMaxBytes,
			Discard:    jetstream.DiscardNew,
			Duplicates: t.DuplicateWindow,
		},
		{
			Name:        events.StreamAdmin,
			Description: "Admin commands (hissuno project …) and the admin events they caused",
			Subjects:    []string{events.SubjectAdmin + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      t.AdminMaxAge,
			Discard:     jetstream.DiscardNew,
			Duplicates:  t.DuplicateWindow,
		},
		{
			Name:        events.StreamDeadLetter,
			Description: "Messages that could never be handled, with the error that stopped them",
			Subjects:    []string{events.SubjectDeadLetterPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      90 * 24 * time.Hour,
			Discard:     jetstream.DiscardOld,
			Duplicates:  t.DuplicateWindow,
		},
	}
}

// Bucket returns the projects KV bucket's configuration.
func (t Topology) Bucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      events.BucketProjects,
		Description: "Project settings and sealed secret keys, one entry per project",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    t.Replicas,
	}
}

// Lifetimes bounding what the console's buckets keep: a session lives at
// most MaxSessionLifetime (its absolute lifetime is configured at most
// this), a sign-in throttle entry ThrottleMemory after its last failure.
const (
	MaxSessionLifetime = 30 * 24 * time.Hour
	ThrottleMemory     = 24 * time.Hour
)

// ConsoleBuckets returns the configurations of the console's KV buckets
// (events.ConsoleBuckets).
func (t Topology) ConsoleBuckets() []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{Bucket: events.BucketConsoleAccounts, Description: "Console accounts: email, role, projects, argon2id password hash", History: 5, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: events.BucketConsoleSessions, Description: "Console sessions, keyed by the SHA-256 of the session id", History: 1, TTL: MaxSessionLifetime, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: events.BucketConsoleTokens, Description: "Console API tokens, keyed by id; the secret is stored hashed", History: 5, Storage: jetstream.FileStorage, Replicas: t.Replicas},
		{Bucket: events.BucketConsoleThrottle, Description: "Console sign-in failures per account and per client IP", History: 1, TTL: ThrottleMemory, Storage: jetstream.FileStorage, Replicas: t.Replicas},
	}
}

// DefaultAuditAckWait and DefaultAuditMaxAckPending configure the
// auditor's consumers as the auditor's defaults do (a minute to insert a
// batch; two inserts in flight and two batches fetched, of 10,000 events).
const (
	DefaultAuditAckWait       = time.Minute
	DefaultAuditMaxAckPending = 40_000
)

// AuditSettings are what the auditor's own configuration sets on its
// consumers; zero fields get DefaultAuditAckWait and
// DefaultAuditMaxAckPending.
type AuditSettings struct {
	// AckWait is how long JetStream waits for the auditor's ack before it
	// redelivers (an auditor that died mid-batch).
	AckWait time.Duration
	// MaxAckPending bounds the events delivered and not yet acknowledged.
	MaxAckPending int
}

func (s *AuditSettings) setDefaults() {
	if s.AckWait == 0 {
		s.AckWait = DefaultAuditAckWait
	}
	if s.MaxAckPending == 0 {
		s.MaxAckPending = DefaultAuditMaxAckPending
	}
}

// AuditDecisionsConsumer is the configuration of the auditor's durable
// consumer of decisions, the one the auditor creates or updates at start
// and Ensure creates when it is missing. It acks a decision only after the
// ClickHouse insert holding it, and that ack removes the decision from the
// stream (interest retention).
func AuditDecisionsConsumer(s AuditSettings) jetstream.ConsumerConfig {
	return auditConsumer(events.ConsumerAuditDecisions, events.SubjectDecisions,
		"The auditor copies decisions into ClickHouse; its ack, after the insert, removes a decision from the stream", s)
}

// AuditAdminConsumer is the configuration of the auditor's durable consumer
// of admin events.
func AuditAdminConsumer(s AuditSettings) jetstream.ConsumerConfig {
	return auditConsumer(events.ConsumerAuditAdmin, events.SubjectAdminEventPrefix+">",
		"The auditor copies admin events into ClickHouse", s)
}

// AuditThrottledConsumer is the configuration of the auditor's durable
// consumer of counts of throttled requests; like that of decisions, its
// ack after the insert removes a count from its stream.
func AuditThrottledConsumer(s AuditSettings) jetstream.ConsumerConfig {
	return auditConsumer(events.ConsumerAuditThrottled, events.SubjectThrottledPrefix+">",
		"The auditor copies counts of throttled requests into ClickHouse; its ack, after the insert, removes a count from the stream", s)
}

func auditConsumer(durable, filter, description string, s AuditSettings) jetstream.ConsumerConfig {
	s.setDefaults()
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   description,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    -1, // a ClickHouse outage may last; poison goes to dead letters
		MaxAckPending: s.MaxAckPending,
		FilterSubject: filter,
	}
}

// FollowInactive is how long a follower of decisions (FollowDecisions) may
// stop asking for them before the server deletes it. A follower counts as
// interest on the decisions stream: a decision stays until the follower has
// it too, so one that hangs must not hold decisions for long.
const FollowInactive = 30 * time.Second

// FollowDecisions is the configuration of an ephemeral consumer that
// follows decisions from deliver on, without acknowledgements, as `hissuno
// audit tail` does. Not an ordered consumer: nats.go gives those one
// replica, and an interest-retention stream takes only consumers with its
// own replicas (zero here: the stream's). Such a follower holds each
// decision until it has been delivered to it; the auditor removes those it
// stored long ago from under a follower that falls behind
// (auditor.Config.StoredGrace).
func FollowDecisions(deliver jetstream.DeliverPolicy) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Description:       "Follows decisions as they are stored (hissuno audit tail)",
		DeliverPolicy:     deliver,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     events.SubjectDecisions,
		InactiveThreshold: FollowInactive,
		MemoryStorage:     true,
	}
}

// Ensure creates or updates the streams and the bucket, and creates the
// auditor's consumers of decisions and of counts of throttled requests when
// they are missing, so that those recorded before any auditor ran wait for
// it. Every role may call it at start; it is
// idempotent.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t.SetDefaults()
	if err := t.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, cfg := range t.Streams() {
		var err error
		switch cfg.Name {
		case events.StreamDecisions:
			err = ensureInterest(ctx, js, cfg, AuditDecisionsConsumer(AuditSettings{}))
		case events.StreamThrottled:
			err = ensureInterest(ctx, js, cfg, AuditThrottledConsumer(AuditSettings{}))
		default:
			_, err = js.CreateOrUpdateStream(ctx, cfg)
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range append([]jetstream.KeyValueConfig{t.Bucket()}, t.ConsoleBuckets()...) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// ensureInterest creates or updates an interest-retention stream whose
// messages must all reach one durable consumer. An interest stream drops a
// message no consumer wants as soon as it is stored, and a limits stream
// switched to interest without consumers drops everything it held
// (nats-server's stream update): so a missing stream is made with limits
// retention first, then the consumer (when missing: an existing one keeps
// the configuration its role gave it), and only then does the stream get
// interest retention. A limits stream made by an older `hissuno setup` is
// brought forward the same way: the consumer is there (created now, wanting
// every message held, or the auditor's, which keeps those it has not acked)
// before the switch, which drops only the messages it acknowledged.
func ensureInterest(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, cons jetstream.ConsumerConfig) error {
	_, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		limits := cfg
		limits.Retention = jetstream.LimitsPolicy
		if _, err = js.CreateStream(ctx, limits); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // made meanwhile by another Ensure
		}
	}
	if err != nil {
		return err
	}
	_, err = js.Consumer(ctx, cfg.Name, cons.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if _, err = js.CreateConsumer(ctx, cfg.Name, cons); errors.Is(err, jetstream.ErrConsumerExists) {
			err = nil // made meanwhile, by the auditor or another Ensure
		}
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cons.Durable, err)
	}
	_, err = js.CreateOrUpdateStream(ctx, cfg)
	return err
}

// ErrNoAuditConsumer means the auditor's consumer of decisions is missing:
// the decisions stream (interest retention) would then drop every decision
// as soon as it is stored.
var ErrNoAuditConsumer = errors.New("the auditor's consumer of decisions is missing: decisions would be dropped as soon as they are stored; run `hissuno setup`")

// Check reports whether the streams, the auditor's consumer of decisions
// and the bucket exist, for readiness. It changes nothing, so a role
// without the right to create streams can call it.
func Check(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{events.StreamAttempts, events.StreamDecisions, events.StreamAdmin} {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	if _, err := js.Consumer(ctx, events.StreamDecisions, events.ConsumerAuditDecisions); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s on %s: %w", events.ConsumerAuditDecisions, events.StreamDecisions, ErrNoAuditConsumer)
	} else if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", events.ConsumerAuditDecisions, events.StreamDecisions, err)
	}
	if _, err := js.KeyValue(ctx, events.BucketProjects); err != nil {
		return fmt.Errorf("bucket %s: %w", events.BucketProjects, err)
	}
	return nil
}

// DecisionsNearlyFull is the fill of the decisions stream (Fill) from which
// readiness fails (health.DecisionsStream) and the auditor warns: early
// enough to act before the stream is full and refuses new decisions. Only
// decisions the auditor has not stored yet count, so the stream fills only
// while the auditor cannot store them (ClickHouse down, no auditor).
const DecisionsNearlyFull = 0.9

// Fill is how full a stream is, from 0 to 1: the larger of its bytes over
// its MaxBytes and its messages over its MaxMsgs (a limit not set counts
// 0). A stream with DiscardNew refuses new messages at 1.
func Fill(info *jetstream.StreamInfo) float64 {
	var f float64
	if c := info.Config; c.MaxBytes > 0 {
		f = float64(info.State.Bytes) / float64(c.MaxBytes)
	}
	if c := info.Config; c.MaxMsgs > 0 {
		f = max(f, float64(info.State.Msgs)/float64(c.MaxMsgs))
	}
	return min(f, 1)
}

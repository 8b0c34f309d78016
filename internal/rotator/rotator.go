// Package rotator is the role that changes projects: it handles the admin
// commands `hissuno project …` publishes to JetStream (create, update,
// rotate, revoke-user), writes the projects KV bucket with compare-and-set,
// records an admin event for each change, broadcasts an invalidation, and
// answers a command only once every live verifier has confirmed it holds the
// change (or is named as not having confirmed).
//
// It is the only writer of the projects bucket. It never logs or stores a
// key in clear: a new key leaves it only in the answer to the admin who asked.
package rotator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/origin"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/worker"
)

// DefaultConfirmTimeout is Config.ConfirmTimeout's default, one source for
// the flags too.
const DefaultConfirmTimeout = 3 * time.Second

// Config configures a rotator.
type Config struct {
	// NATS is the connection; required.
	NATS *nats.Conn
	// Sealer seals new keys under the master key; required.
	Sealer *project.Sealer
	// Instance names this rotator; default: a random name.
	Instance string
	// ConfirmTimeout bounds the wait for each verifier's confirmation of a
	// change; a verifier that does not confirm in time is named in the
	// answer. Default 3 s.
	ConfirmTimeout time.Duration
	// DiscoveryIdle ends verifier discovery when no new verifier answered for
	// this long; default 50 ms.
	DiscoveryIdle time.Duration
	// CommandTTL is how long a command stays valid after it was issued: an
	// older one (its admin stopped waiting long ago) is refused, not applied
	// by surprise. Default 2 min.
	CommandTTL time.Duration
	// Clock is the server clock; default time.Now.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Instance == "" {
		c.Instance = bus.InstanceName("rotator")
	}
	if c.ConfirmTimeout == 0 {
		c.ConfirmTimeout = DefaultConfirmTimeout
	}
	if c.DiscoveryIdle == 0 {
		c.DiscoveryIdle = 50 * time.Millisecond
	}
	if c.CommandTTL == 0 {
		c.CommandTTL = 2 * time.Minute
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil:
		return errors.New("rotator: no NATS connection")
	case c.Sealer == nil:
		return errors.New("rotator: no master key to seal project keys (set HISSUNO_MASTER_KEY)")
	case c.ConfirmTimeout <= 0 || c.DiscoveryIdle <= 0 || c.CommandTTL <= 0:
		return errors.New("rotator: timeouts must be positive")
	case c.ConfirmTimeout < 2*events.FreshnessLease:
		// A verifier that did not confirm in time must have outlived its
		// freshness lease, so that it cannot decide with a retired key.
		return fmt.Errorf("rotator: the confirm timeout must be at least %s (twice the verifiers' freshness lease)", 2*events.FreshnessLease)
	}
	return nil
}

// Consumer settings of the rotator's durable consumer on admin commands.
const (
	commandsMaxDeliver = 10
	commandsAckWait    = 30 * time.Second
	// casRetries bounds compare-and-set retries of one command.
	casRetries = 50
)

var commandsBackOff = []time.Duration{200 * time.Millisecond, time.Second, 5 * time.Second}

// Rotator is the rotator role.
type Rotator struct {
	cfg        Config
	log        zerolog.Logger
	js         jetstream.JetStream
	store      *project.Store
	settler    *worker.Settler
	heartbeats heartbeats
	ready      atomic.Bool
}

// Ready reports whether the rotator handles admin commands.
func (r *Rotator) Ready() bool { return r.ready.Load() }

// New makes a rotator.
func New(cfg Config, log zerolog.Logger) (*Rotator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("rotator: jetstream: %w", err)
	}
	log = log.With().Str("component", "rotator").Str("instance", cfg.Instance).Logger()
	r := &Rotator{cfg: cfg, log: log, js: js}
	r.settler = &worker.Settler{JS: js, Stream: events.StreamAdmin, MaxDeliver: commandsMaxDeliver, Backoff: commandsBackOff, Log: log}
	return r, nil
}

// Run handles admin commands until ctx ends, then finishes the one in hand.
func (r *Rotator) Run(ctx context.Context) error {
	err := r.run(ctx)
	if err != nil && ctx.Err() != nil {
		return nil // stopped while starting
	}
	return err
}

func (r *Rotator) run(ctx context.Context) error {
	kv, err := r.js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		return fmt.Errorf("rotator: projects bucket: %w", err)
	}
	r.store = project.NewStore(kv)
	cons, err := r.js.CreateOrUpdateConsumer(ctx, events.StreamAdmin, jetstream.ConsumerConfig{
		Durable:       events.ConsumerRotator,
		Description:   "The rotator applies admin commands",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       commandsAckWait,
		MaxDeliver:    commandsMaxDeliver,
		MaxAckPending: 64,
		FilterSubject: events.SubjectCommandPrefix + ">",
	})
	if err != nil {
		return fmt.Errorf("rotator: consumer: %w", err)
	}
	hb, err := r.cfg.NATS.Subscribe(events.SubjectHeartbeat, r.heartbeats.onHeartbeat)
	if err != nil {
		return fmt.Errorf("rotator: subscribe to heartbeats: %w", err)
	}
	r.heartbeats.listening()
	defer func() { _ = hb.Unsubscribe() }()
	svc, err := bus.AddService(r.cfg.NATS, bus.Service{
		Name:        events.ServiceRotator,
		Role:        "rotator",
		Instance:    r.cfg.Instance,
		Description: "Applies admin commands: create, update, rotate, revoke-user",
		Status:      func() any { return map[string]any{"instance": r.cfg.Instance} },
	})
	if err != nil {
		return err
	}
	defer func() { _ = svc.Stop() }()
	r.ready.Store(true)
	defer r.ready.Store(false)
	r.log.Info().Msg("rotator handling admin commands")
	// One command at a time: compare-and-set serialises writers anyway, and
	// a command's answer waits for the verifiers' confirmations.
	err = worker.Run(ctx, worker.Config{
		Name:            events.ConsumerRotator,
		Consumer:        cons,
		Settler:         r.settler,
		Log:             r.log,
		PullMaxMessages: 8,
	}, r.handle)
	r.log.Info().Msg("rotator stopped")
	return err
}

// outcome is what applying a command produced.
type outcome struct {
	record   project.Record
	revision uint64
	secret   string
	event    events.AdminEvent
	already  bool
}

// handle applies one command and answers it.
func (r *Rotator) handle(ctx context.Context, msg jetstream.Msg) error {
	var cmd events.Command
	if err := json.Unmarshal(msg.Data(), &cmd); err != nil {
		return worker.Permanent(fmt.Errorf("command is not valid JSON: %w", err))
	}
	source, kind, ok := events.ParseCommandSubject(msg.Subject())
	if !ok || kind != cmd.Kind {
		return worker.Permanent(fmt.Errorf("command %q of kind %q on subject %q: the subject must be %s<source>.<kind> of the command's kind", cmd.CommandID, cmd.Kind, msg.Subject(), events.SubjectCommandPrefix))
	}
	actor, err := verifiedActor(source, cmd.Actor)
	if err != nil {
		return worker.Permanent(fmt.Errorf("command %q from %s: %w", cmd.CommandID, source, err))
	}
	cmd.Actor = actor
	if source != events.SourceConsole {
		// Only the console saw a browser.
		cmd.ClientIP, cmd.UserAgent = "", ""
	}
	log := r.log.With().Str("command", cmd.CommandID).Str("kind", string(cmd.Kind)).Str("project", cmd.ProjectID).Str("source", source).Str("actor", redact.String(cmd.Actor)).Logger()
	// The answer goes to an inbox of the source that sent the command only:
	// NATS lets no other user read it. A command that asks for its answer
	// elsewhere, or makes a key and asks for no answer (the key would be
	// lost with every token of the old one), is not applied.
	replyTo := msg.Headers().Get(events.HeaderReplyTo)
	switch {
	case replyTo != "" && !strings.HasPrefix(replyTo, events.InboxPrefix(source)+"."):
		return worker.Permanent(fmt.Errorf("command %q from %s asks for its answer on %q, outside %s's inbox %s.>; not applied", cmd.CommandID, source, replyTo, source, events.InboxPrefix(source)))
	case replyTo == "" && makesKey(cmd.Kind):
		return worker.Permanent(fmt.Errorf("command %q from %s makes a new secret key but asks for no answer to deliver it in; not applied", cmd.CommandID, source))
	}
	now := r.cfg.Clock()
	if cmd.CommandID == "" || cmd.SchemaVersion != events.SchemaVersion {
		r.answer(replyTo, events.CommandResult{CommandID: cmd.CommandID, Error: "unsupported command: no commandId or unknown schemaVersion", Code: events.ErrorUnsupported})
		return nil
	}
	if makesKey(cmd.Kind) && !nkeys.IsValidPublicCurveKey(cmd.ReplyKey) {
		log.Info().Msg("command without a replyKey refused: its new key could not be sealed")
		r.answer(replyTo, events.CommandResult{CommandID: cmd.CommandID, Error: "the command has no replyKey to seal its new secret key to; send it with a current hissuno CLI", Code: events.ErrorUnsupported})
		return nil
	}
	if now.Sub(cmd.IssuedAt) > r.cfg.CommandTTL {
		log.Warn().Time("issued_at", cmd.IssuedAt).Msg("command expired before it was applied; refused")
		r.answer(replyTo, events.CommandResult{CommandID: cmd.CommandID, Error: "the command expired before a rotator applied it; run it again", Code: events.ErrorExpired})
		return nil
	}
	if len(cmd.Reason) > events.MaxReasonBytes || len(cmd.UserAgent) > events.MaxUserAgentBytes {
		r.answer(replyTo, events.CommandResult{CommandID: cmd.CommandID, Error: fmt.Sprintf("the reason may have at most %d bytes and the user agent %d", events.MaxReasonBytes, events.MaxUserAgentBytes), Code: events.ErrorInvalid})
		return nil
	}
	out, err := r.apply(ctx, &cmd, now)
	if err != nil {
		if code := refusalCode(err); code != "" {
			log.Info().Err(err).Msg("command refused")
			r.answer(replyTo, events.CommandResult{CommandID: cmd.CommandID, Error: err.Error(), Code: code})
			return nil
		}
		return err
	}
	if err := r.record(ctx, out.event); err != nil {
		return err
	}
	res := events.CommandResult{CommandID: cmd.CommandID, AlreadyApplied: out.already}
	if out.secret != "" {
		if res.SealedSecretKey, res.SealedBy, err = admin.Seal(out.secret, cmd.ReplyKey); err != nil {
			// Checked before applying; a failure here is the machine's.
			return fmt.Errorf("seal the new key of command %s: %w", cmd.CommandID, err)
		}
	}
	view := out.record.View(out.revision)
	res.Project = &view
	start := time.Now()
	res.Confirmed, res.Unconfirmed = r.propagate(ctx, cmd.ProjectID, out.revision, out.record.KeyVersion)
	if cmd.Kind == events.CommandRotateKey && !out.already {
		metrics.RotationLatency.Observe(time.Since(start).Seconds())
		result := "confirmed"
		if len(res.Unconfirmed) > 0 {
			result = "unconfirmed"
		}
		metrics.Rotations.WithLabelValues(result).Inc()
	}
	if len(res.Unconfirmed) > 0 {
		log.Warn().Strs("unconfirmed", res.Unconfirmed).Uint64("revision", out.revision).Msg("verifiers did not confirm the change in time; they refuse the project until they catch up")
	}
	log.Info().Uint64("revision", out.revision).Int("key_version", out.record.KeyVersion).Bool("already_applied", out.already).Int("confirmed", len(res.Confirmed)).Msg("command applied")
	r.answer(replyTo, res)
	return nil
}

// verifiedActor is who a command's changes are recorded as made by: the
// NATS user it came from ("nats:admin"), whatever the command says; only
// the console, which authenticates its own accounts and API tokens, names
// one of them ("console:ada@example.com", "token:tok_…"), and NATS lets no
// other user publish as the console.
func verifiedActor(source, claimed string) (string, error) {
	if source != events.SourceConsole {
		return events.ActorNATS + source, nil
	}
	for _, prefix := range []string{events.ActorConsole, events.ActorToken} {
		if rest, ok := strings.CutPrefix(claimed, prefix); ok && rest != "" {
			return claimed, nil
		}
	}
	return "", fmt.Errorf("a console command's actor %q is neither %s<email> nor %s<id>", redact.String(claimed), events.ActorConsole, events.ActorToken)
}

// refusalCode is the code of an error that refuses a command for what it
// asks (answered, never retried), or "" for an error of the machine's.
func refusalCode(err error) events.ErrorCode {
	switch {
	case errors.Is(err, project.ErrInvalid):
		return events.ErrorInvalid
	case errors.Is(err, project.ErrNotFound):
		return events.ErrorNotFound
	case errors.Is(err, project.ErrExists):
		return events.ErrorExists
	}
	return ""
}

// makesKey reports whether a command of this kind makes a new secret key.
func makesKey(k events.CommandKind) bool {
	return k == events.CommandCreateProject || k == events.CommandRotateKey
}

// apply changes the project with compare-and-set, retrying on conflicts, and
// recognises a command id applied before.
func (r *Rotator) apply(ctx context.Context, cmd *events.Command, now time.Time) (outcome, error) {
	if cmd.Kind == events.CommandCreateProject {
		return r.create(ctx, cmd, now)
	}
	for attempt := 0; attempt < casRetries; attempt++ {
		rec, rev, err := r.store.Get(ctx, cmd.ProjectID)
		if err != nil {
			return outcome{}, err
		}
		if rec.Applied(cmd.CommandID) {
			return outcome{record: rec, revision: rev, already: true, event: adminEvent(cmd, &rec, rev, now, 0)}, nil
		}
		previous := rec.KeyVersion
		var secret string
		switch cmd.Kind {
		case events.CommandUpdateProject:
			origins, err := origin.CanonicalPatterns(cmd.Origins)
			if err != nil {
				return outcome{}, fmt.Errorf("%w: %w", project.ErrInvalid, err)
			}
			err = rec.Update(cmd.RequireToken, origins, cmd.ClearOrigins, now)
			if err != nil {
				return outcome{}, err
			}
		case events.CommandRotateKey:
			secret, previous, err = rec.Rotate(r.cfg.Sealer, time.Duration(cmd.GraceSeconds)*time.Second, now)
			if err != nil {
				return outcome{}, err
			}
		case events.CommandRevokeUser:
			if err := rec.RevokeUser(cmd.UserID, now); err != nil {
				return outcome{}, err
			}
		case events.CommandUnrevokeUser:
			if err := rec.UnrevokeUser(cmd.UserID, now); err != nil {
				return outcome{}, err
			}
		default:
			return outcome{}, fmt.Errorf("%w: unknown command kind %q", project.ErrInvalid, cmd.Kind)
		}
		rec.MarkApplied(cmd.CommandID)
		newRev, err := r.store.Update(ctx, &rec, rev)
		if errors.Is(err, project.ErrConflict) {
			// Another rotator changed the project: read it again, after a
			// moment of jitter, unless the rotator stops.
			t := time.NewTimer(time.Duration(rand.IntN(20)+1) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return outcome{}, ctx.Err()
			case <-t.C:
			}
			continue
		}
		if err != nil {
			return outcome{}, err
		}
		return outcome{record: rec, revision: newRev, secret: secret, event: adminEvent(cmd, &rec, newRev, now, previous)}, nil
	}
	return outcome{}, fmt.Errorf("project %s: %d concurrent changes in a row; retry", cmd.ProjectID, casRetries)
}

func (r *Rotator) create(ctx context.Context, cmd *events.Command, now time.Time) (outcome, error) {
	origins, err := origin.CanonicalPatterns(cmd.Origins)
	if err != nil {
		return outcome{}, fmt.Errorf("%w: %w", project.ErrInvalid, err)
	}
	requireToken := cmd.RequireToken != nil && *cmd.RequireToken
	rec, secret, err := project.New(r.cfg.Sealer, cmd.ProjectID, cmd.Name, requireToken, origins, now)
	if err != nil {
		return outcome{}, err
	}
	rec.MarkApplied(cmd.CommandID)
	rev, err := r.store.Create(ctx, &rec)
	if errors.Is(err, project.ErrExists) {
		existing, rev, gerr := r.store.Get(ctx, cmd.ProjectID)
		if gerr == nil && existing.Applied(cmd.CommandID) {
			return outcome{record: existing, revision: rev, already: true, event: adminEvent(cmd, &existing, rev, now, 0)}, nil
		}
		return outcome{}, err
	}
	if err != nil {
		return outcome{}, err
	}
	return outcome{record: rec, revision: rev, secret: secret, event: adminEvent(cmd, &rec, rev, now, 0)}, nil
}

// adminEvent describes what a command changed; never a key. The strings
// an admin typed (actor, name, origins, userId) go through redact.String: a
// key pasted into --actor or --user is not stored in the audit.
func adminEvent(cmd *events.Command, rec *project.Record, rev uint64, now time.Time, previous int) events.AdminEvent {
	ev := events.AdminEvent{
		SchemaVersion: events.SchemaVersion,
		EventID:       events.AdminEventIDFor(cmd.CommandID),
		CommandID:     cmd.CommandID,
		Actor:         redact.String(cmd.Actor),
		Reason:        redact.String(cmd.Reason),
		ClientIP:      redact.String(cmd.ClientIP),
		UserAgent:     redact.String(cmd.UserAgent),
		Time:          now.UTC(),
		ProjectID:     rec.ID,
		KeyVersion:    rec.KeyVersion,
		Revision:      rev,
	}
	requireToken := rec.RequireToken
	switch cmd.Kind {
	case events.CommandCreateProject:
		ev.Kind = events.AdminProjectCreated
		ev.Name, ev.RequireToken, ev.Origins = redact.String(rec.Name), &requireToken, redact.Strings(rec.Origins)
		ev.KeyFingerprint = rec.Keys[0].Fingerprint
	case events.CommandUpdateProject:
		ev.Kind = events.AdminProjectUpdated
		ev.Name, ev.RequireToken, ev.Origins = redact.String(rec.Name), &requireToken, redact.Strings(rec.Origins)
	case events.CommandRotateKey:
		ev.Kind = events.AdminKeyRotated
		ev.PreviousKeyVersion = previous
		if previous == 0 && rec.KeyVersion > 1 {
			ev.PreviousKeyVersion = rec.KeyVersion - 1
		}
		ev.KeyFingerprint = rec.Keys[0].Fingerprint
		ev.GraceSeconds = cmd.GraceSeconds
		for _, k := range rec.Keys {
			if k.Version == ev.PreviousKeyVersion && k.ValidUntil != nil {
				until := *k.ValidUntil
				ev.GraceUntil = &until
			}
		}
	case events.CommandRevokeUser:
		ev.Kind = events.AdminUserRevoked
		ev.UserID = redact.String(cmd.UserID)
		if t, ok := rec.RevokedUsers[cmd.UserID]; ok {
			ev.RevokedBefore = &t
		}
	case events.CommandUnrevokeUser:
		ev.Kind = events.AdminUserUnrevoked
		ev.UserID = redact.String(cmd.UserID)
	}
	return ev
}

// record stores the admin event; its id makes a repeat a no-op.
func (r *Rotator) record(ctx context.Context, ev events.AdminEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return worker.Permanent(fmt.Errorf("encode admin event: %w", err))
	}
	m := nats.NewMsg(ev.Kind.Subject())
	m.Data = body
	m.Header.Set(events.HeaderMsgID, ev.EventID)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.js.PublishMsg(pctx, m); err != nil {
		return fmt.Errorf("record admin event %s: %w", ev.EventID, err)
	}
	return nil
}

func (r *Rotator) answer(replyTo string, res events.CommandResult) {
	if replyTo == "" {
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		r.log.Error().Err(err).Msg("answer not encoded")
		return
	}
	if err := r.cfg.NATS.Publish(replyTo, b); err != nil {
		r.log.Warn().Err(err).Str("command", res.CommandID).Msg("answer not sent")
	}
}

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
	// DecisionsMaxAge is how long decisions stay in the stream: the time an
	// auditor outage can last before audit records are lost.
	DecisionsMaxAge time.Duration
	// DecisionsMaxBytes bounds the decisions stream; a full stream refuses
	// new decisions (verifiers then answer nothing, the ingress 503) rather
	// than drop audit records.
	DecisionsMaxBytes int64
	// AdminMaxAge is how long admin commands and events stay; zero keeps them.
	AdminMaxAge time.Duration
	// DuplicateWindow is how long a Nats-Msg-Id is remembered for
	// de-duplication; every redelivery of an attempt falls within it, so it
	// must stay above the verifiers' redelivery span (70 s). Default 2 min.
	DuplicateWindow time.Duration
}

// SetDefaults fills unset fields.
func (t *Topology) SetDefaults() {
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	if t.AttemptsMaxAge == 0 {
		t.AttemptsMaxAge = 24 * time.Hour
	}
	if t.AttemptsMaxBytes == 0 {
		t.AttemptsMaxBytes = 1 << 30
	}
	if t.DecisionsMaxAge == 0 {
		t.DecisionsMaxAge = 30 * 24 * time.Hour
	}
	if t.DecisionsMaxBytes == 0 {
		t.DecisionsMaxBytes = 8 << 30
	}
	if t.DuplicateWindow == 0 {
		t.DuplicateWindow = 2 * time.Minute
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
			Description: "Every decision, persisted before the browser gets it; the auditor copies it into ClickHouse",
			Subjects:    []string{events.SubjectDecisions},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    t.Replicas,
			MaxAge:      t.DecisionsMaxAge,
			MaxBytes:    t.DecisionsMaxBytes,
			Discard:     jetstream.DiscardNew,
			Duplicates:  t.DuplicateWindow,
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

// Ensure creates or updates the streams and the bucket. Every role may call
// it at start; it is idempotent.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	t.SetDefaults()
	if err := t.Validate(); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, cfg := range t.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, t.Bucket()); err != nil {
		return fmt.Errorf("bucket %s: %w", events.BucketProjects, err)
	}
	return nil
}

// Check reports whether the streams and the bucket exist, for readiness. It
// changes nothing, so a role without the right to create streams can call it.
func Check(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{events.StreamAttempts, events.StreamDecisions, events.StreamAdmin} {
		if _, err := js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	if _, err := js.KeyValue(ctx, events.BucketProjects); err != nil {
		return fmt.Errorf("bucket %s: %w", events.BucketProjects, err)
	}
	return nil
}

package verifier

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
)

// Consumer settings of the shared durable consumer on the attempts stream.
// Every redelivery of an attempt happens within the streams' duplicate
// window (2 min by default): ack wait plus back-off sum to 70 s over 5
// deliveries, and each handling is bounded by handleBudget, so a decision
// stored twice for one attempt is de-duplicated by its Nats-Msg-Id and the
// audit never holds two.
const (
	// attemptsMaxDeliver bounds deliveries of one attempt; the last failing
	// delivery dead-letters it (scrubbed of its token).
	attemptsMaxDeliver = 5
	// attemptsMaxAckPending bounds the attempts in flight across every
	// verifier.
	attemptsMaxAckPending = 4096
	// pullExpiry bounds one pull request: a pull lost (a cluster node left)
	// is noticed after two missed heartbeats of half of it.
	pullExpiry = 5 * time.Second
)

// attemptsBackOff spaces redeliveries of an attempt whose verifier went
// silent (crashed, partitioned), after the first ack wait.
var attemptsBackOff = []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}

// naksBackOff spaces retries after a transient error (decision not stored).
var naksBackOff = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, time.Second, 5 * time.Second}

// handleBudget bounds the handling of one attempt, its decision's publish
// included: well below the ack wait, after which JetStream hands the
// attempt to another verifier. So every decision on one stored attempt is
// published within the ack wait of one of its deliveries, and all of them
// within the streams' duplicate window, which de-duplicates them.
func handleBudget(ackWait time.Duration) time.Duration { return ackWait * 3 / 4 }

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
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("no leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

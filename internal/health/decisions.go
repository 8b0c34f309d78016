package health

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/metrics"
)

// DecisionsStreamCheck is the name the ingress and the verifier register
// DecisionsStream under.
const DecisionsStreamCheck = "decisions stream"

// ErrDecisionsNearlyFull is DecisionsStream's failure: the decisions stream
// is at least bus.DecisionsNearlyFull full.
var ErrDecisionsNearlyFull = errors.New("the decisions stream is nearly full")

// DecisionsStream is a readiness check that fails when the decisions stream
// is at least bus.DecisionsNearlyFull full, by bytes or messages, naming the
// fill, the auditor's backlog and what to do. It sets
// metrics.DecisionsStreamFill each time it measures.
func DecisionsStream(js jetstream.JetStream) Check {
	return func(ctx context.Context) error {
		s, err := js.Stream(ctx, events.StreamDecisions)
		if err != nil {
			return fmt.Errorf("stream %s: %w", events.StreamDecisions, err)
		}
		info := s.CachedInfo()
		fill := bus.Fill(info)
		metrics.DecisionsStreamFill.Set(fill)
		if fill < bus.DecisionsNearlyFull {
			return nil
		}
		backlog := "an unknown number of them"
		if c, err := js.Consumer(ctx, events.StreamDecisions, events.ConsumerAuditDecisions); err == nil {
			ci := c.CachedInfo()
			backlog = fmt.Sprintf("%d", ci.NumPending+uint64(ci.NumAckPending))
		}
		held := fmt.Sprintf("%s of %s", byteSize(info.State.Bytes), byteSize(uint64(max(info.Config.MaxBytes, 0))))
		if info.Config.MaxMsgs > 0 {
			held += fmt.Sprintf(", %d of %d decisions", info.State.Msgs, info.Config.MaxMsgs)
		} else {
			held += fmt.Sprintf(", %d decisions", info.State.Msgs)
		}
		return fmt.Errorf("%w: %.0f %% full (%s; %s wait for the auditor). ClickHouse unreachable? The auditor's backlog stays in %s until it is stored; "+
			"when full, new decisions are refused with 503: bring ClickHouse and the auditor back (hissuno_audit_backlog on /metrics), or raise --decisions-max-bytes with hissuno setup",
			ErrDecisionsNearlyFull, 100*fill, held, backlog, events.StreamDecisions)
	}
}

// byteSize writes n bytes in the largest binary unit that keeps it at least 1.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}

package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/metrics"
)

// Rollup defaults.
const (
	// DefaultRollupKeys bounds the (project, client address, reason) keys
	// an ingress records a minute: at most this many counts a minute, plus
	// one overflow count per reason, whatever the number of addresses.
	DefaultRollupKeys = 1000
	// MaxRollupKeys is the most keys a minute Validate accepts.
	MaxRollupKeys = 100_000
	// DefaultRollupEvery is how often the counts of the minutes over are
	// published: once a minute.
	DefaultRollupEvery = time.Minute
	// rollupPublishTimeout bounds one publishing of the counts (the
	// shutdown's too); those not acknowledged by then wait for the next.
	rollupPublishTimeout = 10 * time.Second
	// rollupUnsentMinutes bounds, in minutes' worth of counts, those kept
	// for a retry while JetStream does not take them; older ones are
	// dropped, logged and counted.
	rollupUnsentMinutes = 10
)

// Rollup configures the ingress's record of throttled requests: rolled-up
// counts per minute of the requests it answered 429 and the connections it
// closed at once, published to JetStream for the audit (events.Throttled).
type Rollup struct {
	// Keys bounds the keys (project or "unknown", client address, reason)
	// counted apart in a minute; the requests of any other key are counted
	// in one overflow count per reason. Default DefaultRollupKeys.
	Keys int
	// Every is how often the counts of the minutes over are published;
	// default DefaultRollupEvery. Tests make it short.
	Every time.Duration
}

func (r *Rollup) setDefaults() {
	if r.Keys == 0 {
		r.Keys = DefaultRollupKeys
	}
	if r.Every == 0 {
		r.Every = DefaultRollupEvery
	}
}

func (r Rollup) validate() error {
	switch {
	case r.Keys < 1 || r.Keys > MaxRollupKeys:
		return fmt.Errorf("ingress: the throttled rollup holds 1 to %d keys a minute", MaxRollupKeys)
	case r.Every < 10*time.Millisecond:
		return errors.New("ingress: the throttled rollup is published at most every 10 ms")
	}
	return nil
}

// rollupKey is what a count counts.
type rollupKey struct {
	project, ip string
	reason      events.Throttle
}

// minuteCounts are the counts of one minute: at most keys of them apart,
// the rest by reason.
type minuteCounts struct {
	rows     map[rollupKey]uint64
	overflow map[events.Throttle]uint64
}

// rollup counts throttled requests per minute in memory: a refused request
// costs a map update, never a publish.
type rollup struct {
	keys    int
	mu      sync.Mutex
	minutes map[int64]*minuteCounts // by Unix minute
}

func newRollup(keys int) *rollup {
	return &rollup{keys: keys, minutes: make(map[int64]*minuteCounts)}
}

// add counts one request refused at now.
func (r *rollup) add(now time.Time, project, ip string, reason events.Throttle) {
	m := now.Unix() / 60
	k := rollupKey{project: project, ip: ip, reason: reason}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.minutes[m]
	if c == nil {
		c = &minuteCounts{rows: make(map[rollupKey]uint64), overflow: make(map[events.Throttle]uint64)}
		r.minutes[m] = c
	}
	if _, ok := c.rows[k]; ok || len(c.rows) < r.keys {
		c.rows[k]++
		return
	}
	c.overflow[reason]++
}

// take removes the counts of every minute before until (every minute when
// until is zero) and returns them as events of the ingress named ingress.
func (r *rollup) take(until time.Time, ingress string) []events.Throttled {
	r.mu.Lock()
	var taken []struct {
		minute int64
		c      *minuteCounts
	}
	for m, c := range r.minutes {
		if until.IsZero() || m < until.Unix()/60 {
			taken = append(taken, struct {
				minute int64
				c      *minuteCounts
			}{m, c})
			delete(r.minutes, m)
		}
	}
	r.mu.Unlock()
	var out []events.Throttled
	for _, t := range taken {
		// One id a minute taken, numbered: a retry publishes the same ids.
		base := "thr_" + nuid.Next() + "_"
		minute := time.Unix(t.minute*60, 0).UTC()
		ev := func(project, ip string, reason events.Throttle, n uint64, overflow bool) events.Throttled {
			return events.Throttled{SchemaVersion: events.SchemaVersion, ID: base + strconv.Itoa(len(out)), Ingress: ingress,
				Minute: minute, ProjectID: project, ClientIP: ip, Reason: reason, Count: n, Overflow: overflow}
		}
		for k, n := range t.c.rows {
			out = append(out, ev(k.project, k.ip, k.reason, n, false))
		}
		for _, reason := range events.Throttles {
			if n := t.c.overflow[reason]; n > 0 {
				out = append(out, ev("", "", reason, n, true))
			}
		}
	}
	return out
}

// throttled answers 429 and counts the request in the rollup.
func (in *Ingress) throttled(w http.ResponseWriter, project, ip string, reason events.Throttle, after time.Duration) {
	in.rollup.add(in.cfg.Clock(), project, ip, reason)
	writeThrottled(w, reason, after)
}

// publishRollups publishes the counts of the minutes over (every minute's
// when final), with those a previous call could not publish, each with its
// id as Nats-Msg-Id. It returns how many it published.
func (in *Ingress) publishRollups(ctx context.Context, final bool) int {
	until := in.cfg.Clock()
	if final {
		until = time.Time{}
	}
	in.unsentMu.Lock()
	defer in.unsentMu.Unlock()
	pending := append(in.unsent, in.rollup.take(until, in.name)...)
	in.unsent = nil
	if len(pending) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, rollupPublishTimeout)
	defer cancel()
	subject := events.ThrottledSubject(in.name)
	sent := 0
	var lastErr error
	for i, ev := range pending {
		body, err := json.Marshal(ev)
		if err == nil {
			msg := nats.NewMsg(subject)
			msg.Data = body
			msg.Header.Set(events.HeaderMsgID, ev.ID)
			_, err = in.js.PublishMsg(ctx, msg)
		}
		if err != nil {
			lastErr = err
			in.unsent = append(in.unsent, pending[i:]...)
			break
		}
		sent++
	}
	if bound := rollupUnsentMinutes * (in.cfg.Rollup.Keys + len(events.Throttles)); len(in.unsent) > bound {
		dropped := len(in.unsent) - bound
		metrics.IngressThrottledRollupsDropped.Add(float64(dropped))
		in.log.Error().Int("dropped", dropped).Msg("counts of throttled requests dropped: JetStream has not taken them for minutes")
		in.unsent = in.unsent[dropped:]
	}
	if lastErr != nil {
		in.log.Warn().Err(lastErr).Int("published", sent).Int("waiting", len(in.unsent)).
			Msg("counts of throttled requests not all published; retrying at the next minute")
	}
	return sent
}

// publishRollupsEvery publishes the counts of the minutes over every
// Rollup.Every until ctx ends.
func (in *Ingress) publishRollupsEvery(ctx context.Context) {
	t := time.NewTicker(in.cfg.Rollup.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			in.publishRollups(ctx, false)
		}
	}
}

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
)

// Freshness. The KV revision is the truth; invalidations only make changes
// arrive fast, and a verifier that stalls (paused, starved, partitioned)
// can miss them while attempts pile up in its buffer. So a verifier decides
// only while it holds a lease: the proof, at most events.FreshnessLease
// old, that its view held every revision the bucket had. It renews the
// lease every leaseRenewEvery; a verifier that stalled longer than the
// lease checks the bucket again before it decides anything. The rotator
// waits longer than the lease for a verifier it knows to be alive
// (events.HeartbeatEvery) before it names it unconfirmed, so a verifier
// that did not confirm a rotation in time cannot decide with the retired
// key once it returns.
const (
	// leaseRenewEvery is how often the lease is renewed.
	leaseRenewEvery = 250 * time.Millisecond
	// rewatchAfter is how long the view may stay behind the bucket before
	// the watch is replaced.
	rewatchAfter = 2 * time.Second
	// resyncWithin bounds the catch-up after a reconnect.
	resyncWithin = time.Minute
)

// lease is the verifier's freshness lease, and what it knows of its
// connection: while it is down, and until the view caught up after it came
// back, the verifier decides nothing.
type lease struct {
	// start anchors the monotonic clock of the lease; from is when (since
	// start) the last successful freshness check began.
	start time.Time
	from  atomic.Int64
	// resyncing is set from a disconnect until the view caught up after
	// the reconnect that followed it.
	resyncing atomic.Bool
	// losses counts disconnects: a catch-up clears resyncing only when no
	// loss happened since the reconnect it follows.
	losses atomic.Uint64

	mu     sync.Mutex // guards closed against the NATS callbacks
	closed bool
}

// init starts the lease out expired.
func (l *lease) init() {
	l.start = time.Now()
	l.from.Store(-int64(events.FreshnessLease))
}

// renew records a successful freshness check that began at asked.
func (l *lease) renew(asked time.Duration) {
	for {
		cur := l.from.Load()
		if int64(asked) <= cur || l.from.CompareAndSwap(cur, int64(asked)) {
			return
		}
	}
}

// held reports whether the lease holds now and no resync is under way.
func (l *lease) held() bool {
	return !l.resyncing.Load() && time.Since(l.start)-time.Duration(l.from.Load()) < events.FreshnessLease
}

// lost marks the connection lost: nothing is decided until a catch-up
// that began after the next reconnect has ended.
func (l *lease) lost() {
	l.losses.Add(1)
	l.resyncing.Store(true)
}

// regained starts, in wg, the catch-up after a reconnect; resyncing is
// cleared once it succeeded, unless the connection was lost again
// meanwhile (that loss's own reconnect will catch up again).
func (l *lease) regained(ctx context.Context, wg *sync.WaitGroup, catchUp func(context.Context) error, log zerolog.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.resyncing.Store(true)
	loss := l.losses.Load()
	wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, resyncWithin)
		defer cancel()
		err := catchUp(cctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn().Err(err).Dur("within", resyncWithin).Msg("view did not catch up after a reconnect; deciding again")
		} else {
			log.Info().Msg("view caught up after a reconnect")
		}
		if l.losses.Load() == loss {
			l.resyncing.Store(false)
		}
	})
}

// watchConnection makes the verifier decide nothing from a disconnect until
// the view caught up after the reconnect: the invalidations sent while it
// was away are lost, the KV revision is not. The catch-ups run in wg with
// ctx. restore puts the connection's own callbacks back; none of ours runs
// after it returns.
func (l *lease) watchConnection(ctx context.Context, wg *sync.WaitGroup, nc *nats.Conn, catchUp func(context.Context) error, log zerolog.Logger) (restore func()) {
	prevDisconnect, prevReconnect := nc.Opts.DisconnectedErrCB, nc.Opts.ReconnectedCB
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		l.lost()
		if prevDisconnect != nil {
			prevDisconnect(c, err)
		}
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		if prevReconnect != nil {
			prevReconnect(c)
		}
		l.regained(ctx, wg, catchUp, log)
	})
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
		nc.SetDisconnectErrHandler(prevDisconnect)
		nc.SetReconnectHandler(prevReconnect)
	}
}

// catchUp waits until the view holds every revision the bucket had when it
// was called. It renews the freshness lease from the moment it asked.
func (v *Verifier) catchUp(ctx context.Context, kv jetstream.KeyValue) error {
	asked := time.Since(v.lease.start)
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
	v.lease.renew(asked)
	return nil
}

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
		cctx, cancel := context.WithTimeout(ctx, events.FreshnessLease)
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

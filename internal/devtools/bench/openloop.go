package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// An open-loop load sends requests at a fixed arrival rate whatever the
// answers do, as a site's visitors arrive, and measures each request from
// the time it was scheduled to be sent, not from the time it was sent: a
// stall of the system (or of the load generator) then counts against
// every request it delayed, not just the one it held (no "coordinated
// omission"). Request i is due at start + i/rate; a due request is never
// skipped and the schedule is never moved, however late the sender is.

// openClient is one sender's connection to the system under load: do sends
// request i (an index into the prepared requests) and waits for its
// answer. A client is used by one goroutine at a time.
type openClient interface {
	do(i int) error
	close()
}

// openTarget makes the clients of one system under load.
type openTarget interface {
	newClient() openClient
}

// OpenLoad is the outcome of one open-loop step.
type OpenLoad struct {
	// Rate is the arrival rate asked for, per second.
	Rate float64
	// Scheduled is how many requests were due during the step; every one
	// was sent.
	Scheduled int
	// Errors counts requests that got no valid answer (a transport error,
	// a timeout, an unexpected status): lost to the client.
	Errors int
	// Elapsed is the step's length, from the first request's scheduled
	// time until the last answer.
	Elapsed time.Duration
	// Senders is the most goroutines (connections) sending at once.
	Senders int
	// Latency holds each answered request's time from its scheduled send
	// to its answer.
	Latency *histogram
	// SendLag holds each request's time from its scheduled send until a
	// sender began sending it: the load generator's own lateness (a busy
	// machine, every connection busy), part of Latency. A load generator
	// that times from the actual send (vegeta) leaves it out.
	SendLag *histogram
}

// Answered is the number of requests answered without error.
func (l OpenLoad) Answered() int { return int(l.Latency.count()) }

// openLoop sends at rate requests per second for d (request i is due at
// start + i/rate, the i-th of n requests cycling from offset) through
// clients of t, a new one whenever every client is busy, up to maxSenders
// at once; beyond that a due request waits for a free client, its wait
// counted in its latency. It returns when every sent request is answered.
func openLoop(ctx context.Context, t openTarget, rate float64, d time.Duration, maxSenders, n, offset int) OpenLoad {
	type job struct {
		i     int
		sched time.Time
	}
	load := OpenLoad{Rate: rate, Latency: &histogram{}, SendLag: &histogram{}}
	total := int(rate * d.Seconds())
	jobs := make(chan job)
	var (
		wg      sync.WaitGroup
		errs    atomic.Int64
		senders int
	)
	sender := func() {
		defer wg.Done()
		c := t.newClient()
		defer c.close()
		for j := range jobs {
			load.SendLag.record(time.Since(j.sched))
			if err := c.do(j.i); err != nil {
				errs.Add(1)
				continue
			}
			load.Latency.record(time.Since(j.sched))
		}
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k := 0; k < total && ctx.Err() == nil; k++ {
		sched := start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
		if wait := time.Until(sched); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		j := job{i: (offset + k) % n, sched: sched}
		select {
		case jobs <- j:
		default:
			// Every sender is busy: another, if allowed; else the request
			// waits for the first free one, from its scheduled time.
			if senders < maxSenders {
				senders++
				wg.Add(1)
				go sender()
			}
			jobs <- j
		}
		load.Scheduled++
	}
	close(jobs)
	wg.Wait()
	load.Elapsed = time.Since(start)
	load.Errors = int(errs.Load())
	load.Senders = senders
	return load
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/metrics"
)

// Config configures the consumer loop of one durable consumer.
type Config struct {
	// Name names the consumer in metrics and logs; required.
	Name string
	// Consumer is the durable consumer to pull from; required.
	Consumer jetstream.Consumer
	// Settler turns each result into the message's fate; required.
	Settler *Settler
	// Log receives the loop's own lines.
	Log zerolog.Logger
	// Workers is how many messages (Run) or batches (RunBatches) are
	// handled at once; default 1.
	Workers int
	// PullMaxMessages bounds the messages one pull asks for (Run); default
	// Workers, at most 512.
	PullMaxMessages int
	// PullExpiry bounds one pull request (Run); default 5 s: a pull lost
	// (a cluster node left) is noticed after two missed heartbeats of half
	// of it.
	PullExpiry time.Duration
	// BatchSize bounds the messages of one batch (RunBatches); default 1.
	BatchSize int
	// BatchWait bounds how long a batch waits to fill up (RunBatches);
	// default 1 s.
	BatchWait time.Duration
	// MetricsEvery is how often the consumer's pending and redelivered
	// counts are read into metrics; default 5 s, negative never.
	MetricsEvery time.Duration
}

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.PullMaxMessages == 0 {
		c.PullMaxMessages = min(c.Workers, 512)
	}
	if c.PullExpiry == 0 {
		c.PullExpiry = 5 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1
	}
	if c.BatchWait == 0 {
		c.BatchWait = time.Second
	}
	if c.MetricsEvery == 0 {
		c.MetricsEvery = 5 * time.Second
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("worker: the loop needs a name")
	case c.Consumer == nil:
		return fmt.Errorf("worker %s: no consumer", c.Name)
	case c.Settler == nil:
		return fmt.Errorf("worker %s: no settler", c.Name)
	case c.Workers < 1 || c.PullMaxMessages < 1 || c.BatchSize < 1:
		return fmt.Errorf("worker %s: workers, pull size and batch size must be at least 1", c.Name)
	case c.PullExpiry < time.Second || c.BatchWait <= 0:
		return fmt.Errorf("worker %s: the pull expiry must be at least 1 s and the batch wait positive", c.Name)
	}
	return nil
}

// Run is the consumer loop every role shares (Watermill's router is the
// model): it pulls from cfg.Consumer and hands each message to a fixed pool
// of cfg.Workers goroutines, each running h wrapped with Recover, and
// settles every result with cfg.Settler. The consumer's pending and
// redelivered counts go to metrics while it runs.
//
// When ctx ends it stops pulling, lets the workers handle every message
// already delivered (their context outlives ctx: a message in hand is
// finished, within the handler's own bounds) and returns only when every
// goroutine it started has ended.
func Run(ctx context.Context, cfg Config, h Handler) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	h = Chain(h, Recover(cfg.Log))
	var wg sync.WaitGroup
	defer wg.Wait()
	workCtx := context.WithoutCancel(ctx)
	work := make(chan jetstream.Msg)
	for range cfg.Workers {
		wg.Go(func() {
			for msg := range work {
				cfg.Settler.Settle(workCtx, msg, h(workCtx, msg))
			}
		})
	}
	defer close(work)
	cc, err := cfg.Consumer.Consume(func(msg jetstream.Msg) { work <- msg },
		jetstream.PullMaxMessages(cfg.PullMaxMessages),
		jetstream.PullExpiry(cfg.PullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) || ctx.Err() == nil {
				cfg.Log.Warn().Err(err).Str("consumer", cfg.Name).Msg("consume")
			}
		}))
	if err != nil {
		return fmt.Errorf("worker %s: consume: %w", cfg.Name, err)
	}
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	wg.Go(func() { watchConsumer(metricsCtx, cfg) })
	<-ctx.Done()
	// Stop pulling; what was delivered reaches the workers, then the
	// deferred close lets them end.
	cc.Drain()
	<-cc.Closed()
	return nil
}

// BatchHandler handles a batch of messages at once (an insert of them all,
// say) and returns each message's result, in order: nil, or an error as a
// Handler's. It must be idempotent: a batch can be delivered again.
type BatchHandler func(ctx context.Context, msgs []jetstream.Msg) []error

// RunBatches is Run for a handler of batches: one goroutine fetches up to
// cfg.BatchSize messages, waiting at most cfg.BatchWait, and cfg.Workers
// goroutines handle batches, one fetch ahead, settling each message with
// its result. A handler that panics leaves its batch to be delivered again
// (nak), never dead-lettered, logged with its stack. When ctx ends it stops
// fetching, naks a batch not yet handled, lets the workers finish theirs
// (their context is ctx: a handler that waits for a server gives up) and
// returns only when every goroutine it started has ended.
func RunBatches(ctx context.Context, cfg Config, h BatchHandler) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	batches := make(chan []jetstream.Msg)
	wg.Go(func() {
		defer close(batches)
		for ctx.Err() == nil {
			msgs, err := fetch(ctx, cfg)
			if err != nil {
				if ctx.Err() == nil {
					cfg.Log.Warn().Err(err).Str("consumer", cfg.Name).Msg("fetch failed; retrying")
					sleep(ctx, time.Second)
				}
				continue
			}
			if len(msgs) == 0 {
				continue
			}
			select {
			case batches <- msgs:
			case <-ctx.Done():
				nakAll(msgs)
				return
			}
		}
	})
	for range cfg.Workers {
		wg.Go(func() {
			for msgs := range batches {
				if ctx.Err() != nil {
					nakAll(msgs)
					continue
				}
				errs := handleBatch(ctx, cfg.Log, h, msgs)
				for i, m := range msgs {
					var err error
					if i < len(errs) {
						err = errs[i]
					}
					cfg.Settler.Settle(ctx, m, err)
				}
			}
		})
	}
	wg.Go(func() { watchConsumer(ctx, cfg) })
	<-ctx.Done()
	return nil
}

// handleBatch runs h, turning a panic into a transient error for every
// message.
func handleBatch(ctx context.Context, log zerolog.Logger, h BatchHandler, msgs []jetstream.Msg) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error().Str("panic", fmt.Sprint(r)).Msg("batch handler panicked; the batch will be delivered again")
			errs = make([]error, len(msgs))
			for i := range errs {
				errs[i] = fmt.Errorf("batch handler panicked: %v", r)
			}
		}
	}()
	return h(ctx, msgs)
}

// fetch takes up to BatchSize messages, waiting at most BatchWait.
func fetch(ctx context.Context, cfg Config) ([]jetstream.Msg, error) {
	res, err := cfg.Consumer.Fetch(cfg.BatchSize, jetstream.FetchMaxWait(cfg.BatchWait))
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range res.Messages() {
		msgs = append(msgs, m)
	}
	if err := res.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && len(msgs) == 0 {
		return nil, err
	}
	return msgs, nil
}

// watchConsumer reads the consumer's pending and redelivered counts into
// metrics every MetricsEvery until ctx ends.
func watchConsumer(ctx context.Context, cfg Config) {
	if cfg.MetricsEvery < 0 {
		return
	}
	t := time.NewTicker(cfg.MetricsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		info, err := cfg.Consumer.Info(ctx)
		if err != nil {
			continue
		}
		metrics.ConsumerPending.WithLabelValues(cfg.Name).Set(float64(info.NumPending + uint64(info.NumAckPending)))
		metrics.ConsumerRedelivered.WithLabelValues(cfg.Name).Set(float64(info.NumRedelivered))
	}
}

func nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

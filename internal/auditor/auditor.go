// Package auditor is the role that copies every decision, admin event and
// count of throttled requests from JetStream into ClickHouse, and the queries security teams run on it.
//
// It acknowledges a message only after the insert holding it succeeded, and
// that ack is what removes a decision from the decisions stream (interest
// retention): only decisions not stored yet count against its limits. A
// ClickHouse outage leaves the backlog in JetStream (logged and exposed as
// metrics) and the auditor catches up when ClickHouse returns. A message that
// can never be inserted goes to the dead-letter stream with its error and
// never blocks the rest. A redelivered batch stores no row twice: before
// inserting events JetStream delivered again, or after an insert whose
// outcome is unknown, the auditor asks ClickHouse which rows it holds and
// inserts only the others; a batch is kept in progress while it is stored,
// and its insert given up well before AckWait. So the audit queries count
// with plain SQL, without FINAL (DESIGN.md says the one case left to the
// ReplacingMergeTree's merges). On a replicated ClickHouse (Config.Cluster)
// it writes synchronously through Distributed tables, and a batch
// redelivered whole is also dropped by ReplicatedMergeTree's insert
// de-duplication.
package auditor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/worker"
	"github.com/hissuno/widgetauth/schemas"
)

// Batch defaults: about one insert per second per table under load, as
// ClickHouse recommends. Every insert writes a new part (files per column)
// that the server merges later; five inserts a second of a few thousand
// rows cost ClickHouse about twice the CPU of one of 10,000 (BENCHMARKS.md),
// and took that CPU from the pipeline on a shared machine. A decision still
// reaches the audit about a second after it was made.
const (
	DefaultBatchSize = 10_000
	DefaultBatchWait = time.Second
)

// DefaultStoredGrace is how long, by default, a stored decision may stay in
// the decisions stream for a follower (hissuno audit tail) that has not
// read it yet: a tail half a minute behind skips what it missed.
const DefaultStoredGrace = 30 * time.Second

// DefaultRetentionEvery is how often, by default, the auditor enforces
// retention: a month partition is dropped within the hour its last day
// leaves retention.
const DefaultRetentionEvery = time.Hour

// Config configures an auditor.
type Config struct {
	// NATS is the connection; required.
	NATS *nats.Conn
	// ClickHouseDSN is the native-protocol address of ClickHouse; required.
	ClickHouseDSN string
	// Cluster, when set, names the ClickHouse cluster (a <remote_servers>
	// entry) the audit runs on: the tables are made as
	// audit.MigrateCluster makes them, and every insert into their
	// Distributed tables is synchronous (audit.SyncInserts). Empty: one
	// server.
	Cluster string
	// Instance names this auditor in logs; default: a random name.
	Instance string
	// BatchSize bounds the rows of one insert; default DefaultBatchSize.
	BatchSize int
	// BatchWait bounds how long a batch waits to fill up; default
	// DefaultBatchWait.
	BatchWait time.Duration
	// RetryMax caps the back-off between attempts to reach ClickHouse;
	// default 10 s.
	RetryMax time.Duration
	// BacklogEvery is how often the backlog is measured; default 5 s.
	BacklogEvery time.Duration
	// AckWait is how long JetStream waits for an auditor's ack before it
	// redelivers (an auditor that died mid-batch); default
	// bus.DefaultAuditAckWait (1 min).
	AckWait time.Duration
	// Inserts is how many batches are inserted at once, per table; default
	// 2, so that fetching and decoding the next batch overlaps an insert
	// (the throttled counts, looked up before every insert: one).
	Inserts int
	// StoredGrace is how long a decision the auditor has stored may stay
	// in the decisions stream for a follower still reading it (hissuno
	// audit tail); then the auditor removes it even from under such a
	// follower, so that stored decisions never fill the stream. Default
	// DefaultStoredGrace.
	StoredGrace time.Duration
	// DecisionRetention is how long decisions are kept in ClickHouse: a
	// whole number of days, or 0 to keep them forever (the default here;
	// `hissuno auditor` gives audit.DefaultDecisionRetention). Enforced by a
	// TTL where the server has them (19.6 and later), otherwise by dropping
	// every month partition entirely past it, every RetentionEvery.
	DecisionRetention time.Duration
	// AdminRetention is how long admin events are kept, as
	// DecisionRetention; 0 (the default) keeps them forever.
	AdminRetention time.Duration
	// RetentionEvery is how often retention is enforced: month partitions
	// past it dropped (servers without TTL) or the TTL checked; default
	// DefaultRetentionEvery.
	RetentionEvery time.Duration
	// RetentionTable names, for the retention statements, the table that
	// holds the rows of an audit table (hissuno_decisions,
	// hissuno_admin_events), and the cluster to run them ON CLUSTER; by
	// default the table itself on this server. On a cluster it would be
	// the Replicated table under the Distributed one.
	RetentionTable func(table string) audit.TableRef

	// crashAfterInsert, in tests, is asked after each successful insert;
	// true makes the auditor stop as if killed before its ack.
	crashAfterInsert func() bool
	// loseInsertAnswer, in tests, is asked after each successful insert;
	// true makes the auditor take it for failed, as when the connection
	// breaks after the rows were sent: its outcome unknown.
	loseInsertAnswer func() bool
}

func (c *Config) setDefaults() {
	if c.Instance == "" {
		c.Instance = bus.InstanceName("auditor")
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait == 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.BacklogEvery == 0 {
		c.BacklogEvery = 5 * time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = bus.DefaultAuditAckWait
	}
	if c.Inserts == 0 {
		c.Inserts = 2
	}
	if c.StoredGrace == 0 {
		c.StoredGrace = DefaultStoredGrace
	}
	if c.RetentionEvery == 0 {
		c.RetentionEvery = DefaultRetentionEvery
	}
	if c.RetentionTable == nil && c.Cluster != "" {
		// On a cluster the rows are in the Replicated tables behind the
		// Distributed ones; one statement ON CLUSTER reaches every node.
		c.RetentionTable = func(table string) audit.TableRef {
			return audit.TableRef{Name: table + schemas.LocalSuffix, Cluster: c.Cluster}
		}
	}
	if c.RetentionTable == nil {
		c.RetentionTable = func(table string) audit.TableRef { return audit.TableRef{Name: table} }
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil:
		return errors.New("auditor: no NATS connection")
	case c.ClickHouseDSN == "":
		return errors.New("auditor: no ClickHouse DSN: give --clickhouse or HISSUNO_CLICKHOUSE_DSN")
	case c.BatchSize < 1 || c.BatchSize > 100_000:
		return errors.New("auditor: batch size must be 1 to 100000")
	case c.BatchWait <= 0:
		return errors.New("auditor: batch wait must be positive")
	case c.AckWait < time.Second:
		return errors.New("auditor: ack wait must be at least 1 s")
	case c.Inserts < 1 || c.Inserts > 16:
		return errors.New("auditor: inserts at once must be 1 to 16")
	case c.StoredGrace < 0:
		return errors.New("auditor: the grace of stored decisions must not be negative")
	case c.RetentionEvery < time.Second:
		return errors.New("auditor: retention must be enforced at most every second (RetentionEvery ≥ 1 s)")
	case c.Cluster != "" && !clusterName.MatchString(c.Cluster):
		return fmt.Errorf("auditor: cluster %q: give the name of a <remote_servers> entry (letters, digits, _)", c.Cluster)
	}
	if err := audit.CheckRetention(c.DecisionRetention); err != nil {
		return fmt.Errorf("auditor: decisions: %w (--retention)", err)
	}
	if err := audit.CheckRetention(c.AdminRetention); err != nil {
		return fmt.Errorf("auditor: admin events: %w (--admin-retention)", err)
	}
	return nil
}

// clusterName is what a ClickHouse cluster's name may be here.
var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// insertTimeout bounds one insert at most: a ClickHouse that hangs is
// treated as away (insertDeadline bounds it below AckWait too).
const insertTimeout = 30 * time.Second

// migrateTimeout bounds the migrations an auditor applies when it
// connects; the batches waiting meanwhile are kept in progress.
const migrateTimeout = 30 * time.Minute

// source is one stream the auditor copies into one table, through the
// durable consumer config makes (the one bus.Ensure makes too).
type source struct {
	stream   string
	consumer string
	config   func(bus.AuditSettings) jetstream.ConsumerConfig
	table    audit.Table
	// republished says that the source's publisher sends an event again,
	// under its id, when it did not see JetStream take it (the ingress's
	// throttled counts, retried for up to ten minutes, beyond the
	// stream's duplicate window): every batch is looked up before its
	// insert, not only one JetStream delivered again. Such a source is
	// small (a bounded number of rows a minute), so its lookups are too.
	republished bool
}

var sources = []source{
	{stream: events.StreamDecisions, consumer: events.ConsumerAuditDecisions, config: bus.AuditDecisionsConsumer, table: audit.DecisionsTable},
	{stream: events.StreamAdmin, consumer: events.ConsumerAuditAdmin, config: bus.AuditAdminConsumer, table: audit.AdminTable},
	{stream: events.StreamThrottled, consumer: events.ConsumerAuditThrottled, config: bus.AuditThrottledConsumer, table: audit.ThrottledTable, republished: true},
}

// Auditor is the auditor role.
type Auditor struct {
	cfg Config
	log zerolog.Logger
	js  jetstream.JetStream

	dialMu sync.Mutex // one dial of ClickHouse at a time
	mu     sync.Mutex // guards conn and ready, never held during a dial
	conn   driver.Conn
	ready  bool
}

// New makes an auditor.
func New(cfg Config, log zerolog.Logger) (*Auditor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("auditor: jetstream: %w", err)
	}
	return &Auditor{
		cfg: cfg,
		log: log.With().Str("component", "auditor").Str("instance", cfg.Instance).Logger(),
		js:  js,
	}, nil
}

// Ready reports whether ClickHouse answered and the tables exist.
func (a *Auditor) Ready(ctx context.Context) error {
	a.mu.Lock()
	conn, ready := a.conn, a.ready
	a.mu.Unlock()
	if !ready {
		return errors.New("ClickHouse not reached yet; audit records wait in JetStream")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", audit.ErrUnreachable, err)
	}
	return nil
}

// Run copies events into ClickHouse until ctx ends; then it finishes the
// batch in hand (or leaves it to be redelivered) and returns once every
// goroutine it started has ended.
func (a *Auditor) Run(ctx context.Context) error {
	defer func() {
		a.mu.Lock()
		if a.conn != nil {
			a.conn.Close()
			a.conn, a.ready = nil, false
		}
		a.mu.Unlock()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	loops := make([]worker.Config, 0, len(sources))
	for _, src := range sources {
		// The configuration bus.Ensure gives the consumer, with this
		// auditor's ack wait and as many unacknowledged events as its
		// inserts in flight and two batches fetched ahead hold.
		cons, err := a.js.CreateOrUpdateConsumer(ctx, src.stream, src.config(bus.AuditSettings{
			AckWait:       a.cfg.AckWait,
			MaxAckPending: (a.cfg.Inserts + 2) * a.cfg.BatchSize,
		}))
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return fmt.Errorf("auditor: consumer %s: %w", src.consumer, err)
		}
		inserts := a.cfg.Inserts
		if src.republished {
			// One batch at a time: a copy republished under another
			// Nats-Msg-Id can sit in the batch after its original's, and two
			// batches stored side by side would each look the other's rows
			// up before either was inserted, and store both.
			inserts = 1
		}
		loops = append(loops, worker.Config{
			Name:      src.consumer,
			Consumer:  cons,
			Settler:   &worker.Settler{JS: a.js, Stream: src.stream, Log: a.log},
			Log:       a.log,
			Workers:   inserts,
			BatchSize: a.cfg.BatchSize,
			BatchWait: a.cfg.BatchWait,
		})
	}
	wg.Go(func() { a.watchBacklog(ctx) })
	wg.Go(func() { a.reachClickHouse(ctx) })
	wg.Go(func() { a.keepRetention(ctx) })
	a.log.Info().Int("batch_size", a.cfg.BatchSize).Dur("batch_wait", a.cfg.BatchWait).
		Str("decision_retention", audit.FormatRetention(a.cfg.DecisionRetention)).Str("admin_retention", audit.FormatRetention(a.cfg.AdminRetention)).
		Msg("auditor copying decisions, admin events and counts of throttled requests to ClickHouse")
	errs := make([]error, len(sources))
	for i, src := range sources {
		wg.Go(func() { errs[i] = worker.RunBatches(ctx, loops[i], a.storeBatch(src)) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// connect returns a working ClickHouse connection, opening it (and
// applying the migrations) when there is none. One dial at a time; the
// state Ready reads is never held during one, so readiness answers at once
// while ClickHouse does not.
func (a *Auditor) connect(ctx context.Context) (driver.Conn, error) {
	a.dialMu.Lock()
	defer a.dialMu.Unlock()
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn != nil {
		return conn, nil
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := audit.Open(octx, a.cfg.ClickHouseDSN)
	if err != nil {
		return nil, err
	}
	// A migration may merge a table whole (0005): longer than a dial.
	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	var applied []string
	if a.cfg.Cluster != "" {
		applied, err = audit.MigrateCluster(mctx, conn, a.cfg.ClickHouseDSN, a.cfg.Cluster)
	} else {
		applied, err = audit.Migrate(mctx, conn)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	if len(applied) > 0 {
		a.log.Info().Strs("migrations", applied).Msg("ClickHouse migrations applied")
	}
	a.mu.Lock()
	a.conn, a.ready = conn, true
	a.mu.Unlock()
	return conn, nil
}

// reachClickHouse connects (and migrates) as soon as ClickHouse answers, so
// that the auditor is ready before its first batch, retrying with back-off.
func (a *Auditor) reachClickHouse(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if _, err := a.connect(ctx); err == nil {
			return
		} else if ctx.Err() == nil {
			a.log.Warn().Err(err).Dur("retry_in", backoff).Msg("ClickHouse not reachable yet; decisions wait in JetStream")
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, a.cfg.RetryMax)
	}
}

// storeBatch is the batch handler of one source: it decodes every event
// (one that cannot be decoded is dead-lettered), keeps one row per key (an
// event published twice under two sequences is acked twice and stored
// once), and inserts the rows in one batch (store). When JetStream delivers
// one of the events again (an auditor stopped or cut off before its ack),
// store first leaves out the rows ClickHouse holds already. Every message
// of the batch is kept in progress while it is stored, so that JetStream
// does not hand it to another auditor meanwhile.
func (a *Auditor) storeBatch(src source) worker.BatchHandler {
	return func(ctx context.Context, msgs []jetstream.Msg) []error {
		results := make([]error, len(msgs))
		b := batch{msgs: msgs, results: results, check: src.republished}
		seen := make(map[audit.Key]bool, len(msgs))
		for i, m := range msgs {
			row, err := src.table.Row(m.Subject(), m.Data())
			if err != nil {
				results[i] = worker.Permanent(err)
				continue
			}
			k := src.table.Key(row)
			if seen[k] {
				metrics.AuditSkipped.WithLabelValues(src.table.Name()).Inc()
				continue // stored with the first, acked with it
			}
			seen[k] = true
			if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
				b.check = true
			}
			b.idx = append(b.idx, i)
			b.rows = append(b.rows, row)
		}
		if len(b.rows) > 0 {
			stop := a.heartbeat(msgs)
			a.store(ctx, src, b)
			stop()
		}
		return results
	}
}

// heartbeat tells JetStream every quarter of AckWait that msgs are still
// being worked on, until stop is called, so that a batch whose insert is
// slow is not redelivered to another auditor while it is in flight.
func (a *Auditor) heartbeat(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(a.cfg.AckWait/4, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for _, m := range msgs {
				_ = m.InProgress()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// batch is rows to insert at once, the messages they came from (msgs[idx[k]]
// holds rows[k]), and where each message's result goes. check says that
// some of the rows may be stored already: a message was delivered again,
// or an insert of them failed after sending.
type batch struct {
	msgs    []jetstream.Msg
	idx     []int
	rows    [][]any
	results []error
	check   bool
}

// set gives every message of the batch the result err.
func (b batch) set(err error) {
	for _, i := range b.idx {
		b.results[i] = err
	}
}

// half is the batch's rows from lo to hi.
func (b batch) half(lo, hi int) batch {
	return batch{msgs: b.msgs, idx: b.idx[lo:hi], rows: b.rows[lo:hi], results: b.results, check: b.check}
}

// insertDeadline bounds one insert: well below AckWait, so that an insert
// given up on is over (on the auditor's side) before JetStream could hand
// its events to another auditor, and never more than insertTimeout.
func (a *Auditor) insertDeadline() time.Duration {
	return min(insertTimeout, a.cfg.AckWait/2)
}

// missing is b without the rows the table holds already, which are left
// with a nil result (acked).
func (a *Auditor) missing(ctx context.Context, conn driver.Conn, src source, b batch) (batch, error) {
	keys := make([]audit.Key, len(b.rows))
	for i, r := range b.rows {
		keys[i] = src.table.Key(r)
	}
	lctx, cancel := context.WithTimeout(ctx, a.insertDeadline())
	stored, err := audit.Stored(lctx, conn, src.table, keys)
	cancel()
	if err != nil {
		return b, err
	}
	if len(stored) == 0 {
		b.check = false
		return b, nil
	}
	out := batch{msgs: b.msgs, results: b.results}
	for i, k := range keys {
		if !stored[k] {
			out.idx = append(out.idx, b.idx[i])
			out.rows = append(out.rows, b.rows[i])
		}
	}
	skipped := len(b.rows) - len(out.rows)
	metrics.AuditSkipped.WithLabelValues(src.table.Name()).Add(float64(skipped))
	a.log.Info().Str("table", src.table.Name()).Int("stored_already", skipped).Int("inserted", len(out.rows)).
		Msg("events delivered again: rows ClickHouse holds already are acked, not inserted again")
	return out, nil
}

// store inserts a batch, retrying while ClickHouse is away (the events
// stay in JetStream meanwhile, kept in progress) and splitting the batch
// to isolate a row ClickHouse refuses, which is dead-lettered. A message is
// acknowledged only once its row is in. Before inserting rows that may be
// stored already (b.check), it leaves out those ClickHouse holds.
func (a *Auditor) store(ctx context.Context, src source, b batch) {
	backoff := 100 * time.Millisecond
	for {
		conn, err := a.connect(ctx)
		if err == nil && b.check {
			b, err = a.missing(ctx, conn, src, b)
			if err != nil {
				a.dropConn(conn)
			} else if len(b.rows) == 0 {
				return
			}
		}
		if err == nil {
			start := time.Now()
			ictx, cancel := context.WithTimeout(ctx, a.insertDeadline())
			if a.cfg.Cluster != "" {
				ictx = audit.SyncInserts(ictx)
			}
			err = audit.Insert(ictx, conn, src.table, b.rows)
			cancel()
			if err == nil && a.cfg.loseInsertAnswer != nil && a.cfg.loseInsertAnswer() {
				err = errors.New("connection lost after the rows were sent (test)")
			}
			if err == nil {
				metrics.AuditInsertLatency.WithLabelValues(src.table.Name()).Observe(time.Since(start).Seconds())
				metrics.AuditBatchSize.WithLabelValues(src.table.Name()).Observe(float64(len(b.rows)))
				if a.cfg.crashAfterInsert != nil && a.cfg.crashAfterInsert() {
					b.set(worker.ErrLeave) // killed before its ack
				}
				return
			}
			metrics.AuditInsertErrors.WithLabelValues(src.table.Name()).Inc()
			if !audit.Transient(err) {
				a.isolate(ctx, src, b, err)
				return
			}
			// The insert may have reached ClickHouse before it failed:
			// look before inserting again.
			b.check = true
			a.dropConn(conn)
		}
		if ctx.Err() != nil {
			b.set(fmt.Errorf("auditor stopping before the insert: %w", err))
			return
		}
		a.log.Warn().Err(err).Str("table", src.table.Name()).Int("batch", len(b.rows)).Dur("retry_in", backoff).
			Msg("ClickHouse insert failed; the backlog waits in JetStream")
		for _, i := range b.idx {
			_ = b.msgs[i].InProgress()
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, a.cfg.RetryMax)
	}
}

// isolate handles a batch ClickHouse refused because of its rows: halves
// are retried on their own until the row at fault is alone, which goes to
// the dead-letter stream.
func (a *Auditor) isolate(ctx context.Context, src source, b batch, cause error) {
	if len(b.rows) == 1 {
		a.log.Error().Err(cause).Str("table", src.table.Name()).Msg("event refused by ClickHouse; dead-lettered")
		b.set(worker.Permanent(cause))
		return
	}
	mid := len(b.rows) / 2
	a.store(ctx, src, b.half(0, mid))
	a.store(ctx, src, b.half(mid, len(b.rows)))
}

func (a *Auditor) dropConn(conn driver.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == conn {
		a.conn.Close()
		a.conn, a.ready = nil, false
	}
}

// watchBacklog measures, every BacklogEvery, how many events wait for each
// table and how full the decisions stream is, exposes them as metrics and
// logs them while ClickHouse is away or the stream nearly full; and it
// removes decisions stored long ago that a follower still holds
// (sweepDecisions).
func (a *Auditor) watchBacklog(ctx context.Context) {
	t := time.NewTicker(a.cfg.BacklogEvery)
	defer t.Stop()
	var floors []floorMark
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		ready := a.ready
		a.mu.Unlock()
		for _, src := range sources {
			n, _, err := Backlog(ctx, a.js, src.stream, src.consumer)
			if err != nil {
				continue
			}
			metrics.AuditBacklog.WithLabelValues(src.table.Name()).Set(float64(n))
			if !ready && n > 0 {
				a.log.Warn().Uint64("backlog", n).Str("table", src.table.Name()).Msg("ClickHouse unreachable; events wait in JetStream")
			}
		}
		floors = a.sweepDecisions(ctx, floors)
	}
}

// floorMark is the ack floor of the auditor's consumer of decisions at a
// time: every decision up to it was stored (or dead-lettered) by then.
type floorMark struct {
	at    time.Time
	floor uint64
}

// sweepDecisions measures how full the decisions stream is, and removes
// from it every decision the auditor had stored StoredGrace ago. Interest
// retention removes a decision as soon as the auditor acked it, unless a
// follower (hissuno audit tail) has not read it yet; and nats-server leaves
// behind, with no interest, decisions delivered to a follower just as it is
// deleted (up to a pull batch, every time a tail stops during traffic): a
// purge below the ack floor of StoredGrace ago removes both, never a
// decision not stored. It returns the marks still needed.
func (a *Auditor) sweepDecisions(ctx context.Context, floors []floorMark) []floorMark {
	c, err := a.js.Consumer(ctx, events.StreamDecisions, events.ConsumerAuditDecisions)
	if err != nil {
		return floors
	}
	now := time.Now()
	floors = append(floors, floorMark{at: now, floor: c.CachedInfo().AckFloor.Stream})
	s, err := a.js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		return floors
	}
	info := s.CachedInfo()
	fill := bus.Fill(info)
	metrics.DecisionsStreamFill.Set(fill)
	if fill >= bus.DecisionsNearlyFull {
		a.log.Warn().Float64("fill", fill).Str("stream", events.StreamDecisions).
			Msg("decisions stream nearly full of decisions not stored yet; when full, new decisions are refused (503)")
	}
	// The newest mark at least StoredGrace old.
	old := -1
	for i, m := range floors {
		if now.Sub(m.at) >= a.cfg.StoredGrace {
			old = i
		}
	}
	if old < 0 {
		return floors
	}
	floor := floors[old].floor
	floors = floors[old:]
	if floor == 0 || info.State.Msgs == 0 || info.State.FirstSeq > floor {
		return floors
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(floor+1)); err != nil {
		a.log.Warn().Err(err).Uint64("up_to", floor).Msg("could not remove stored decisions from the decisions stream")
		return floors
	}
	a.log.Info().Uint64("from", info.State.FirstSeq).Uint64("up_to", floor).Dur("stored_more_than", a.cfg.StoredGrace).
		Msg("removed stored decisions still in the decisions stream (a follower had not read them)")
	return floors
}

// Backlog is how many events of a stream wait for a consumer: undelivered
// plus delivered and not acknowledged; and how many of those were
// redelivered.
func Backlog(ctx context.Context, js jetstream.JetStream, stream, consumer string) (pending, redelivered uint64, err error) {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return 0, 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), uint64(info.NumRedelivered), nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

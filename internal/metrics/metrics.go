// Package metrics defines every Prometheus metric of Hissuno widget
// authentication in one place, registered in the default registry and
// served on /metrics by each role. Labels are low-cardinality only: never a
// project id, a user id, an origin or a token.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// Decisions counts decisions by outcome and reason ("" for accepts).
	Decisions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_decisions_total",
		Help: "Decisions made by verifiers, by outcome and reason.",
	}, []string{"outcome", "reason"})
	// HopDuration is the latency budget of a connect request, hop by hop
	// (label hop, one of the Hop… constants): operators see where a slow
	// request's time went, and `hissuno bench --rate` prints it. Each role
	// observes its own hops through the pre-resolved observers below
	// (IngressPublish, …), which neither allocate nor look a label up.
	HopDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hissuno_hop_duration_seconds",
		Help: "Latency budget of a connect request by hop: ingress_publish (HTTP request read → attempt published), " +
			"ingress_reply_wait (attempt published → verifier's reply received), attempt_queued (attempt stored by JetStream → " +
			"taken by a verifier worker), decide (decoding, checks and the decision), decision_store (decision published → JetStream's persistence ack), " +
			"ingress_answer (reply received → HTTP answer written).",
		Buckets: prometheus.ExponentialBucketsRange(0.00001, 5, 36),
	}, []string{"hop"})
	// DecisionLatency is the time from the ingress receiving an attempt to
	// the verifier's decision being stored.
	DecisionLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "hissuno_decision_latency_seconds",
		Help:    "Time from the ingress receiving an attempt to its decision being stored in JetStream.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	// HTTPRequests is the ingress's request latency by status code.
	HTTPRequests = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hissuno_http_request_duration_seconds",
		Help:    "Latency of POST /v1/widget/connect at the ingress, by HTTP status.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"code"})
	// ConsumerPending is, per durable consumer, the messages not yet
	// delivered plus those delivered and not yet acknowledged.
	ConsumerPending = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hissuno_consumer_pending",
		Help: "Messages waiting for a durable consumer (undelivered plus unacknowledged).",
	}, []string{"consumer"})
	// ConsumerRedelivered is, per durable consumer, the messages delivered
	// more than once and not yet acknowledged.
	ConsumerRedelivered = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hissuno_consumer_redelivered",
		Help: "Messages of a durable consumer redelivered and not yet acknowledged.",
	}, []string{"consumer"})
	// DeadLetters counts messages dead-lettered, by source stream.
	DeadLetters = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_dead_letters_total",
		Help: "Messages that could never be handled and went to the dead-letter stream.",
	}, []string{"stream"})
	// AuditBatchSize is the number of rows per ClickHouse insert.
	AuditBatchSize = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hissuno_audit_batch_rows",
		Help:    "Rows per audit insert into ClickHouse.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 15),
	}, []string{"table"})
	// AuditInsertLatency is the duration of one ClickHouse insert.
	AuditInsertLatency = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hissuno_audit_insert_seconds",
		Help:    "Duration of one audit insert into ClickHouse.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"table"})
	// AuditInsertErrors counts failed inserts (each retried).
	AuditInsertErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_audit_insert_errors_total",
		Help: "Failed audit inserts into ClickHouse; each is retried, the backlog waits in JetStream.",
	}, []string{"table"})
	// AuditSkipped counts events the auditor acked without inserting
	// them: ClickHouse held their rows already (a batch delivered again),
	// or the batch held the same row twice.
	AuditSkipped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_audit_rows_skipped_total",
		Help: "Audit events acked without an insert: their row was stored already (a redelivered batch) or repeated in the batch.",
	}, []string{"table"})
	// AuditPartitionsDropped counts the month partitions the auditor
	// dropped as past retention (on servers without TTL).
	AuditPartitionsDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_audit_partitions_dropped_total",
		Help: "Month partitions of the audit dropped as entirely past their retention (ClickHouse without TTL).",
	}, []string{"table"})
	// AuditBacklog is the number of events waiting in JetStream for the
	// auditor.
	AuditBacklog = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hissuno_audit_backlog",
		Help: "Events waiting in JetStream to be written to ClickHouse.",
	}, []string{"table"})
	// DecisionsStreamFill is how full the decisions stream is, from 0 to 1
	// (bytes or messages over their limit, whichever is fuller), set by
	// whoever measures it: the auditor's backlog watcher and the "decisions
	// stream" readiness check. Only decisions the auditor has not stored
	// count; at 1 new decisions are refused (the ingress answers 503).
	DecisionsStreamFill = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "hissuno_decisions_stream_fill_ratio",
		Help: "How full HISSUNO_DECISIONS is (0 to 1, by bytes or messages): decisions not yet stored in ClickHouse; at 1 new decisions are refused (503).",
	})
	// IngressThrottled counts requests the ingress refused before
	// publishing anything (429) and connections it closed at once, by
	// reason (events.Throttle).
	IngressThrottled = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_ingress_throttled_total",
		Help: "Requests answered 429 and connections closed at once by the ingress, by reason (ip_rate, project_rate, unseen_project_rate, ip_connections, connections).",
	}, []string{"reason"})
	// IngressThrottledRollupsDropped counts the counts of throttled
	// requests an ingress dropped after JetStream had not taken them for
	// minutes.
	IngressThrottledRollupsDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hissuno_ingress_throttled_rollups_dropped_total",
		Help: "Counts of throttled requests (audit rollups) the ingress dropped because JetStream did not take them for minutes.",
	})
	// Rotations counts key rotations by result (confirmed: every live
	// verifier confirmed; unconfirmed: some did not in time).
	Rotations = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hissuno_rotations_total",
		Help: "Key rotations applied, by whether every live verifier confirmed them.",
	}, []string{"result"})
	// RotationLatency is the time from applying a rotation to every live
	// verifier having confirmed it.
	RotationLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "hissuno_rotation_seconds",
		Help:    "Time from a rotation's KV write to every live verifier's confirmation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
)

// Hops of HopDuration, in a request's order.
const (
	// HopIngressPublish is the ingress's part before the bus: from its
	// handler's start (headers read) through the body, the limits and the
	// attempt's encoding until the attempt is published.
	HopIngressPublish = "ingress_publish"
	// HopIngressReplyWait is the ingress's wait for the verifier's reply
	// after publishing: every verifier hop below plus NATS's deliveries.
	HopIngressReplyWait = "ingress_reply_wait"
	// HopAttemptQueued is from JetStream storing an attempt (its metadata
	// timestamp) until a verifier worker takes it: the pull, the delivery
	// and the wait for a free worker.
	HopAttemptQueued = "attempt_queued"
	// HopDecide is from a verifier worker taking the attempt to its
	// decision made: decoding, provenance checks and authz.Decide.
	HopDecide = "decide"
	// HopDecisionStore is the decision's publish until JetStream's
	// persistence ack.
	HopDecisionStore = "decision_store"
	// HopIngressAnswer is from the ingress receiving the reply until its
	// HTTP answer is written (net/http sends it as the handler returns).
	HopIngressAnswer = "ingress_answer"
)

// Hops lists the hops of HopDuration in a request's order.
var Hops = []string{HopIngressPublish, HopIngressReplyWait, HopAttemptQueued, HopDecide, HopDecisionStore, HopIngressAnswer}

// The observers of each hop, resolved once.
var (
	IngressPublish   = HopDuration.WithLabelValues(HopIngressPublish)
	IngressReplyWait = HopDuration.WithLabelValues(HopIngressReplyWait)
	AttemptQueued    = HopDuration.WithLabelValues(HopAttemptQueued)
	Decide           = HopDuration.WithLabelValues(HopDecide)
	DecisionStore    = HopDuration.WithLabelValues(HopDecisionStore)
	IngressAnswer    = HopDuration.WithLabelValues(HopIngressAnswer)
)

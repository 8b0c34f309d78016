// Package verifier is the verifier role: it consumes connection attempts
// from the one durable consumer every verifier shares, decides each with
// the decision core (internal/authz) on its in-memory view of every
// project, stores the decision in JetStream and waits for its persistence
// ack, then replies to the ingress that waits.
//
// Its files: verifier.go (configuration and the run loop), view.go (the
// project view, a KV watch), lease.go (the freshness lease and the resync
// after a reconnect), discovery.go (heartbeats, micro-service discovery and
// rotation confirmations, invalidations), handle.go (one attempt: its
// provenance, the decision, the store and the reply), consumer.go (the
// attempts consumer's settings).
//
// It never decides for a project its view is known to be behind on, never
// replies before the decision is stored, never replies a decision that is
// not the one stored, and never logs a token.
package verifier

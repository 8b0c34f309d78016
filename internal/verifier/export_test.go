package verifier

// This file lends the external tests (package verifier_test) what they
// need of the package's insides: they use stacktest, which imports stack,
// which imports verifier — a cycle Go refuses inside package verifier.

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStale is errStale: the view is behind an announced change.
var ErrStale = errStale

// Handle is v.handle: one attempt, decided and stored.
func Handle(v *Verifier, ctx context.Context, msg jetstream.Msg) error { return v.handle(ctx, msg) }

// Resyncing reports whether v waits for its view to catch up after a
// reconnect.
func Resyncing(v *Verifier) bool { return v.lease.resyncing.Load() }

// MarkCurrent makes v's view complete and its freshness lease held, as a
// running verifier's are.
func MarkCurrent(v *Verifier) {
	v.view.ready.Store(true)
	v.lease.renew(time.Since(v.lease.start))
}

// Require marks a project stale until the view holds revision rev of it.
func Require(v *Verifier, id string, rev uint64) { v.view.require(id, rev) }

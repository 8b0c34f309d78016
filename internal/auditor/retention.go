package auditor

import (
	"context"
	"errors"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/metrics"
)

// retentionTimeout bounds one enforcement of every table's retention.
const retentionTimeout = 2 * time.Minute

// keepRetention enforces the retention of each table once ClickHouse
// answers, then every RetentionEvery; a failed enforcement is logged and
// tried again after RetryMax. It never holds up an insert.
func (a *Auditor) keepRetention(ctx context.Context) {
	var wait time.Duration
	ttlSet := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		a.mu.Lock()
		conn := a.conn
		a.mu.Unlock()
		if conn == nil {
			// Not connected yet (or ClickHouse away): reachClickHouse and
			// the inserts report that.
			wait = min(time.Second, a.cfg.RetentionEvery)
			continue
		}
		if err := a.enforceRetention(ctx, conn, time.Now(), ttlSet); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn().Err(err).Dur("retry_in", a.cfg.RetryMax).Msg("could not enforce the audit's retention; trying again")
			wait = a.cfg.RetryMax
			continue
		}
		wait = a.cfg.RetentionEvery
	}
}

// enforceRetention applies each table's retention at now, on the server
// conn reaches: its TTL set where the server has TTLs, the month
// partitions past it dropped elsewhere (each logged and counted). A table
// in ttlSet has its TTL checked or set by this auditor already and is left
// alone: should the server write a TTL in a form TTLUpToDate does not
// know, the ALTER, which makes a current server rewrite every part, is
// still sent once per start, not every hour.
func (a *Auditor) enforceRetention(ctx context.Context, conn driver.Conn, now time.Time, ttlSet map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, retentionTimeout)
	defer cancel()
	v, err := audit.ServerVersion(ctx, conn)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range []struct {
		table     string
		retention time.Duration
	}{
		{audit.DecisionsTable.Name(), a.cfg.DecisionRetention},
		{audit.AdminTable.Name(), a.cfg.AdminRetention},
	} {
		if v.SupportsTTL() && ttlSet[t.table] {
			continue
		}
		ref := a.cfg.RetentionTable(t.table)
		keep := audit.FormatRetention(t.retention)
		res, err := audit.ApplyRetention(ctx, conn, v, ref, t.retention, now, func(id string) {
			metrics.AuditPartitionsDropped.WithLabelValues(t.table).Inc()
			a.log.Info().Str("table", ref.Name).Str("partition", id).Str("retention", keep).
				Msg("dropped a month of the audit entirely past its retention")
		})
		if res.TTL != "" {
			a.log.Info().Str("table", ref.Name).Str("retention", keep).Str("clickhouse", v.String()).Str("statement", res.TTL).
				Msg("audit retention set as a TTL")
		}
		if err == nil && v.SupportsTTL() {
			ttlSet[t.table] = true
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

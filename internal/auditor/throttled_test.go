package auditor_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// publishThrottled stores a count of throttled requests on subject with
// msgID as its Nats-Msg-Id; dup reports whether JetStream dropped it as a
// duplicate.
func publishThrottled(t *testing.T, js jetstream.JetStream, subject string, e events.Throttled, msgID string) (dup bool) {
	t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(events.HeaderMsgID, msgID)
	ack, err := js.PublishMsg(stacktest.Context(t, 10*time.Second), m)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ack.Duplicate
}

// TestAuditorStoresThrottledCountsOnce: the auditor copies the ingresses'
// counts of throttled requests into hissuno_throttled; a count published
// again with its id is stored once by JetStream, one published again after
// the duplicate window (another Nats-Msg-Id, the same id) is stored once
// too (the auditor looks up every batch of counts before it inserts), and
// so counted once by every query, and a count whose ingress is not its subject's is
// dead-lettered. An account limited to projects sees its projects' counts
// only.
func TestAuditorStoresThrottledCountsOnce(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.ClickHouseConn(t)
	ns, js := natsJS(t)
	const ingress = "ingress.i-1"
	minute := time.Now().UTC().Truncate(time.Minute)
	var all []events.Throttled
	var want uint64
	for i := range 20 {
		e := events.Throttled{SchemaVersion: events.SchemaVersion, ID: fmt.Sprintf("thr_test_%d", i), Ingress: ingress, Minute: minute,
			ProjectID: events.ThrottledUnknownProject, ClientIP: fmt.Sprintf("198.51.100.%d", i), Reason: events.ThrottleUnseenProject, Count: uint64(i + 1)}
		switch {
		case i < 5:
			e.ProjectID, e.Reason = "proj_a", events.ThrottleProject
		case i == 19:
			e.ProjectID, e.ClientIP, e.Overflow = "", "", true
		}
		all = append(all, e)
		want += e.Count
		if publishThrottled(t, js, events.ThrottledSubject(ingress), e, e.ID) {
			t.Fatalf("count %s dropped as a duplicate", e.ID)
		}
	}
	for _, e := range all[:5] {
		if !publishThrottled(t, js, events.ThrottledSubject(ingress), e, e.ID) {
			t.Errorf("count %s published again with its id was stored twice", e.ID)
		}
		publishThrottled(t, js, events.ThrottledSubject(ingress), e, e.ID+"-after-the-window")
	}
	forged := all[6]
	forged.ID, forged.Ingress = "thr_forged", "edge.gw-1"
	publishThrottled(t, js, events.ThrottledSubject(ingress), forged, forged.ID)

	startAuditor(t, t.Context(), ns, auditor.Config{ClickHouseDSN: dsn, BatchSize: 8, BatchWait: 20 * time.Millisecond})
	ctx := stacktest.Context(t, time.Minute)
	f := audit.Filter{Since: minute.Add(-time.Hour)}
	stacktest.Eventually(t, time.Minute, "every count stored, each once", func() error {
		b, _, err := auditor.Backlog(stacktest.Context(t, 10*time.Second), js, events.StreamThrottled, events.ConsumerAuditThrottled)
		if err != nil || b != 0 {
			return fmt.Errorf("a backlog of %d counts (%v)", b, err)
		}
		// Without FINAL: the auditor looks up every batch of counts (the
		// ingress republishes them under their ids) and stores each once.
		n, err := tryCount(conn, "SELECT count() FROM hissuno_throttled")
		if err != nil || n != uint64(len(all)) {
			return fmt.Errorf("%d rows stored (%v), want %d", n, err, len(all))
		}
		return nil
	})
	stats, err := audit.ThrottledStats(ctx, conn, f, audit.ThrottledByReason)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, s := range stats {
		total += s.Count
	}
	if total != want {
		t.Errorf("requests refused add up to %d (%v), want %d: a count added twice?", total, stats, want)
	}
	recs, err := audit.Throttled(ctx, conn, audit.Filter{Since: f.Since, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(all) {
		t.Errorf("%d counts listed, want %d", len(recs), len(all))
	}
	for _, r := range recs {
		if r.ID == forged.ID {
			t.Errorf("the forged count was stored: %+v", r)
		}
		if i := slices.IndexFunc(all, func(e events.Throttled) bool { return e.ID == r.ID }); i < 0 || all[i].Count != r.Count ||
			all[i].ClientIP != r.ClientIP || all[i].ProjectID != r.ProjectID || string(all[i].Reason) != r.Reason ||
			all[i].Overflow != r.Overflow || !r.Time.Equal(minute) || r.Ingress != ingress {
			t.Errorf("stored count %+v does not match what was published", r)
		}
	}
	if len(stacktest.ReadStream(t, js, events.StreamDeadLetter)) != 1 {
		t.Errorf("the forged count was not dead-lettered")
	}

	// Limited to proj_a: its 5 counts, never the unknown or overflow ones.
	scoped, err := audit.Throttled(ctx, conn, audit.Filter{Since: f.Since, Projects: []string{"proj_a", events.ThrottledUnknownProject}})
	if err != nil {
		t.Fatal(err)
	}
	if len(scoped) != 5 || slices.ContainsFunc(scoped, func(r audit.ThrottledRecord) bool { return r.ProjectID != "proj_a" }) {
		t.Errorf("an account limited to proj_a sees %+v", scoped)
	}
	byProject, err := audit.ThrottledStats(ctx, conn, f, audit.ThrottledByProject)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(byProject, audit.Stat{Key: audit.KeyOverflow, Count: 20}) || !slices.Contains(byProject, audit.Stat{Key: "proj_a", Count: 15}) {
		t.Errorf("by project: %v", byProject)
	}
}

// TestThrottledCopiesInConcurrentBatches: a count and the copy an ingress
// republished under another Nats-Msg-Id land in consecutive batches, which
// an auditor inserting several batches at once would look up and insert
// side by side, each finding the other not stored yet: every count must
// still be stored once.
func TestThrottledCopiesInConcurrentBatches(t *testing.T) {
	t.Parallel()
	dsn, conn := stacktest.ClickHouseConn(t)
	ns, js := natsJS(t)
	const ingress, batch, counts = "ingress.i-2", 4, 64
	minute := time.Now().UTC().Truncate(time.Minute)
	for first := 0; first < counts; first += batch {
		var group []events.Throttled
		for i := first; i < first+batch; i++ {
			group = append(group, events.Throttled{SchemaVersion: events.SchemaVersion, ID: fmt.Sprintf("thr_pair_%d", i), Ingress: ingress, Minute: minute,
				ProjectID: events.ThrottledUnknownProject, ClientIP: fmt.Sprintf("198.51.100.%d", i), Reason: events.ThrottleUnseenProject, Count: 1})
		}
		// A batch of counts, then a batch of their copies.
		for _, e := range group {
			publishThrottled(t, js, events.ThrottledSubject(ingress), e, e.ID)
		}
		for _, e := range group {
			publishThrottled(t, js, events.ThrottledSubject(ingress), e, e.ID+"-republished")
		}
	}
	startAuditor(t, t.Context(), ns, auditor.Config{ClickHouseDSN: dsn, BatchSize: batch, BatchWait: 20 * time.Millisecond, Inserts: 8})
	stacktest.Eventually(t, time.Minute, "every count stored", func() error {
		b, _, err := auditor.Backlog(stacktest.Context(t, 10*time.Second), js, events.StreamThrottled, events.ConsumerAuditThrottled)
		if err != nil || b != 0 {
			return fmt.Errorf("a backlog of %d counts (%v)", b, err)
		}
		return nil
	})
	n, err := tryCount(conn, "SELECT count() FROM hissuno_throttled")
	if err != nil || n != counts {
		t.Fatalf("%d rows stored (%v), want %d: a count and its copy were inserted side by side", n, err, counts)
	}
}

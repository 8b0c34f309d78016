package auditor_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// The drain benchmarks copy a fixed backlog of realistic decisions into a
// fresh database per iteration, in batches of the auditor's default size.
const (
	benchRows  = 50_000
	benchBatch = 5000
)

// benchEvents are benchRows decision events, JSON-encoded as verifiers
// publish them, over the last minute.
func benchEvents(b *testing.B) []events.Decision {
	b.Helper()
	start := time.Now().UTC().Add(-time.Minute)
	out := make([]events.Decision, benchRows)
	for i := range out {
		out[i] = stacktest.SampleDecision("bench", i, start.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

// fillStream publishes the events to a fresh JetStream server and returns
// it once every one is stored.
func fillStream(b *testing.B, ds []events.Decision) (*server.Server, jetstream.JetStream) {
	b.Helper()
	ns, js := natsJS(b)
	ctx := stacktest.Context(b, 5*time.Minute)
	for i, d := range ds {
		body, err := json.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		m := nats.NewMsg(events.SubjectDecisions)
		m.Data = body
		m.Header.Set(events.HeaderMsgID, d.DecisionID)
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatalf("publish %d: %v", i, err)
		}
		if i%2000 == 1999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("publishing the backlog timed out")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("publishing the backlog timed out")
	}
	s, err := js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if info.State.Msgs != benchRows {
		b.Fatalf("the decisions stream holds %d events, want %d", info.State.Msgs, benchRows)
	}
	return ns, js
}

// BenchmarkDrain measures how fast an auditor empties a backlog of
// benchRows decisions into ClickHouse: from Run until count() reaches them
// all (polled every 20 ms).
func BenchmarkDrain(b *testing.B) {
	ds := benchEvents(b)
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		dsn, conn := stacktest.MigratedClickHouse(b)
		ns, _ := fillStream(b, ds)
		a, err := auditor.New(auditor.Config{
			NATS: stacktest.Connect(b, ns), ClickHouseDSN: dsn, BatchSize: benchBatch, BatchWait: 50 * time.Millisecond,
		}, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- a.Run(ctx) }()
		deadline := start.Add(5 * time.Minute)
		for {
			if n, err := tryCount(conn, countRaw); err == nil && n >= benchRows {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the backlog did not drain within 5 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("Run: %v", err)
		}
		if n := stacktest.Count(b, conn, countFinal); n != benchRows {
			b.Fatalf("%d decisions in ClickHouse, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/elapsed.Seconds(), "rows/s")
}

// BenchmarkBareInsert is the ceiling BenchmarkDrain compares to: the same
// rows inserted straight into ClickHouse with clickhouse-go, in batches of
// the same size, with no JetStream in between.
func BenchmarkBareInsert(b *testing.B) {
	ds := benchEvents(b)
	rows := make([][]any, len(ds))
	for i, d := range ds {
		body, err := json.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		if rows[i], err = audit.DecisionsTable.Row(events.SubjectDecisions, body); err != nil {
			b.Fatal(err)
		}
	}
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		_, conn := stacktest.MigratedClickHouse(b)
		ctx := stacktest.Context(b, 5*time.Minute)
		b.StartTimer()
		start := time.Now()
		for off := 0; off < len(rows); off += benchBatch {
			batch, err := conn.PrepareBatch(ctx, "INSERT INTO hissuno_decisions ("+audit.DecisionColumns+")")
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rows[off:min(off+benchBatch, len(rows))] {
				if err := batch.Append(r...); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				b.Fatal(err)
			}
		}
		elapsed += time.Since(start)
		b.StopTimer()
		if n := stacktest.Count(b, conn, countRaw); n != benchRows {
			b.Fatalf("%d rows in ClickHouse, want %d", n, benchRows)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/elapsed.Seconds(), "rows/s")
}

package auditor_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/auditor"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/rs/zerolog"
)

// TestRunLeavesNoGoroutine: once the auditor's Run has returned, none of
// the goroutines it started (its consumer loops, the backlog watch, the
// ClickHouse dialer) is left.
func TestRunLeavesNoGoroutine(t *testing.T) {
	dsn := stacktest.ClickHouse(t)
	ns, js := natsJS(t)
	nc := stacktest.Connect(t, ns)
	// The connection's own request multiplexer (one subscription for every
	// request's answer, kept as long as the connection) starts with its
	// first request: before the snapshot, it is the connection's, not Run's.
	if _, err := nc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	noLeaks := stacktest.NoLeaks(t)
	a, err := auditor.New(auditor.Config{NATS: nc, ClickHouseDSN: dsn, BatchWait: 20 * time.Millisecond, BacklogEvery: 20 * time.Millisecond}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop := stacktest.Run(t, a.Run)
	publishN(t, js, "leak", 5)
	stacktest.Eventually(t, 30*time.Second, "ClickHouse reached", func() error { return a.Ready(context.Background()) })
	stop()
	noLeaks()
}

// TestReadyAnswersWhileClickHouseHangs: with ClickHouse an address that
// takes connections and never answers, /readyz still answers (not ready)
// within its 2 s deadline: the auditor's dial does not hold what readiness
// needs.
func TestReadyAnswersWhileClickHouseHangs(t *testing.T) {
	t.Parallel()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	var held []net.Conn
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never read, never answered
		}
	}()
	ns, _ := natsJS(t)
	r := startAuditor(t, context.Background(), ns, auditor.Config{ClickHouseDSN: "clickhouse://" + hole.Addr().String() + "/default"})
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		err := r.a.Ready(ctx)
		took := time.Since(start)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "ClickHouse") {
			t.Errorf("Ready %d with ClickHouse a black hole: %v, want not ready, naming ClickHouse", i, err)
		}
		if took > 2500*time.Millisecond {
			t.Fatalf("Ready %d took %s, past its 2 s deadline, while the dial hung", i, took.Round(time.Millisecond))
		}
		time.Sleep(300 * time.Millisecond) // the dial keeps hanging meanwhile
	}
}

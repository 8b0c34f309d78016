package health_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// smallDecisions runs an embedded JetStream server whose decisions stream
// holds 1 MiB, as bus.Ensure makes it, and returns a client of it.
func smallDecisions(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	js, err := jetstream.New(stacktest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Ensure(testCtx(t), js, bus.Topology{DecisionsMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return js
}

// fillTo publishes decisions nobody acknowledges (ClickHouse away) until the
// stream is at least fill full, and returns how many it holds.
func fillTo(t *testing.T, js jetstream.JetStream, fill float64) uint64 {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"decisionId":"dec_x","pad":%q}`, strings.Repeat("x", 600)))
	for {
		s, err := js.Stream(testCtx(t), events.StreamDecisions)
		if err != nil {
			t.Fatal(err)
		}
		f := bus.Fill(s.CachedInfo())
		if f >= fill {
			return s.CachedInfo().State.Msgs
		}
		n := 1 // close to the target, one at a time: never far past it
		if fill-f > 0.03 {
			n = 20
		}
		for range n {
			if _, err := js.Publish(testCtx(t), events.SubjectDecisions, body); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fillGauge reads hissuno_decisions_stream_fill_ratio from /metrics.
func fillGauge(t *testing.T) float64 {
	t.Helper()
	mux := http.NewServeMux()
	health.Mount(mux, &health.Checks{}, nil)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "hissuno_decisions_stream_fill_ratio "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no hissuno_decisions_stream_fill_ratio on /metrics")
	return 0
}

// TestDecisionsStream fills a decisions stream nobody drains and checks
// that readiness fails from 90 % on, before the stream is full, naming the
// fill, the backlog and what to do, and that the gauge follows. The cases
// share the metric: they do not run in parallel.
func TestDecisionsStream(t *testing.T) {
	tests := []struct {
		name string
		fill float64
		// maxMsgs, when set, limits the stream by messages instead.
		maxMsgs  int64
		wantFail bool
	}{
		{name: "empty", fill: 0},
		{name: "half full", fill: 0.5},
		{name: "89 % full", fill: 0.89},
		{name: "90 % full by bytes", fill: bus.DecisionsNearlyFull, wantFail: true},
		{name: "90 % full by messages", fill: bus.DecisionsNearlyFull, maxMsgs: 200, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := smallDecisions(t)
			if tt.maxMsgs > 0 {
				s, err := js.Stream(testCtx(t), events.StreamDecisions)
				if err != nil {
					t.Fatal(err)
				}
				cfg := s.CachedInfo().Config
				cfg.MaxMsgs = tt.maxMsgs
				if _, err := js.UpdateStream(testCtx(t), cfg); err != nil {
					t.Fatal(err)
				}
			}
			held := fillTo(t, js, tt.fill)
			// The consumer counts its pending messages a moment after they
			// are stored.
			stacktest.Eventually(t, 10*time.Second, "the auditor's consumer counting the backlog", func() error {
				c, err := js.Consumer(testCtx(t), events.StreamDecisions, events.ConsumerAuditDecisions)
				if err != nil {
					return err
				}
				if n := c.CachedInfo().NumPending; n != held {
					return fmt.Errorf("%d pending, want %d", n, held)
				}
				return nil
			})
			err := health.DecisionsStream(js)(testCtx(t))
			gauge := fillGauge(t)
			if gauge < tt.fill || gauge > tt.fill+0.01 {
				t.Errorf("hissuno_decisions_stream_fill_ratio %v, want %v", gauge, tt.fill)
			}
			if !tt.wantFail {
				if err != nil {
					t.Fatalf("check at %.0f %% fails: %v", 100*gauge, err)
				}
				return
			}
			if !errors.Is(err, health.ErrDecisionsNearlyFull) {
				t.Fatalf("check at %.0f %%: %v, want ErrDecisionsNearlyFull", 100*gauge, err)
			}
			for _, want := range []string{
				fmt.Sprintf("%.0f %% full", 100*gauge),
				fmt.Sprintf("%d wait for the auditor", held),
				"ClickHouse unreachable?",
				"refused with 503",
				"--decisions-max-bytes",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the check's message does not say %q: %v", want, err)
				}
			}
			// Not full yet: it said so before the stream refuses decisions.
			if _, err := js.Publish(testCtx(t), events.SubjectDecisions, []byte(`{}`)); err != nil {
				t.Errorf("the stream refused a decision when the check failed: it failed too late: %v", err)
			}
		})
	}
}

// TestDecisionsStreamNamesAMissingStream: the check fails, naming the
// stream, when there is none.
func TestDecisionsStreamNamesAMissingStream(t *testing.T) {
	t.Parallel()
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	js, err := jetstream.New(stacktest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	err = health.DecisionsStream(js)(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), events.StreamDecisions) {
		t.Errorf("check without a decisions stream: %v, want an error naming %s", err, events.StreamDecisions)
	}
}

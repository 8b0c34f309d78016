package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestReadinessWarnsBeforeTheDecisionsStreamIsFull: with no auditor
// storing decisions (hissuno dev without ClickHouse, or ClickHouse down for
// long) the backlog fills the decisions stream. /readyz fails, naming the
// "decisions stream", once it is 90 % full, while decisions are still
// made, and /metrics shows the fill.
func TestReadinessWarnsBeforeTheDecisionsStreamIsFull(t *testing.T) {
	t.Parallel()
	// It fills the stream with unknown projectIds from one address, which
	// the rate limits exist to stop: off.
	st := stacktest.Start(t, stack.Config{Topology: bus.Topology{DecisionsMaxBytes: 1 << 20}, Ingress: ingress.Config{Limits: ingress.NoLimits}})
	nc := stacktest.ConnectAs(t, st, stacktest.Superuser)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + st.HTTPAddr
	client := &http.Client{Timeout: 20 * time.Second}
	connect := func(i int) (int, error) {
		resp, err := client.Post(base+"/v1/widget/connect", "application/json", strings.NewReader(fmt.Sprintf(`{"projectId":"backlog-%d"}`, i)))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	fill := func() float64 {
		info, err := streamInfo(t, js, events.StreamDecisions)
		if err != nil {
			t.Fatal(err)
		}
		return bus.Fill(info)
	}
	if code, body := get(t, client, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with an empty stream: %d %s", code, body)
	}

	sent := 0
	for f := fill(); f < bus.DecisionsNearlyFull; f = fill() {
		n := 1 // close to the mark one at a time, never far past it
		if f < bus.DecisionsNearlyFull-0.05 {
			n = 16
		}
		var wg sync.WaitGroup
		codes := make([]int, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], errs[i] = connect(sent + i)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || codes[i] != http.StatusUnauthorized {
				t.Fatalf("request %d at %.0f %% full: %d %v, want 401", sent+i, 100*f, codes[i], errs[i])
			}
		}
		sent += n
		if f > 0.5 && f < 0.85 {
			if code, body := get(t, client, base+"/readyz"); code != http.StatusOK {
				t.Fatalf("/readyz at %.0f %% full: %d %s, want ready", 100*f, code, body)
			}
		}
	}
	code, body := get(t, client, base+"/readyz")
	var ready struct {
		Status  string            `json:"status"`
		Failing map[string]string `json:"failing"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil {
		t.Fatalf("/readyz: %v: %s", err, body)
	}
	msg := ready.Failing[health.DecisionsStreamCheck]
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "% full") || !strings.Contains(msg, "refused with 503") {
		t.Fatalf("/readyz at %.0f %% full, after %d decisions: %d %s, want 503 naming the %q check", 100*fill(), sent, code, body, health.DecisionsStreamCheck)
	}
	t.Logf("/readyz: %s", msg)
	// It said so before the stream is full: decisions are still made.
	if code, err := connect(-1); err != nil || code != http.StatusUnauthorized {
		t.Errorf("a request once /readyz failed: %d %v, want 401 (the stream is not full yet)", code, err)
	}
	code, metricsBody := get(t, client, base+"/metrics")
	gauge := -1.0
	for _, line := range strings.Split(metricsBody, "\n") {
		if v, ok := strings.CutPrefix(line, "hissuno_decisions_stream_fill_ratio "); ok {
			gauge, _ = strconv.ParseFloat(v, 64)
		}
	}
	if code != http.StatusOK || gauge < bus.DecisionsNearlyFull {
		t.Errorf("/metrics: %d, hissuno_decisions_stream_fill_ratio %v, want at least %v", code, gauge, bus.DecisionsNearlyFull)
	}
}

// get fetches a URL and returns its status and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testContext is a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// streamInfo is a stream's configuration and state now.
func streamInfo(t *testing.T, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	t.Helper()
	s, err := js.Stream(testContext(t, 10*time.Second), name)
	if err != nil {
		return nil, err
	}
	return s.Info(testContext(t, 10*time.Second))
}

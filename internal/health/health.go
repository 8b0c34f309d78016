// Package health serves the liveness, readiness and metrics endpoints every
// role exposes: /healthz answers as long as the process runs; /readyz runs
// the readiness checks the roles registered (NATS connected, streams, the
// auditor's consumer and KV present, the decisions stream not nearly full,
// the verifier's project view complete, ClickHouse reachable for the
// auditor) and answers 503 naming the failing ones; /metrics is Prometheus.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports nil when its part is ready.
type Check func(ctx context.Context) error

// Checks is a set of named readiness checks; safe for concurrent use.
type Checks struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// Add registers a check under a name; a later Add with the same name
// replaces it.
func (c *Checks) Add(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[string]Check{}
	}
	c.checks[name] = check
}

// Run runs every check and returns the failures by name.
func (c *Checks) Run(ctx context.Context) map[string]error {
	c.mu.RLock()
	names := make([]string, 0, len(c.checks))
	for n := range c.checks {
		names = append(names, n)
	}
	c.mu.RUnlock()
	sort.Strings(names)
	failed := map[string]error{}
	for _, n := range names {
		c.mu.RLock()
		check := c.checks[n]
		c.mu.RUnlock()
		if err := check(ctx); err != nil {
			failed[n] = err
		}
	}
	return failed
}

// NATSConnected is a check that the connection is up.
func NATSConnected(nc *nats.Conn) Check {
	return func(context.Context) error {
		if nc.IsConnected() {
			return nil
		}
		return errNotConnected
	}
}

type checkError string

func (e checkError) Error() string { return string(e) }

const errNotConnected = checkError("NATS not connected")

// Mount adds /healthz, /readyz and /metrics to mux.
func Mount(mux *http.ServeMux, checks *Checks, gatherer prometheus.Gatherer) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		failed := checks.Run(ctx)
		if len(failed) == 0 {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		body := map[string]any{"status": "not ready"}
		reasons := map[string]string{}
		for n, err := range failed {
			reasons[n] = err.Error()
		}
		body["failing"] = reasons
		writeJSON(w, http.StatusServiceUnavailable, body)
	})
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

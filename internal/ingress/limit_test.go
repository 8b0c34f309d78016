package ingress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/clientip"
	"github.com/hissuno/widgetauth/internal/throttle"
)

// BenchmarkThrottled is the ingress's whole work on a request over its
// client's rate: the client address, the bucket, the 429.
func BenchmarkThrottled(b *testing.B) {
	in := &Ingress{cfg: Config{Clock: time.Now}, ips: clientip.New(nil), rollup: newRollup(DefaultRollupKeys),
		limits: newLimiter(Limits{IP: throttle.Limit{Rate: 1e-9, Burst: 1}, Project: throttle.Limit{Rate: -1}, Unseen: throttle.Limit{Rate: -1}, Keys: 1000})}
	body := []byte(`{"projectId":"proj_flood"}`)
	r := httptest.NewRequest(http.MethodPost, ConnectPath, nil)
	r.RemoteAddr = "198.51.100.7:4242"
	r.Header.Set("Origin", "https://flood.example")
	w := &discardWriter{h: http.Header{}}
	in.serveConnect(w, r) // spends the one token
	b.ReportAllocs()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.h = http.Header{}
		in.serveConnect(w, r)
		if w.status != http.StatusTooManyRequests {
			b.Fatalf("status %d", w.status)
		}
	}
}

type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(s int)           { d.status = s }

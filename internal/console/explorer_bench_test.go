package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// explorerDecisions is how many decisions BenchmarkAuditExplorer fills the
// last 24 hours with; HISSUNO_BENCH_DECISIONS changes it.
const explorerDecisions = 1_000_000

// BenchmarkAuditExplorer times what the audit explorer's first page asks
// the console for over a 24 h window holding a million decisions: the
// first page of decisions, the chart's series, top reasons and top refused
// origins, each alone and all four at once as the page sends them. The
// time is the console's answer through loopback HTTP (ClickHouse included),
// as the browser waits for it.
//
//	go test ./internal/console -run '^$' -bench AuditExplorer -benchtime 20x
func BenchmarkAuditExplorer(b *testing.B) {
	n := explorerDecisions
	if s := os.Getenv("HISSUNO_BENCH_DECISIONS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("HISSUNO_BENCH_DECISIONS=%q: want a positive count", s)
		}
	}
	e := newEnv(b)
	fillDecisions(b, e, n)
	c := e.signIn(b, "bench@example.com", account.RoleSecurity)
	now := time.Now().UTC()
	window := "since=" + url.QueryEscape(now.Add(-24*time.Hour).Format(time.RFC3339)) + "&until=" + url.QueryEscape(now.Add(time.Minute).Format(time.RFC3339))
	// What static/js/pages/audit.js asks for on a desktop's first view of
	// the last 24 hours: a page of 50, the hourly chart, the top reasons
	// and the top refused origins.
	pages := []struct{ name, path string }{
		{"decisions", "/api/v1/audit/decisions?limit=50&" + window},
		{"series", "/api/v1/audit/series?bucket=hour&split=decision&" + window},
		{"top-reasons", "/api/v1/audit/top?by=reason&n=10&" + window},
		{"top-refused-origins", "/api/v1/audit/top?by=origin&decision=refused&n=10&" + window},
	}
	get := func(b *testing.B, path string) {
		req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range c.headers {
			req.Header[k] = v
		}
		res, err := c.hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, res.StatusCode)
		}
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				get(b, p.path)
			}
		})
	}
	b.Run("first-page", func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			for _, p := range pages {
				wg.Go(func() { get(b, p.path) })
			}
			wg.Wait()
		}
	})
}

// fillDecisions inserts n decisions spread over the last 24 hours into the
// env's ClickHouse with one INSERT … SELECT: 100 projects, 20,000 users, 50
// origins, three accepts in five.
func fillDecisions(b *testing.B, e *env, n int) {
	b.Helper()
	q := fmt.Sprintf(`INSERT INTO hissuno_decisions (decision_id, attempt_id, time, time_us, received_at, project_id, decision, reason,
		message, session, user_id, user_verified, user_metadata, claimed_user_id, origin, token_fingerprint, key_version, skew_seconds,
		verifier, ingress, latency_us, client_ip, user_agent)
	SELECT concat('dec_bench_', toString(number)), concat('att_bench_', toString(number)), toDateTime(now() - intDiv(number * 86000, %[1]d)),
		number %% 1000000, toDateTime(now() - intDiv(number * 86000, %[1]d)), concat('proj_', toString(number %% 100)),
		['accept','accept','accept','unauthorized','origin_blocked'][number %% 5 + 1],
		['','','','token_expired','origin_not_allowed'][number %% 5 + 1], '',
		['authenticated','anonymous','authenticated','',''][number %% 5 + 1], concat('u-', toString(number %% 20000)), number %% 5 = 0,
		'{"plan":"pro"}', '', concat('https://site', toString(number %% 50), '.example'), 'abcdef0123456789', 1, 0,
		'verifier-1', 'ingress-1', 800, '10.0.0.1', 'Mozilla/5.0 (X11; Linux x86_64)'
	FROM numbers(%[1]d)`, n)
	start := time.Now()
	if err := e.ch.Exec(stacktest.Context(b, 10*time.Minute), q); err != nil {
		b.Fatalf("fill %d decisions: %v", n, err)
	}
	b.Logf("filled %d decisions in %s", n, time.Since(start).Round(time.Millisecond))
}

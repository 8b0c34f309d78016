package console_test

// The audit API over many decisions: pages that neither repeat nor skip a
// decision while others are stored, and exports of 100,000 decisions
// streamed in bounded memory.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestDecisionPagesUnderInserts pages through 1,500 decisions 100 at a
// time while, between pages, newer decisions, late ones (older than the
// pages read, and among those to come) and copies of stored ones (a
// redelivered batch) are stored, and widgets connect through the ingress
// all along: every decision stored before the first page is listed
// exactly once, no decision twice, every page newest first after the one
// before.
func TestDecisionPagesUnderInserts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withBatchWait(20*time.Millisecond))
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	project, key := owner.createProject(t, "Busy", nil)

	const seeded, limit = 1500, 100
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	decision := func(run string, i int, at time.Time) events.Decision {
		d := stacktest.SampleDecision(run, i, at)
		d.ProjectID = project
		return d
	}
	var seed []events.Decision
	for i := range seeded {
		// Pairs share a microsecond: the id orders them.
		seed = append(seed, decision("seed", i, start.Add(time.Duration(i/2)*2*time.Second)))
	}
	e.insertDecisions(t, seed...)

	// Widgets connect through the ingress while the test pages.
	var tokens []string
	for i := range 5 {
		tokens = append(tokens, token(t, key, "u-live-"+strconv.Itoa(i), nil))
	}
	// Each page read lets them connect three times more, while the next
	// page is asked for.
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan struct{}, 100)
	var wg sync.WaitGroup
	var live []string
	var liveErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			if i%3 == 0 {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
			a, err := e.tryConnect(ctx, widgetReq{project: project, token: tokens[i%len(tokens)], origin: "https://busy.example"}, events.OutcomeAccept, "")
			if err != nil {
				if ctx.Err() == nil {
					liveErr = err
				}
				return
			}
			live = append(live, a.DecisionID)
		}
	})
	stopLive := func() {
		cancel()
		wg.Wait()
		if liveErr != nil {
			t.Errorf("a widget connecting while the test paged: %v", liveErr)
			liveErr = nil
		}
	}
	t.Cleanup(stopLive)

	// What was stored before the first page.
	since := start.Add(-time.Minute)
	before := storedIDs(t, e, project, since)
	if len(before) < seeded {
		t.Fatalf("%d decisions stored before paging, want at least %d", len(before), seeded)
	}

	seen := map[string]int{}
	var last audit.Record
	late := 0
	cursor := ""
	for page := 0; ; page++ {
		var p audit.Page
		owner.do(t, http.MethodGet, "/api/v1/audit/decisions"+query("project", project, "since", rfc3339(since), "limit", strconv.Itoa(limit), "cursor", cursor), nil).
			want(t, http.StatusOK).decode(t, &p)
		if len(p.Records) > limit {
			t.Fatalf("page %d holds %d decisions, over the limit %d", page, len(p.Records), limit)
		}
		for i, r := range p.Records {
			seen[r.DecisionID]++
			if (page > 0 || i > 0) && !newer(last, r) {
				t.Errorf("page %d, decision %d: %s at %s does not follow %s at %s, newest first", page, i, r.DecisionID, r.Time, last.DecisionID, last.Time)
			}
			last = r
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
		tick <- struct{}{}

		// Between pages: a newer decision, late ones on either side of
		// the cursor, and copies of stored ones still to come.
		pos := p.Records[len(p.Records)-1].Time
		var more []events.Decision
		more = append(more, decision(fmt.Sprintf("newer%d", page), 0, time.Now()))
		for j, at := range []time.Time{pos.Add(time.Second), pos.Add(-time.Second), pos.Add(-10 * time.Minute), pos} {
			if at.After(start) {
				more = append(more, decision(fmt.Sprintf("late%d", page), j, at))
				late++
			}
		}
		for j := 1; j <= 5; j++ {
			if k := seeded - 1 - (page+1)*limit - j*7; k >= 0 {
				more = append(more, seed[k])
			}
		}
		e.insertDecisions(t, more...)
	}
	stopLive()

	var missing, twice []string
	for _, id := range before {
		if seen[id] != 1 {
			missing = append(missing, id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	if len(missing) > 0 || len(twice) > 0 {
		t.Errorf("of %d decisions stored before the first page, %d not listed once (%v); %d listed twice (%v)", len(before), len(missing), head(missing), len(twice), head(twice))
	}
	t.Logf("paged %d decisions (%d stored before the first page; %d late and %d widget decisions stored while paging)", len(seen), len(before), late, len(live))
	if len(seen) <= len(before) {
		t.Errorf("the pages list no decision stored while paging: the test stored none where pages were still to come")
	}
}

// newer reports whether a comes before b in the pages' order: time, then
// id, descending.
func newer(a, b audit.Record) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	return a.DecisionID > b.DecisionID
}

// storedIDs reads from ClickHouse the ids of a project's decisions since a
// time.
func storedIDs(t testing.TB, e *env, project string, since time.Time) []string {
	t.Helper()
	rows, err := e.ch.Query(stacktest.Context(t, 30*time.Second), "SELECT DISTINCT decision_id FROM hissuno_decisions WHERE project_id = ? AND time >= toDateTime(?)", project, since.Unix())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestExport100kStreamed exports 100,000 decisions through the HTTP API,
// as CSV and as JSON lines, read as they arrive: every decision once, in
// order, and the process's heap (the console serving, the test reading)
// grows by a small bound while the answer streams, far below what its
// records take when kept. Not parallel: it measures the
// heap, which tests running beside it would grow.
func TestExport100kStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("exports 100,000 decisions: not with -short")
	}
	e := newEnv(t)
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	const total = 100_000
	const project = "proj_export"
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	began := time.Now()
	insertBulk(t, e, project, base, total)
	if n := stacktest.Count(t, e.ch, "SELECT count() FROM hissuno_decisions FINAL WHERE project_id = ?", project); n != total {
		t.Fatalf("%d decisions stored, want %d", n, total)
	}
	t.Logf("stored %d decisions in %s", total, time.Since(began).Round(time.Millisecond))

	q := query("project", project, "since", rfc3339(base.Add(-time.Minute)))
	kept := keptRecords(t, e, audit.Filter{ProjectID: project, Since: base.Add(-time.Minute)})
	if kept <= 2*(32<<20) {
		t.Fatalf("keeping the records takes %.1f MiB, under twice the bound: the test would prove nothing", mib(kept))
	}
	for _, tc := range []struct {
		format string
		// id finds the decision id in a line.
		id     func(line []byte) string
		header bool
	}{
		{"csv", func(l []byte) string { id, _, _ := bytes.Cut(l, []byte(",")); return string(id) }, true},
		{"json", func(l []byte) string {
			_, rest, _ := bytes.Cut(l, []byte(`{"decisionId":"`))
			id, _, _ := bytes.Cut(rest, []byte(`"`))
			return string(id)
		}, false},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			baseline, peak := ms.HeapAlloc, ms.HeapAlloc
			began := time.Now()
			rows, size := 0, 0
			r, trailer := owner.stream(t, "/api/v1/audit/export"+q+"&format="+tc.format, func(body io.Reader) error {
				br := bufio.NewReaderSize(body, 64<<10)
				for line := 0; ; line++ {
					l, err := br.ReadSlice('\n')
					if err == io.EOF && len(l) == 0 {
						return nil
					}
					if err != nil {
						return fmt.Errorf("line %d: %w", line, err)
					}
					size += len(l)
					if tc.header && line == 0 {
						if want := slices.Concat(bytes.Join(toBytes(audit.CSVHeader()), []byte(",")), []byte("\n")); !bytes.Equal(l, want) {
							return fmt.Errorf("header %q, want %q", l, want)
						}
						continue
					}
					// Newest first: the bulk's numbers descending.
					if got, want := tc.id(l), bulkID(total-1-rows); got != want {
						return fmt.Errorf("row %d is %s, want %s: %q", rows, got, want, l)
					}
					if rows++; rows%1000 == 0 {
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapAlloc)
					}
				}
			})
			r.want(t, http.StatusOK)
			streamed := peak - baseline
			t.Logf("%s: %d decisions, %.1f MiB, in %s; heap peak %.1f MiB over the baseline of %.1f MiB",
				tc.format, rows, mib(uint64(size)), time.Since(began).Round(time.Millisecond), mib(streamed), mib(baseline))
			if rows != total || trailer.Get("X-Hissuno-Truncated") != "false" || trailer.Get("X-Hissuno-Error") != "" {
				t.Fatalf("%s export: %d rows, trailers %v; want %d, not truncated", tc.format, rows, trailer, total)
			}
			// About 17 MiB measured, most of it garbage the GC has not
			// collected yet (the audit's blocks of rows, the lines written):
			// the bound of the audit's own export test.
			const bound = 32 << 20
			if streamed > bound || streamed > kept/2 {
				t.Errorf("the heap grew by %.1f MiB while %s streamed, over %.0f MiB or half of the %.1f MiB its records take when kept: the export keeps rows",
					mib(streamed), tc.format, mib(bound), mib(kept))
			}
		})
	}
}

// keptRecords is what the records of the filter take on the heap when
// kept, as an export that held its rows would hold them.
func keptRecords(t *testing.T, e *env, f audit.Filter) uint64 {
	t.Helper()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapAlloc
	var kept []audit.Record
	if _, err := audit.ExportDecisions(stacktest.Context(t, 2*time.Minute), e.ch, f, audit.MaxPage*1000, func(r audit.Record) error {
		kept = append(kept, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	size := ms.HeapAlloc - min(baseline, ms.HeapAlloc)
	t.Logf("the %d records kept take %.1f MiB", len(kept), mib(size))
	runtime.KeepAlive(kept)
	return size
}

// bulkID is the id of the bulk's decision number i.
func bulkID(i int) string { return fmt.Sprintf("dec_bulk_%07d", i) }

// insertBulk stores n decisions of a project directly in ClickHouse, made
// by ClickHouse itself (INSERT … SELECT from system.numbers), 36 ms apart
// from base: decision number i is bulkID(i), a quarter each authenticated
// accepts with metadata, anonymous accepts, bad signatures and blocked
// origins, with realistic text in every column.
func insertBulk(t testing.TB, e *env, project string, base time.Time, n int) {
	t.Helper()
	const q = `INSERT INTO hissuno_decisions (` + audit.DecisionColumns + `)
SELECT
    concat('dec_bulk_', substring(toString(10000000 + number), 2)) AS decision_id,
    concat('att_bulk_', substring(toString(10000000 + number), 2)),
    toDateTime(? + intDiv(number * 36, 1000)) AS time,
    toUInt32((number * 36) % 1000 * 1000),
    time,
    ?,
    ['accept', 'unauthorized', 'origin_blocked', 'accept'][number % 4 + 1],
    ['', 'token_bad_signature', 'origin_not_allowed', ''][number % 4 + 1],
    ['', 'the token''s signature does not verify with the project''s current key; if the key was rotated, mint tokens with the new key',
        'origin not allowed: https://evil.example is not in the project''s allowed origins', ''][number % 4 + 1],
    ['authenticated', '', '', 'anonymous'][number % 4 + 1],
    if(number % 4 = 0, concat('user-', toString(number % 37)), if(number % 4 = 3, concat('visitor-', toString(number)), '')),
    toUInt8(number % 4 = 0),
    if(number % 4 = 0, concat('{"email":"user-', toString(number % 37), '@example.com","plan":"pro"}'), ''),
    '',
    if(number % 4 = 2, 'https://evil.example', 'https://app.example.com'),
    if(number % 4 < 2, lower(hex(toUInt64(number * 2654435761))), ''),
    toUInt32(number % 4 = 0),
    toInt64(0),
    'verifier-vm-347f01',
    'ingress.ingress-vm-4726c3',
    toUInt64(300 + number % 900),
    '203.0.113.7',
    'Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0'
FROM system.numbers
LIMIT ?`
	if err := e.ch.Exec(stacktest.Context(t, 2*time.Minute), q, base.Unix(), project, n); err != nil {
		t.Fatalf("insert %d decisions: %v", n, err)
	}
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

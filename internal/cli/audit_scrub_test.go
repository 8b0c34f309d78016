package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// TestAuditScrubsSecrets sends widget requests whose every field a client
// chooses (Origin, projectId, userId, userMetadata keys and values,
// User-Agent, a token's claims) carries a secret key or a JWT, and admin
// commands whose actor, name and user do; then it reads every column of
// every row in ClickHouse: neither secret is stored. Nor does an HTTP answer
// carry one. The decisions are still made on the raw values.
func TestAuditScrubsSecrets(t *testing.T) {
	t.Parallel()
	st, dsn := auditStack(t)
	const leakedKey = "sk_live_LeakedKey0123456789abcdefghijklmnopqrstuvwxyzAB"
	leakedJWT := mintToken(t, "sk_live_another-projects-key-0123456789abcdef", "someone")
	const shortJWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ4In0.c2lnbmF0dXJlcw"
	secrets := []string{leakedKey, leakedKey[len("sk_live_"):], leakedJWT, shortJWT}
	secrets = append(secrets, strings.Split(leakedJWT, ".")...)

	openID, _ := createProject(t, st, "--name", "Shop "+leakedKey, "--reason", "ops "+leakedJWT)
	strictID, strictKey := createProject(t, st, "--require-token", "--reason", leakedKey)
	listedID, _ := createProject(t, st, "--origin", "https://shop.example")
	secretUser := "u-" + leakedKey
	now := time.Now()
	tok := stacktest.Mint(t, strictKey, widgettoken.For(secretUser, map[string]string{"note": leakedJWT, leakedKey[:40]: "v"}, now, time.Hour))
	userAgent := "Mozilla/5.0 (" + leakedKey + "; " + leakedJWT + ")"

	type request struct {
		name       string
		body       map[string]any
		origin     string
		wantStatus int
		wantReason string
	}
	requests := []request{
		{name: "anonymous", body: map[string]any{"projectId": openID, "userId": "visitor " + leakedKey,
			"userMetadata": map[string]string{"jwt": leakedJWT, leakedKey[:40]: leakedKey}},
			origin: "https://" + leakedJWT + ".example", wantStatus: 200},
		{name: "unknown project named by a key", body: map[string]any{"projectId": leakedKey}, origin: "https://shop.example",
			wantStatus: 401, wantReason: "unknown_project"},
		// A projectId is at most 64 bytes: a JWT that fits is decided and
		// stored scrubbed; a longer one is refused (400) and never stored.
		{name: "unknown project named by a JWT", body: map[string]any{"projectId": shortJWT}, origin: "https://shop.example",
			wantStatus: 401, wantReason: "unknown_project"},
		{name: "authenticated, claims holding secrets, another userId claimed", body: map[string]any{"projectId": strictID, "widgetToken": tok, "userId": leakedJWT},
			origin: leakedKey, wantStatus: 200},
		{name: "origin not allowed", body: map[string]any{"projectId": listedID, "userId": leakedJWT}, origin: "https://" + leakedKey + ".example",
			wantStatus: 403, wantReason: "origin_not_allowed"},
	}
	client := &http.Client{Timeout: 20 * time.Second}
	send := func(r request) {
		t.Helper()
		b, _ := json.Marshal(r.body)
		req, err := http.NewRequest(http.MethodPost, "http://"+st.HTTPAddr+"/v1/widget/connect", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", r.origin)
		req.Header.Set("User-Agent", userAgent)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != r.wantStatus || out.Reason != r.wantReason {
			t.Fatalf("%s: answered %d %s, want %d %q", r.name, resp.StatusCode, raw, r.wantStatus, r.wantReason)
		}
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Errorf("%s: the HTTP answer holds a secret (%.12s…): %s", r.name, s, raw)
			}
		}
	}
	for _, r := range requests {
		send(r)
	}
	// A projectId over 64 bytes (a whole JWT) is refused before anything is
	// published: nothing of it is ever stored.
	send(request{name: "a projectId that is a whole JWT", body: map[string]any{"projectId": leakedJWT}, origin: "https://shop.example",
		wantStatus: 400})
	// The decision is made on the raw userId: revoking it refuses the token.
	if r := run(t, append([]string{"project", "revoke-user", strictID, "--user", secretUser, "--reason", "sec " + leakedJWT}, stacktest.NATSArgs(t, st, events.SourceAdmin)...)...); r.code != 0 {
		t.Fatalf("project revoke-user\n%s", r)
	}
	revoked := request{name: "revoked", body: map[string]any{"projectId": strictID, "widgetToken": tok}, origin: "https://shop.example",
		wantStatus: 401, wantReason: "token_revoked"}
	send(revoked)

	conn := openClickHouse(t, dsn)
	waitDecisions(t, conn, len(requests)+1)
	stacktest.Eventually(t, 30*time.Second, "4 admin events in ClickHouse", func() error {
		n, err := countRows(conn, "SELECT count() FROM hissuno_admin_events FINAL")
		if err != nil {
			return err
		}
		if n < 4 {
			return fmt.Errorf("%d admin events stored", n)
		}
		return nil
	})
	for _, table := range []string{"hissuno_decisions", "hissuno_admin_events"} {
		rows := rowsAsText(t, conn, table)
		for _, row := range rows {
			for _, s := range secrets {
				if strings.Contains(row, s) {
					t.Errorf("a row of %s holds a secret (%.12s…):\n%s", table, s, row)
				}
			}
		}
		joined := strings.Join(rows, "\n")
		for _, want := range []string{"sk_live_[redacted]", "[token redacted]"} {
			if !strings.Contains(joined, want) {
				t.Errorf("no row of %s shows %q: the secrets were not where the test put them\n%s", table, want, joined)
			}
		}
	}
	// What remains is still the record.
	recs, err := audit.Decisions(t.Context(), conn, audit.Filter{Since: now.Add(-time.Hour), Reason: "token_revoked"})
	if err != nil || len(recs) != 1 || recs[0].ProjectID != strictID {
		t.Errorf("the token_revoked decision: %+v, %v", recs, err)
	}
}

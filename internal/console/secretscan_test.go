package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// secretSet is every secret of a scenario, in each form it could leak in,
// named by what it is.
type secretSet struct {
	names  []string
	values []string
}

func (s *secretSet) add(name string, forms ...string) {
	for _, f := range forms {
		if len(f) < 8 {
			panic(fmt.Sprintf("secret %s: a form of %d characters would match by chance", name, len(f)))
		}
		s.names = append(s.names, name)
		s.values = append(s.values, f)
	}
}

// password adds a password.
func (s *secretSet) password(name, pw string) { s.add(name, pw) }

// session adds a session cookie's value and its 32 bytes in hex.
func (s *secretSet) session(name, value string) {
	s.add(name, value)
	if b, err := base64.RawURLEncoding.DecodeString(value); err == nil {
		s.add(name+" (hex)", hex.EncodeToString(b))
	}
}

// token adds an API token, its payload, and its 32 secret bytes in hex
// and base64, as the payload's base62 number holds them after the 12
// bytes of the id.
func (s *secretSet) token(name, tok string) {
	payload := tok[4:64]
	s.add(name, tok, tok[4:], payload)
	if n, ok := new(big.Int).SetString(payload, 62); ok && n.BitLen() <= 8*44 {
		b := make([]byte, 44)
		n.FillBytes(b)
		secret := b[12:]
		s.add(name+" (secret bytes)", hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)[:40], base64.RawURLEncoding.EncodeToString(secret)[:40])
	}
}

// key adds a secret key, with and without its prefix.
func (s *secretSet) key(name, key string) {
	s.add(name, key, strings.TrimPrefix(key, "sk_live_"))
}

// jwt adds a widget token: whole, its claims and signature, its
// signature alone (its header is the same for every token: no secret).
func (s *secretSet) jwt(name, tok string) {
	parts := strings.Split(tok, ".")
	s.add(name, tok, parts[1]+"."+parts[2], parts[2])
}

// find names the secrets text holds.
func (s *secretSet) find(text string) []string {
	var out []string
	for i, v := range s.values {
		if strings.Contains(text, v) && !slices.Contains(out, s.names[i]) {
			out = append(out, s.names[i])
		}
	}
	return out
}

// wellFormedToken is an API token of the right form, checksum included,
// that the console never made.
func wellFormedToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 44)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	payload := new(big.Int).SetBytes(b).Text(62)
	payload = strings.Repeat("0", 60-len(payload)) + payload
	return "hst_" + payload + checksum62(payload)
}

// widgetConnect sends a widget's connection attempt to the stack's ingress
// and returns its status.
func (e *env) widgetConnect(t testing.TB, body map[string]any, origin, userAgent string) int {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(stacktest.Context(t, 30*time.Second), http.MethodPost, "http://"+e.st.HTTPAddr+ingress.ConnectPath, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", origin)
	req.Header.Set("User-Agent", userAgent)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestNoSecretInLogsAuditOrBuckets runs a whole scenario through the
// console and the widget path (sign-ins that work, fail and carry
// secrets in the wrong field; accounts made with one-time passwords, a
// password changed and one reset; API tokens made, used, revoked; projects
// made and rotated, their keys used to mint widget tokens that pass and
// fail; a cross-origin refusal; secrets planted in user agents, origins and
// reasons), then reads every log line of every role, every row of every
// ClickHouse table of the test database, and every revision of every
// entry of the console's buckets, of the projects bucket and of the admin
// stream: none holds a password, a session id, an API token, a secret key
// or a widget token, in any form it was known in. The planted ones are
// there, scrubbed, where the test put them.
func TestNoSecretInLogsAuditOrBuckets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPromptAudit())
	var secrets secretSet

	// Secrets a client puts where none belongs.
	const plantedKey = "sk_live_PlantedKey0123456789abcdefghijklmnopqrstuvwxyzAB"
	plantedJWT := stacktest.Mint(t, "sk_live_PlantedSigningKey0123456789abcdefghijkl", widgettoken.For("planted-user", nil, time.Now(), time.Hour))
	plantedToken := wellFormedToken(t)
	secrets.key("a planted secret key", plantedKey)
	secrets.jwt("a planted widget token", plantedJWT)
	secrets.token("a planted API token", plantedToken)
	agent := "Mozilla/5.0 (X11; " + plantedKey + "; " + plantedJWT + "; " + plantedToken + ")"
	browser := func() *client {
		c := e.browser(t)
		c.headers.Set("User-Agent", agent)
		return c
	}
	signIn := func(c *client, name, email, password string) {
		t.Helper()
		r := c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password}).want(t, http.StatusOK)
		_, ck := r.setCookie(t, e.cookieName())
		secrets.session(name+"'s session", ck.Value)
	}

	// Accounts, sign-ins, a password changed and one reset.
	ownerPW := e.account(t, "owner@example.com", account.RoleOwner)
	secrets.password("the owner's password", ownerPW)
	owner := browser()
	signIn(owner, "the owner", "owner@example.com", ownerPW)
	const typedAsEmail = "the owner's password, typed as the email"
	secrets.password("a password typed as the email", typedAsEmail)
	for _, f := range []struct{ name, email, password string }{
		{"a wrong password", "owner@example.com", "the owner's wrong guess"},
		{"the password after one typed as the email", typedAsEmail, ownerPW},
		{"a secret key typed as the email", plantedKey, "another wrong guess!"},
	} {
		browser().do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": f.email, "password": f.password}).want(t, http.StatusUnauthorized)
		secrets.password(f.name, f.password)
	}
	var made struct{ Password string }
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "admin@example.com", "role": "admin"}).want(t, http.StatusCreated).decode(t, &made)
	secrets.password("the admin's one-time password", made.Password)
	const securityPW = "the security account's own password"
	owner.do(t, http.MethodPost, "/api/v1/accounts", map[string]any{"email": "sec@example.com", "role": "security", "password": securityPW}).want(t, http.StatusCreated)
	secrets.password("the security account's password", securityPW)
	admin := browser()
	signIn(admin, "the admin", "admin@example.com", made.Password)
	const adminNext = "the admin's next password"
	r := admin.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": made.Password, "newPassword": adminNext}).want(t, http.StatusOK)
	_, ck := r.setCookie(t, e.cookieName())
	secrets.session("the admin's session after the change", ck.Value)
	secrets.password("the admin's changed password", adminNext)
	admin.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": "a wrong current password", "newPassword": "never set at all"}).
		want(t, http.StatusUnprocessableEntity)
	secrets.password("a wrong current password", "a wrong current password")
	secrets.password("a refused new password", "never set at all")
	var reset struct{ Password string }
	owner.do(t, http.MethodPut, "/api/v1/accounts/sec@example.com/password", map[string]any{}).want(t, http.StatusOK).decode(t, &reset)
	secrets.password("the security account's reset password", reset.Password)
	sec := browser()
	signIn(sec, "the security account", "sec@example.com", reset.Password)

	// API tokens made, used, revoked.
	ciID, ci := owner.newToken(t, map[string]any{"name": "ci " + plantedKey, "role": "admin"})
	_, audit := owner.newToken(t, map[string]any{"name": "audit", "role": "security", "expiresAt": time.Now().Add(time.Hour)})
	secrets.token("the ci token", ci)
	secrets.token("the audit token", audit)
	ciClient := e.bearer(ci)
	ciClient.headers.Set("User-Agent", agent)
	ciClient.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)
	e.bearer(audit).do(t, http.MethodGet, "/api/v1/audit/admin-events", nil).want(t, http.StatusOK)
	e.bearer(audit).do(t, http.MethodPatch, "/api/v1/projects/proj_none", map[string]any{"requireToken": true}).want(t, http.StatusForbidden)

	// Projects made and rotated, by an account and by a token.
	shop, shopKey := owner.createProject(t, "Shop", map[string]any{"origins": []string{"https://shop.example"}, "reason": "launch " + plantedKey})
	secrets.key("the shop's first key", shopKey)
	owner.do(t, http.MethodPatch, "/api/v1/projects/"+shop, map[string]any{"requireToken": true, "reason": "tokens now " + plantedJWT}).want(t, http.StatusOK)
	var rot struct{ SecretKey string }
	admin.do(t, http.MethodPost, "/api/v1/projects/"+shop+"/rotate", map[string]any{"graceSeconds": 600, "reason": "rotated " + plantedToken}).want(t, http.StatusOK).decode(t, &rot)
	shopKey2 := rot.SecretKey
	secrets.key("the shop's second key", shopKey2)
	blog, blogKey := ciClient.createProject(t, "Blog", nil)
	secrets.key("the blog's first key", blogKey)
	ciClient.do(t, http.MethodPost, "/api/v1/projects/"+blog+"/rotate", map[string]any{}).want(t, http.StatusOK).decode(t, &rot)
	secrets.key("the blog's second key", rot.SecretKey)
	owner.do(t, http.MethodPost, "/api/v1/projects/"+shop+"/revocations", map[string]any{"userId": "mallory", "reason": plantedKey}).want(t, http.StatusOK)
	owner.do(t, http.MethodDelete, "/api/v1/tokens/"+ciID, nil).want(t, http.StatusOK)
	ciClient.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	e.bearer(plantedToken).do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)

	// Widgets: tokens of the new key, of the old one in its grace, of no
	// key of the project's, and expired; an anonymous visitor.
	now := time.Now()
	widgets := []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"the new key's", map[string]any{"projectId": shop, "widgetToken": stacktest.Mint(t, shopKey2, widgettoken.For("u-1", map[string]string{"plan": "pro"}, now, time.Hour))}, http.StatusOK},
		{"the old key's, in its grace", map[string]any{"projectId": shop, "widgetToken": stacktest.Mint(t, shopKey, widgettoken.For("u-2", nil, now, time.Hour))}, http.StatusOK},
		{"the blog's key's, for the shop", map[string]any{"projectId": shop, "widgetToken": stacktest.Mint(t, blogKey, widgettoken.For("u-3", nil, now, time.Hour))}, http.StatusUnauthorized},
		{"an expired one", map[string]any{"projectId": shop, "widgetToken": stacktest.Mint(t, shopKey, widgettoken.For("u-4", nil, now.Add(-2*time.Hour), time.Hour))}, http.StatusUnauthorized},
		{"a revoked user's", map[string]any{"projectId": shop, "widgetToken": stacktest.Mint(t, shopKey, widgettoken.For("mallory", nil, now.Add(-time.Minute), time.Hour))}, http.StatusUnauthorized},
		{"an anonymous visitor", map[string]any{"projectId": blog, "userId": "visitor " + plantedKey}, http.StatusOK},
	}
	for _, w := range widgets {
		if tok, ok := w.body["widgetToken"].(string); ok {
			secrets.jwt("a widget token ("+w.name+")", tok)
		}
		if got := e.widgetConnect(t, w.body, "https://shop.example", agent); got != w.status {
			t.Fatalf("widget with %s token: %d, want %d", w.name, got, w.status)
		}
	}

	// A forged page's change, its Origin holding a key.
	owner.with(http.Header{"Origin": {"https://" + plantedKey + ".example"}}).
		do(t, http.MethodPatch, "/api/v1/projects/"+shop, map[string]any{"requireToken": false}).want(t, http.StatusForbidden)

	for _, c := range []*client{admin, sec, owner} {
		c.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusNoContent)
	}
	stacktest.Eventually(t, 30*time.Second, "the widgets' decisions in ClickHouse", func() error {
		if n := stacktest.Count(t, e.ch, "SELECT count() FROM hissuno_decisions FINAL"); n < uint64(len(widgets)) {
			return fmt.Errorf("%d of %d stored", n, len(widgets))
		}
		return nil
	})
	e.storedEvents(t, 3, events.AdminSignedOut)
	e.storedEvents(t, 1, events.AdminUserRevoked)
	// A count of throttled requests, as an ingress publishes it (its
	// fields are ids, addresses and reasons: nothing a client writes).
	thr, err := json.Marshal(events.Throttled{SchemaVersion: events.SchemaVersion, ID: "thr_scan_0", Ingress: "ingress.scan", Minute: time.Now().UTC().Truncate(time.Minute),
		ProjectID: events.ThrottledUnknownProject, ClientIP: "198.51.100.7", Reason: events.ThrottleUnseenProject, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	ijs, err := jetstream.New(stacktest.ConnectAs(t, e.st, "ingress"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ijs.Publish(stacktest.Context(t, 10*time.Second), events.ThrottledSubject("ingress.scan"), thr); err != nil {
		t.Fatalf("publish a throttled count: %v", err)
	}
	stacktest.Eventually(t, 30*time.Second, "the throttled count in ClickHouse", func() error {
		if n := stacktest.Count(t, e.ch, "SELECT count() FROM hissuno_throttled"); n == 0 {
			return fmt.Errorf("not stored yet")
		}
		return nil
	})

	// The scan. Every log line of every role:
	lines := strings.Split(e.logs.String(), "\n")
	components := map[string]bool{}
	for i, line := range lines {
		var l struct{ Component string }
		_ = json.Unmarshal([]byte(line), &l)
		components[l.Component] = true
		for _, name := range secrets.find(line) {
			t.Errorf("%s in log line %d (component %q): %.300s", name, i+1, l.Component, line)
		}
	}
	for _, c := range []string{"console", "rotator", "verifier", "ingress", "auditor"} {
		if !components[c] {
			t.Errorf("no log line of the %s: the scan saw too little (%v)", c, components)
		}
	}

	// every row of every table:
	tables := e.tableRows(t)
	for table, rows := range tables {
		for i, row := range rows {
			for _, name := range secrets.find(row) {
				t.Errorf("%s in ClickHouse, table %s, row %d: %.300s", name, table, i+1, row)
			}
		}
	}
	admins := strings.Join(tables["hissuno_admin_events"], "\n")
	for _, want := range []string{"sk_live_[redacted]", "hst_[redacted]", "[token redacted]", "(not an email)", "console:owner@example.com", "token:" + ciID} {
		if !strings.Contains(admins, want) {
			t.Errorf("no admin event holds %q: the planted secrets are not where the test put them", want)
		}
	}
	if !strings.Contains(strings.Join(tables["hissuno_decisions"], "\n"), "sk_live_[redacted]") {
		t.Error("no decision holds the planted key, scrubbed")
	}

	// and every revision of every entry of the buckets and the admin
	// stream.
	js, err := jetstream.New(stacktest.ConnectAs(t, e.st, stacktest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	streams := []string{events.StreamAdmin, "KV_" + events.BucketProjects}
	for _, b := range events.ConsoleBuckets {
		streams = append(streams, "KV_"+b)
	}
	for _, stream := range streams {
		msgs := stacktest.ReadStream(t, js, stream)
		if len(msgs) == 0 && stream != "KV_"+events.BucketConsoleThrottle {
			t.Errorf("%s holds nothing: the scan saw too little", stream)
		}
		for _, m := range msgs {
			var hdr strings.Builder
			_ = http.Header(m.Headers()).Write(&hdr)
			for _, name := range secrets.find(m.Subject() + "\n" + hdr.String() + "\n" + string(m.Data())) {
				t.Errorf("%s in stream %s, subject %s: %.300s", name, stream, m.Subject(), m.Data())
			}
		}
	}
}

// tableRows reads every row of every table of the env's ClickHouse
// database, each as the text of all its columns.
func (e *env) tableRows(t testing.TB) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cols, err := e.ch.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() ORDER BY table")
	if err != nil {
		t.Fatal(err)
	}
	exprs := map[string][]string{}
	for cols.Next() {
		var table, name, typ string
		if err := cols.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		x := "toString(" + name + ")"
		if strings.HasPrefix(typ, "Array(") {
			x = "arrayStringConcat(arrayMap(x -> toString(x), " + name + "), ' ')"
		}
		exprs[table] = append(exprs[table], "ifNull("+x+", '')")
	}
	cols.Close()
	for _, want := range []string{"hissuno_decisions", "hissuno_admin_events", "hissuno_migrations"} {
		if _, ok := exprs[want]; !ok {
			t.Fatalf("no table %s in the test database: %v", want, exprs)
		}
	}
	out := map[string][]string{}
	for table, xs := range exprs {
		rows, err := e.ch.Query(ctx, "SELECT concat("+strings.Join(xs, ", ' | ', ")+") FROM "+table)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out[table] = append(out[table], s)
		}
		rows.Close()
		if len(out[table]) == 0 {
			t.Errorf("table %s is empty: the scan saw too little", table)
		}
	}
	return out
}

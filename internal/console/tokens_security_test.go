package console_test

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/account"
)

// base62 are the digits of an API token's payload and checksum.
const base62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// scannerValid checks an API token as a secret scanner does, offline and
// from the documented format alone: hst_, 60 base62 digits, and the CRC32
// (IEEE) of those 60 in 6 more.
func scannerValid(tok string) bool {
	rest, ok := strings.CutPrefix(tok, "hst_")
	if !ok || len(rest) != 66 || strings.Trim(rest, base62) != "" {
		return false
	}
	return rest[60:] == checksum62(rest[:60])
}

// checksum62 is the checksum of a token's payload digits.
func checksum62(payload string) string {
	s := new(big.Int).SetUint64(uint64(crc32.ChecksumIEEE([]byte(payload)))).Text(62)
	return strings.Repeat("0", 6-len(s)) + s
}

// forged is tok with its last payload digit changed and the checksum made
// to match: a token of the right form and id whose secret is wrong.
func forged(tok string) string {
	payload := []byte(tok[4:64])
	payload[59] = base62[(strings.IndexByte(base62, payload[59])+1)%len(base62)]
	return "hst_" + string(payload) + checksum62(string(payload))
}

// newToken makes an API token as c and returns its id and secret.
func (c *client) newToken(t testing.TB, body map[string]any) (string, string) {
	t.Helper()
	var out struct {
		Token  struct{ ID string }
		Secret string
	}
	c.do(t, http.MethodPost, "/api/v1/tokens", body).want(t, http.StatusCreated).decode(t, &out)
	return out.Token.ID, out.Secret
}

// listedToken is a token as GET /api/v1/tokens shows it.
type listedToken struct {
	ID                               string
	ExpiresAt, RevokedAt, LastUsedAt *time.Time
}

func (c *client) listedToken(t testing.TB, id string) (listedToken, []byte) {
	t.Helper()
	r := c.do(t, http.MethodGet, "/api/v1/tokens", nil).want(t, http.StatusOK)
	var list struct{ Tokens []listedToken }
	r.decode(t, &list)
	for _, tok := range list.Tokens {
		if tok.ID == id {
			return tok, r.body
		}
	}
	t.Fatalf("token %s is not listed: %s", id, r.body)
	return listedToken{}, nil
}

// TestAPITokens makes API tokens and uses them as programs do: the token is
// in its creation's answer only (never in the list, nor the admin events
// the API shows), has the hst_ prefix and a checksum a scanner can check
// offline, works as a bearer token, and shows its last use (recorded at
// most once a minute). A token of the right form with a wrong secret is
// refused; a revoked one at once; an expiring one from its expiry on.
func TestAPITokens(t *testing.T) {
	t.Parallel()
	clock := newManualClock(time.Now())
	e := newEnv(t, withClock(clock.Now))
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	// The owner's own token does what it needs after the clock has moved
	// past the session's idle lifetime.
	_, ownerSecret := owner.newToken(t, map[string]any{"name": "owner-bot", "role": "owner"})
	bot := e.bearer(ownerSecret)

	r := owner.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "ci", "role": "admin"}).want(t, http.StatusCreated)
	var created struct {
		Token  struct{ ID string }
		Secret string
	}
	r.decode(t, &created)
	id, secret := created.Token.ID, created.Secret
	if !strings.HasPrefix(id, "tok_") || len(secret) != account.TokenLen || !strings.HasPrefix(secret, "hst_") {
		t.Fatalf("the created token: %s", r.body)
	}
	if !scannerValid(secret) || !account.ValidTokenFormat(secret) {
		t.Errorf("%.8s…: the checksum does not match its payload", secret)
	}
	tampered := secret[:len(secret)-1] + string(base62[(strings.IndexByte(base62, secret[len(secret)-1])+1)%62])
	if scannerValid(tampered) || account.ValidTokenFormat(tampered) {
		t.Error("a token with a wrong checksum passes for one")
	}

	for _, shown := range []*resp{
		owner.do(t, http.MethodGet, "/api/v1/tokens", nil).want(t, http.StatusOK),
		owner.do(t, http.MethodGet, "/api/v1/audit/admin-events", nil).want(t, http.StatusOK),
		owner.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK),
	} {
		for _, part := range []string{secret, secret[4:], secret[4:36], secret[36:64]} {
			if bytes.Contains(shown.body, []byte(part)) {
				t.Errorf("%s %s shows the token after its creation: %s", shown.method, shown.path, shown.body)
			}
		}
	}

	ci := e.bearer(secret)
	var me struct{ Actor, TokenID, Role, Email string }
	ci.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, &me)
	if me.TokenID != id || me.Actor != "token:"+id || me.Role != "admin" || me.Email != "" {
		t.Fatalf("the token signed in as %+v", me)
	}
	used := clock.Now()
	if tok, _ := owner.listedToken(t, id); tok.LastUsedAt == nil || !tok.LastUsedAt.Equal(used) {
		t.Errorf("last used %v, want %s", tok.LastUsedAt, used)
	}
	clock.Advance(30 * time.Second)
	ci.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK)
	if tok, _ := owner.listedToken(t, id); tok.LastUsedAt == nil || !tok.LastUsedAt.Equal(used) {
		t.Errorf("last used %v within a minute of %s: written at every use", tok.LastUsedAt, used)
	}
	clock.Advance(31 * time.Second)
	ci.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK)
	if tok, _ := owner.listedToken(t, id); tok.LastUsedAt == nil || !tok.LastUsedAt.Equal(clock.Now()) {
		t.Errorf("last used %v, want %s", tok.LastUsedAt, clock.Now())
	}

	for name, header := range map[string]string{
		"a wrong secret with a good checksum": "Bearer " + forged(secret),
		"a wrong checksum":                    "Bearer " + tampered,
		"no token form":                       "Bearer not-a-token",
		"another scheme":                      "Basic " + secret,
	} {
		r := (&client{e: e, hc: &http.Client{Timeout: time.Minute, Transport: e.rt}, headers: http.Header{"Authorization": {header}}}).
			do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: a 401 without WWW-Authenticate", name)
		}
	}

	bot.do(t, http.MethodDelete, "/api/v1/tokens/"+id, nil).want(t, http.StatusOK)
	ci.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusUnauthorized)
	ci.do(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": "after revocation"}).want(t, http.StatusUnauthorized)
	if tok, _ := bot.listedToken(t, id); tok.RevokedAt == nil {
		t.Error("the revoked token is not listed as revoked")
	}

	expires := clock.Now().Add(time.Hour)
	shortID, short := bot.newToken(t, map[string]any{"name": "short", "role": "admin", "expiresAt": expires})
	clock.Advance(59 * time.Minute)
	e.bearer(short).do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK)
	clock.Advance(time.Minute)
	e.bearer(short).do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusUnauthorized)
	if tok, _ := bot.listedToken(t, shortID); tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(expires) {
		t.Errorf("expires %v, want %s", tok.ExpiresAt, expires)
	}
	bot.do(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "stale", "role": "admin", "expiresAt": clock.Now().Add(-time.Second)}).
		want(t, http.StatusUnprocessableEntity)
}

// TestTokenLimits: a token of role security reads but can change nothing,
// not even through the endpoints of accounts (everything is as it was
// after it tried each), and a token limited to some projects sees and
// changes those only: any other answers 404 as a project that does not
// exist.
func TestTokenLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.signIn(t, "owner@example.com", account.RoleOwner)
	a, _ := owner.createProject(t, "Shop A", nil)
	b, _ := owner.createProject(t, "Shop B", nil)
	ciID, _ := owner.newToken(t, map[string]any{"name": "ci", "role": "admin"})

	t.Run("role security changes nothing", func(t *testing.T) {
		_, secret := owner.newToken(t, map[string]any{"name": "auditor", "role": "security"})
		sec := e.bearer(secret)
		sec.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK) // its last use, before the snapshot
		state := func() string {
			t.Helper()
			var buf bytes.Buffer
			for _, p := range []string{"/api/v1/projects/" + a, "/api/v1/projects/" + a + "/revocations", "/api/v1/accounts", "/api/v1/tokens"} {
				var v map[string]any
				owner.do(t, http.MethodGet, p, nil).want(t, http.StatusOK).decode(t, &v)
				delete(v, "last24h")
				out, _ := json.Marshal(v)
				buf.Write(out)
			}
			var list struct{ Projects []any }
			owner.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK).decode(t, &list)
			buf.WriteString(strings.Repeat("p", len(list.Projects)))
			return buf.String()
		}
		before := state()
		for _, ch := range []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, "/api/v1/projects", map[string]any{"name": "New"}},
			{http.MethodPatch, "/api/v1/projects/" + a, map[string]any{"requireToken": true}},
			{http.MethodPost, "/api/v1/projects/" + a + "/rotate", map[string]any{}},
			{http.MethodPost, "/api/v1/projects/" + a + "/revocations", map[string]any{"userId": "u-1"}},
			{http.MethodDelete, "/api/v1/projects/" + a + "/revocations/u-1", nil},
			{http.MethodPost, "/api/v1/tokens", map[string]any{"name": "more", "role": "security"}},
			{http.MethodDelete, "/api/v1/tokens/" + ciID, nil},
			{http.MethodPost, "/api/v1/accounts", map[string]any{"email": "new@example.com", "role": "security"}},
			{http.MethodPatch, "/api/v1/accounts/owner@example.com", map[string]any{"disabled": true}},
			{http.MethodPut, "/api/v1/accounts/owner@example.com/password", map[string]any{}},
			{http.MethodPut, "/api/v1/session/password", map[string]any{"currentPassword": "whatever it is", "newPassword": "something else again"}},
			{http.MethodDelete, "/api/v1/session", nil},
		} {
			if r := sec.do(t, ch.method, ch.path, ch.body); r.status != http.StatusForbidden {
				t.Errorf("a security token: %s %s answered %d, want 403: %s", ch.method, ch.path, r.status, r.body)
			}
		}
		if after := state(); after != before {
			t.Fatalf("a security token changed something:\nbefore %s\nafter  %s", before, after)
		}
		for _, p := range []string{"/api/v1/projects", "/api/v1/projects/" + a, "/api/v1/projects/" + a + "/revocations", "/api/v1/audit/admin-events"} {
			sec.do(t, http.MethodGet, p, nil).want(t, http.StatusOK)
		}
	})

	t.Run("limited to projects", func(t *testing.T) {
		_, secret := owner.newToken(t, map[string]any{"name": "shop-a", "role": "admin", "projects": []string{a}})
		scoped := e.bearer(secret)
		var list struct{ Projects []struct{ ProjectID string } }
		scoped.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK).decode(t, &list)
		if len(list.Projects) != 1 || list.Projects[0].ProjectID != a {
			t.Errorf("the token lists %+v, want %s only", list.Projects, a)
		}
		scoped.do(t, http.MethodPatch, "/api/v1/projects/"+a, map[string]any{"requireToken": true}).want(t, http.StatusOK)
		for _, rq := range []struct {
			method, path string
			body         any
		}{
			{http.MethodGet, "/api/v1/projects/%s", nil},
			{http.MethodPatch, "/api/v1/projects/%s", map[string]any{"requireToken": true}},
			{http.MethodPost, "/api/v1/projects/%s/rotate", map[string]any{}},
			{http.MethodGet, "/api/v1/projects/%s/revocations", nil},
		} {
			other := scoped.do(t, rq.method, strings.ReplaceAll(rq.path, "%s", b), rq.body).want(t, http.StatusNotFound)
			none := scoped.do(t, rq.method, strings.ReplaceAll(rq.path, "%s", "proj_nosuchproject00"), rq.body).want(t, http.StatusNotFound)
			if strings.ReplaceAll(string(other.body), b, "ID") != strings.ReplaceAll(string(none.body), "proj_nosuchproject00", "ID") {
				t.Errorf("%s %s: another's project answers apart from none: %s / %s", rq.method, rq.path, other.body, none.body)
			}
		}
		var pb struct{ RequireToken bool }
		owner.do(t, http.MethodGet, "/api/v1/projects/"+b, nil).want(t, http.StatusOK).decode(t, &pb)
		if pb.RequireToken {
			t.Error("the limited token changed a project outside its list")
		}
	})
}

// TestTokenNeverOutlivesItsMaker: an API token may do at most what the
// account (or the token) that made it may do now. Its maker demoted, it loses the role;
// limited to projects, it sees only those; disabled, it works no more; and
// enabled again, it works again within what its maker may.
func TestTokenNeverOutlivesItsMaker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.signIn(t, "first@example.com", account.RoleOwner)
	a, _ := first.createProject(t, "Shop A", nil)
	b, _ := first.createProject(t, "Shop B", nil)
	maker := e.signIn(t, "maker@example.com", account.RoleOwner)
	_, secret := maker.newToken(t, map[string]any{"name": "automation", "role": "owner"})
	tok := e.bearer(secret)
	tok.do(t, http.MethodGet, "/api/v1/accounts", nil).want(t, http.StatusOK)

	// A token made with a token ends with the one that made it.
	parentID, parentSecret := maker.newToken(t, map[string]any{"name": "parent", "role": "owner"})
	_, childSecret := e.bearer(parentSecret).newToken(t, map[string]any{"name": "child", "role": "admin"})
	child := e.bearer(childSecret)
	child.do(t, http.MethodGet, "/api/v1/projects/"+a, nil).want(t, http.StatusOK)
	maker.do(t, http.MethodDelete, "/api/v1/tokens/"+parentID, nil).want(t, http.StatusOK)
	child.do(t, http.MethodGet, "/api/v1/projects/"+a, nil).want(t, http.StatusUnauthorized)

	change := func(body map[string]any) {
		t.Helper()
		first.do(t, http.MethodPatch, "/api/v1/accounts/maker@example.com", body).want(t, http.StatusOK)
	}
	change(map[string]any{"role": "admin"})
	tok.do(t, http.MethodGet, "/api/v1/accounts", nil).want(t, http.StatusForbidden)
	tok.do(t, http.MethodPatch, "/api/v1/projects/"+b, map[string]any{"requireToken": true}).want(t, http.StatusOK)

	change(map[string]any{"projects": []string{a}})
	tok.do(t, http.MethodGet, "/api/v1/projects/"+a, nil).want(t, http.StatusOK)
	tok.do(t, http.MethodGet, "/api/v1/projects/"+b, nil).want(t, http.StatusNotFound)
	var list struct{ Projects []struct{ ProjectID string } }
	tok.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusOK).decode(t, &list)
	if len(list.Projects) != 1 || list.Projects[0].ProjectID != a {
		t.Errorf("a token of a maker limited to %s lists %+v", a, list.Projects)
	}

	change(map[string]any{"disabled": true})
	tok.do(t, http.MethodGet, "/api/v1/projects/"+a, nil).want(t, http.StatusUnauthorized)
	change(map[string]any{"disabled": false, "role": "security"})
	tok.do(t, http.MethodGet, "/api/v1/projects/"+a, nil).want(t, http.StatusOK)
	tok.do(t, http.MethodPatch, "/api/v1/projects/"+a, map[string]any{"requireToken": true}).want(t, http.StatusForbidden)
}

package ingress_test

// Black-box tests of the HTTP API (DESIGN.md "Public contract"), the way a
// widget and an admin use it: a real stack (embedded JetStream, ingress,
// verifier, rotator), projects made with the `hissuno project` CLI, tokens
// minted as customers' backends mint them, answers read over HTTP.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

const (
	// shopOrigin is an origin every test project allows.
	shopOrigin = "https://shop.example"
	// otherKey is a well-formed secret key of no project.
	otherKey = "sk_live_notTheProjectsKey0123456789abcdefghijklmn"
	// maxBody is the contract's body limit: 16 KiB.
	maxBody = 16 * 1024
)

var httpClient = &http.Client{Timeout: 15 * time.Second}

// testProject is a project as its admin knows it.
type testProject struct {
	ID     string
	Secret string
}

// runCLI runs `hissuno ARGS… --nats URL` in-process and returns its stdout;
// a non-zero exit fails the test.
func runCLI(t *testing.T, st *stack.Stack, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	args = append(args, stacktest.NATSArgs(t, st, events.SourceAdmin)...)
	code := cli.Run(cli.Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	if code != 0 {
		t.Fatalf("hissuno %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// keyAnswer is the --json answer of `project create` and `project rotate`.
type keyAnswer struct {
	ProjectID string              `json:"projectId"`
	SecretKey string              `json:"secretKey"`
	Project   *events.ProjectView `json:"project"`
}

func decodeKeyAnswer(t *testing.T, out string) keyAnswer {
	t.Helper()
	var a keyAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if a.ProjectID == "" || !strings.HasPrefix(a.SecretKey, "sk_live_") {
		t.Fatalf("--json output lacks projectId or secretKey: %s", out)
	}
	return a
}

// createProject runs `hissuno project create`.
func createProject(t *testing.T, st *stack.Stack, name string, requireToken bool, origins ...string) testProject {
	t.Helper()
	args := []string{"project", "create", "--name", name, "--json"}
	if requireToken {
		args = append(args, "--require-token")
	}
	for _, o := range origins {
		args = append(args, "--origin", o)
	}
	a := decodeKeyAnswer(t, runCLI(t, st, args...))
	return testProject{ID: a.ProjectID, Secret: a.SecretKey}
}

// shopProject creates a project that allows shopOrigin and its subdomains.
func shopProject(t *testing.T, st *stack.Stack, name string, requireToken bool) testProject {
	t.Helper()
	return createProject(t, st, name, requireToken, shopOrigin, "*.shop.example")
}

// mint signs claims with HS256 and the secret key as raw bytes, as
// jsonwebtoken and PyJWT do.
func mint(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	return stacktest.MintMap(t, secret, claims)
}

// userToken is a valid token of userID: iat now, exp in an hour.
func userToken(t *testing.T, secret, userID string) string {
	t.Helper()
	now := time.Now()
	return mint(t, secret, jwt.MapClaims{"userId": userID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// handToken builds a JWS byte by byte, for headers no library writes: the
// signature uses the HMAC that hmacAlg names (HS256, HS512), or is empty.
func handToken(t *testing.T, secret, hmacAlg string, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64(h) + "." + b64(c)
	var fn func() hash.Hash
	switch hmacAlg {
	case "HS256":
		fn = sha256.New
	case "HS512":
		fn = sha512.New
	default:
		return signing + "."
	}
	m := hmac.New(fn, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

// connectReq is one widget request.
type connectReq struct {
	ProjectID    string
	Token        string // widgetToken in the body; omitted when empty
	UserID       string
	UserMetadata map[string]string
	// Origin is the Origin header; none when empty.
	Origin string
	// Authorization is the Authorization header; none when empty.
	Authorization string
}

func (r connectReq) body(t *testing.T) []byte {
	t.Helper()
	m := map[string]any{"projectId": r.ProjectID}
	if r.Token != "" {
		m["widgetToken"] = r.Token
	}
	if r.UserID != "" {
		m["userId"] = r.UserID
	}
	if r.UserMetadata != nil {
		m["userMetadata"] = r.UserMetadata
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r connectReq) headers() map[string]string {
	h := map[string]string{}
	if r.Origin != "" {
		h["Origin"] = r.Origin
	}
	if r.Authorization != "" {
		h["Authorization"] = r.Authorization
	}
	return h
}

// answer is an HTTP answer with its JSON body decoded loosely, so tests can
// tell a field absent from a field empty.
type answer struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (a answer) String() string { return http.StatusText(a.Status) + " " + string(a.Raw) }

// str returns a string field of the body and whether it is a string.
func (a answer) str(key string) (string, bool) {
	s, ok := a.Body[key].(string)
	return s, ok
}

func do(t *testing.T, method, url string, body []byte, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &a.Body); err != nil {
			t.Fatalf("%s %s: %d answer is not a JSON object: %v\n%s", method, url, resp.StatusCode, err, raw)
		}
	}
	return a
}

func connectURL(addr string) string { return "http://" + addr + ingress.ConnectPath }

// post sends a raw body to the connect endpoint.
func post(t *testing.T, addr string, body []byte, headers map[string]string) answer {
	t.Helper()
	return do(t, http.MethodPost, connectURL(addr), body, headers)
}

// connect sends a widget request.
func connect(t *testing.T, addr string, r connectReq) answer {
	t.Helper()
	return post(t, addr, r.body(t), r.headers())
}

// wantStatus is nil when the answer has the status, else an error showing
// the answer.
func wantStatus(a answer, status int) error {
	if a.Status != status {
		return fmt.Errorf("answer %d %s, want %d", a.Status, a.Raw, status)
	}
	return nil
}

// wantRefusal checks a 401/403 decision answer.
func wantRefusal(t *testing.T, a answer, reason events.Reason, secrets ...string) {
	t.Helper()
	status, decision := http.StatusUnauthorized, "unauthorized"
	if reason == events.ReasonOriginMissing || reason == events.ReasonOriginNotAllowed {
		status, decision = http.StatusForbidden, "origin_blocked"
	}
	if a.Status != status {
		t.Fatalf("status: got %d, want %d (reason %s); body %s", a.Status, status, reason, a.Raw)
	}
	if got, _ := a.str("decision"); got != decision {
		t.Errorf("decision: got %q, want %q; body %s", got, decision, a.Raw)
	}
	if got, _ := a.str("reason"); got != string(reason) {
		t.Errorf("reason: got %q, want %q; body %s", got, reason, a.Raw)
	}
	if id, _ := a.str("decisionId"); id == "" {
		t.Errorf("decisionId missing or empty; body %s", a.Raw)
	}
	msg, _ := a.str("message")
	if msg == "" {
		t.Errorf("message missing or empty on a refusal; body %s", a.Raw)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(a.Raw), s) {
			t.Errorf("the answer quotes a token or key; body %s", a.Raw)
		}
	}
	if _, ok := a.Body["session"]; ok {
		t.Errorf("a refusal carries a session; body %s", a.Raw)
	}
}

// acceptWant is what an accept must say.
type acceptWant struct {
	Session    events.Session
	UserID     string
	Verified   bool
	Metadata   map[string]string // nil: no userMetadata field
	KeyVersion int               // 0: no keyVersion check
}

func wantAccept(t *testing.T, a answer, w acceptWant) {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", a.Status, a.Raw)
	}
	if got, _ := a.str("decision"); got != "accept" {
		t.Errorf("decision: got %q, want accept; body %s", got, a.Raw)
	}
	if id, _ := a.str("decisionId"); id == "" {
		t.Errorf("decisionId missing or empty; body %s", a.Raw)
	}
	if got, _ := a.str("session"); got != string(w.Session) {
		t.Errorf("session: got %q, want %q; body %s", got, w.Session, a.Raw)
	}
	if got, ok := a.str("userId"); !ok || got != w.UserID {
		t.Errorf("userId: got %v, want %q; body %s", a.Body["userId"], w.UserID, a.Raw)
	}
	if got, ok := a.Body["userVerified"].(bool); !ok || got != w.Verified {
		t.Errorf("userVerified: got %v, want %v; body %s", a.Body["userVerified"], w.Verified, a.Raw)
	}
	if w.Metadata != nil {
		want := map[string]any{}
		for k, v := range w.Metadata {
			want[k] = v
		}
		if got, _ := a.Body["userMetadata"].(map[string]any); !reflect.DeepEqual(got, want) {
			t.Errorf("userMetadata: got %v, want %v; body %s", a.Body["userMetadata"], want, a.Raw)
		}
	}
	if w.KeyVersion != 0 {
		if got, ok := a.Body["keyVersion"].(float64); !ok || int(got) != w.KeyVersion {
			t.Errorf("keyVersion: got %v, want %d; body %s", a.Body["keyVersion"], w.KeyVersion, a.Raw)
		}
	}
	if _, ok := a.Body["reason"]; ok {
		t.Errorf("an accept carries a reason; body %s", a.Raw)
	}
}

// wantClock checks the clock fields of token_expired and
// token_not_yet_valid: serverTime, skewSeconds (±2) and leewaySeconds 60.
func wantClock(t *testing.T, a answer, skew int) {
	t.Helper()
	st, ok := a.str("serverTime")
	if !ok {
		t.Fatalf("serverTime missing; body %s", a.Raw)
	}
	at, err := time.Parse(time.RFC3339Nano, st)
	if err != nil {
		t.Errorf("serverTime %q is not RFC 3339: %v", st, err)
	} else if d := time.Since(at); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("serverTime %s is %s away from now", st, d)
	}
	got, ok := a.Body["skewSeconds"].(float64)
	if !ok || math.Abs(got-float64(skew)) > 2 {
		t.Errorf("skewSeconds: got %v, want %d±2; body %s", a.Body["skewSeconds"], skew, a.Raw)
	}
	if got, ok := a.Body["leewaySeconds"].(float64); !ok || got != 60 {
		t.Errorf("leewaySeconds: got %v, want 60; body %s", a.Body["leewaySeconds"], a.Raw)
	}
}

// wantBadRequest checks a 400 {"error": …} whose error says each of the
// mentions; a mention lists alternatives separated by "|".
func wantBadRequest(t *testing.T, a answer, mentions ...string) {
	t.Helper()
	if a.Status != http.StatusBadRequest {
		t.Fatalf("status: got %d, want 400; body %s", a.Status, a.Raw)
	}
	msg, ok := a.str("error")
	if !ok || msg == "" {
		t.Fatalf(`body: got %s, want {"error": "<what is wrong>"}`, a.Raw)
	}
	for _, m := range mentions {
		said := false
		for _, alt := range strings.Split(m, "|") {
			said = said || strings.Contains(strings.ToLower(msg), strings.ToLower(alt))
		}
		if !said {
			t.Errorf("error %q does not say %q", msg, m)
		}
	}
}

// jetStream opens a client connection to the stack's server.
func jetStream(t *testing.T, st *stack.Stack) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(stacktest.ConnectAs(t, st, stacktest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// lastSeq is a stream's last sequence: it grows with every message stored,
// whether or not a consumer has taken it since.
func lastSeq(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.LastSeq
}

// storedDecisions returns every decision in HISSUNO_DECISIONS with the id.
// The verifier stores a decision before it replies, so one answered is
// already there.
func storedDecisions(t *testing.T, js jetstream.JetStream, decisionID string) []events.Decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamDecisions)
	if err != nil {
		t.Fatalf("stream %s: %v", events.StreamDecisions, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found []events.Decision
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("decision #%d: %v", seq, err)
		}
		var d events.Decision
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatalf("decision #%d is not JSON: %v", seq, err)
		}
		if d.DecisionID == decisionID {
			found = append(found, d)
		}
	}
	return found
}

// TestConnectDecisions reaches every reason code of events/reasons.go, and
// accepts, through POST /v1/widget/connect.
func TestConnectDecisions(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	strict := shopProject(t, st, "strict", true)
	open := shopProject(t, st, "open", false)
	anyOrigin := createProject(t, st, "any-origin", false)

	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	valid := func(userID string) string { return userToken(t, strict.Secret, userID) }
	hsHeader := func(extra map[string]any) map[string]any {
		h := map[string]any{"alg": "HS256", "typ": "JWT"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	userClaims := map[string]any{"userId": "u-1", "iat": now.Unix(), "exp": exp}
	withStrict := func(tok string) connectReq {
		return connectReq{ProjectID: strict.ID, Token: tok, Origin: shopOrigin}
	}

	// Revocation: tokens minted before `project revoke-user` are refused,
	// one minted after it (iat 2 s ahead) is accepted.
	revoked := shopProject(t, st, "revoked", true)
	revokedBefore := mint(t, revoked.Secret, jwt.MapClaims{"userId": "u-revoked", "iat": now.Add(-10 * time.Second).Unix(), "exp": exp})
	revokedNoIat := mint(t, revoked.Secret, jwt.MapClaims{"userId": "u-revoked", "exp": exp})
	otherUser := mint(t, revoked.Secret, jwt.MapClaims{"userId": "u-other", "iat": now.Add(-10 * time.Second).Unix(), "exp": exp})
	wantAccept(t, connect(t, st.HTTPAddr, connectReq{ProjectID: revoked.ID, Token: revokedBefore, Origin: shopOrigin}),
		acceptWant{Session: events.SessionAuthenticated, UserID: "u-revoked", Verified: true})
	runCLI(t, st, "project", "revoke-user", revoked.ID, "--user", "u-revoked")
	revokedAfter := mint(t, revoked.Secret, jwt.MapClaims{"userId": "u-revoked", "iat": time.Now().Add(2 * time.Second).Unix(), "exp": exp})

	// Rotation: a token of the retired key is refused right after
	// `project rotate` returns.
	rotated := shopProject(t, st, "rotated", true)
	oldKeyToken := userToken(t, rotated.Secret, "u-rot")
	oldKeyKid := handToken(t, rotated.Secret, "HS256", hsHeader(map[string]any{"kid": "1"}), map[string]any{"userId": "u-rot", "exp": exp})
	wantAccept(t, connect(t, st.HTTPAddr, connectReq{ProjectID: rotated.ID, Token: oldKeyToken, Origin: shopOrigin}),
		acceptWant{Session: events.SessionAuthenticated, UserID: "u-rot", Verified: true, KeyVersion: 1})
	newKey := decodeKeyAnswer(t, runCLI(t, st, "project", "rotate", rotated.ID, "--json")).SecretKey
	if newKey == rotated.Secret {
		t.Fatal("project rotate printed the old key")
	}
	newKeyToken := userToken(t, newKey, "u-rot")

	bigToken := mint(t, strict.Secret, jwt.MapClaims{"userId": "u-big", "exp": exp, "pad": strings.Repeat("p", 9000)})
	if len(bigToken) <= 8*1024 || len(withStrict(bigToken).body(t)) >= maxBody {
		t.Fatalf("token_too_large case: token %d bytes, body %d bytes", len(bigToken), len(withStrict(bigToken).body(t)))
	}
	justSmall := mint(t, strict.Secret, jwt.MapClaims{"userId": "u-small", "exp": exp, "pad": strings.Repeat("p", 5000)})

	cases := []struct {
		name   string
		req    connectReq
		reason events.Reason // "" for an accept
		accept acceptWant
		skew   int // token_expired, token_not_yet_valid: the skew expected
		// claimsAt, when set, gives the claims of a token of strict minted
		// just before the request (clock-sensitive cases), replacing req.
		claimsAt func(now time.Time) jwt.MapClaims
	}{
		// unknown_project
		{name: "unknown project", req: connectReq{ProjectID: "proj_doesnotexist", Origin: shopOrigin}, reason: events.ReasonUnknownProject},
		{name: "unknown project with a valid token of another", req: connectReq{ProjectID: "proj_doesnotexist", Token: valid("u-1"), Origin: shopOrigin}, reason: events.ReasonUnknownProject},

		// origin_missing, origin_not_allowed
		{name: "no Origin header", req: connectReq{ProjectID: strict.ID, Token: valid("u-1")}, reason: events.ReasonOriginMissing},
		{name: "Origin null", req: connectReq{ProjectID: strict.ID, Token: valid("u-1"), Origin: "null"}, reason: events.ReasonOriginMissing},
		{name: "no Origin on a project without token", req: connectReq{ProjectID: open.ID}, reason: events.ReasonOriginMissing},
		{name: "origin not listed", req: withOrigin(strict.ID, valid("u-1"), "https://evil.example"), reason: events.ReasonOriginNotAllowed},
		{name: "origin with http scheme", req: withOrigin(strict.ID, valid("u-1"), "http://shop.example"), reason: events.ReasonOriginNotAllowed},
		{name: "origin with another port", req: withOrigin(strict.ID, valid("u-1"), "https://shop.example:8443"), reason: events.ReasonOriginNotAllowed},
		{name: "origin suffix lookalike", req: withOrigin(strict.ID, valid("u-1"), "https://evilshop.example"), reason: events.ReasonOriginNotAllowed},
		{name: "origin with allowed host as prefix", req: withOrigin(strict.ID, valid("u-1"), "https://shop.example.evil.com"), reason: events.ReasonOriginNotAllowed},
		{name: "origin refused before a bad token", req: withOrigin(strict.ID, "garbage", "https://evil.example"), reason: events.ReasonOriginNotAllowed},

		// token_required
		{name: "no token where required", req: connectReq{ProjectID: strict.ID, Origin: shopOrigin, UserID: "u-1"}, reason: events.ReasonTokenRequired},

		// token_malformed
		{name: "token not a JWS", req: withStrict("not-a-token"), reason: events.ReasonTokenMalformed},
		{name: "token of two segments", req: withStrict("eyJhbGciOiJIUzI1NiJ9.e30"), reason: events.ReasonTokenMalformed},
		{name: "token payload not JSON", req: withStrict(b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64([]byte("not json")) + ".c2ln"), reason: events.ReasonTokenMalformed},
		{name: "token with crit header", req: withStrict(handToken(t, strict.Secret, "HS256", hsHeader(map[string]any{"crit": []string{"exp"}}), userClaims)), reason: events.ReasonTokenMalformed},
		{name: "token with kid not a string", req: withStrict(handToken(t, strict.Secret, "HS256", hsHeader(map[string]any{"kid": 1}), userClaims)), reason: events.ReasonTokenMalformed},
		{name: "bad token where none is required", req: connectReq{ProjectID: open.ID, Token: "not-a-token", Origin: shopOrigin}, reason: events.ReasonTokenMalformed},
		{name: "valid token with CR LF in its signature", req: withStrict(breakLine(valid("u-1"), "\r\n")), reason: events.ReasonTokenMalformed},
		{name: "valid token with LF in its signature", req: withStrict(breakLine(valid("u-1"), "\n")), reason: events.ReasonTokenMalformed},
		{name: "valid token and a line break", req: withStrict(valid("u-1") + "\n"), reason: events.ReasonTokenMalformed},

		// token_alg_not_allowed
		{name: "alg none", req: withStrict(handToken(t, strict.Secret, "", map[string]any{"alg": "none", "typ": "JWT"}, userClaims)), reason: events.ReasonTokenAlgNotAllowed},
		{name: "alg HS512 with the right key", req: withStrict(handToken(t, strict.Secret, "HS512", map[string]any{"alg": "HS512", "typ": "JWT"}, userClaims)), reason: events.ReasonTokenAlgNotAllowed},
		{name: "alg hs256 lower case", req: withStrict(handToken(t, strict.Secret, "HS256", map[string]any{"alg": "hs256", "typ": "JWT"}, userClaims)), reason: events.ReasonTokenAlgNotAllowed},

		// token_bad_signature
		{name: "signed with another key", req: withStrict(userToken(t, otherKey, "u-1")), reason: events.ReasonTokenBadSignature},
		{name: "signature tampered", req: withStrict(tamper(valid("u-1"))), reason: events.ReasonTokenBadSignature},
		{name: "kid of no key", req: withStrict(handToken(t, strict.Secret, "HS256", hsHeader(map[string]any{"kid": "99"}), userClaims)), reason: events.ReasonTokenBadSignature},
		{name: "bad signature where none is required", req: connectReq{ProjectID: open.ID, Token: userToken(t, otherKey, "u-1"), Origin: shopOrigin}, reason: events.ReasonTokenBadSignature},
		{name: "old key right after rotate", req: connectReq{ProjectID: rotated.ID, Token: oldKeyToken, Origin: shopOrigin}, reason: events.ReasonTokenBadSignature},
		{name: "old key with its kid after rotate", req: connectReq{ProjectID: rotated.ID, Token: oldKeyKid, Origin: shopOrigin}, reason: events.ReasonTokenBadSignature},

		// token_expired
		{name: "expired 120 s ago", claimsAt: func(now time.Time) jwt.MapClaims {
			return jwt.MapClaims{"userId": "u-1", "exp": now.Add(-120 * time.Second).Unix()}
		}, reason: events.ReasonTokenExpired, skew: 120},
		{name: "expired an hour ago", claimsAt: func(now time.Time) jwt.MapClaims {
			return jwt.MapClaims{"userId": "u-1", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}
		}, reason: events.ReasonTokenExpired, skew: 3600},

		// token_not_yet_valid
		{name: "nbf in 300 s", claimsAt: func(now time.Time) jwt.MapClaims {
			return jwt.MapClaims{"userId": "u-1", "nbf": now.Add(300 * time.Second).Unix(), "exp": now.Add(time.Hour).Unix()}
		}, reason: events.ReasonTokenNotYetValid, skew: 300},
		{name: "iat in 300 s", claimsAt: func(now time.Time) jwt.MapClaims {
			return jwt.MapClaims{"userId": "u-1", "iat": now.Add(300 * time.Second).Unix(), "exp": now.Add(time.Hour).Unix()}
		}, reason: events.ReasonTokenNotYetValid, skew: 300},

		// token_missing_exp
		{name: "no exp", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "iat": now.Unix()})), reason: events.ReasonTokenMissingExp},

		// token_invalid_claims
		{name: "no userId", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"exp": exp})), reason: events.ReasonTokenInvalidClaims},
		{name: "userId empty", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "", "exp": exp})), reason: events.ReasonTokenInvalidClaims},
		{name: "userId a number", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": 42, "exp": exp})), reason: events.ReasonTokenInvalidClaims},
		{name: "userId over 256 bytes", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": strings.Repeat("u", 257), "exp": exp})), reason: events.ReasonTokenInvalidClaims},
		{name: "userMetadata of numbers", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": exp, "userMetadata": map[string]any{"plan": 3}})), reason: events.ReasonTokenInvalidClaims},
		{name: "userMetadata a string", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": exp, "userMetadata": "pro"})), reason: events.ReasonTokenInvalidClaims},
		{name: "exp 1e20", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": 1e20})), reason: events.ReasonTokenInvalidClaims},
		{name: "exp 2^63", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": float64(1 << 63)})), reason: events.ReasonTokenInvalidClaims},
		{name: "nbf 1e300", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": exp, "nbf": 1e300})), reason: events.ReasonTokenInvalidClaims},
		{name: "iat 1e300", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": exp, "iat": 1e300})), reason: events.ReasonTokenInvalidClaims},
		{name: "exp a string of digits", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-1", "exp": strconv.FormatInt(exp, 10)})), reason: events.ReasonTokenInvalidClaims},
		{name: "USERID instead of userId", req: withStrict(mint(t, strict.Secret, jwt.MapClaims{"USERID": "u-1", "exp": exp})), reason: events.ReasonTokenInvalidClaims},

		// token_too_large
		{name: "token over 8 KiB", req: withStrict(bigToken), reason: events.ReasonTokenTooLarge},

		// token_revoked
		{name: "revoked user, iat before revocation", req: connectReq{ProjectID: revoked.ID, Token: revokedBefore, Origin: shopOrigin}, reason: events.ReasonTokenRevoked},
		{name: "revoked user, no iat", req: connectReq{ProjectID: revoked.ID, Token: revokedNoIat, Origin: shopOrigin}, reason: events.ReasonTokenRevoked},

		// accept
		{
			name:   "valid token with metadata",
			req:    withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-meta", "userMetadata": map[string]string{"plan": "pro", "email": "a@b.example"}, "iat": now.Unix(), "exp": exp})),
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-meta", Verified: true, Metadata: map[string]string{"plan": "pro", "email": "a@b.example"}, KeyVersion: 1},
		},
		{
			name:   "valid token without iat (PyJWT)",
			req:    withStrict(mint(t, strict.Secret, jwt.MapClaims{"userId": "u-py", "exp": exp})),
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-py", Verified: true, KeyVersion: 1},
		},
		{
			name: "expired 30 s ago, within leeway",
			claimsAt: func(now time.Time) jwt.MapClaims {
				return jwt.MapClaims{"userId": "u-late", "exp": now.Add(-30 * time.Second).Unix()}
			},
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-late", Verified: true, KeyVersion: 1},
		},
		{
			name:   "kid of the current key",
			req:    withStrict(handToken(t, strict.Secret, "HS256", hsHeader(map[string]any{"kid": "1"}), userClaims)),
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-1", Verified: true, KeyVersion: 1},
		},
		{
			name:   "token just under 8 KiB",
			req:    withStrict(justSmall),
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-small", Verified: true, KeyVersion: 1},
		},
		{
			name:   "subdomain at depth 2",
			req:    withOrigin(strict.ID, valid("u-sub"), "https://a.b.shop.example"),
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-sub", Verified: true, KeyVersion: 1},
		},
		{
			name:   "anonymous where no token is required",
			req:    connectReq{ProjectID: open.ID, Origin: shopOrigin, UserID: "visitor-1", UserMetadata: map[string]string{"lang": "fr"}},
			accept: acceptWant{Session: events.SessionAnonymous, UserID: "visitor-1", Verified: false, Metadata: map[string]string{"lang": "fr"}},
		},
		{
			name:   "anonymous without a userId still answers userId",
			req:    connectReq{ProjectID: open.ID, Origin: shopOrigin},
			accept: acceptWant{Session: events.SessionAnonymous, UserID: "", Verified: false},
		},
		{
			name:   "empty allowlist passes a missing Origin",
			req:    connectReq{ProjectID: anyOrigin.ID, UserID: "visitor-2"},
			accept: acceptWant{Session: events.SessionAnonymous, UserID: "visitor-2", Verified: false},
		},
		{
			name:   "new key right after rotate",
			req:    connectReq{ProjectID: rotated.ID, Token: newKeyToken, Origin: shopOrigin},
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-rot", Verified: true, KeyVersion: 2},
		},
		{
			name:   "revoked user, token minted after revocation",
			req:    connectReq{ProjectID: revoked.ID, Token: revokedAfter, Origin: shopOrigin},
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-revoked", Verified: true, KeyVersion: 1},
		},
		{
			name:   "another user of a project with a revocation",
			req:    connectReq{ProjectID: revoked.ID, Token: otherUser, Origin: shopOrigin},
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-other", Verified: true, KeyVersion: 1},
		},
	}

	covered := map[events.Reason]bool{}
	for _, tc := range cases {
		covered[tc.reason] = true
	}
	for _, r := range events.Reasons {
		if !covered[r] {
			t.Errorf("no case reaches reason %s", r)
		}
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.claimsAt != nil {
				tc.req = withStrict(mint(t, strict.Secret, tc.claimsAt(time.Now())))
			}
			a := connect(t, st.HTTPAddr, tc.req)
			if tc.reason == "" {
				wantAccept(t, a, tc.accept)
				return
			}
			wantRefusal(t, a, tc.reason, tc.req.Token, strict.Secret)
			if tc.reason == events.ReasonTokenExpired || tc.reason == events.ReasonTokenNotYetValid {
				wantClock(t, a, tc.skew)
			} else if _, ok := a.Body["skewSeconds"]; ok {
				t.Errorf("a %s refusal carries skewSeconds; body %s", tc.reason, a.Raw)
			}
		})
	}
}

func withOrigin(projectID, token, origin string) connectReq {
	return connectReq{ProjectID: projectID, Token: token, Origin: origin}
}

// breakLine puts a line break into the token's signature, as a mail client
// or a config file might: Go's base64 decoders skip it.
func breakLine(token, lineBreak string) string {
	i := strings.LastIndexByte(token, '.') + 10
	return token[:i] + lineBreak + token[i:]
}

// tamper changes the token's signature, keeping it well-formed.
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig := []byte(token[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return token[:i+1] + string(sig)
}

// TestConnectRotationGrace checks `project rotate --grace`: the previous key
// verifies until the grace ends, by server time, then never again.
//
// The grace starts when the rotator takes the command, and the rotation
// answers once the verifiers confirmed it: the checks within the grace need
// graceMargin of it left by then. On a machine slow enough to use up most
// of a grace before the rotation answers, the test rotates a new project
// with a longer grace; it fails when even a minute was not enough.
func TestConnectRotationGrace(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	const graceMargin = 2 * time.Second
	var (
		p          testProject
		oldToken   string
		req        connectReq
		rot        keyAnswer
		grace      time.Duration
		graceUntil time.Time
	)
	for _, grace = range []time.Duration{5 * time.Second, 20 * time.Second, time.Minute} {
		p = shopProject(t, st, fmt.Sprintf("grace %s", grace), true)
		oldToken = userToken(t, p.Secret, "u-grace")
		req = connectReq{ProjectID: p.ID, Token: oldToken, Origin: shopOrigin}
		wantAccept(t, connect(t, st.HTTPAddr, req), acceptWant{Session: events.SessionAuthenticated, UserID: "u-grace", Verified: true, KeyVersion: 1})

		rot = decodeKeyAnswer(t, runCLI(t, st, "project", "rotate", p.ID, "--grace", grace.String(), "--json"))
		graceUntil = time.Time{}
		for _, k := range rot.Project.Keys {
			if k.Version == 1 && k.ValidUntil != nil {
				graceUntil = *k.ValidUntil
			}
		}
		if graceUntil.IsZero() {
			t.Fatalf("project rotate --grace %s --json: key 1 has no validUntil: %+v", grace, rot.Project.Keys)
		}
		if time.Until(graceUntil) >= graceMargin {
			break
		}
		t.Logf("the rotation left %s of a %s grace: again with a longer one", time.Until(graceUntil), grace)
	}
	if left := time.Until(graceUntil); left < graceMargin {
		t.Fatalf("the rotation left %s of a %s grace, less than the %s the checks within it need", left, grace, graceMargin)
	}

	wantAccept(t, connect(t, st.HTTPAddr, req), acceptWant{Session: events.SessionAuthenticated, UserID: "u-grace", Verified: true, KeyVersion: 1})
	newReq := connectReq{ProjectID: p.ID, Token: userToken(t, rot.SecretKey, "u-grace"), Origin: shopOrigin}
	wantAccept(t, connect(t, st.HTTPAddr, newReq), acceptWant{Session: events.SessionAuthenticated, UserID: "u-grace", Verified: true, KeyVersion: 2})

	stacktest.Eventually(t, time.Until(graceUntil)+30*time.Second, "the grace period ends", func() error {
		if left := time.Until(graceUntil); left >= 0 {
			return fmt.Errorf("%s of the grace left", left)
		}
		return nil
	})
	wantRefusal(t, connect(t, st.HTTPAddr, req), events.ReasonTokenBadSignature, oldToken)
	wantAccept(t, connect(t, st.HTTPAddr, newReq), acceptWant{Session: events.SessionAuthenticated, UserID: "u-grace", Verified: true, KeyVersion: 2})
}

// TestConnectRequireTokenUpdate checks that `project update
// --require-token=…` reaches the decisions.
func TestConnectRequireTokenUpdate(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	p := shopProject(t, st, "switch", true)
	anon := connectReq{ProjectID: p.ID, Origin: shopOrigin, UserID: "visitor"}
	wantRefusal(t, connect(t, st.HTTPAddr, anon), events.ReasonTokenRequired)

	runCLI(t, st, "project", "update", p.ID, "--require-token=false")
	stacktest.Eventually(t, 10*time.Second, "anonymous sessions accepted after --require-token=false", func() error {
		return wantStatus(connect(t, st.HTTPAddr, anon), http.StatusOK)
	})
	wantAccept(t, connect(t, st.HTTPAddr, anon), acceptWant{Session: events.SessionAnonymous, UserID: "visitor", Verified: false})
	bad := userToken(t, otherKey, "visitor")
	wantRefusal(t, connect(t, st.HTTPAddr, connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: bad}), events.ReasonTokenBadSignature, bad)
	wantAccept(t, connect(t, st.HTTPAddr, connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: userToken(t, p.Secret, "u-1")}),
		acceptWant{Session: events.SessionAuthenticated, UserID: "u-1", Verified: true, KeyVersion: 1})

	runCLI(t, st, "project", "update", p.ID, "--require-token=true")
	stacktest.Eventually(t, 10*time.Second, "tokens required again after --require-token=true", func() error {
		return wantStatus(connect(t, st.HTTPAddr, anon), http.StatusUnauthorized)
	})
	wantRefusal(t, connect(t, st.HTTPAddr, anon), events.ReasonTokenRequired)
}

// TestConnectAuthorizationHeader checks the token sent as
// `Authorization: Bearer …` instead of widgetToken.
func TestConnectAuthorizationHeader(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	js := jetStream(t, st)
	p := shopProject(t, st, "bearer", true)
	tok := userToken(t, p.Secret, "u-bearer")
	other := userToken(t, p.Secret, "u-other")
	authenticated := acceptWant{Session: events.SessionAuthenticated, UserID: "u-bearer", Verified: true, KeyVersion: 1}

	cases := []struct {
		name   string
		req    connectReq
		status int
		reason events.Reason // for a 401
	}{
		{name: "Bearer only", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Authorization: "Bearer " + tok}, status: http.StatusOK},
		{name: "bearer scheme in lower case", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Authorization: "bearer " + tok}, status: http.StatusOK},
		{name: "Bearer and widgetToken equal", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: tok, Authorization: "Bearer " + tok}, status: http.StatusOK},
		{name: "Bearer token verified", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Authorization: "Bearer " + tamper(tok)}, status: http.StatusUnauthorized, reason: events.ReasonTokenBadSignature},
		{name: "Basic credentials", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Authorization: "Basic x"}, status: http.StatusBadRequest},
		{name: "Basic credentials beside widgetToken", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: tok, Authorization: "Basic x"}, status: http.StatusBadRequest},
		{name: "Bearer and widgetToken different", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: tok, Authorization: "Bearer " + other}, status: http.StatusBadRequest},
	}
	// Sequential: a 400 must publish nothing, which the attempts stream's
	// last sequence shows only while no other request runs.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq(t, js, events.StreamAttempts)
			a := connect(t, st.HTTPAddr, tc.req)
			switch tc.status {
			case http.StatusOK:
				wantAccept(t, a, authenticated)
			case http.StatusUnauthorized:
				wantRefusal(t, a, tc.reason, tok)
			case http.StatusBadRequest:
				wantBadRequest(t, a, "Authorization|Bearer|widgetToken")
				if after := lastSeq(t, js, events.StreamAttempts); after != before {
					t.Errorf("a 400 published %d attempt(s)", after-before)
				}
				if strings.Contains(string(a.Raw), tok) || strings.Contains(string(a.Raw), other) {
					t.Errorf("the 400 quotes a token: %s", a.Raw)
				}
			}
		})
	}
}

// TestConnectBadRequests checks that malformed requests get 400 with an
// explanation, and that nothing reaches JetStream.
func TestConnectBadRequests(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	js := jetStream(t, st)
	p := shopProject(t, st, "bad-requests", false)

	// padded is a well-formed request body of exactly n bytes.
	padded := func(n int) []byte {
		head := `{"projectId":"` + p.ID + `","widgetToken":"`
		tail := `"}`
		return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
	}
	if n := len(padded(maxBody + 1)); n != maxBody+1 {
		t.Fatalf("padded body has %d bytes", n)
	}

	// Control: a request of exactly 16 KiB is decided, and the probe sees
	// its attempt.
	t.Run("control: 16 KiB body is decided", func(t *testing.T) {
		before := lastSeq(t, js, events.StreamAttempts)
		a := post(t, st.HTTPAddr, padded(maxBody), map[string]string{"Origin": shopOrigin})
		wantRefusal(t, a, events.ReasonTokenTooLarge)
		if after := lastSeq(t, js, events.StreamAttempts); after != before+1 {
			t.Fatalf("attempts stream: last sequence %d → %d, want one attempt", before, after)
		}
	})

	cases := []struct {
		name     string
		body     []byte
		mentions []string // what the error must say (see wantBadRequest)
		// notMentions are fields the error must not name: keys that are
		// not the documented names are unknown keys, ignored.
		notMentions []string
	}{
		{name: "not JSON", body: []byte(`projectId=` + p.ID), mentions: []string{"JSON"}},
		{name: "projectId over 64 bytes (no project id is longer)", body: []byte(`{"projectId":"` + strings.Repeat("p", 65) + `"}`), mentions: []string{"projectId", "64 bytes"}},
		{name: "PROJECTID is not projectId", body: []byte(`{"PROJECTID":"` + p.ID + `"}`), mentions: []string{"projectId", "missing"}},
		{name: "projectid is not projectId", body: []byte(`{"projectid":"` + p.ID + `"}`), mentions: []string{"projectId", "missing"}},
		{name: "ProjectId a number is not projectId", body: []byte(`{"ProjectId":42}`), mentions: []string{"projectId", "missing"}},
		{name: "USERID a number is not userId", body: []byte(`{"USERID":5,"projectId":42}`), mentions: []string{"projectId", "string"}, notMentions: []string{"userId"}},
		{name: "WidgetToken a number is not widgetToken", body: []byte(`{"WidgetToken":5,"projectId":{}}`), mentions: []string{"projectId", "string"}, notMentions: []string{"widgetToken"}},
		{name: "USERMETADATA of numbers is not userMetadata", body: []byte(`{"USERMETADATA":{"plan":3},"projectId":[]}`), mentions: []string{"projectId", "string"}, notMentions: []string{"userMetadata"}},
		{name: "empty body", body: []byte{}, mentions: []string{"JSON|empty"}},
		{name: "JSON array", body: []byte(`[{"projectId":"` + p.ID + `"}]`), mentions: []string{"object"}},
		{name: "JSON string", body: []byte(`"` + p.ID + `"`), mentions: []string{"object"}},
		{name: "trailing garbage", body: []byte(`{"projectId":"` + p.ID + `"}garbage`), mentions: []string{"after|trailing"}},
		{name: "two objects", body: []byte(`{"projectId":"` + p.ID + `"}{"projectId":"` + p.ID + `"}`), mentions: []string{"after|trailing"}},
		{name: "no projectId", body: []byte(`{"userId":"u-1"}`), mentions: []string{"projectId", "missing|required"}},
		{name: "projectId empty", body: []byte(`{"projectId":""}`), mentions: []string{"projectId", "missing|empty|required"}},
		{name: "projectId null", body: []byte(`{"projectId":null}`), mentions: []string{"projectId", "missing|null|string|required"}},
		{name: "projectId a number", body: []byte(`{"projectId":42}`), mentions: []string{"projectId", "string"}},
		{name: "projectId an object", body: []byte(`{"projectId":{"id":"` + p.ID + `"}}`), mentions: []string{"projectId", "string"}},
		{name: "userId a number", body: []byte(`{"projectId":"` + p.ID + `","userId":5}`), mentions: []string{"userId", "string"}},
		{name: "widgetToken a number", body: []byte(`{"projectId":"` + p.ID + `","widgetToken":5}`), mentions: []string{"widgetToken", "string"}},
		{name: "userMetadata of numbers", body: []byte(`{"projectId":"` + p.ID + `","userMetadata":{"plan":3}}`), mentions: []string{"userMetadata", "string"}},
		{name: "userMetadata of null", body: []byte(`{"projectId":"` + p.ID + `","userMetadata":{"plan":null}}`), mentions: []string{"userMetadata", "string"}},
		{name: "userMetadata a string", body: []byte(`{"projectId":"` + p.ID + `","userMetadata":"pro"}`), mentions: []string{"userMetadata", "object|map"}},
		{name: "userMetadata an array", body: []byte(`{"projectId":"` + p.ID + `","userMetadata":["pro"]}`), mentions: []string{"userMetadata", "object|map"}},
		{name: "body over 16 KiB", body: padded(maxBody + 1), mentions: []string{"16384|16 KiB|16KiB"}},
	}
	// Sequential, for the reason TestConnectAuthorizationHeader gives.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeq(t, js, events.StreamAttempts)
			a := post(t, st.HTTPAddr, tc.body, map[string]string{"Origin": shopOrigin})
			wantBadRequest(t, a, tc.mentions...)
			for _, m := range tc.notMentions {
				if msg, _ := a.str("error"); strings.Contains(msg, m) {
					t.Errorf("error %q names %s, which the body does not hold", msg, m)
				}
			}
			if _, ok := a.Body["decision"]; ok {
				t.Errorf("a 400 carries a decision: %s", a.Raw)
			}
			if after := lastSeq(t, js, events.StreamAttempts); after != before {
				t.Errorf("a 400 published %d attempt(s)", after-before)
			}
		})
	}
}

// TestConnectExactKeyNames checks that the body's keys match the
// documented names exactly, as a WAF or an ingress written from the public
// schema reads them: a key under another case is an unknown key, ignored.
func TestConnectExactKeyNames(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	strict := shopProject(t, st, "strict-keys", true)
	open := shopProject(t, st, "open-keys", false)
	tok := userToken(t, strict.Secret, "u-keys")
	cases := []struct {
		name   string
		body   string
		reason events.Reason // "" for an accept
		accept acceptWant
		// noMetadata: the accept carries no userMetadata.
		noMetadata bool
	}{
		{name: "WIDGETTOKEN is not widgetToken", body: `{"projectId":"` + strict.ID + `","WIDGETTOKEN":"` + tok + `"}`, reason: events.ReasonTokenRequired},
		{name: "WidgetToken is not widgetToken", body: `{"projectId":"` + strict.ID + `","WidgetToken":"` + tok + `"}`, reason: events.ReasonTokenRequired},
		{name: "PROJECTID beside projectId is ignored", body: `{"projectId":"` + open.ID + `","PROJECTID":"proj_nope","userId":"v-1"}`,
			accept: acceptWant{Session: events.SessionAnonymous, UserID: "v-1"}},
		{name: "USERID is not userId", body: `{"projectId":"` + open.ID + `","USERID":"eve"}`,
			accept: acceptWant{Session: events.SessionAnonymous, UserID: ""}},
		{name: "UserMetadata is not userMetadata", body: `{"projectId":"` + open.ID + `","userId":"v-2","UserMetadata":{"role":"admin"}}`,
			accept: acceptWant{Session: events.SessionAnonymous, UserID: "v-2"}, noMetadata: true},
		{name: "an escaped documented name is the name", body: `{"projectI\u0064":"` + open.ID + `","userId":"v-3"}`,
			accept: acceptWant{Session: events.SessionAnonymous, UserID: "v-3"}},
		{name: "the documented names", body: `{"projectId":"` + strict.ID + `","widgetToken":"` + tok + `","userId":"u-keys","userMetadata":{"plan":"pro"}}`,
			accept: acceptWant{Session: events.SessionAuthenticated, UserID: "u-keys", Verified: true, KeyVersion: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := post(t, st.HTTPAddr, []byte(tc.body), map[string]string{"Origin": shopOrigin})
			if tc.reason != "" {
				wantRefusal(t, a, tc.reason, tok)
				return
			}
			wantAccept(t, a, tc.accept)
			if _, ok := a.Body["userMetadata"]; ok && tc.noMetadata {
				t.Errorf("userMetadata under another key was read; body %s", a.Raw)
			}
		})
	}
}

// TestAttemptKeysExact checks that the verifier reads attempts published
// straight to JetStream, as another ingress following
// schemas/attempt.schema.json would, by the schema's exact key names.
func TestAttemptKeysExact(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	js := jetStream(t, st)
	strict := shopProject(t, st, "strict-attempts", true)
	open := shopProject(t, st, "open-attempts", false)
	tok := userToken(t, strict.Secret, "u-attempt")
	const ingressName = "ingress.keys-test"
	attempt := func(_, fields string) string {
		now := time.Now().UTC().Truncate(time.Millisecond)
		return `{"schemaVersion":1,"attemptId":"` + events.NewAttemptID(now) + `","receivedAt":"` + now.Format(time.RFC3339Nano) +
			`","deadline":"` + now.Add(time.Minute).Format(time.RFC3339Nano) + `","origin":"` + shopOrigin + `","ingress":"` + ingressName + `",` + fields + `}`
	}
	cases := []struct {
		name string
		body string
		want func(d events.Decision) bool
		what string
	}{
		{
			name: "WidgetToken is not widgetToken",
			body: attempt("att_keys_token", `"projectId":"`+strict.ID+`","WidgetToken":"`+tok+`"`),
			want: func(d events.Decision) bool { return d.Reason == events.ReasonTokenRequired },
			what: "token_required",
		},
		{
			name: "ProjectId is not projectId",
			body: attempt("att_keys_project", `"ProjectId":"`+strict.ID+`","widgetToken":"`+tok+`"`),
			want: func(d events.Decision) bool { return d.Reason == events.ReasonUnknownProject && d.ProjectID == "" },
			what: "unknown_project for an empty projectId",
		},
		{
			name: "USERID is not userId",
			body: attempt("att_keys_user", `"projectId":"`+open.ID+`","userId":"visitor","USERID":"eve"`),
			want: func(d events.Decision) bool { return d.Decision == events.OutcomeAccept && d.UserID == "visitor" },
			what: "an anonymous accept of visitor",
		},
		{
			name: "USERMETADATA is not userMetadata",
			body: attempt("att_keys_meta", `"projectId":"`+open.ID+`","USERMETADATA":{"role":"admin"}`),
			want: func(d events.Decision) bool { return d.Decision == events.OutcomeAccept && len(d.UserMetadata) == 0 },
			what: "an anonymous accept without metadata",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var a struct {
				AttemptID string `json:"attemptId"`
			}
			if err := json.Unmarshal([]byte(tc.body), &a); err != nil {
				t.Fatalf("the test's attempt is not JSON: %v", err)
			}
			m := nats.NewMsg(events.AttemptSubject(ingressName))
			m.Data = []byte(tc.body)
			m.Header.Set(events.HeaderMsgID, a.AttemptID)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			id := events.DecisionIDFor(a.AttemptID)
			var got []events.Decision
			stacktest.Eventually(t, 30*time.Second, "the attempt's decision", func() error {
				if got = storedDecisions(t, js, id); len(got) == 0 {
					return fmt.Errorf("no decision %s stored", id)
				}
				return nil
			})
			if len(got) != 1 || !tc.want(got[0]) {
				t.Errorf("decisions %+v, want one: %s", got, tc.what)
			}
		})
	}
}

// TestConnectClaimedUserID checks that a client userId different from the
// token's is recorded as claimedUserId and never used.
func TestConnectClaimedUserID(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	js := jetStream(t, st)
	p := shopProject(t, st, "claimed", true)
	tok := mint(t, p.Secret, jwt.MapClaims{"userId": "u-token", "userMetadata": map[string]string{"plan": "pro"}, "exp": time.Now().Add(time.Hour).Unix()})

	cases := []struct {
		name        string
		clientUser  string
		wantClaimed string
	}{
		{name: "different client userId", clientUser: "u-client", wantClaimed: "u-client"},
		{name: "same client userId", clientUser: "u-token", wantClaimed: ""},
		{name: "no client userId", clientUser: "", wantClaimed: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := connect(t, st.HTTPAddr, connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: tok, UserID: tc.clientUser, UserMetadata: map[string]string{"plan": "free"}})
			wantAccept(t, a, acceptWant{Session: events.SessionAuthenticated, UserID: "u-token", Verified: true, Metadata: map[string]string{"plan": "pro"}, KeyVersion: 1})
			id, _ := a.str("decisionId")
			got := storedDecisions(t, js, id)
			if len(got) != 1 {
				t.Fatalf("decision %s stored %d times, want once", id, len(got))
			}
			d := got[0]
			if d.UserID != "u-token" || d.ClaimedUserID != tc.wantClaimed || !d.UserVerified {
				t.Errorf("stored decision: userId %q claimedUserId %q userVerified %v, want u-token, %q, true", d.UserID, d.ClaimedUserID, d.UserVerified, tc.wantClaimed)
			}
		})
	}
}

// TestConnectDecisionStored checks that the decisionId of an answer names
// exactly one decision in HISSUNO_DECISIONS, which says the same.
func TestConnectDecisionStored(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	js := jetStream(t, st)
	p := shopProject(t, st, "stored", true)
	tok := userToken(t, p.Secret, "u-stored")

	cases := []struct {
		name     string
		req      connectReq
		status   int
		decision events.Outcome
		reason   events.Reason
	}{
		{name: "accept", req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: tok}, status: 200, decision: events.OutcomeAccept},
		{name: "unauthorized", req: connectReq{ProjectID: p.ID, Origin: shopOrigin}, status: 401, decision: events.OutcomeUnauthorized, reason: events.ReasonTokenRequired},
		{name: "origin blocked", req: connectReq{ProjectID: p.ID, Origin: "https://evil.example", Token: tok}, status: 403, decision: events.OutcomeOriginBlocked, reason: events.ReasonOriginNotAllowed},
		{name: "unknown project", req: connectReq{ProjectID: "proj_nope", Origin: shopOrigin}, status: 401, decision: events.OutcomeUnauthorized, reason: events.ReasonUnknownProject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := connect(t, st.HTTPAddr, tc.req)
			if a.Status != tc.status {
				t.Fatalf("status: got %d, want %d; body %s", a.Status, tc.status, a.Raw)
			}
			id, _ := a.str("decisionId")
			if id == "" {
				t.Fatalf("no decisionId: %s", a.Raw)
			}
			got := storedDecisions(t, js, id)
			if len(got) != 1 {
				t.Fatalf("decision %s stored %d times, want once", id, len(got))
			}
			d := got[0]
			if d.Decision != tc.decision || d.Reason != tc.reason || d.ProjectID != tc.req.ProjectID || d.Origin != tc.req.Origin {
				t.Errorf("stored decision %s: decision %q reason %q project %q origin %q; want %q %q %q %q",
					id, d.Decision, d.Reason, d.ProjectID, d.Origin, tc.decision, tc.reason, tc.req.ProjectID, tc.req.Origin)
			}
			if tc.req.Token != "" && strings.Contains(mustJSON(t, d), tc.req.Token) {
				t.Errorf("the stored decision holds the raw token")
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConnectCORS checks the preflight and that every decision answer, the
// refusals included, is readable by the widget's page.
func TestConnectCORS(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	p := shopProject(t, st, "cors", true)
	tok := userToken(t, p.Secret, "u-cors")

	t.Run("preflight", func(t *testing.T) {
		t.Parallel()
		a := do(t, http.MethodOptions, connectURL(st.HTTPAddr), nil, map[string]string{
			"Origin":                         shopOrigin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type, authorization",
		})
		if a.Status != http.StatusNoContent {
			t.Fatalf("status: got %d, want 204; body %s", a.Status, a.Raw)
		}
		if got := a.Header.Get("Access-Control-Allow-Origin"); got != shopOrigin {
			t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, shopOrigin)
		}
		if !headerListHas(a.Header, "Access-Control-Allow-Methods", "POST") {
			t.Errorf("Access-Control-Allow-Methods %q lacks POST", a.Header.Values("Access-Control-Allow-Methods"))
		}
		for _, h := range []string{"Content-Type", "Authorization"} {
			if !headerListHas(a.Header, "Access-Control-Allow-Headers", h) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", a.Header.Values("Access-Control-Allow-Headers"), h)
			}
		}
	})

	answers := []struct {
		name   string
		origin string
		req    connectReq
		status int
	}{
		{name: "200", origin: shopOrigin, req: connectReq{ProjectID: p.ID, Origin: shopOrigin, Token: tok}, status: http.StatusOK},
		{name: "401", origin: shopOrigin, req: connectReq{ProjectID: p.ID, Origin: shopOrigin}, status: http.StatusUnauthorized},
		{name: "403", origin: "https://evil.example", req: connectReq{ProjectID: p.ID, Origin: "https://evil.example", Token: tok}, status: http.StatusForbidden},
	}
	for _, tc := range answers {
		t.Run("POST "+tc.name, func(t *testing.T) {
			t.Parallel()
			a := connect(t, st.HTTPAddr, tc.req)
			if a.Status != tc.status {
				t.Fatalf("status: got %d, want %d; body %s", a.Status, tc.status, a.Raw)
			}
			if got := a.Header.Get("Access-Control-Allow-Origin"); got != tc.origin {
				t.Errorf("Access-Control-Allow-Origin: got %q, want %q", got, tc.origin)
			}
			if !headerListHas(a.Header, "Vary", "Origin") {
				t.Errorf("Vary %q lacks Origin", a.Header.Values("Vary"))
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		a := do(t, http.MethodGet, connectURL(st.HTTPAddr), nil, map[string]string{"Origin": shopOrigin})
		if a.Status != http.StatusMethodNotAllowed {
			t.Fatalf("status: got %d, want 405; body %s", a.Status, a.Raw)
		}
		if !headerListHas(a.Header, "Allow", "POST") {
			t.Errorf("Allow %q lacks POST", a.Header.Values("Allow"))
		}
	})
}

// headerListHas reports whether a comma-separated header holds the token,
// case-insensitively.
func headerListHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// runIngress runs an ingress on nc with the given deadline until the test
// ends.
func runIngress(t *testing.T, nc *nats.Conn, deadline time.Duration) *ingress.Ingress {
	t.Helper()
	in, err := ingress.New(ingress.Config{NATS: nc, Listen: "127.0.0.1:0", Deadline: deadline}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingress run: %v", err)
		}
	})
	select {
	case <-in.Listening():
	case err := <-done:
		t.Fatalf("ingress stopped before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("ingress not listening after 10 s")
	}
	return in
}

// TestConnectNotDecided checks the 503s of an attempt no verifier decides:
// the ingress does not wait for JetStream's acknowledgement before waiting
// for the reply, so it must still tell "not queued" from "not answered",
// answer a stream's refusal at once, and republish an attempt the stream
// did not take until it is stored, once.
func TestConnectNotDecided(t *testing.T) {
	t.Parallel()
	const deadline = 1500 * time.Millisecond
	attempts := jetstream.StreamConfig{
		Name: events.StreamAttempts, Subjects: []string{events.SubjectAttempts + ".>"},
		Retention: jetstream.WorkQueuePolicy, Duplicates: time.Minute,
	}
	for _, tc := range []struct {
		name string
		// setup prepares the server; it returns once the request may be sent.
		setup     func(t *testing.T, ctx context.Context, js jetstream.JetStream)
		wantError string
		// wantStored is the number of attempts in the stream afterwards.
		wantStored uint64
		// early: the 503 comes well before the deadline.
		early bool
	}{
		{
			name:       "stored, no verifier",
			setup:      func(t *testing.T, ctx context.Context, js jetstream.JetStream) { createStream(t, ctx, js, attempts) },
			wantError:  "no verifier answered within 1.5s; retry shortly",
			wantStored: 1,
		},
		{
			name: "the stream refuses it",
			setup: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				full := attempts
				full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
				createStream(t, ctx, js, full)
				if _, err := js.Publish(ctx, events.AttemptSubject("ingress.filler"), []byte("{}")); err != nil {
					t.Fatal(err)
				}
			},
			wantError:  "the attempt could not be queued; retry shortly",
			wantStored: 1, // the one that filled it
			early:      true,
		},
		{
			name:      "no stream",
			setup:     func(t *testing.T, ctx context.Context, js jetstream.JetStream) {},
			wantError: "the attempt could not be queued; retry shortly",
		},
		{
			name: "the stream appears while it waits",
			setup: func(t *testing.T, ctx context.Context, js jetstream.JetStream) {
				time.AfterFunc(300*time.Millisecond, func() { createStream(t, ctx, js, attempts) })
			},
			wantError:  "no verifier answered within 1.5s; retry shortly",
			wantStored: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t.Cleanup(cancel)
			ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
			nc := stacktest.Connect(t, ns)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			in := runIngress(t, nc, deadline)
			tc.setup(t, ctx, js)

			start := time.Now()
			a := connect(t, in.Addr(), connectReq{ProjectID: "proj_any", Origin: shopOrigin})
			took := time.Since(start)
			if a.Status != http.StatusServiceUnavailable {
				t.Fatalf("status: got %d, want 503; body %s", a.Status, a.Raw)
			}
			if msg, _ := a.str("error"); msg != tc.wantError {
				t.Errorf("error: got %q, want %q", msg, tc.wantError)
			}
			if tc.early && took > deadline/2 {
				t.Errorf("the 503 came after %s, want it at once", took)
			}
			if !tc.early && (took < deadline || took > deadline+3*time.Second) {
				t.Errorf("the 503 came after %s, want about the %s deadline", took, deadline)
			}
			var stored uint64
			if s, err := js.Stream(ctx, events.StreamAttempts); err == nil {
				info, err := s.Info(ctx)
				if err != nil {
					t.Fatal(err)
				}
				stored = info.State.Msgs
			}
			if stored != tc.wantStored {
				t.Errorf("attempts stored: %d, want %d", stored, tc.wantStored)
			}
		})
	}
}

func createStream(t *testing.T, ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Errorf("create stream %s: %v", cfg.Name, err)
	}
}

// TestHealthEndpoints checks liveness, readiness and metrics on a running
// stack.
func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	cases := []struct {
		path     string
		wantType string
		contains string
	}{
		{path: "/healthz", wantType: "application/json"},
		{path: "/readyz", wantType: "application/json"},
		{path: "/metrics", wantType: "text/plain", contains: "# TYPE "},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			a := do(t, http.MethodGet, "http://"+st.HTTPAddr+tc.path, nil, nil)
			if a.Status != http.StatusOK {
				t.Fatalf("status: got %d, want 200; body %s", a.Status, a.Raw)
			}
			if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type: got %q, want %s", ct, tc.wantType)
			}
			if !strings.Contains(string(a.Raw), tc.contains) {
				t.Errorf("body lacks %q:\n%.500s", tc.contains, a.Raw)
			}
		})
	}
}

package authz

// Conformance against real third-party minters: the tokens customers' backends
// make with npm's jsonwebtoken (v9, pinned in testdata/minters/package.json)
// and with PyJWT (Debian's python3-jwt) must be accepted when they follow the
// documented calls and refused, with the right reason, when they do not.
//
// The minters run at test time from testdata/minters. When one is not
// installed the test is skipped on a developer's machine and fails in CI
// (CI non-empty), naming the command that installs it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/origin"
)

// mintersDir holds the minter scripts, package.json and package-lock.json.
var mintersDir = filepath.Join("testdata", "minters")

// debianPython is the interpreter that has python3-jwt; the python3 on PATH
// may be another one without it.
const debianPython = "/usr/bin/python3"

// mintTimeout bounds one run of a minter.
const mintTimeout = time.Minute

// minter is one third-party token minter run by the conformance test.
type minter struct {
	name string
	// fix is the command that installs what the minter needs.
	fix string
	// check reports why the minter cannot run, or nil.
	check func() error
	// argv runs the minter: spec on stdin, tokens as JSON on stdout.
	argv []string
	// wantIat says whether the documented call writes an iat claim.
	wantIat bool
}

var minters = []minter{
	{
		name:    "jsonwebtoken",
		fix:     "cd internal/authz/testdata/minters && npm ci",
		check:   checkJSONWebToken,
		argv:    []string{"node", "mint.js"},
		wantIat: true,
	},
	{
		name:    "pyjwt",
		fix:     "apt-get install -y python3-jwt",
		check:   checkPyJWT,
		argv:    []string{debianPython, "mint.py"},
		wantIat: false,
	},
}

// checkJSONWebToken reports whether node is installed and node_modules holds
// the jsonwebtoken version package-lock.json pins.
func checkJSONWebToken() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not installed (apt-get install -y nodejs npm): %w", err)
	}
	want, err := lockedVersion("jsonwebtoken")
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(mintersDir, "node_modules", "jsonwebtoken", "package.json"))
	if err != nil {
		return fmt.Errorf("jsonwebtoken is not installed in %s: %w", mintersDir, err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return fmt.Errorf("node_modules/jsonwebtoken/package.json: %w", err)
	}
	if pkg.Version != want {
		return fmt.Errorf("node_modules has jsonwebtoken %s, package-lock.json pins %s", pkg.Version, want)
	}
	return nil
}

// lockedVersion is the version of a dependency in package-lock.json.
func lockedVersion(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(mintersDir, "package-lock.json"))
	if err != nil {
		return "", err
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return "", fmt.Errorf("package-lock.json: %w", err)
	}
	v := lock.Packages["node_modules/"+name].Version
	if v == "" {
		return "", fmt.Errorf("package-lock.json does not lock %s", name)
	}
	return v, nil
}

// checkPyJWT reports whether Debian's python3 can import jwt.
func checkPyJWT() error {
	out, err := exec.Command(debianPython, "-c", "import jwt").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -c 'import jwt' failed: %v: %s", debianPython, err, bytes.TrimSpace(out))
	}
	return nil
}

// needMinter fails the test in CI and skips it elsewhere when the minter
// cannot run, naming the command that fixes it.
func needMinter(t *testing.T, m minter) {
	t.Helper()
	err := m.check()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the %s minter cannot run: %v; fix: %s", m.name, err, m.fix)
	}
	t.Skipf("the %s minter cannot run: %v; fix: %s", m.name, err, m.fix)
}

// mintSpec is what a minter reads on stdin.
type mintSpec struct {
	Key          string            `json:"key"`
	WrongKey     string            `json:"wrongKey"`
	UserID       string            `json:"userId"`
	UserMetadata map[string]string `json:"userMetadata"`
}

// The variants every minter prints, by the name of its output field. It
// also prints "library": the library's name and version.
const (
	variantGood     = "good"
	variantWrongKey = "wrongKey"
	variantExpired  = "expired"
	variantHS512    = "hs512"
	variantNone     = "none"
)

// mint runs a minter once and returns its tokens by variant.
func mint(t *testing.T, m minter, spec mintSpec) map[string]string {
	t.Helper()
	in, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("encoding the mint spec: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), mintTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.argv[0], m.argv[1:]...)
	cmd.Dir = mintersDir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s (in %s) failed: %v\nstderr: %s", strings.Join(m.argv, " "), mintersDir, err, stderr.String())
	}
	var tokens map[string]string
	if err := json.Unmarshal(stdout.Bytes(), &tokens); err != nil {
		t.Fatalf("%s printed no JSON object of tokens: %v\nstdout: %q", m.name, err, stdout.String())
	}
	for _, v := range []string{variantGood, variantWrongKey, variantExpired, variantHS512, variantNone} {
		if tokens[v] == "" {
			t.Fatalf("%s printed no %q token; got fields %v", m.name, v, slices.Sorted(maps.Keys(tokens)))
		}
	}
	t.Logf("minted with %s", tokens["library"])
	return tokens
}

// newSecretKey returns a realistic project secret key: `sk_live_` and 43
// base64url characters (32 random bytes).
func newSecretKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	k := "sk_live_" + base64.RawURLEncoding.EncodeToString(b)
	if len(k) != len("sk_live_")+43 {
		t.Fatalf("secret key has %d characters, want %d", len(k), len("sk_live_")+43)
	}
	return k
}

// jwtPart decodes the header (0) or payload (1) of a compact JWS.
func jwtPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("part %d of the token is not base64url: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("part %d of the token is not a JSON object: %v", i, err)
	}
	return m
}

// conformanceKeys are the secrets of one conformance run.
type conformanceKeys struct {
	current, wrong, next string
}

const (
	conformanceProjectID = "proj_conformance"
	conformanceOrigin    = "https://app.example.com"
	// currentKeyVersion is not 1 so that KeyVersion is seen to come from
	// the key, not from a default.
	currentKeyVersion = 3
)

// conformanceProject is a project that requires tokens, allows one origin
// and has the given keys.
func conformanceProject(t *testing.T, keys ...Key) *Project {
	t.Helper()
	origins, err := origin.ParsePatterns([]string{conformanceOrigin})
	if err != nil {
		t.Fatalf("ParsePatterns: %v", err)
	}
	return &Project{ID: conformanceProjectID, RequireToken: true, Origins: origins, Keys: keys}
}

// currentOnly is a project whose only key signed the good tokens.
func currentOnly(t *testing.T, k conformanceKeys) *Project {
	return conformanceProject(t, Key{Version: currentKeyVersion, Secret: []byte(k.current)})
}

// inGrace is a project that rotated: a new current key, and the key that
// signed the good tokens still in its grace period.
func inGrace(t *testing.T, k conformanceKeys) *Project {
	return conformanceProject(t,
		Key{Version: currentKeyVersion + 1, Secret: []byte(k.next)},
		Key{Version: currentKeyVersion, Secret: []byte(k.current), ValidUntil: time.Now().Add(time.Hour)},
	)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, m := range minters {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			needMinter(t, m)
			testMinterConformance(t, m)
		})
	}
}

func testMinterConformance(t *testing.T, m minter) {
	keys := conformanceKeys{current: newSecretKey(t), wrong: newSecretKey(t), next: newSecretKey(t)}
	spec := mintSpec{
		Key:      keys.current,
		WrongKey: keys.wrong,
		UserID:   "user_8f14e45fceea167a",
		// Non-ASCII on purpose: jsonwebtoken writes UTF-8, PyJWT \u escapes.
		UserMetadata: map[string]string{"name": "Zoë Lovelace", "email": "zoe@example.com", "plan": "pro"},
	}
	before := time.Now().Unix()
	tokens := mint(t, m, spec)
	after := time.Now().Unix()

	t.Run("claims", func(t *testing.T) {
		t.Parallel()
		claims := jwtPart(t, tokens[variantGood], 1)
		iat, hasIat := claims["iat"]
		switch {
		case m.wantIat && !hasIat:
			t.Errorf("the documented %s call wrote no iat; claims %v", m.name, claims)
		case !m.wantIat && hasIat:
			t.Errorf("the documented %s call wrote iat %v; want none", m.name, iat)
		case hasIat:
			if n, ok := iat.(float64); !ok || int64(n) < before || int64(n) > after {
				t.Errorf("iat = %v, want a number from %d to %d", iat, before, after)
			}
		}
		exp, ok := claims["exp"].(float64)
		if !ok {
			t.Fatalf("exp = %v, want a number", claims["exp"])
		}
		if lo, hi := before+24*3600, after+24*3600; int64(exp) < lo || int64(exp) > hi {
			t.Errorf("exp = %d, want 24 h after minting: from %d to %d", int64(exp), lo, hi)
		}
	})

	tests := []struct {
		name    string
		variant string
		// alg is the header the minter must have written, so that a
		// refusal is seen to be for the reason the case names.
		alg     string
		project func(*testing.T, conformanceKeys) *Project
		// claimedUserID is the userId the client sends beside the token.
		claimedUserID string
		// wantReason is "" for an accept.
		wantReason     events.Reason
		wantKeyVersion int
	}{
		{
			name: "documented call accepted", variant: variantGood, alg: "HS256",
			project: currentOnly, wantKeyVersion: currentKeyVersion,
		},
		{
			name: "documented call accepted with previous key in grace", variant: variantGood, alg: "HS256",
			project: inGrace, wantKeyVersion: currentKeyVersion,
		},
		{
			name: "documented call accepted over another claimed userId", variant: variantGood, alg: "HS256",
			project: currentOnly, claimedUserID: "user_someone_else", wantKeyVersion: currentKeyVersion,
		},
		{
			name: "wrong key refused", variant: variantWrongKey, alg: "HS256",
			project: currentOnly, wantReason: events.ReasonTokenBadSignature,
		},
		{
			name: "wrong key refused with previous key in grace", variant: variantWrongKey, alg: "HS256",
			project: inGrace, wantReason: events.ReasonTokenBadSignature,
		},
		{
			name: "expired refused", variant: variantExpired, alg: "HS256",
			project: currentOnly, wantReason: events.ReasonTokenExpired,
		},
		{
			name: "HS512 with the right key refused", variant: variantHS512, alg: "HS512",
			project: currentOnly, wantReason: events.ReasonTokenAlgNotAllowed,
		},
		{
			name: "alg none refused", variant: variantNone, alg: "none",
			project: currentOnly, wantReason: events.ReasonTokenAlgNotAllowed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A Decider of its own, so that the first decision verifies the
			// token and the second, of an accepted token, is the cache's.
			d := NewDecider(DefaultCacheEntries)
			token := tokens[tc.variant]
			if alg := jwtPart(t, token, 0)["alg"]; alg != tc.alg {
				t.Fatalf("the %s %q token has alg %v, want %s", m.name, tc.variant, alg, tc.alg)
			}
			p := tc.project(t, keys)
			req := Request{ProjectID: p.ID, Origin: conformanceOrigin, Token: token, UserID: tc.claimedUserID}
			// Twice: the second decision of a verified token comes from
			// the cache and must say the same.
			for _, round := range []string{"first", "second"} {
				dec := d.Decide(p, req, time.Now())
				if tc.wantReason == "" {
					checkAccept(t, round, dec, spec, tc.claimedUserID, tc.wantKeyVersion)
				} else {
					checkRefusal(t, round, dec, tc.wantReason, keys, token)
				}
				wantCached := 0
				if tc.wantReason == "" {
					wantCached = 1
				}
				if n := d.cache.len(); n != wantCached {
					t.Errorf("%s decision: the cache holds %d tokens, want %d", round, n, wantCached)
				}
				if want := Fingerprint(token); dec.TokenFingerprint != want {
					t.Errorf("%s decision: TokenFingerprint = %q, want %q", round, dec.TokenFingerprint, want)
				}
				if tc.wantReason == events.ReasonTokenExpired {
					// exp is 120 s before minting; the decision is later.
					if dec.SkewSeconds < 120 || dec.SkewSeconds > 120+int64(mintTimeout/time.Second)+60 {
						t.Errorf("%s decision: SkewSeconds = %d, want 120 or a little more", round, dec.SkewSeconds)
					}
				}
			}
		})
	}
}

// checkAccept asserts an authenticated accept of the spec's user.
func checkAccept(t *testing.T, round string, dec Decision, spec mintSpec, claimed string, keyVersion int) {
	t.Helper()
	if dec.Outcome != events.OutcomeAccept || dec.Reason != "" || dec.Err != nil {
		t.Fatalf("%s decision: outcome %q reason %q err %v, want accept", round, dec.Outcome, dec.Reason, dec.Err)
	}
	if dec.Session != events.SessionAuthenticated || !dec.UserVerified {
		t.Errorf("%s decision: session %q verified %v, want authenticated and verified", round, dec.Session, dec.UserVerified)
	}
	if dec.UserID != spec.UserID {
		t.Errorf("%s decision: UserID = %q, want %q", round, dec.UserID, spec.UserID)
	}
	if !maps.Equal(dec.UserMetadata, spec.UserMetadata) {
		t.Errorf("%s decision: UserMetadata = %v, want %v", round, dec.UserMetadata, spec.UserMetadata)
	}
	if dec.KeyVersion != keyVersion {
		t.Errorf("%s decision: KeyVersion = %d, want %d", round, dec.KeyVersion, keyVersion)
	}
	wantClaimed := ""
	if claimed != "" && claimed != spec.UserID {
		wantClaimed = claimed
	}
	if dec.ClaimedUserID != wantClaimed {
		t.Errorf("%s decision: ClaimedUserID = %q, want %q", round, dec.ClaimedUserID, wantClaimed)
	}
}

// checkRefusal asserts a 401 with the given reason, no user, and an error
// that quotes neither the token nor a key.
func checkRefusal(t *testing.T, round string, dec Decision, want events.Reason, keys conformanceKeys, token string) {
	t.Helper()
	if dec.Outcome != events.OutcomeUnauthorized || dec.Reason != want {
		t.Fatalf("%s decision: outcome %q reason %q (err %v), want unauthorized %q", round, dec.Outcome, dec.Reason, dec.Err, want)
	}
	if dec.Err == nil || ReasonOf(dec.Err) != want {
		t.Errorf("%s decision: Err = %v, want an error of reason %q", round, dec.Err, want)
	}
	var te *tokenError
	if !errors.As(dec.Err, &te) {
		t.Errorf("%s decision: Err = %T, want a token refusal", round, dec.Err)
	}
	if dec.Session != "" || dec.UserID != "" || dec.UserMetadata != nil || dec.UserVerified || dec.KeyVersion != 0 {
		t.Errorf("%s decision: a refusal carries session %q user %q metadata %v verified %v key %d",
			round, dec.Session, dec.UserID, dec.UserMetadata, dec.UserVerified, dec.KeyVersion)
	}
	if dec.Err != nil {
		msg := dec.Err.Error()
		for what, secret := range map[string]string{"the token": token, "the key": keys.current, "the wrong key": keys.wrong, "the next key": keys.next} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s decision: the error quotes %s: %q", round, what, msg)
			}
		}
		if sig := token[strings.LastIndexByte(token, '.')+1:]; sig != "" && strings.Contains(msg, sig) {
			t.Errorf("%s decision: the error quotes the token's signature", round)
		}
	}
}

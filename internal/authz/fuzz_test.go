package authz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/origin"
)

// FuzzDecide throws arbitrary tokens, origins and clocks at the decision.
// Whatever comes in: no panic; an accept with a token means the token really
// is HS256 and really carries an HMAC of a key usable at that time (checked
// here independently of golang-jwt); the cache never changes a decision; no
// error message quotes the token.
func FuzzDecide(f *testing.F) {
	good := sign(f, testKey1, hs256(), goodClaims())
	for _, seed := range []struct {
		token, origin string
		offset        int64
	}{
		{good, "https://myapp.com", 0},
		{good, "https://a.myapp.com", 3600},
		{good, "https://evilmyapp.com", 0},
		{sign(f, testKey2, hs256(), goodClaims()), "https://myapp.com", 0},
		{sign(f, "", map[string]any{"alg": "none"}, goodClaims()), "https://myapp.com", 0},
		{sign(f, testKey1, map[string]any{"alg": "HS512"}, goodClaims()), "https://myapp.com", 0},
		{sign(f, testKey1, with(hs256(), "kid", "2"), goodClaims()), "https://myapp.com", 0},
		{sign(f, testKey1, with(hs256(), "crit", []string{"b64"}), goodClaims()), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "exp", deleteClaim)), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "userId", 7)), "https://myapp.com", 0},
		{good, "null", 0},
		{good, "", 86400 + 61},
		{"", "https://myapp.com", 0},
		{"a.b.c", "https://myapp.com:443", 0},
		{good[:len(good)-5] + "\r\n" + good[len(good)-5:], "https://myapp.com", 0},
		{good + "\n", "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "exp", 1e300)), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "nbf", 1e300)), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "exp", "1760086400")), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "exp", deleteClaim, "EXP", testNow.Add(time.Hour).Unix())), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "userId", deleteClaim, "USERID", "admin")), "https://myapp.com", 0},
		{sign(f, testKey1, hs256(), with(goodClaims(), "nbf", 0)), "https://myapp.com", -testNow.Unix() - 3600},
	} {
		f.Add(seed.token, seed.origin, seed.offset)
	}
	cached, fresh := NewDecider(1024), NewDecider(0)
	f.Fuzz(func(t *testing.T, token, origin string, offset int64) {
		now := testNow.Add(time.Duration(offset%(1<<40)) * time.Second)
		p := &Project{
			ID:           "proj_fuzz",
			RequireToken: offset%2 == 0,
			Origins:      mustPatterns(t, "https://myapp.com", "*.myapp.com"),
			Keys:         []Key{{Version: 2, Secret: []byte(testKey2)}, {Version: 1, Secret: []byte(testKey1), ValidUntil: testNow.Add(time.Hour)}},
		}
		req := Request{ProjectID: p.ID, Origin: origin, Token: token, UserID: "client"}
		a := cached.Decide(p, req, now)
		b := fresh.Decide(p, req, now)
		if a.Reason != b.Reason || a.UserID != b.UserID || a.KeyVersion != b.KeyVersion || a.SkewSeconds != b.SkewSeconds || !reflect.DeepEqual(a.UserMetadata, b.UserMetadata) {
			t.Fatalf("cache changed the decision: %+v vs %+v", a, b)
		}
		if a.Err != nil && len(token) > 20 && strings.Contains(a.Err.Error(), token) {
			t.Fatalf("error quotes the token: %v", a.Err)
		}
		if a.Reason != "" || token == "" {
			return
		}
		if !independentlyValid(token, p.Keys, now) {
			t.Fatalf("accepted a token that does not verify independently: %q", token)
		}
		if a.UserID == "" || len(a.UserID) > events.MaxUserIDBytes {
			t.Fatalf("accepted userId %q", a.UserID)
		}
		if want := claimedUserID(token); a.UserID != want {
			t.Fatalf("accepted userId %q, but the claims' exact userId is %q", a.UserID, want)
		}
	})
}

// compactRE is a compact JWS: three base64url parts and two dots.
var compactRE = regexp.MustCompile(`^[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$`)

// independentlyValid checks, without golang-jwt, that a token is a compact
// HS256 JWS whose signature is the HMAC of one of the keys usable at now and
// whose exp has not passed beyond the leeway.
func independentlyValid(token string, keys []Key, now time.Time) bool {
	// base64.RawURLEncoding skips CR and LF: check the alphabet first.
	if !compactRE.MatchString(token) {
		return false
	}
	parts := strings.Split(token, ".")
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" {
		return false
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	// Claims by their exact names; exp a JSON number from 1970 to 9999.
	var c map[string]json.RawMessage
	if json.Unmarshal(cb, &c) != nil {
		return false
	}
	var exp float64
	if raw := c["exp"]; len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &exp) != nil ||
		exp < 0 || exp > 253402300799 || float64(now.Unix()) > exp+Leeway.Seconds()+1 {
		return false
	}
	var userID string
	if json.Unmarshal(c["userId"], &userID) != nil || userID == "" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	for _, k := range keys {
		if !k.usableAt(now) {
			continue
		}
		m := hmac.New(sha256.New, k.Secret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		if hmac.Equal(sig, m.Sum(nil)) {
			return true
		}
	}
	return false
}

// claimedUserID is the claims' userId, read by its exact name.
func claimedUserID(token string) string {
	parts := strings.Split(token, ".")
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]json.RawMessage
	var userID string
	_ = json.Unmarshal(cb, &c)
	_ = json.Unmarshal(c["userId"], &userID)
	return userID
}

// FuzzOrigin checks the origin matcher against an independent rule: when a
// pattern matches an origin, the origin's canonical form is the pattern's
// (exact) or ends in "." plus the pattern's domain with the same scheme and
// port (wildcard); and a pattern's canonical form parses back to itself.
func FuzzOrigin(f *testing.F) {
	for _, s := range [][2]string{
		{"https://myapp.com", "https://myapp.com"},
		{"*.myapp.com", "https://a.b.myapp.com"},
		{"*.myapp.com", "https://evilmyapp.com"},
		{"*.myapp.com", "https://myapp.com.evil.com"},
		{"*.myapp.com", "https://evil.com/.myapp.com"},
		{"*.myapp.com", "https://evil.com:any.myapp.com"},
		{"*.myapp.com", "https://evil.com#.myapp.com"},
		{"https://myapp.com", "https://user@myapp.com"},
		{"https://myapp.com", "https://myapp.com."},
		{"http://localhost:3000", "http://localhost:3000"},
		{"*.bücher.de", "https://a.xn--bcher-kva.de"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"*", "https://a.com"},
		{"*.com", "https://a.com"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, header string) {
		p, err := origin.ParsePattern(pattern)
		if err != nil {
			return
		}
		if q, err := origin.ParsePattern(p.String()); err != nil || q != p {
			t.Fatalf("canonical %q of %q does not parse back: %v", p.String(), pattern, err)
		}
		o, err := origin.Parse(header)
		if err != nil {
			if checkOriginWith([]origin.Pattern{p}, header, origin.Parse) == nil {
				t.Fatalf("%q is not an origin but %q allowed it", header, pattern)
			}
			return
		}
		if !p.Match(o) {
			return
		}
		canon := p.String()
		got := o.String()
		if !p.Wildcard() {
			if got != canon {
				t.Fatalf("exact %q matched %q", canon, got)
			}
			return
		}
		scheme, rest, _ := strings.Cut(canon, "://*.")
		if !strings.HasPrefix(got, scheme+"://") {
			t.Fatalf("wildcard %q matched another scheme %q", canon, got)
		}
		domainPort := rest
		host := strings.TrimPrefix(got, scheme+"://")
		if !strings.HasSuffix(host, "."+domainPort) || strings.Contains(strings.TrimSuffix(host, "."+domainPort), ":") {
			t.Fatalf("wildcard %q matched %q", canon, got)
		}
	})
}

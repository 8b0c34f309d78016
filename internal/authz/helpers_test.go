package authz

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/origin"
)

// testNow is the server clock of the table tests: a whole second, so that
// boundaries of whole-second claims are exact.
var testNow = time.Unix(1_760_000_000, 0)

const (
	testKey1 = "sk_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	testKey2 = "sk_live_ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgf"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign builds a JWS by hand, so tests control every byte: header, claims,
// algorithm. alg names the HMAC used for the signature ("HS256", "HS384",
// "HS512"); any other alg leaves the signature empty.
func sign(t testing.TB, secret string, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(secret, header["alg"], h, c)
}

func signRaw(secret string, alg any, header, claims []byte) string {
	signing := b64(header) + "." + b64(claims)
	var fn func() hash.Hash
	switch alg {
	case "HS256":
		fn = sha256.New
	case "HS384":
		fn = sha512.New384
	case "HS512":
		fn = sha512.New
	default:
		return signing + "."
	}
	m := hmac.New(fn, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

func hs256() map[string]any { return map[string]any{"alg": "HS256", "typ": "JWT"} }

// goodClaims are the claims of jsonwebtoken's documented call at testNow.
func goodClaims() map[string]any {
	return map[string]any{
		"userId":       "user-42",
		"userMetadata": map[string]any{"name": "Ada", "email": "ada@example.com"},
		"iat":          testNow.Unix(),
		"exp":          testNow.Add(24 * time.Hour).Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == deleteClaim {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

type deleteMarker struct{}

var deleteClaim = deleteMarker{}

func mustPatterns(t testing.TB, list ...string) []origin.Pattern {
	t.Helper()
	p, err := origin.ParsePatterns(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testProject(t testing.TB) *Project {
	t.Helper()
	return &Project{
		ID:           "proj_test",
		RequireToken: true,
		Origins:      mustPatterns(t, "https://myapp.com", "*.myapp.com"),
		Keys:         []Key{{Version: 1, Secret: []byte(testKey1)}},
	}
}

package authz

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
)

// tokenOfSize returns a valid token of exactly n bytes (n ≥ 200), padded
// with an unknown claim.
func tokenOfSize(t *testing.T, n int) string {
	t.Helper()
	for pad := 0; pad < n; pad++ {
		tok := sign(t, testKey1, hs256(), with(goodClaims(), "pad", strings.Repeat("x", pad)))
		if len(tok) == n {
			return tok
		}
		if len(tok) > n {
			break
		}
	}
	// base64 groups bytes by three: pad the header instead for the rest.
	for pad := 0; pad < n; pad++ {
		for hpad := 0; hpad < 4; hpad++ {
			tok := sign(t, testKey1, with(hs256(), "x", strings.Repeat("y", hpad)), with(goodClaims(), "pad", strings.Repeat("x", pad)))
			if len(tok) == n {
				return tok
			}
		}
	}
	t.Fatalf("no token of %d bytes", n)
	return ""
}

// insertAt returns token with s inserted at byte i of its part-th
// dot-separated part.
func insertAt(token string, part, i int, s string) string {
	parts := strings.Split(token, ".")
	parts[part] = parts[part][:i] + s + parts[part][i:]
	return strings.Join(parts, ".")
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := testNow
	sec := func(d time.Duration) int64 { return now.Add(d).Unix() }
	good := func() string { return sign(t, testKey1, hs256(), goodClaims()) }
	claimsTok := func(kv ...any) string { return sign(t, testKey1, hs256(), with(goodClaims(), kv...)) }
	headerTok := func(kv ...any) string { return sign(t, testKey1, with(hs256(), kv...), goodClaims()) }
	metadata := func(n, keyLen, valLen int) map[string]any {
		m := map[string]any{}
		for i := 0; i < n; i++ {
			k := strings.Repeat("k", keyLen-3) + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "_"
			m[k[:keyLen]] = strings.Repeat("v", valLen)
		}
		return m
	}
	anonymous := func(p *Project) { p.RequireToken = false }
	openOrigins := func(p *Project) { p.Origins = nil }
	grace := func(until time.Time) func(p *Project) {
		return func(p *Project) {
			p.Keys = []Key{{Version: 2, Secret: []byte(testKey2)}, {Version: 1, Secret: []byte(testKey1), ValidUntil: until}}
		}
	}
	revoke := func(user string, at time.Time) func(p *Project) {
		return func(p *Project) { p.RevokedBefore = map[string]time.Time{user: at} }
	}

	tests := []struct {
		name    string
		project func(p *Project) // changes to testProject; nil project when unknown is set
		unknown bool
		req     Request
		want    events.Reason // "" for accept
		session events.Session
		userID  string
		claimed string
		keyVer  int
		skew    int64
	}{
		// 1. project
		{name: "unknown project", unknown: true, req: Request{Origin: "https://myapp.com", Token: good()}, want: events.ReasonUnknownProject},

		// 2. origin
		{name: "origin missing", req: Request{Token: good()}, want: events.ReasonOriginMissing},
		{name: "origin null", req: Request{Origin: "null", Token: good()}, want: events.ReasonOriginMissing},
		{name: "origin not listed", req: Request{Origin: "https://evil.com", Token: good()}, want: events.ReasonOriginNotAllowed},
		{name: "origin checked before token", req: Request{Origin: "https://evil.com", Token: "garbage"}, want: events.ReasonOriginNotAllowed},
		{name: "origin not a bare origin", req: Request{Origin: "https://myapp.com/", Token: good()}, want: events.ReasonOriginNotAllowed},
		{name: "empty allowlist lets a missing origin pass", project: openOrigins, req: Request{Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "empty allowlist lets any origin pass", project: openOrigins, req: Request{Origin: "https://anything.example", Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "wildcard subdomain", req: Request{Origin: "https://a.b.myapp.com", Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},

		// 3. token presence
		{name: "token required and missing", req: Request{Origin: "https://myapp.com"}, want: events.ReasonTokenRequired},
		{name: "anonymous when no token is required", project: anonymous, req: Request{Origin: "https://myapp.com", UserID: "visitor-7"}, session: events.SessionAnonymous, userID: "visitor-7"},
		{name: "invalid token never downgraded to anonymous", project: anonymous, req: Request{Origin: "https://myapp.com", Token: "garbage"}, want: events.ReasonTokenMalformed},
		{name: "bad signature never downgraded to anonymous", project: anonymous, req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, hs256(), goodClaims())}, want: events.ReasonTokenBadSignature},
		{name: "valid token where none is required is authenticated", project: anonymous, req: Request{Origin: "https://myapp.com", Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},

		// 4. accept
		{name: "valid token", req: Request{Origin: "https://myapp.com", Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "client userId differs: kept as claimed", req: Request{Origin: "https://myapp.com", Token: good(), UserID: "someone-else"}, session: events.SessionAuthenticated, userID: "user-42", claimed: "someone-else", keyVer: 1},
		{name: "client userId same: nothing claimed", req: Request{Origin: "https://myapp.com", Token: good(), UserID: "user-42"}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "unknown extra claims ignored", req: Request{Origin: "https://myapp.com", Token: claimsTok("role", 5, "aud", 7, "iss", []int{1}, "sub", false)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "no iat (PyJWT) accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", deleteClaim)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "userMetadata null accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", nil)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "userMetadata absent accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", deleteClaim)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},

		// malformed
		{name: "one segment", req: Request{Origin: "https://myapp.com", Token: "abc"}, want: events.ReasonTokenMalformed},
		{name: "two segments", req: Request{Origin: "https://myapp.com", Token: "abc.def"}, want: events.ReasonTokenMalformed},
		{name: "four segments", req: Request{Origin: "https://myapp.com", Token: good() + ".x"}, want: events.ReasonTokenMalformed},
		{name: "header not base64", req: Request{Origin: "https://myapp.com", Token: "!!!." + strings.SplitN(good(), ".", 2)[1]}, want: events.ReasonTokenMalformed},
		{name: "header not JSON", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte("HS256"), []byte(`{"userId":"u","exp":1}`))}, want: events.ReasonTokenMalformed},
		{name: "claims not JSON", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte(`{"alg":"HS256"}`), []byte(`userId`))}, want: events.ReasonTokenMalformed},
		{name: "claims a JSON array", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte(`{"alg":"HS256"}`), []byte(`["userId"]`))}, want: events.ReasonTokenMalformed},
		{name: "padded base64 refused by strict decoding", req: Request{Origin: "https://myapp.com", Token: func() string {
			p := strings.Split(sign(t, testKey1, hs256(), with(goodClaims(), "userId", "u1")), ".")
			return p[0] + "=." + p[1] + "." + p[2]
		}()}, want: events.ReasonTokenMalformed},
		// Only the base64url alphabet and two dots: Go's base64 decoders
		// skip CR and LF (Strict included), so without this one token would
		// verify under many fingerprints.
		{name: "LF in the signature refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, "\n")}, want: events.ReasonTokenMalformed},
		{name: "CR LF in the signature refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, "\r\n")}, want: events.ReasonTokenMalformed},
		{name: "CR LF at the end refused", req: Request{Origin: "https://myapp.com", Token: good() + "\r\n"}, want: events.ReasonTokenMalformed},
		{name: "LF in the header refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 0, 4, "\n")}, want: events.ReasonTokenMalformed},
		{name: "CR in the claims refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 1, 4, "\r")}, want: events.ReasonTokenMalformed},
		{name: "space in the signature refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, " ")}, want: events.ReasonTokenMalformed},
		{name: "tab in the signature refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, "\t")}, want: events.ReasonTokenMalformed},
		{name: "NUL in the signature refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, "\x00")}, want: events.ReasonTokenMalformed},
		{name: "padding at the end refused", req: Request{Origin: "https://myapp.com", Token: good() + "="}, want: events.ReasonTokenMalformed},
		{name: "standard base64 plus refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, "+")}, want: events.ReasonTokenMalformed},
		{name: "non-ASCII refused", req: Request{Origin: "https://myapp.com", Token: insertAt(good(), 2, 5, "é")}, want: events.ReasonTokenMalformed},
		{name: "leading space refused", req: Request{Origin: "https://myapp.com", Token: " " + good()}, want: events.ReasonTokenMalformed},
		{name: "crit header refused", req: Request{Origin: "https://myapp.com", Token: headerTok("crit", []string{"exp"})}, want: events.ReasonTokenMalformed},
		{name: "empty crit header refused", req: Request{Origin: "https://myapp.com", Token: headerTok("crit", []string{})}, want: events.ReasonTokenMalformed},
		{name: "kid not a string", req: Request{Origin: "https://myapp.com", Token: headerTok("kid", 1)}, want: events.ReasonTokenMalformed},

		// algorithms
		{name: "alg none", req: Request{Origin: "https://myapp.com", Token: sign(t, "", map[string]any{"alg": "none"}, goodClaims())}, want: events.ReasonTokenAlgNotAllowed},
		{name: "alg None", req: Request{Origin: "https://myapp.com", Token: sign(t, "", map[string]any{"alg": "None"}, goodClaims())}, want: events.ReasonTokenAlgNotAllowed},
		{name: "alg NONE", req: Request{Origin: "https://myapp.com", Token: sign(t, "", map[string]any{"alg": "NONE"}, goodClaims())}, want: events.ReasonTokenAlgNotAllowed},
		{name: "alg none with a signature", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey1, map[string]any{"alg": "none"}, goodClaims()) + "c2ln"}, want: events.ReasonTokenAlgNotAllowed},
		{name: "HS384 signed with the right key", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey1, map[string]any{"alg": "HS384"}, goodClaims())}, want: events.ReasonTokenAlgNotAllowed},
		{name: "HS512 signed with the right key", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey1, map[string]any{"alg": "HS512"}, goodClaims())}, want: events.ReasonTokenAlgNotAllowed},
		{name: "RS256", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey1, map[string]any{"alg": "RS256"}, goodClaims()) + "c2ln"}, want: events.ReasonTokenAlgNotAllowed},
		{name: "ES256", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey1, map[string]any{"alg": "ES256"}, goodClaims()) + "c2ln"}, want: events.ReasonTokenAlgNotAllowed},
		{name: "hs256 lower case", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey1, map[string]any{"alg": "hs256"}, goodClaims())}, want: events.ReasonTokenAlgNotAllowed},
		{name: "alg missing", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte(`{"typ":"JWT"}`), []byte(`{"userId":"u","exp":9999999999}`))}, want: events.ReasonTokenAlgNotAllowed},
		{name: "alg a number", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte(`{"alg":256}`), []byte(`{"userId":"u","exp":9999999999}`))}, want: events.ReasonTokenAlgNotAllowed},

		// signature and keys
		{name: "wrong key", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, hs256(), goodClaims())}, want: events.ReasonTokenBadSignature},
		{name: "tampered claims", req: Request{Origin: "https://myapp.com", Token: func() string {
			p := strings.Split(good(), ".")
			forged := strings.Split(sign(t, testKey1, hs256(), with(goodClaims(), "userId", "admin")), ".")
			return p[0] + "." + forged[1] + "." + p[2]
		}()}, want: events.ReasonTokenBadSignature},
		{name: "signature stripped", req: Request{Origin: "https://myapp.com", Token: strings.Join(strings.Split(good(), ".")[:2], ".") + "."}, want: events.ReasonTokenBadSignature},
		{name: "empty key never verifies an empty-key HMAC", project: func(p *Project) { p.Keys = []Key{{Version: 1, Secret: nil}} }, req: Request{Origin: "https://myapp.com", Token: sign(t, "", hs256(), goodClaims())}, want: events.ReasonTokenBadSignature},
		{name: "short key never verifies", project: func(p *Project) { p.Keys = []Key{{Version: 1, Secret: []byte("short")}} }, req: Request{Origin: "https://myapp.com", Token: sign(t, "short", hs256(), goodClaims())}, want: events.ReasonTokenBadSignature},
		{name: "project without keys", project: func(p *Project) { p.Keys = nil }, req: Request{Origin: "https://myapp.com", Token: good()}, want: events.ReasonTokenBadSignature},
		{name: "kid selects the key", req: Request{Origin: "https://myapp.com", Token: headerTok("kid", "1")}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "unknown kid", req: Request{Origin: "https://myapp.com", Token: headerTok("kid", "7")}, want: events.ReasonTokenBadSignature},

		// grace rotation: judged by server time, never by iat
		{name: "old key in grace verifies", project: grace(now.Add(10 * time.Second)), req: Request{Origin: "https://myapp.com", Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "new key verifies during grace", project: grace(now.Add(10 * time.Second)), req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, hs256(), goodClaims())}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 2},
		{name: "old key at the end of grace refused", project: grace(now), req: Request{Origin: "https://myapp.com", Token: good()}, want: events.ReasonTokenBadSignature},
		{name: "old key after grace refused whatever iat says", project: grace(now.Add(-time.Second)), req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", sec(-time.Hour))}, want: events.ReasonTokenBadSignature},
		{name: "kid of a key past grace refused", project: grace(now.Add(-time.Second)), req: Request{Origin: "https://myapp.com", Token: headerTok("kid", "1")}, want: events.ReasonTokenBadSignature},
		{name: "kid of the new key during grace", project: grace(now.Add(time.Minute)), req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, with(hs256(), "kid", "2"), goodClaims())}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 2},
		{name: "kid naming the wrong key of two", project: grace(now.Add(time.Minute)), req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, with(hs256(), "kid", "1"), goodClaims())}, want: events.ReasonTokenBadSignature},

		// time claims and their 60 s leeway
		{name: "exp 60 s ago accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", sec(-60*time.Second), "iat", sec(-time.Hour))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "exp 61 s ago refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", sec(-61*time.Second), "iat", sec(-time.Hour))}, want: events.ReasonTokenExpired, skew: 61},
		{name: "exp 0 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", 0, "iat", deleteClaim)}, want: events.ReasonTokenExpired, skew: now.Unix()},
		{name: "exp missing", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", deleteClaim)}, want: events.ReasonTokenMissingExp},
		{name: "exp fractional accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", float64(sec(time.Hour))+0.5)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "exp fractional 60.x s ago accepted (whole seconds)", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", float64(sec(-60*time.Second))+0.999, "iat", deleteClaim)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "exp fractional 61.x s ago refused (whole seconds)", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", float64(sec(-61*time.Second))+0.999, "iat", deleteClaim)}, want: events.ReasonTokenExpired, skew: 61},
		{name: "exp in exponent notation accepted", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte(`{"alg":"HS256"}`), []byte(fmt.Sprintf(`{"userId":"user-42","exp":%se4}`, strconv.FormatFloat(float64(sec(time.Hour))/1e4, 'f', -1, 64))))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "iat fractional 60.x s ahead accepted (whole seconds)", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", float64(sec(60*time.Second))+0.999)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},

		// time claims are RFC 7519 NumericDates: JSON numbers of seconds,
		// here from 1970 to the end of 9999; anything else is refused,
		// never read as absent, never overflowing the skew.
		{name: "exp negative refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", -1, "iat", deleteClaim)}, want: events.ReasonTokenInvalidClaims},
		{name: "exp 1e20 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", 1e20)}, want: events.ReasonTokenInvalidClaims},
		{name: "exp 2^63 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", float64(1<<63))}, want: events.ReasonTokenInvalidClaims},
		{name: "exp -2^63 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", -float64(1<<63))}, want: events.ReasonTokenInvalidClaims},
		{name: "exp 1e300 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", 1e300)}, want: events.ReasonTokenInvalidClaims},
		{name: "exp 1e400 refused", req: Request{Origin: "https://myapp.com", Token: signRaw(testKey1, "HS256", []byte(`{"alg":"HS256"}`), []byte(`{"userId":"user-42","exp":1e400}`))}, want: events.ReasonTokenInvalidClaims},
		{name: "exp the last second of 9999 accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", maxNumericDate)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "exp after 9999 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", maxNumericDate+1)}, want: events.ReasonTokenInvalidClaims},
		{name: "exp a fraction after 9999 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", float64(maxNumericDate)+0.5)}, want: events.ReasonTokenInvalidClaims},
		{name: "exp a numeric string refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", strconv.FormatInt(sec(time.Hour), 10))}, want: events.ReasonTokenInvalidClaims},
		{name: "exp a string refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", "tomorrow")}, want: events.ReasonTokenInvalidClaims},
		{name: "exp true refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", true)}, want: events.ReasonTokenInvalidClaims},
		{name: "exp an object refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", map[string]any{"$date": sec(time.Hour)})}, want: events.ReasonTokenInvalidClaims},
		{name: "exp an array refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", []int64{sec(time.Hour)})}, want: events.ReasonTokenInvalidClaims},
		{name: "exp null refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", nil)}, want: events.ReasonTokenInvalidClaims},
		{name: "nbf 1e300 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", 1e300)}, want: events.ReasonTokenInvalidClaims},
		{name: "iat 1e300 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", 1e300)}, want: events.ReasonTokenInvalidClaims},
		{name: "nbf negative refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", -1)}, want: events.ReasonTokenInvalidClaims},
		{name: "iat negative refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", -1)}, want: events.ReasonTokenInvalidClaims},
		{name: "nbf 0 accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", 0)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "iat 0 accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", 0)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "nbf the last second of 9999 not yet valid", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", maxNumericDate)}, want: events.ReasonTokenNotYetValid, skew: maxNumericDate - now.Unix()},
		{name: "iat the last second of 9999 not yet valid", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", maxNumericDate)}, want: events.ReasonTokenNotYetValid, skew: maxNumericDate - now.Unix()},
		{name: "nbf after 9999 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", maxNumericDate+1)}, want: events.ReasonTokenInvalidClaims},
		{name: "iat after 9999 refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", maxNumericDate+1)}, want: events.ReasonTokenInvalidClaims},
		{name: "nbf a numeric string refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", strconv.FormatInt(sec(-time.Hour), 10))}, want: events.ReasonTokenInvalidClaims},
		{name: "iat a numeric string refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", strconv.FormatInt(sec(0), 10))}, want: events.ReasonTokenInvalidClaims},
		{name: "nbf null refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", nil)}, want: events.ReasonTokenInvalidClaims},
		{name: "iat null refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", nil)}, want: events.ReasonTokenInvalidClaims},
		{name: "iat false refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", false)}, want: events.ReasonTokenInvalidClaims},
		{name: "unreadable exp wins over nbf ahead", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", "soon", "nbf", sec(time.Hour))}, want: events.ReasonTokenInvalidClaims},
		{name: "unreadable iat wins over exp past", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", sec(-time.Hour), "iat", 1e300)}, want: events.ReasonTokenInvalidClaims},
		{name: "bad signature wins over an unreadable exp", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, hs256(), with(goodClaims(), "exp", 1e300))}, want: events.ReasonTokenBadSignature},

		// claims are matched by their exact names, as jsonwebtoken and
		// PyJWT read them: USERID is not userId.
		{name: "USERID is not userId", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", deleteClaim, "USERID", "admin")}, want: events.ReasonTokenInvalidClaims},
		{name: "userid is not userId", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", deleteClaim, "userid", "admin")}, want: events.ReasonTokenInvalidClaims},
		{name: "EXP is not exp", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", deleteClaim, "EXP", sec(time.Hour))}, want: events.ReasonTokenMissingExp},
		{name: "Exp is not exp", req: Request{Origin: "https://myapp.com", Token: claimsTok("exp", deleteClaim, "Exp", sec(time.Hour))}, want: events.ReasonTokenMissingExp},
		{name: "NBF ahead is not nbf", req: Request{Origin: "https://myapp.com", Token: claimsTok("NBF", sec(time.Hour))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "IAT ahead is not iat", req: Request{Origin: "https://myapp.com", Token: claimsTok("IAT", sec(time.Hour))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "userMetadata of the wrong type under another case ignored", req: Request{Origin: "https://myapp.com", Token: claimsTok("USERMETADATA", 7)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "revoked user, IAT after the revocation is not iat", project: revoke("user-42", now.Add(-10*time.Second)), req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", deleteClaim, "IAT", sec(0))}, want: events.ReasonTokenRevoked},
		{name: "iat 60 s ahead accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", sec(60*time.Second))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "iat 61 s ahead refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", sec(61*time.Second))}, want: events.ReasonTokenNotYetValid, skew: 61},
		{name: "nbf 60 s ahead accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", sec(60*time.Second))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "nbf 61 s ahead refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("nbf", sec(61*time.Second))}, want: events.ReasonTokenNotYetValid, skew: 61},
		{name: "bad signature wins over expiry", req: Request{Origin: "https://myapp.com", Token: sign(t, testKey2, hs256(), with(goodClaims(), "exp", 1))}, want: events.ReasonTokenBadSignature},

		// claims
		{name: "userId missing", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", deleteClaim)}, want: events.ReasonTokenInvalidClaims},
		{name: "userId empty", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", "")}, want: events.ReasonTokenInvalidClaims},
		{name: "userId a number", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", 42)}, want: events.ReasonTokenInvalidClaims},
		{name: "userId null", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", nil)}, want: events.ReasonTokenInvalidClaims},
		{name: "userId an object", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", map[string]any{"id": "u"})}, want: events.ReasonTokenInvalidClaims},
		{name: "userId 256 bytes accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", strings.Repeat("u", 256))}, session: events.SessionAuthenticated, userID: strings.Repeat("u", 256), keyVer: 1},
		{name: "userId 257 bytes refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", strings.Repeat("u", 257))}, want: events.ReasonTokenInvalidClaims},
		{name: "userId 256 bytes of multibyte text accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", strings.Repeat("é", 128))}, session: events.SessionAuthenticated, userID: strings.Repeat("é", 128), keyVer: 1},
		{name: "userId 258 bytes of multibyte text refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("userId", strings.Repeat("é", 129))}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata an array", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", []string{"a"})}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata a string", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", "name=Ada")}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata value a number", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", map[string]any{"age": 36})}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata value null", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", map[string]any{"plan": nil})}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata value nested", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", map[string]any{"a": map[string]any{}})}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata 32 keys accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", metadata(32, 8, 8))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "userMetadata 33 keys refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", metadata(33, 8, 8))}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata key 64 bytes accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", metadata(1, 64, 8))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "userMetadata key 65 bytes refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", metadata(1, 65, 8))}, want: events.ReasonTokenInvalidClaims},
		{name: "userMetadata value 1024 bytes accepted", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", metadata(1, 8, 1024))}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "userMetadata value 1025 bytes refused", req: Request{Origin: "https://myapp.com", Token: claimsTok("userMetadata", metadata(1, 8, 1025))}, want: events.ReasonTokenInvalidClaims},

		// size
		{name: "token of 8192 bytes verified", req: Request{Origin: "https://myapp.com", Token: tokenOfSize(t, events.MaxTokenBytes)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "token of 8193 bytes refused before parsing", req: Request{Origin: "https://myapp.com", Token: tokenOfSize(t, events.MaxTokenBytes+1)}, want: events.ReasonTokenTooLarge},
		{name: "oversized garbage refused as too large", req: Request{Origin: "https://myapp.com", Token: strings.Repeat("!", events.MaxTokenBytes+1)}, want: events.ReasonTokenTooLarge},

		// per-user revocation
		{name: "revoked user, token issued before", project: revoke("user-42", now.Add(-10*time.Second)), req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", sec(-20*time.Second))}, want: events.ReasonTokenRevoked},
		{name: "revoked user, token issued the same second but before", project: revoke("user-42", now.Add(500*time.Millisecond)), req: Request{Origin: "https://myapp.com", Token: good()}, want: events.ReasonTokenRevoked},
		{name: "revoked user, token issued after", project: revoke("user-42", now.Add(-10*time.Second)), req: Request{Origin: "https://myapp.com", Token: good()}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
		{name: "revoked user, token without iat", project: revoke("user-42", now.Add(-10*time.Second)), req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", deleteClaim)}, want: events.ReasonTokenRevoked},
		{name: "another user unaffected", project: revoke("user-7", now), req: Request{Origin: "https://myapp.com", Token: claimsTok("iat", deleteClaim)}, session: events.SessionAuthenticated, userID: "user-42", keyVer: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p *Project
			if !tt.unknown {
				p = testProject(t)
				if tt.project != nil {
					tt.project(p)
				}
				tt.req.ProjectID = p.ID
			}
			for _, d := range []*Decider{NewDecider(0), NewDecider(64)} {
				// Twice each: the second decision of the caching decider
				// comes from its cache and must not differ.
				for i := 0; i < 2; i++ {
					got := d.Decide(p, tt.req, now)
					checkDecision(t, got, tt.want, tt.session, tt.userID, tt.claimed, tt.keyVer, tt.skew)
				}
			}
		})
	}
}

func checkDecision(t *testing.T, got Decision, want events.Reason, session events.Session, userID, claimed string, keyVer int, skew int64) {
	t.Helper()
	if got.Reason != want {
		t.Fatalf("reason = %q (%v), want %q", got.Reason, got.Err, want)
	}
	if got.Outcome != want.Outcome() {
		t.Errorf("outcome = %q, want %q", got.Outcome, want.Outcome())
	}
	if want != "" {
		if got.Err == nil || ReasonOf(got.Err) != want {
			t.Errorf("err = %v, does not map to %q", got.Err, want)
		}
		if got.Session != "" || got.UserVerified || got.KeyVersion != 0 {
			t.Errorf("refusal carries a session: %+v", got)
		}
		if got.SkewSeconds != skew {
			t.Errorf("skew = %d, want %d", got.SkewSeconds, skew)
		}
		if got.Err != nil && (strings.Contains(got.Err.Error(), "sk_live_") || strings.Contains(got.Err.Error(), "eyJ")) {
			t.Errorf("error leaks a secret: %v", got.Err)
		}
		return
	}
	if got.Err != nil {
		t.Errorf("accept with err %v", got.Err)
	}
	if got.Session != session || got.UserID != userID || got.ClaimedUserID != claimed || got.KeyVersion != keyVer {
		t.Errorf("got session=%q user=%q claimed=%q key=%d, want %q %q %q %d", got.Session, got.UserID, got.ClaimedUserID, got.KeyVersion, session, userID, claimed, keyVer)
	}
	if got.UserVerified != (session == events.SessionAuthenticated) {
		t.Errorf("UserVerified = %v for a %s session", got.UserVerified, session)
	}
}

func TestDecideCarriesServerTimeAndClaims(t *testing.T) {
	t.Parallel()
	p := testProject(t)
	d := NewDecider(16)
	tok := sign(t, testKey1, hs256(), goodClaims())
	got := d.Decide(p, Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tok}, testNow)
	if !got.ServerTime.Equal(testNow) {
		t.Errorf("server time %v", got.ServerTime)
	}
	if got.UserMetadata["name"] != "Ada" || got.UserMetadata["email"] != "ada@example.com" || len(got.UserMetadata) != 2 {
		t.Errorf("metadata %v", got.UserMetadata)
	}
	if got.TokenFingerprint != Fingerprint(tok) || len(got.TokenFingerprint) != 16 || strings.Contains(tok, got.TokenFingerprint) {
		t.Errorf("fingerprint %q", got.TokenFingerprint)
	}
	// The decision's metadata is its own: changing it changes no later
	// decision served from the cache.
	got.UserMetadata["name"] = "Mallory"
	if again := d.Decide(p, Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tok}, testNow); again.UserMetadata["name"] != "Ada" {
		t.Errorf("cached metadata changed through a decision: %v", again.UserMetadata)
	}
	anon := d.Decide(&Project{ID: "p"}, Request{ProjectID: "p", UserID: "v", UserMetadata: map[string]string{"plan": "free"}}, testNow)
	if anon.Session != events.SessionAnonymous || anon.UserVerified || anon.UserMetadata["plan"] != "free" || anon.TokenFingerprint != "" {
		t.Errorf("anonymous decision %+v", anon)
	}
}

func TestReasonOf(t *testing.T) {
	t.Parallel()
	for s, r := range reasons {
		if got := ReasonOf(errors.Join(errors.New("context"), s)); got != r {
			t.Errorf("ReasonOf(%v) = %q, want %q", s, got, r)
		}
	}
	if len(reasons) != len(events.Reasons) {
		t.Errorf("%d sentinels for %d reasons", len(reasons), len(events.Reasons))
	}
	if ReasonOf(nil) != "" {
		t.Error("nil is not an accept")
	}
	if ReasonOf(errors.New("unclassified")) == "" {
		t.Error("an unclassified error must still be a refusal")
	}
}

// TestBearerLeftoversRefused: what an `Authorization: Bearer` header leaves
// after the scheme (ingress.BearerToken strips it once) is verified as it
// is: a twice-prefixed header leaves "Bearer abc", a header with a line
// break or a space inside the token leaves a token outside base64url. All
// are refused, whatever Go's base64 decoders would skip.
func TestBearerLeftoversRefused(t *testing.T) {
	t.Parallel()
	good := sign(t, testKey1, hs256(), goodClaims())
	p := testProject(t)
	for _, h := range []string{
		"Bearer Bearer " + good,
		"Bearer " + insertAt(good, 2, 5, "\r\n"),
		"Bearer " + insertAt(good, 2, 5, "\n"),
		"Bearer " + good + "\n",
		"Bearer  " + good,
		"Bearer " + good + " ",
	} {
		tok := h[len("Bearer "):]
		got := NewDecider(0).Decide(p, Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tok}, testNow)
		if got.Reason != events.ReasonTokenMalformed {
			t.Errorf("Authorization %q: reason %q (%v), want token_malformed", h, got.Reason, got.Err)
		}
		if got.TokenFingerprint != Fingerprint(tok) {
			t.Errorf("Authorization %q: fingerprint %q, want the raw token's %q", h, got.TokenFingerprint, Fingerprint(tok))
		}
	}
}

// TestDecideClaimNamesExact checks that only the claims' exact names are
// read, whatever else the token holds under other cases.
func TestDecideClaimNamesExact(t *testing.T) {
	t.Parallel()
	p := testProject(t)
	tests := []struct {
		name     string
		claims   map[string]any
		userID   string
		metadata map[string]string
	}{
		{
			name:     "USERID beside userId",
			claims:   with(goodClaims(), "USERID", "admin", "UserId", "root"),
			userID:   "user-42",
			metadata: map[string]string{"name": "Ada", "email": "ada@example.com"},
		},
		{
			name:   "USERMETADATA without userMetadata",
			claims: with(goodClaims(), "userMetadata", deleteClaim, "USERMETADATA", map[string]any{"role": "admin"}),
			userID: "user-42",
		},
		{
			name:     "UserMetadata beside userMetadata",
			claims:   with(goodClaims(), "userMetadata", map[string]any{"plan": "free"}, "UserMetadata", map[string]any{"plan": "enterprise"}),
			userID:   "user-42",
			metadata: map[string]string{"plan": "free"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := sign(t, testKey1, hs256(), tt.claims)
			for _, d := range []*Decider{NewDecider(0), NewDecider(64)} {
				for range 2 {
					got := d.Decide(p, Request{ProjectID: p.ID, Origin: "https://myapp.com", Token: tok}, testNow)
					if got.Reason != "" {
						t.Fatalf("reason %q (%v), want an accept", got.Reason, got.Err)
					}
					if got.UserID != tt.userID || !maps.Equal(got.UserMetadata, tt.metadata) {
						t.Errorf("userId %q metadata %v, want %q %v", got.UserID, got.UserMetadata, tt.userID, tt.metadata)
					}
				}
			}
		})
	}
}

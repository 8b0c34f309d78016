// Package redact scrubs secrets out of text before it reaches a log line, an
// error message or a terminal: secret keys (`sk_live_…`), console API
// tokens (`hst_…`) and anything shaped like a JWT. It is the last line of defence; code should never put a secret
// into a message in the first place.
package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// KeyPrefix starts every Hissuno secret key.
const KeyPrefix = "sk_live_"

// APITokenPrefix starts every console API token (account.TokenPrefix).
const APITokenPrefix = "hst_"

// jwtPrefix starts every JWT: the base64url of `{"`, the opening of its
// JSON header.
const jwtPrefix = "eyJ"

var (
	keyRE = regexp.MustCompile(`sk_live_[A-Za-z0-9_\-]*`)
	// apiTokenRE is an API token: hst_ and base62 digits.
	apiTokenRE = regexp.MustCompile(`hst_[A-Za-z0-9]+`)
	// jwtRE is a JWT's shape: three base64url parts joined by dots, the
	// header starting eyJ; header and claims are never empty, the
	// signature is for `alg: none`.
	jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`)
)

// String returns s with every secret key replaced by `sk_live_[redacted]`,
// every API token by `hst_[redacted]` and every JWT-shaped string by
// `[token redacted]`. It is cheap for the text it leaves alone (a few
// substring searches, no allocation), so that every stored string can go
// through it.
func String(s string) string {
	// '_' and 'J' are rare in what is stored (hosts, ids, user agents), and
	// a byte search is the cheapest test there is.
	if strings.IndexByte(s, '_') >= 0 {
		if strings.Contains(s, KeyPrefix) {
			s = keyRE.ReplaceAllString(s, KeyPrefix+"[redacted]")
		}
		if strings.Contains(s, APITokenPrefix) {
			s = apiTokenRE.ReplaceAllString(s, APITokenPrefix+"[redacted]")
		}
	}
	if strings.IndexByte(s, 'J') >= 0 && strings.Contains(s, jwtPrefix) {
		s = jwtRE.ReplaceAllString(s, "[token redacted]")
	}
	return s
}

// Strings returns list with String applied to every element: list itself
// when nothing changes, else a copy.
func Strings(list []string) []string {
	for i, s := range list {
		if String(s) != s {
			out := make([]string, len(list))
			copy(out, list[:i])
			for j := i; j < len(list); j++ {
				out[j] = String(list[j])
			}
			return out
		}
	}
	return list
}

// Map returns m with String applied to every key and value: m itself when
// nothing changes, else a copy (two keys that scrub alike keep one value).
func Map(m map[string]string) map[string]string {
	for k, v := range m {
		if String(k) != k || String(v) != v {
			out := make(map[string]string, len(m))
			for k, v := range m {
				out[String(k)] = String(v)
			}
			return out
		}
	}
	return m
}

// Fingerprint is how a token or a key appears in logs, audit records and
// admin views: the first 16 hex digits of its SHA-256. It identifies the
// secret without revealing it.
func Fingerprint(secret string) string {
	if secret == "" {
		return ""
	}
	return FingerprintOf(sha256.Sum256([]byte(secret)))
}

// FingerprintOf is the fingerprint of a secret whose SHA-256 is sum.
func FingerprintOf(sum [sha256.Size]byte) string { return hex.EncodeToString(sum[:8]) }

// Package redact scrubs secrets out of text before it reaches a log line, an
// error message or a terminal: secret keys (`sk_live_…`) and anything shaped
// like a JWT. It is the last line of defence; code should never put a secret
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

var (
	keyRE = regexp.MustCompile(`sk_live_[A-Za-z0-9_\-]*`)
	jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*`)
)

// String returns s with every secret key replaced by `sk_live_[redacted]`
// and every JWT-shaped string by `[token redacted]`.
func String(s string) string {
	if strings.Contains(s, KeyPrefix) {
		s = keyRE.ReplaceAllString(s, KeyPrefix+"[redacted]")
	}
	if strings.Contains(s, "eyJ") {
		s = jwtRE.ReplaceAllString(s, "[token redacted]")
	}
	return s
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

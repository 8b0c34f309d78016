// Package redact scrubs secrets out of text before it reaches a log line, an
// error message or a terminal: secret keys (`sk_live_…`) and anything shaped
// like a JWT. It is the last line of defence; code should never put a secret
// into a message in the first place.
package redact

import (
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

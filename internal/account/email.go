package account

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Limits of an email address (RFC 5321: a path of at most 256 octets with
// its brackets, a local part of at most 64).
const (
	MaxEmailBytes     = 254
	maxLocalPartBytes = 64
	maxLabelBytes     = 63
)

// NormalizeEmail returns the email as accounts are known by: trimmed and
// lower-cased; ErrInvalid when it is not a sane address. Only ASCII
// addresses are accepted (an internationalised domain in its xn-- form):
// local part of letters, digits and !#$%&'*+/=?^_`{|}~.- without a leading,
// trailing or doubled dot; a domain of at least two dot-separated labels of
// letters, digits and '-' (not at a label's ends).
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if err := checkEmail(e); err != nil {
		return "", fmt.Errorf("%w: email: %s", ErrInvalid, err)
	}
	return e, nil
}

// emailError is why an email is refused; it never quotes the email, which
// may be a password typed in the wrong field.
type emailError string

func (e emailError) Error() string { return string(e) }

func checkEmail(e string) error {
	if e == "" {
		return emailError("empty")
	}
	if len(e) > MaxEmailBytes {
		return emailError(fmt.Sprintf("longer than %d bytes", MaxEmailBytes))
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || strings.Contains(domain, "@") {
		return emailError("use one '@' between a name and a domain")
	}
	if local == "" || len(local) > maxLocalPartBytes {
		return emailError(fmt.Sprintf("the part before '@' must have 1 to %d characters", maxLocalPartBytes))
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return emailError("a dot may not start or end the part before '@', nor follow another")
	}
	for i := 0; i < len(local); i++ {
		if !localChar(local[i]) {
			return emailError("the part before '@' may hold only letters, digits and !#$%&'*+/=?^_`{|}~.-")
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return emailError("the domain needs a dot (example.com)")
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabelBytes || l[0] == '-' || l[len(l)-1] == '-' {
			return emailError(fmt.Sprintf("each part of the domain must have 1 to %d letters, digits or '-', not starting or ending with '-'", maxLabelBytes))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return emailError("the domain may hold only letters, digits, '-' and dots")
			}
		}
	}
	return nil
}

func localChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+/=?^_`{|}~.-", c) >= 0
}

// digestKey is a KV key for a name KV keys cannot hold ('@', an address):
// the hex SHA-256 of the name under a purpose, so that the same email has
// unrelated keys in different buckets.
func digestKey(purpose, name string) string {
	sum := sha256.Sum256([]byte(purpose + "\x00" + name))
	return hex.EncodeToString(sum[:])
}

// accountKey is the accounts bucket's key of a normalised email.
func accountKey(email string) string { return digestKey("account", email) }

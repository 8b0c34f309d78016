package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password policy.
const (
	// MinPasswordRunes is the shortest password accepted, in characters.
	MinPasswordRunes = 12
	// MaxPasswordBytes is the longest password accepted, in bytes: it bounds
	// what one sign-in makes argon2id hash.
	MaxPasswordBytes = 256
	// GeneratedPasswordRunes is the length of GeneratePassword's passwords.
	GeneratedPasswordRunes = 20
)

// The argon2id parameters new hashes get: OWASP's password storage cheat
// sheet's first recommendation (19 MiB, two passes, one lane). A stored hash
// carries its own parameters, so they can be raised without breaking old
// hashes.
const (
	argonMemoryKiB = 19456
	argonTime      = 2
	argonThreads   = 1
	argonSaltBytes = 16
	argonKeyBytes  = 32
)

// Bounds of the parameters a stored hash may name, so that a damaged or
// tampered record cannot make one verification take all memory or time.
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 16
	maxArgonThreads   = 16
	minArgonSaltBytes = 8
	maxArgonSaltBytes = 64
	minArgonKeyBytes  = 16
	maxArgonKeyBytes  = 64
)

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// errBadHash means a stored password hash is not an argon2id PHC string
// this package can verify.
var errBadHash = errors.New("stored password hash is not a valid argon2id PHC string")

// CheckPassword returns ErrInvalid, saying what to fix, when password does
// not follow the policy for the account email (normalised): at least
// MinPasswordRunes characters, at most MaxPasswordBytes bytes, valid UTF-8,
// not the email itself.
func CheckPassword(email, password string) error {
	switch {
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: password: not valid UTF-8 text", ErrInvalid)
	case utf8.RuneCountInString(password) < MinPasswordRunes:
		return fmt.Errorf("%w: password: use at least %d characters", ErrInvalid, MinPasswordRunes)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("%w: password: use at most %d bytes", ErrInvalid, MaxPasswordBytes)
	case email != "" && strings.EqualFold(strings.TrimSpace(password), email):
		return fmt.Errorf("%w: password: must not be the email", ErrInvalid)
	}
	return nil
}

// GeneratePassword makes a one-time password of GeneratedPasswordRunes
// characters from crypto/rand, in an alphabet without look-alikes (no 0, O,
// 1, l, I): about 116 bits.
func GeneratePassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	// The largest multiple of the alphabet's size a byte holds: bytes from
	// it up are drawn again, so every character is equally likely.
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, GeneratedPasswordRunes)
	buf := make([]byte, 2*GeneratedPasswordRunes)
	for len(out) < GeneratedPasswordRunes {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < GeneratedPasswordRunes {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// hashPassword hashes a password with argon2id and a random salt, in the
// PHC string format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func hashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyBytes)
	return encodeHash(argonParams{memory: argonMemoryKiB, time: argonTime, threads: argonThreads}, salt, key), nil
}

// argonParams are an argon2id hash's cost parameters.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

func encodeHash(p argonParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodeHash parses a PHC argon2id string strictly: the version this
// package hashes with, parameters within bounds, in the order m, t, p.
func decodeHash(encoded string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, errBadHash
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, errBadHash
	}
	m, okM := param(fields[0], "m=", 8, maxArgonMemoryKiB)
	t, okT := param(fields[1], "t=", 1, maxArgonTime)
	th, okP := param(fields[2], "p=", 1, maxArgonThreads)
	if !okM || !okT || !okP || m < 8*th {
		return p, nil, nil, errBadHash
	}
	p = argonParams{memory: uint32(m), time: uint32(t), threads: uint8(th)}
	salt, err := b64.Strict().DecodeString(parts[4])
	if err != nil || len(salt) < minArgonSaltBytes || len(salt) > maxArgonSaltBytes {
		return p, nil, nil, errBadHash
	}
	key, err := b64.Strict().DecodeString(parts[5])
	if err != nil || len(key) < minArgonKeyBytes || len(key) > maxArgonKeyBytes {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}

// param parses "<prefix><decimal>" within [lo, hi]: digits only, no sign,
// no leading zero.
func param(s, prefix string, lo, hi uint64) (uint64, bool) {
	d, ok := strings.CutPrefix(s, prefix)
	if !ok || d == "" || len(d) > 10 || (len(d) > 1 && d[0] == '0') || strings.TrimLeft(d, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(d, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

// weakHash reports whether a hash is weaker than those made now (lower
// cost, shorter salt or key): a sign-in with the right password then hashes
// it again. A stronger one (made by a newer version) is kept.
func weakHash(encoded string) bool {
	p, salt, key, err := decodeHash(encoded)
	return err != nil || p.memory < argonMemoryKiB || p.time < argonTime ||
		len(salt) < argonSaltBytes || len(key) < argonKeyBytes
}

// verifyPassword reports whether password matches the PHC string encoded,
// hashing with the parameters and salt it names and comparing in constant
// time; errBadHash when encoded cannot be parsed.
func verifyPassword(encoded, password string) (bool, error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

package account_test

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/hissuno/widgetauth/internal/account"
)

// Passwords the tests use.
const (
	goodPassword  = "correct horse battery staple"
	otherPassword = "Tr0ub4dor&3-but-longer"
)

// phcRE is the PHC string of an argon2id hash with OWASP's parameters, a
// 16-byte salt and a 32-byte key (22 and 43 unpadded base64 characters).
var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func TestHashPassword(t *testing.T) {
	t.Parallel()
	h, err := account.HashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	m := phcRE.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("hash %q is not an argon2id PHC string with OWASP's parameters", h)
	}
	if salt, _ := base64.RawStdEncoding.DecodeString(m[1]); len(salt) != 16 {
		t.Errorf("salt of %d bytes, want 16", len(salt))
	}
	if key, _ := base64.RawStdEncoding.DecodeString(m[2]); len(key) != 32 {
		t.Errorf("key of %d bytes, want 32", len(key))
	}
	if strings.Contains(h, goodPassword) {
		t.Error("the hash holds the password")
	}
	h2, err := account.HashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}

	ok, err := account.VerifyPassword(h, goodPassword)
	if err != nil || !ok {
		t.Fatalf("VerifyPassword(right password) = %v, %v", ok, err)
	}
	if ok, err := account.VerifyPassword(h, otherPassword); err != nil || ok {
		t.Errorf("VerifyPassword(wrong password) = %v, %v; want false", ok, err)
	}
	if ok, err := account.VerifyPassword(h, goodPassword+" "); err != nil || ok {
		t.Errorf("VerifyPassword(password and a space) = %v, %v; want false", ok, err)
	}

	// A hash made with other parameters verifies with those: they are read
	// from the hash, so they can be raised later.
	t.Run("parameters from the hash", func(t *testing.T) {
		t.Parallel()
		salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
		h := "$argon2id$v=19$m=64,t=1,p=2$" + salt + "$" + idKeyB64("pw-of-twelve+", "0123456789abcdef", 1, 64, 2, 16)
		if ok, err := account.VerifyPassword(h, "pw-of-twelve+"); err != nil || !ok {
			t.Errorf("VerifyPassword with m=64,t=1,p=2 = %v, %v", ok, err)
		}
	})

	swap := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	hashAt := strings.LastIndexByte(h, '$') + 1
	saltAt := strings.LastIndexByte(h[:hashAt-1], '$') + 1
	tampered := []struct {
		name string
		hash string
	}{
		{"hash changed", swap(h, hashAt+5)},
		{"salt changed", swap(h, saltAt+5)},
		{"time changed", strings.Replace(h, "t=2", "t=3", 1)},
		{"memory changed", strings.Replace(h, "m=19456", "m=19457", 1)},
	}
	for _, tc := range tampered {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, err := account.VerifyPassword(tc.hash, goodPassword)
			if ok {
				t.Errorf("a tampered hash (%s) verifies", tc.name)
			}
			if err != nil {
				t.Errorf("error %v, want a plain mismatch", err)
			}
		})
	}

	malformed := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"argon2i", strings.Replace(h, "argon2id", "argon2i", 1)},
		{"bcrypt", "$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz0123"},
		{"version 16", strings.Replace(h, "v=19", "v=16", 1)},
		{"parameters reordered", strings.Replace(h, "m=19456,t=2,p=1", "t=2,m=19456,p=1", 1)},
		{"memory beyond bounds", strings.Replace(h, "m=19456", "m=99999999", 1)},
		{"zero time", strings.Replace(h, "t=2", "t=0", 1)},
		{"too many lanes", strings.Replace(h, "p=1", "p=300", 1)},
		{"negative", strings.Replace(h, "t=2", "t=-2", 1)},
		{"leading zero", strings.Replace(h, "t=2", "t=02", 1)},
		{"padded base64", h + "="},
		{"short salt", strings.Replace(h, h[saltAt:hashAt-1], "c2FsdA", 1)},
		{"short key", h[:hashAt] + "a2V5"},
		{"extra field", h + "$x"},
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if ok, err := account.VerifyPassword(tc.hash, goodPassword); ok || err == nil {
				t.Errorf("VerifyPassword(%s) = %v, %v; want an error", tc.name, ok, err)
			}
		})
	}
}

// idKeyB64 is an argon2id key in the PHC string's base64.
func idKeyB64(password, salt string, time, memory uint32, threads uint8, n uint32) string {
	return base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte(password), []byte(salt), time, memory, threads, n))
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		email    string
		password string
		wantErr  string // "" for accepted
	}{
		{"twelve characters", "a@example.com", "abcdefghijkl", ""},
		{"eleven characters", "a@example.com", "abcdefghijk", "at least 12"},
		{"twelve runes in more bytes", "a@example.com", "éééééééééééé", ""},
		{"eleven runes in 22 bytes", "a@example.com", "ééééééééééé", "at least 12"},
		{"256 bytes", "a@example.com", strings.Repeat("x", 256), ""},
		{"257 bytes", "a@example.com", strings.Repeat("x", 257), "at most 256"},
		{"the email", "someone@example.com", "someone@example.com", "not be the email"},
		{"the email in capitals", "someone@example.com", "SomeOne@Example.com", "not be the email"},
		{"the email with spaces", "someone@example.com", "  someone@example.com ", "not be the email"},
		{"invalid UTF-8", "a@example.com", "abcdefghijkl\xff", "UTF-8"},
		{"empty", "a@example.com", "", "at least 12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := account.CheckPassword(tc.email, tc.password)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, account.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want ErrInvalid saying %q", err, tc.wantErr)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
}

func TestGeneratePassword(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 50 {
		p, err := account.GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if utf8.RuneCountInString(p) != account.GeneratedPasswordRunes {
			t.Fatalf("%q: %d characters", p, len(p))
		}
		if strings.ContainsAny(p, "0O1lI") {
			t.Errorf("%q holds a look-alike character", p)
		}
		if err := account.CheckPassword("owner@example.com", p); err != nil {
			t.Errorf("a generated password breaks the policy: %v", err)
		}
		if seen[p] {
			t.Fatalf("%q generated twice", p)
		}
		seen[p] = true
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	long254 := "a@" + strings.Repeat("bbbbbbbbb.", 24) + "cccccccc.com"
	long255 := "a@" + strings.Repeat("bbbbbbbbb.", 25) + "com"
	cases := []struct {
		in, want string // want "" for refused
	}{
		{"Owner@Example.COM", "owner@example.com"},
		{"  a.b+tag@sub.example.org \n", "a.b+tag@sub.example.org"},
		{"o'brien@example.ie", "o'brien@example.ie"},
		{"x@xn--bcher-kva.example", "x@xn--bcher-kva.example"},
		{"", ""},
		{"no-at.example.com", ""},
		{"two@@example.com", ""},
		{"a@b@example.com", ""},
		{"@example.com", ""},
		{"name@", ""},
		{"name@localhost", ""},
		{".name@example.com", ""},
		{"name.@example.com", ""},
		{"na..me@example.com", ""},
		{"na me@example.com", ""},
		{"name@exa_mple.com", ""},
		{"name@-example.com", ""},
		{"name@example-.com", ""},
		{"name@example..com", ""},
		{"näme@example.com", ""},
		{"<name>@example.com", ""},
		{strings.Repeat("a", 65) + "@example.com", ""},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{"a@" + strings.Repeat("b", 64) + ".com", ""},
		{long255, ""},
		{long254, long254},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := account.NormalizeEmail(tc.in)
			if tc.want == "" {
				if !errors.Is(err, account.ErrInvalid) {
					t.Fatalf("NormalizeEmail(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	parse := []struct {
		in   string
		want account.Role
	}{
		{"owner", account.RoleOwner},
		{" Admin ", account.RoleAdmin},
		{"SECURITY", account.RoleSecurity},
		{"root", ""},
		{"", ""},
	}
	for _, tc := range parse {
		t.Run("parse "+tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := account.ParseRole(tc.in)
			if tc.want == "" {
				if !errors.Is(err, account.ErrInvalid) {
					t.Fatalf("ParseRole(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRole(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
	order := []struct {
		r, other account.Role
		want     bool
	}{
		{account.RoleOwner, account.RoleOwner, true},
		{account.RoleAdmin, account.RoleOwner, true},
		{account.RoleSecurity, account.RoleOwner, true},
		{account.RoleOwner, account.RoleAdmin, false},
		{account.RoleAdmin, account.RoleAdmin, true},
		{account.RoleSecurity, account.RoleAdmin, true},
		{account.RoleOwner, account.RoleSecurity, false},
		{account.RoleAdmin, account.RoleSecurity, false},
		{account.RoleSecurity, account.RoleSecurity, true},
		{"root", account.RoleOwner, false},
		{account.RoleSecurity, "root", false},
	}
	for _, tc := range order {
		if got := tc.r.AtMost(tc.other); got != tc.want {
			t.Errorf("%q.AtMost(%q) = %v, want %v", tc.r, tc.other, got, tc.want)
		}
	}
}

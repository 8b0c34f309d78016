package project_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hissuno/widgetauth/internal/project"
)

// newMasterKey returns 32 random bytes.
func newMasterKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, project.MasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

// newSealer returns a Sealer under a fresh random master key.
func newSealer(t *testing.T) *project.Sealer {
	t.Helper()
	s, err := project.NewSealer(newMasterKey(t))
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	tests := []struct {
		name    string
		secret  []byte
		id      string
		version int
	}{
		{"secret key", []byte("sk_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"), "proj_a", 1},
		{"empty secret", []byte{}, "p", 7},
		{"binary secret", []byte{0, 1, 2, 255, 254}, "proj-with_dashes", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := s.Seal(tt.secret, tt.id, tt.version)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(tt.secret) > 0 && strings.Contains(sealed, string(tt.secret)) {
				t.Fatalf("sealed value %q holds the secret in clear", sealed)
			}
			if !strings.HasPrefix(sealed, "v1:") {
				t.Errorf("sealed value %q does not start with the format prefix v1:", sealed)
			}
			got, err := s.Open(sealed, tt.id, tt.version)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.secret) {
				t.Errorf("Open = %q, want %q", got, tt.secret)
			}
		})
	}
}

func TestSealIsRandomised(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	a, err := s.Seal([]byte("sk_live_same"), "p", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Seal([]byte("sk_live_same"), "p", 1)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two seals of the same secret are equal (%q): the nonce is not random", a)
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	other := newSealer(t)
	secret := []byte("sk_live_secret")
	sealed, err := s.Seal(secret, "proj_a", 2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := strings.CutPrefix(sealed, "v1:")
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(b)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name          string
		sealer        *project.Sealer
		sealed        string
		id            string
		version       int
		badMasterKey  bool // the error must wrap ErrBadMasterKey
		notMasterKeyE bool // the error must not wrap ErrBadMasterKey
	}{
		{name: "another project id", sealer: s, sealed: sealed, id: "proj_b", version: 2},
		{name: "another version", sealer: s, sealed: sealed, id: "proj_a", version: 1},
		{name: "another master key", sealer: other, sealed: sealed, id: "proj_a", version: 2, badMasterKey: true},
		{name: "a flipped bit", sealer: s, sealed: "v1:" + base64.RawStdEncoding.EncodeToString(flipped), id: "proj_a", version: 2},
		{name: "truncated", sealer: s, sealed: "v1:" + base64.RawStdEncoding.EncodeToString(b[:len(b)-4]), id: "proj_a", version: 2},
		{name: "shorter than a nonce", sealer: s, sealed: "v1:" + base64.RawStdEncoding.EncodeToString(b[:5]), id: "proj_a", version: 2, notMasterKeyE: true},
		{name: "not base64", sealer: s, sealed: "v1:!!!not base64!!!", id: "proj_a", version: 2, notMasterKeyE: true},
		{name: "no format prefix", sealer: s, sealed: raw, id: "proj_a", version: 2, notMasterKeyE: true},
		{name: "unknown format", sealer: s, sealed: "v2:" + raw, id: "proj_a", version: 2, notMasterKeyE: true},
		{name: "empty", sealer: s, sealed: "", id: "proj_a", version: 2, notMasterKeyE: true},
		{name: "clear secret", sealer: s, sealed: string(secret), id: "proj_a", version: 2, notMasterKeyE: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.sealer.Open(tt.sealed, tt.id, tt.version)
			if err == nil {
				t.Fatalf("Open(%q, %q, %d) = %q, want an error", tt.sealed, tt.id, tt.version, got)
			}
			if got != nil {
				t.Errorf("Open returned %q along with the error %v", got, err)
			}
			if tt.badMasterKey && !errors.Is(err, project.ErrBadMasterKey) {
				t.Errorf("error %v does not wrap ErrBadMasterKey", err)
			}
			if tt.notMasterKeyE && errors.Is(err, project.ErrBadMasterKey) {
				t.Errorf("a corrupt value is reported as a bad master key: %v", err)
			}
			if strings.Contains(err.Error(), string(secret)) {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
}

func TestNewSealerKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := project.NewSealer(make([]byte, n)); !errors.Is(err, project.ErrBadMasterKey) {
			t.Errorf("NewSealer(%d bytes) error = %v, want ErrBadMasterKey", n, err)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	t.Parallel()
	key := newMasterKey(t)
	// A key whose base64 forms use '+' and '/' (or '-' and '_'), so the
	// standard and URL alphabets differ.
	alpha := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32]
	tests := []struct {
		name string
		in   string
		want []byte // nil: an error wrapping ErrBadMasterKey
	}{
		{"hex lower", hex.EncodeToString(key), key},
		{"hex upper", strings.ToUpper(hex.EncodeToString(key)), key},
		{"hex with newline", hex.EncodeToString(key) + "\n", key},
		{"hex with spaces around", "  " + hex.EncodeToString(key) + " \t\n", key},
		{"base64 std padded", base64.StdEncoding.EncodeToString(key), key},
		{"base64 std raw", base64.RawStdEncoding.EncodeToString(key), key},
		{"base64 url padded", base64.URLEncoding.EncodeToString(key), key},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString(key), key},
		{"base64 std with + and /", base64.StdEncoding.EncodeToString(alpha), alpha},
		{"base64 url with - and _", base64.RawURLEncoding.EncodeToString(alpha), alpha},
		{"empty", "", nil},
		{"hex of 16 bytes", hex.EncodeToString(key[:16]), nil},
		{"hex of 31 bytes", hex.EncodeToString(key[:31]), nil},
		{"hex of 33 bytes", hex.EncodeToString(append(bytes.Clone(key), 1)), nil},
		{"hex of 64 bytes", hex.EncodeToString(append(bytes.Clone(key), key...)), nil},
		{"odd hex digit count", hex.EncodeToString(key)[:63], nil},
		{"not hex", strings.Repeat("zz", 32), nil},
		{"base64 of 16 bytes", base64.StdEncoding.EncodeToString(key[:16]), nil},
		{"base64 of 48 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(key), key[:16]...)), nil},
		{"passphrase", "correct horse battery staple", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := project.ParseMasterKey(tt.in)
			if tt.want == nil {
				if !errors.Is(err, project.ErrBadMasterKey) {
					t.Fatalf("ParseMasterKey(%q) = %x, %v; want an error wrapping ErrBadMasterKey", tt.in, got, err)
				}
				if !strings.Contains(err.Error(), "openssl rand -hex 32") {
					t.Errorf("error %q does not say how to make a key", err)
				}
				if tt.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
					t.Errorf("error %q repeats the key material", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMasterKey(%q): %v", tt.in, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("ParseMasterKey(%q) = %x, want %x", tt.in, got, tt.want)
			}
		})
	}
}

func TestLoadOrCreateMasterKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "dir", "master.key")

	key, created, err := project.LoadOrCreateMasterKeyFile(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	if len(key) != project.MasterKeyBytes {
		t.Fatalf("key has %d bytes, want %d", len(key), project.MasterKeyBytes)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	dirInfo, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := dirInfo.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("created directory mode %v is open to others", perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := project.ParseMasterKey(string(b)); err != nil || !bytes.Equal(parsed, key) {
		t.Errorf("file holds %q, which parses to %x (%v); want the returned key %x", b, parsed, err, key)
	}

	again, created, err := project.LoadOrCreateMasterKeyFile(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if created {
		t.Error("created = true for an existing file")
	}
	if !bytes.Equal(again, key) {
		t.Errorf("loaded key %x, want the created %x", again, key)
	}

	// A value sealed under the created key opens under the loaded one.
	s1, _ := project.NewSealer(key)
	s2, _ := project.NewSealer(again)
	sealed, err := s1.Seal([]byte("sk_live_x"), "p", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Open(sealed, "p", 1); err != nil {
		t.Errorf("a secret sealed under the created key does not open under the loaded one: %v", err)
	}
}

func TestLoadOrCreateMasterKeyFileRefuses(t *testing.T) {
	t.Parallel()
	key := hex.EncodeToString(newMasterKey(t)) + "\n"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    []string // in the error
	}{
		{"readable by all", key, 0o644, []string{"chmod 600"}},
		{"readable by group", key, 0o640, []string{"chmod 600"}},
		{"writable by others", key, 0o602, []string{"chmod 600"}},
		{"not a key", "hello\n", 0o600, []string{"openssl rand -hex 32"}},
		{"short key", key[:32] + "\n", 0o600, []string{"openssl rand -hex 32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // umask-proof
				t.Fatal(err)
			}
			got, created, err := project.LoadOrCreateMasterKeyFile(path)
			if err == nil {
				t.Fatalf("LoadOrCreateMasterKeyFile = %x, want an error", got)
			}
			if created {
				t.Error("created = true on an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tt.content)) {
				t.Errorf("error %q shows the file's content", err)
			}
			// The file is left alone.
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("the file was changed to %q", b)
			}
		})
	}
}

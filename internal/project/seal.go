package project

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeyBytes is the size of the master key: AES-256.
const MasterKeyBytes = 32

// ErrBadMasterKey means the master key is missing, of the wrong size, or not
// the key the stored secrets were sealed with.
var ErrBadMasterKey = errors.New("bad master key")

const sealPrefix = "v1:"

// Sealer seals and opens secret keys with AES-256-GCM under the master key.
// The additional data binds a sealed key to its project and version, so a
// sealed value copied to another project or version does not open.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte master key.
func NewSealer(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != MasterKeyBytes {
		return nil, fmt.Errorf("%w: it has %d bytes, want %d", ErrBadMasterKey, len(masterKey), MasterKeyBytes)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts a secret key for one project and key version.
func (s *Sealer) Seal(secret []byte, projectID string, version int) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, secret, aad(projectID, version))
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a sealed secret key of one project and key version.
func (s *Sealer) Open(sealed, projectID string, version int) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, fmt.Errorf("open key v%d of %s: unknown sealing format", version, projectID)
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, fmt.Errorf("open key v%d of %s: corrupt sealed value", version, projectID)
	}
	n := s.aead.NonceSize()
	secret, err := s.aead.Open(nil, b[:n], b[n:], aad(projectID, version))
	if err != nil {
		return nil, fmt.Errorf("open key v%d of %s: %w (was it sealed under another HISSUNO_MASTER_KEY?)", version, projectID, ErrBadMasterKey)
	}
	return secret, nil
}

func aad(projectID string, version int) []byte {
	return fmt.Appendf(nil, "hissuno-key:%s:%d", projectID, version)
}

// ParseMasterKey reads a master key written as 64 hex digits or as base64
// of 32 bytes (standard or URL alphabet, padded or not).
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == MasterKeyBytes {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == MasterKeyBytes {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: write 32 random bytes as 64 hex digits or base64 (openssl rand -hex 32)", ErrBadMasterKey)
}

// LoadOrCreateMasterKeyFile reads the master key from path, or, when the file
// does not exist, makes a new random key and writes it there readable by its
// owner only (0600). It refuses a key file that others can read.
func LoadOrCreateMasterKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		info, err := os.Stat(path)
		if err != nil {
			return nil, false, fmt.Errorf("master key file: %w", err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("master key file %s is readable by others (mode %v): chmod 600 it", path, info.Mode().Perm())
		}
		key, err := ParseMasterKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("master key file %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	key = make([]byte, MasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	return key, true, nil
}

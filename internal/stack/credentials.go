package stack

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
)

// Credentials are one NATS user's credentials for the embedded server of a
// stack, as `hissuno dev` keeps them in its data directory (one file per
// user, readable by its owner only) so that the CLI on the same machine
// finds them without flags.
type Credentials struct {
	// URL is the NATS server they are good for.
	URL string `json:"url"`
	// User and Password authenticate.
	User     string `json:"user"`
	Password string `json:"password"`
}

// ConnConfig is how to connect with these credentials: the user's own
// inbox prefix (events.InboxPrefix(user)) included.
func (c Credentials) ConnConfig(name string) bus.ConnConfig {
	return bus.ConnConfig{URL: c.URL, Name: name, User: c.User, Password: c.Password, InboxPrefix: events.InboxPrefix(c.User)}
}

// ErrNoCredentials means a data directory holds no credentials of a user
// (no `hissuno dev` ran there).
var ErrNoCredentials = errors.New("no credentials")

// CredentialsDir is the directory of a data directory that holds the NATS
// credentials of `hissuno dev` (mode 0700).
func CredentialsDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

func credentialsFile(dataDir, user string) string {
	return filepath.Join(CredentialsDir(dataDir), user+".json")
}

// ReadCredentials reads a user's credentials from a data directory. It
// refuses a file that others can read.
func ReadCredentials(dataDir, user string) (Credentials, error) {
	path := credentialsFile(dataDir, user)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, fmt.Errorf("%w for NATS user %s in %s", ErrNoCredentials, user, CredentialsDir(dataDir))
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("NATS credentials: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("NATS credentials: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return Credentials{}, fmt.Errorf("NATS credentials file %s is readable by others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil || c.User != user || c.Password == "" {
		return Credentials{}, fmt.Errorf("NATS credentials file %s is not a credentials file of user %s", path, user)
	}
	return c, nil
}

// writeCredentials writes a user's credentials into a data directory,
// readable by its owner only, replacing what was there.
func writeCredentials(dataDir string, c Credentials) error {
	dir := CredentialsDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("NATS credentials: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("NATS credentials: %w", err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+c.User+".*")
	if err != nil {
		return fmt.Errorf("NATS credentials: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("NATS credentials: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("NATS credentials: %w", err)
	}
	if err := os.Rename(f.Name(), credentialsFile(dataDir, c.User)); err != nil {
		return fmt.Errorf("NATS credentials: %w", err)
	}
	return nil
}

// Dev servers: `hissuno dev` leaves, for as long as it runs, a note in the
// user's configuration directory naming the data directory of the NATS
// server it listens on, so that a command run from anywhere, with only
// --nats, finds that server's credentials (ReadCredentialsFor).

// devServersDir is where the notes are (mode 0700).
func devServersDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("dev servers: %w", err)
	}
	return filepath.Join(dir, "hissuno", "dev-servers"), nil
}

// devServerNote is the note of the server at url.
func devServerNote(url string) (string, error) {
	dir, err := devServersDir()
	if err != nil {
		return "", err
	}
	key := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.TrimPrefix(url, "nats://"))
	return filepath.Join(dir, key), nil
}

// RegisterDevServer notes that the NATS server at url keeps its
// credentials in dataDir; the returned function removes the note.
func RegisterDevServer(url, dataDir string) (unregister func(), err error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	note, err := devServerNote(url)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(note), 0o700); err != nil {
		return nil, fmt.Errorf("dev servers: %w", err)
	}
	if err := os.WriteFile(note, []byte(abs+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("dev servers: %w", err)
	}
	return func() {
		// Only our own note: another dev may have taken the address since.
		if b, err := os.ReadFile(note); err == nil && strings.TrimSpace(string(b)) == abs {
			_ = os.Remove(note)
		}
	}, nil
}

// ReadCredentialsFor reads a user's credentials for the NATS server at
// url: from dataDir when the dev server there runs at url, else from the
// data directory a running `hissuno dev` noted for url. ErrNoCredentials
// when neither has them.
func ReadCredentialsFor(url, dataDir, user string) (Credentials, error) {
	c, err := ReadCredentials(dataDir, user)
	if err == nil && sameServer(c.URL, url) {
		return c, nil
	}
	if err != nil && !errors.Is(err, ErrNoCredentials) {
		return Credentials{}, err
	}
	note, nerr := devServerNote(url)
	if nerr != nil {
		return Credentials{}, fmt.Errorf("%w for NATS user %s at %s", ErrNoCredentials, user, url)
	}
	b, rerr := os.ReadFile(note)
	if rerr != nil {
		return Credentials{}, fmt.Errorf("%w for NATS user %s at %s", ErrNoCredentials, user, url)
	}
	c, err = ReadCredentials(strings.TrimSpace(string(b)), user)
	if err != nil {
		return Credentials{}, err
	}
	if !sameServer(c.URL, url) {
		return Credentials{}, fmt.Errorf("%w for NATS user %s at %s", ErrNoCredentials, user, url)
	}
	return c, nil
}

// sameServer reports whether two NATS URLs name the same single server
// (scheme and host:port; "localhost" and 127.0.0.1 alike).
func sameServer(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil || strings.Contains(s, ",") {
			return ""
		}
		host, port := u.Hostname(), u.Port()
		if host == "localhost" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = "4222"
		}
		return u.Scheme + "://" + net.JoinHostPort(host, port)
	}
	na := norm(a)
	return na != "" && na == norm(b)
}

// newPassword makes a random password nats-server reads as a string:
// letters and digits, starting with a letter.
func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("NATS password: %w", err)
	}
	return "pw" + hex.EncodeToString(b), nil
}

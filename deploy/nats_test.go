package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// natsConf is the NATS configuration docker-compose.yml mounts.
const natsConf = "nats/nats.conf"

// natsServer is an embedded server started from nats.conf.
type natsServer struct {
	ns        *server.Server
	url       string
	passwords map[string]string
}

// startNATS gives every user of nats.conf a random password in the
// environment and starts an embedded JetStream server from nats.conf on a
// random port. The test's configuration file includes nats.conf unchanged
// and only moves monitoring from 8222 to a random loopback port, so that
// tests need no fixed port. It sets environment variables: the calling
// test cannot be parallel.
func startNATS(t *testing.T) *natsServer {
	t.Helper()
	pw := make(map[string]string, len(deploy.NATSUsers))
	for _, u := range deploy.NATSUsers {
		pw[u] = randomPassword(t)
		t.Setenv(deploy.PasswordVar(u), pw[u])
	}
	abs, err := filepath.Abs(natsConf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs) // nats-server resolves includes against the including file
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "test.conf")
	body := "include " + strconv.Quote(filepath.ToSlash(rel)) + "\nhttp: \"127.0.0.1:-1\"\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ConfigFile: conf}, stacktest.Logger(t))
	if err != nil {
		t.Fatalf("start NATS from %s: %v", natsConf, err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return &natsServer{ns: ns, url: ns.ClientURL(), passwords: pw}
}

// randomPassword is a password nats-server reads as a string from the
// environment: letters and digits, starting with a letter.
func randomPassword(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw" + hex.EncodeToString(b)
}

// connConfig is how the role of a NATS user connects: with the inbox
// prefix of its own, events.InboxPrefix(role), as connectRole and `hissuno
// setup` do (the admin CLI's is events.AdminInboxPrefix).
func (s *natsServer) connConfig(user string) bus.ConnConfig {
	return bus.ConnConfig{URL: s.url, Name: "deploy-test-" + user, User: user, Password: s.passwords[user], InboxPrefix: events.InboxPrefix(user)}
}

// connect opens a connection as user, closed when the test ends.
func (s *natsServer) connect(t *testing.T, user string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(s.connConfig(user), stacktest.Logger(t))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// violation returns the permissions violation the server reported on nc,
// if any. The server answers a denied publish or subscription with -ERR
// before it answers the flush's PING, so after Flush it is known.
func violation(nc *nats.Conn) error {
	if err := nc.Flush(); err != nil {
		return err
	}
	if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
		return err
	}
	return nil
}

// ensureStreams creates the streams and the bucket as docker-compose.yml
// does: `hissuno setup` as the setup user.
func (s *natsServer) ensureStreams(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, errOut, code := runCLI(ctx, s.setupArgs("setup")...)
	if code != 0 {
		t.Fatalf("hissuno setup as the setup user: exit %d\n%s%s", code, out, errOut)
	}
}

// setupArgs is the command line of `hissuno setup` as user.
func (s *natsServer) setupArgs(user string) []string {
	return []string{"setup", "--nats", s.url, "--nats-user", user, "--nats-password", s.passwords[user]}
}

// masterKey returns a random master key and its sealer.
func masterKey(t *testing.T) (string, *project.Sealer) {
	t.Helper()
	b := make([]byte, project.MasterKeyBytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	s, err := project.NewSealer(b)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b), s
}

// runCLI runs one hissuno command line and returns its output and exit code.
func runCLI(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errOut stacktest.SyncBuffer
	code = runCommand(ctx, &out, &errOut, args)
	return out.String(), errOut.String(), code
}

// runCommand runs one hissuno command line writing to stdout and stderr.
func runCommand(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	return cli.Run(cli.Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr}, args)
}

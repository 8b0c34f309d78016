package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/stack"
)

// errUsage marks a command line that could not be parsed; the flag package
// has already printed what is wrong.
var errUsage = errors.New("usage")

// newFlags makes a flag set that reports errors instead of exiting. What it
// prints is scrubbed of secrets: a key pasted into the wrong flag is quoted
// in the flag package's own error.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	stderr = redactWriter{stderr}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags (each also read from the environment variable shown):\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// redactWriter scrubs secret keys and tokens out of what passes through.
type redactWriter struct{ w io.Writer }

func (r redactWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, redact.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// parse parses flags that may stand before or after positional arguments
// (`hissuno project get ID --json` works) and returns the positional ones.
// Everything after "--" is positional.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, flag.ErrHelp
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			if err := applyEnv(fs); err != nil {
				return nil, err
			}
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// envRef names, in a flag's usage, the environment variable that sets it.
var envRef = regexp.MustCompile(`\[(HISSUNO_[A-Z0-9_]+)\]`)

// applyEnv sets every flag not given on the command line from its
// environment variable (the one its usage names, [HISSUNO_…]) through the
// flag's own parser: a flag's default is written once, in its
// registration, and a variable with a bad value is an error that names it.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		m := envRef.FindStringSubmatch(f.Usage)
		if err != nil || given[f.Name] || m == nil {
			return
		}
		v, ok := os.LookupEnv(m[1])
		if !ok {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = fmt.Errorf("%s=%q: %v (it sets --%s); fix the variable or unset it", m[1], redact.String(v), serr, f.Name)
		}
	})
	return err
}

// getenv returns the environment variable's value, or def.
func getenv(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// retentionFlag is a retention: days (400d), a duration of whole days
// (9600h), or 0 to keep forever.
type retentionFlag struct{ d *time.Duration }

func (f retentionFlag) String() string {
	if f.d == nil {
		return ""
	}
	return audit.FormatRetention(*f.d)
}

func (f retentionFlag) Set(v string) error {
	d, err := audit.ParseRetention(v)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// natsFlags are the connection flags every command that talks to NATS takes.
type natsFlags struct{ cfg bus.ConnConfig }

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.cfg.URL, "nats", bus.DefaultURL, "NATS server URL(s), comma-separated [HISSUNO_NATS_URL]")
	fs.StringVar(&n.cfg.User, "nats-user", "", "NATS user [HISSUNO_NATS_USER]")
	// Secrets never become flag defaults: the flag package prints defaults
	// in usage text. config() reads their environment variables.
	fs.StringVar(&n.cfg.Password, "nats-password", "", "NATS password; prefer the environment variable [HISSUNO_NATS_PASSWORD]")
	fs.StringVar(&n.cfg.Token, "nats-token", "", "NATS token; prefer the environment variable [HISSUNO_NATS_TOKEN]")
	fs.StringVar(&n.cfg.CredsFile, "nats-creds", "", "NATS credentials file (JWT + nkey) [HISSUNO_NATS_CREDS]")
	fs.StringVar(&n.cfg.CAFile, "nats-tls-ca", "", "CA file to verify the NATS server's certificate [HISSUNO_NATS_TLS_CA]")
	fs.StringVar(&n.cfg.CertFile, "nats-tls-cert", "", "client TLS certificate for NATS [HISSUNO_NATS_TLS_CERT]")
	fs.StringVar(&n.cfg.KeyFile, "nats-tls-key", "", "client TLS key for NATS [HISSUNO_NATS_TLS_KEY]")
}

// config is the connection configuration: the flags, with the secret ones
// taken from their environment variables when not given. When no
// credential is given at all and a `hissuno dev` runs on that NATS URL,
// the credentials it keeps for user are used (from its data directory,
// HISSUNO_DATA, default hissuno-data, or the one it noted for that URL):
// the CLI next to a dev stack needs no flags.
func (n *natsFlags) config(name, user string) (bus.ConnConfig, error) {
	c := n.cfg
	c.Name = name
	if c.Password == "" {
		c.Password = os.Getenv("HISSUNO_NATS_PASSWORD")
	}
	if c.Token == "" {
		c.Token = os.Getenv("HISSUNO_NATS_TOKEN")
	}
	if c.User != "" || c.Password != "" || c.Token != "" || c.CredsFile != "" {
		return c, nil
	}
	dc, err := stack.ReadCredentialsFor(c.URL, dataDir(), user)
	switch {
	case errors.Is(err, stack.ErrNoCredentials):
	case err != nil:
		return c, fmt.Errorf("%w (or give --nats-user and HISSUNO_NATS_PASSWORD)", err)
	default:
		c.User, c.Password = dc.User, dc.Password
	}
	return c, nil
}

// connectJS connects as user (the flags' credential, or a local `hissuno
// dev`'s for user) with the inbox prefix of the user it connects as, and
// opens JetStream on the connection; the caller closes it.
func (n *natsFlags) connectJS(name, user string, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	cfg, err := n.config(name, user)
	if err != nil {
		return nil, nil, err
	}
	cfg.InboxPrefix = events.InboxPrefix(cmp.Or(cfg.User, user))
	nc, err := bus.Connect(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// dataDir is the data directory of a local `hissuno dev`.
func dataDir() string { return getenv("HISSUNO_DATA", defaultDataDir) }

// defaultDataDir is `hissuno dev`'s data directory unless --data or
// HISSUNO_DATA names another.
const defaultDataDir = "hissuno-data"

// logFlags choose the log level and format.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet, defFormat string) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error [HISSUNO_LOG_LEVEL]")
	fs.StringVar(&l.format, "log-format", defFormat, "log format: json or console [HISSUNO_LOG_FORMAT]")
}

// logger builds the one logger of the process.
func (l *logFlags) logger(w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(l.level)
	if err != nil || l.level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: use debug, info, warn or error", l.level)
	}
	switch l.format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: use json or console", l.format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// masterKeyFlags say where the master key comes from.
type masterKeyFlags struct{ file string }

func (m *masterKeyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.file, "master-key-file", "", "file holding the master key (64 hex digits); or set HISSUNO_MASTER_KEY [HISSUNO_MASTER_KEY_FILE]")
}

// sealer loads the master key from HISSUNO_MASTER_KEY or --master-key-file.
func (m *masterKeyFlags) sealer() (*project.Sealer, error) {
	var key []byte
	var err error
	switch v := os.Getenv("HISSUNO_MASTER_KEY"); {
	case v != "":
		key, err = project.ParseMasterKey(v)
		if err != nil {
			return nil, fmt.Errorf("HISSUNO_MASTER_KEY: %w", err)
		}
	case m.file != "":
		b, rerr := os.ReadFile(m.file)
		if rerr != nil {
			return nil, fmt.Errorf("master key file: %w", rerr)
		}
		if key, err = project.ParseMasterKey(string(b)); err != nil {
			return nil, fmt.Errorf("master key file %s: %w", m.file, err)
		}
	default:
		return nil, errors.New("no master key: set HISSUNO_MASTER_KEY (openssl rand -hex 32) or --master-key-file; every verifier and rotator needs the same one")
	}
	return project.NewSealer(key)
}

package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/console"
)

const consoleUsage = `hissuno console [--listen ADDR] [--clickhouse DSN] [--tls-cert FILE --tls-key FILE | --tls-proxy] [flags]
       hissuno console add-user --email EMAIL --role owner|admin|security [--project ID]... [--password-stdin]`

// runConsole runs the console role, or its add-user subcommand.
func runConsole(env Env, args []string) error {
	if len(args) > 0 {
		switch {
		case args[0] == "add-user":
			return consoleAddUser(env, args[1:])
		case args[0] == "help":
			fmt.Fprintf(env.Stdout, "usage: %s\n\nrun `hissuno console --help` or `hissuno console add-user --help` for the flags\n", consoleUsage)
			return nil
		case !strings.HasPrefix(args[0], "-"):
			fmt.Fprintf(env.Stderr, "hissuno console: unknown subcommand %q\nusage: %s\n", args[0], consoleUsage)
			return errUsage
		}
	}
	var listen, dsn, cert, key *string
	var tlsProxy *bool
	var idle, absolute *time.Duration
	return runRole(env, args, roleSpec{
		name: "console",
		flags: func(fs *flag.FlagSet) {
			listen = fs.String("listen", console.DefaultListen, "HTTP address of the admin API, /healthz, /readyz and /metrics; never the widget port [HISSUNO_CONSOLE_LISTEN]")
			dsn = fs.String("clickhouse", audit.DefaultDSN, "ClickHouse DSN the audit is read from, clickhouse://[user:password@]host:9000/db [HISSUNO_CLICKHOUSE_DSN]")
			cert = fs.String("tls-cert", "", "PEM certificate file: serve HTTPS (with --tls-key) [HISSUNO_TLS_CERT]")
			key = fs.String("tls-key", "", "PEM private key file of --tls-cert [HISSUNO_TLS_KEY]")
			tlsProxy = fs.Bool("tls-proxy", false, "a reverse proxy in front terminates HTTPS (it must pass the Host header on): Secure __Host- cookies and HSTS even on a loopback --listen [HISSUNO_CONSOLE_TLS_PROXY]")
			idle = fs.Duration("session-idle", account.DefaultSessionIdle, "a session unused this long ends [HISSUNO_SESSION_IDLE]")
			absolute = fs.Duration("session-max", account.DefaultSessionAbsolute, "a session ends this long after sign-in, used or not [HISSUNO_SESSION_MAX]")
		},
		build: func(r roleEnv) (func(context.Context) error, error) {
			c, err := console.New(context.Background(), console.Config{
				NATS: r.nc, ClickHouseDSN: *dsn, Listen: *listen, TLSCertFile: *cert, TLSKeyFile: *key, TLSProxy: *tlsProxy, Instance: r.instance,
				Accounts: account.Config{SessionIdle: *idle, SessionAbsolute: *absolute}, Checks: r.checks,
			}, r.log)
			if err != nil {
				return nil, err
			}
			return c.Run, nil
		},
	})
}

// consoleAddUser creates a console account as the console's NATS user: the
// first owner, or any account an owner would rather make from a shell.
func consoleAddUser(env Env, args []string) error {
	var n natsFlags
	var projects stringList
	fs := newFlags("console add-user", "hissuno console add-user --email EMAIL --role owner|admin|security [--project ID]... [--password-stdin]", env.Stderr)
	n.register(fs)
	email := fs.String("email", "", "the account's email (required)")
	role := fs.String("role", "", "owner (everything, accounts included), admin (projects, rotation, revocation, audit) or security (read-only) (required)")
	fs.Var(&projects, "project", "limit the account to this project id (repeatable); none: every project")
	stdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin; default: print a one-time password")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q; the email goes in --email", pos[0])
	}
	if *email == "" {
		return errors.New("whose account? add --email EMAIL")
	}
	r, err := account.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("%w: give --role owner, admin or security", err)
	}
	password, generated := "", false
	if *stdin {
		if password, err = readPassword(env.Stdin); err != nil {
			return err
		}
	} else {
		if password, err = account.GeneratePassword(); err != nil {
			return err
		}
		generated = true
	}
	nc, js, err := n.connectJS("hissuno-console-add-user", events.SourceConsole, zerolog.Nop())
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(env.Ctx, 30*time.Second)
	defer cancel()
	store, err := openAccounts(ctx, js)
	if err != nil {
		return err
	}
	acc, err := store.CreateAccount(ctx, *email, r, projects, password)
	if acc.Email == "" {
		acc.Email, _ = account.NormalizeEmail(*email)
	}
	switch {
	case errors.Is(err, account.ErrExists):
		return fmt.Errorf("an account %s exists already; sign in with it, or have an owner reset its password in the console", acc.Email)
	case errors.Is(err, account.ErrInvalid):
		return fmt.Errorf("%w; fix it and run the command again", err)
	case err != nil:
		return fmt.Errorf("create the account: %w", err)
	}
	scope := "every project"
	if len(acc.Projects) > 0 {
		scope = strings.Join(acc.Projects, ", ")
	}
	fmt.Fprintf(env.Stdout, "Account %s created: role %s, %s.\n", acc.Email, acc.Role, scope)
	if generated {
		fmt.Fprintf(env.Stdout, "\nOne-time password, shown this once (sign in, then change it under your account):\n\n  %s\n", password)
	}
	return nil
}

// openAccounts opens the console's account store; a permissions refusal
// says which NATS user to connect as.
func openAccounts(ctx context.Context, js jetstream.JetStream) (*account.Store, error) {
	store, err := account.Open(ctx, js, account.Config{})
	if err != nil {
		return nil, fmt.Errorf("%w (connect as the console's NATS user: --nats-user console; `hissuno setup` makes its buckets)", err)
	}
	return store, nil
}

// readPassword reads one line from r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("--password-stdin: no stdin; pipe the password in, or leave the flag out for a one-time password")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("--password-stdin: stdin held no password; pipe one line in")
	}
	return line, nil
}

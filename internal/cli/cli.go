// Package cli is the `hissuno` command line: the roles (dev, ingress,
// verifier, rotator, auditor), the admin commands (project …), token minting
// and the audit queries. cmd/hissuno only calls Main.
//
// Every error goes to stderr, scrubbed of secret keys and tokens, and says
// what to do next; a failing command exits non-zero.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/redact"
)

// Env is what a command runs with: its output streams and a context that
// ends on SIGINT or SIGTERM.
type Env struct {
	Ctx    context.Context
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(env Env, args []string) error
}

func commands() []command {
	return []command{
		{"dev", "run everything in one process: embedded NATS, all roles, ClickHouse when installed", runDev},
		{"setup", "create or update the JetStream streams and the projects bucket", runSetup},
		{"ingress", "run the HTTP ingress role", runIngress},
		{"verifier", "run a verifier role", runVerifier},
		{"rotator", "run the rotator role", runRotator},
		{"auditor", "run the auditor role", runAuditor},
		{"console", "run the admin console and its HTTP API; add-user makes an account", runConsole},
		{"project", "create, get, update, rotate a project's key, revoke a user's tokens", runProject},
		{"token", "mint a widget token, as a customer's backend does", runToken},
		{"audit", "query the audit history: query, stats, tail, migrate", runAudit},
		{"bench", "measure the pipeline against the bare JetStream round trip", runBench},
	}
}

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return Run(Env{Ctx: ctx, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, args)
}

// Run runs one command line (without the program name).
func Run(env Env, args []string) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return 2
	}
	if isHelp(args[0]) {
		usage(env.Stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(env.Stderr, "hissuno %s: %s\n", c.name, redact.String(err.Error()))
		return 1
	}
	fmt.Fprintf(env.Stderr, "hissuno: unknown command %q; run `hissuno help` for the list\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "hissuno: widget authentication for the Hissuno support widget")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "run `hissuno COMMAND --help` for a command's flags")
}

// isHelp reports whether an argument asks for help.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// dispatch runs the subcommand args[0] of a command with subcommands, or
// prints its usage: to stdout on request, to stderr with errUsage when the
// subcommand is missing or unknown.
func dispatch(env Env, args []string, name, usage string, subs map[string]func(Env, []string) error) error {
	if len(args) == 0 {
		fmt.Fprintf(env.Stderr, "usage: %s\n", usage)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprintf(env.Stdout, "usage: %s\n\nrun a subcommand with --help for its flags\n", usage)
		return nil
	}
	if run, ok := subs[args[0]]; ok {
		return run(env, args[1:])
	}
	fmt.Fprintf(env.Stderr, "hissuno %s: unknown subcommand %q\nusage: %s\n", name, args[0], usage)
	return errUsage
}

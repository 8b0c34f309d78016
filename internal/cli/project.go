package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/inert"
	"github.com/hissuno/widgetauth/internal/origin"
	"github.com/hissuno/widgetauth/internal/project"
)

const projectUsage = `hissuno project create --name NAME [--require-token] [--origin PATTERN]... [--json]
       hissuno project get ID [--json]
       hissuno project update ID [--require-token=true|false] [--origin PATTERN]... [--clear-origins]
       hissuno project rotate ID [--grace DURATION] [--json]
       hissuno project revoke-user ID --user USER_ID
       hissuno project unrevoke-user ID --user USER_ID

Every change takes --reason TEXT, shown with it in the audit.`

func runProject(env Env, args []string) error {
	return dispatch(env, args, "project", projectUsage, map[string]func(Env, []string) error{
		"create":        projectCreate,
		"get":           projectGet,
		"update":        projectUpdate,
		"rotate":        projectRotate,
		"revoke-user":   projectRevokeUser,
		"unrevoke-user": projectUnrevokeUser,
	})
}

// adminFlags are the flags of every command that sends an admin command.
type adminFlags struct {
	nats    natsFlags
	reason  string
	actor   string
	timeout time.Duration
	json    bool
}

func (a *adminFlags) register(fs *flag.FlagSet, withJSON bool) {
	a.nats.register(fs)
	fs.StringVar(&a.reason, "reason", getenv("HISSUNO_REASON", ""), "why, in free text, shown with the change in the audit [HISSUNO_REASON]")
	fs.StringVar(&a.actor, "actor", "", "deprecated: the audit records the NATS user the CLI signed in as; a value given here is kept as the --reason")
	fs.DurationVar(&a.timeout, "timeout", 20*time.Second, "how long to wait for the rotator's answer")
	if withJSON {
		fs.BoolVar(&a.json, "json", false, "print JSON")
	}
}

// command starts an admin command of kind on project id with the reason
// given. It names no actor: the rotator records the NATS user the command
// came from, which NATS vouches for, whatever a caller would claim.
func (a *adminFlags) command(stderr io.Writer, kind events.CommandKind, id string) (events.Command, error) {
	reason := a.reason
	if a.actor != "" {
		fmt.Fprintf(stderr, "warning: --actor is no longer trusted: the audit records the NATS user you signed in as; %q is kept as the reason (use --reason)\n", inert.Text(a.actor))
		if reason == "" {
			reason = a.actor
		}
	}
	if len(reason) > events.MaxReasonBytes {
		return events.Command{}, fmt.Errorf("--reason is %d bytes: keep it to %d", len(reason), events.MaxReasonBytes)
	}
	cmd := admin.NewCommand(kind, id, "")
	cmd.Reason = reason
	return cmd, nil
}

// connect opens a NATS connection for admin commands, with the inbox
// prefix of its source: the name it sends commands as, its NATS user's
// (nats.conf lets each user publish commands under its own name only), else
// admin.
func (a *adminFlags) connect() (*nats.Conn, jetstream.JetStream, string, error) {
	nc, js, err := a.nats.connectJS("hissuno-cli", events.SourceAdmin, zerolog.Nop())
	if err != nil {
		return nil, nil, "", err
	}
	return nc, js, cmp.Or(nc.Opts.User, events.SourceAdmin), nil
}

// submit sends an admin command and waits for the rotator's answer.
func (a *adminFlags) submit(ctx context.Context, cmd events.Command) (admin.Result, error) {
	nc, _, source, err := a.connect()
	if err != nil {
		return admin.Result{}, err
	}
	defer nc.Close()
	c, err := admin.New(nc, source)
	if err != nil {
		return admin.Result{}, err
	}
	res, err := c.Submit(ctx, cmd, a.timeout)
	if errors.Is(err, admin.ErrRefused) {
		// The rotator's words alone: they say what to fix.
		return res, errors.New(res.Error)
	}
	return res, err
}

func projectCreate(env Env, args []string) error {
	var a adminFlags
	var origins stringList
	fs := newFlags("project create", "hissuno project create --name NAME [--require-token] [--origin PATTERN]... [--json]", env.Stderr)
	a.register(fs, true)
	name := fs.String("name", "", "the project's name (required)")
	requireToken := fs.Bool("require-token", false, "refuse widgets without a valid token (401 token_required)")
	fs.Var(&origins, "origin", "an allowed origin: https://myapp.com, *.myapp.com, http://localhost:3000 (repeatable; none allows every origin)")
	id := fs.String("id", "", "the project id; default: a random proj_… id")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q; the name goes in --name", pos[0])
	}
	if strings.TrimSpace(*name) == "" {
		return errors.New("a project needs a name: add --name NAME")
	}
	canon, err := origin.CanonicalPatterns(origins)
	if err != nil {
		return fmt.Errorf("%w; fix the --origin value", err)
	}
	if *id == "" {
		if *id, err = project.NewID(); err != nil {
			return err
		}
	} else if !project.ValidID(*id) {
		return fmt.Errorf("project id %q: use 1 to 64 letters, digits, '-' or '_'", *id)
	}
	cmd, err := a.command(env.Stderr, events.CommandCreateProject, *id)
	if err != nil {
		return err
	}
	cmd.Name, cmd.RequireToken, cmd.Origins = *name, requireToken, canon
	res, err := a.submit(env.Ctx, cmd)
	if err != nil {
		return err
	}
	if a.json {
		return printJSON(env.Stdout, keyAnswer(res))
	}
	fmt.Fprintf(env.Stdout, "Project %s created.\n\n", res.Project.ProjectID)
	fmt.Fprintf(env.Stdout, "Secret key, shown this once (keep it in your backend's environment, e.g. HISSUNO_SECRET_KEY):\n\n  %s\n\n", res.SecretKey)
	printProject(env.Stdout, res.Project)
	warnUnconfirmed(env.Stderr, res)
	return nil
}

// keyAnswer is the --json answer of create and rotate.
func keyAnswer(res admin.Result) map[string]any {
	out := map[string]any{
		"projectId":   res.Project.ProjectID,
		"secretKey":   res.SecretKey,
		"keyVersion":  res.Project.KeyVersion,
		"project":     res.Project,
		"confirmed":   nonNil(res.Confirmed),
		"unconfirmed": nonNil(res.Unconfirmed),
	}
	if res.AlreadyApplied {
		out["alreadyApplied"] = true
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func projectGet(env Env, args []string) error {
	var a adminFlags
	fs := newFlags("project get", "hissuno project get ID [--json]", env.Stderr)
	a.register(fs, true)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "get")
	if err != nil {
		return err
	}
	nc, js, _, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(env.Ctx, a.timeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		return fmt.Errorf("projects bucket: %w (has `hissuno dev` or a rotator run against this NATS?)", err)
	}
	rec, rev, err := project.NewStore(kv).Get(ctx, id)
	if errors.Is(err, project.ErrNotFound) {
		return fmt.Errorf("no project %q: check the id (`hissuno project create` prints it)", id)
	}
	if err != nil {
		return err
	}
	view := rec.View(rev)
	if a.json {
		return printJSON(env.Stdout, view)
	}
	printProject(env.Stdout, &view)
	return nil
}

// boolFlag is a bool flag that remembers whether it was given.
type boolFlag struct {
	set, value bool
}

func (b *boolFlag) String() string { return fmt.Sprint(b.value) }
func (b *boolFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		b.value = true
	case "false", "0", "no":
		b.value = false
	default:
		return fmt.Errorf("%q is not true or false", s)
	}
	b.set = true
	return nil
}
func (b *boolFlag) IsBoolFlag() bool { return true }

func projectUpdate(env Env, args []string) error {
	var a adminFlags
	var origins stringList
	var requireToken boolFlag
	fs := newFlags("project update", "hissuno project update ID [--require-token=true|false] [--origin PATTERN]... [--clear-origins]", env.Stderr)
	a.register(fs, true)
	fs.Var(&requireToken, "require-token", "true: refuse widgets without a valid token; false: allow anonymous sessions")
	fs.Var(&origins, "origin", "an allowed origin (repeatable); replaces the whole list")
	clear := fs.Bool("clear-origins", false, "empty the allowed-origins list (every origin allowed)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "update")
	if err != nil {
		return err
	}
	if !requireToken.set && len(origins) == 0 && !*clear {
		return errors.New("nothing to change: give --require-token=true|false, --origin PATTERN or --clear-origins")
	}
	if *clear && len(origins) > 0 {
		return errors.New("--clear-origins and --origin together: give one or the other")
	}
	canon, err := origin.CanonicalPatterns(origins)
	if err != nil {
		return fmt.Errorf("%w; fix the --origin value", err)
	}
	cmd, err := a.command(env.Stderr, events.CommandUpdateProject, id)
	if err != nil {
		return err
	}
	cmd.Origins, cmd.ClearOrigins = canon, *clear
	if requireToken.set {
		v := requireToken.value
		cmd.RequireToken = &v
	}
	res, err := a.submit(env.Ctx, cmd)
	if err != nil {
		return explainNotFound(res, err, id)
	}
	if a.json {
		return printJSON(env.Stdout, res.Project)
	}
	fmt.Fprintf(env.Stdout, "Project %s updated.\n\n", id)
	printProject(env.Stdout, res.Project)
	warnUnconfirmed(env.Stderr, res)
	return nil
}

func projectRotate(env Env, args []string) error {
	var a adminFlags
	fs := newFlags("project rotate", "hissuno project rotate ID [--grace DURATION] [--json]", env.Stderr)
	a.register(fs, true)
	grace := fs.Duration("grace", 0, "keep the previous key verifying this long (e.g. 10m), by server time; default: it stops at once")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, "rotate")
	if err != nil {
		return err
	}
	if *grace < 0 {
		return errors.New("--grace cannot be negative")
	}
	if *grace > 0 && *grace < time.Second {
		return errors.New("--grace is counted in whole seconds: give at least 1s, or 0 to retire the old key at once")
	}
	cmd, err := a.command(env.Stderr, events.CommandRotateKey, id)
	if err != nil {
		return err
	}
	cmd.GraceSeconds = int64(*grace / time.Second)
	res, err := a.submit(env.Ctx, cmd)
	if err != nil {
		return explainNotFound(res, err, id)
	}
	if a.json {
		return printJSON(env.Stdout, keyAnswer(res))
	}
	fmt.Fprintf(env.Stdout, "Key of project %s rotated to version %d.\n\n", id, res.Project.KeyVersion)
	fmt.Fprintf(env.Stdout, "New secret key, shown this once (mint tokens with it from now on):\n\n  %s\n\n", res.SecretKey)
	if cmd.GraceSeconds > 0 {
		fmt.Fprintf(env.Stdout, "The previous key keeps verifying for %s (server time), then stops.\n", *grace)
	} else {
		fmt.Fprintln(env.Stdout, "Every previous key stopped verifying: tokens signed with them get 401 token_bad_signature.")
	}
	if len(res.Confirmed) > 0 {
		fmt.Fprintf(env.Stdout, "Confirmed by %d verifier(s): %s\n", len(res.Confirmed), strings.Join(res.Confirmed, ", "))
	}
	warnUnconfirmed(env.Stderr, res)
	return nil
}

func projectRevokeUser(env Env, args []string) error {
	return projectUserCommand(env, args, userCommand{
		name: "revoke-user", kind: events.CommandRevokeUser,
		userHelp: "the userId whose tokens issued before now are refused (required)",
		missing:  "whose tokens? add --user USER_ID",
		done:     "Tokens of user %q on project %s issued before now (or without iat) are refused with token_revoked; tokens minted from now on work.\n",
	})
}

func projectUnrevokeUser(env Env, args []string) error {
	return projectUserCommand(env, args, userCommand{
		name: "unrevoke-user", kind: events.CommandUnrevokeUser,
		userHelp: "the userId whose revocation is lifted (required)",
		missing:  "whose revocation? add --user USER_ID",
		done:     "The revocation of user %q on project %s is lifted: tokens of theirs that are otherwise valid work again.\n",
	})
}

// userCommand is a project subcommand about one user's tokens.
type userCommand struct {
	name     string // the subcommand
	kind     events.CommandKind
	userHelp string // --user's help
	missing  string // the error without --user
	done     string // printed once applied, of the user and the project id
}

// projectUserCommand runs `hissuno project <uc.name> ID --user USER_ID`.
func projectUserCommand(env Env, args []string, uc userCommand) error {
	var a adminFlags
	fs := newFlags("project "+uc.name, "hissuno project "+uc.name+" ID --user USER_ID", env.Stderr)
	a.register(fs, true)
	userID := fs.String("user", "", uc.userHelp)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos, uc.name)
	if err != nil {
		return err
	}
	if *userID == "" {
		return errors.New(uc.missing)
	}
	cmd, err := a.command(env.Stderr, uc.kind, id)
	if err != nil {
		return err
	}
	cmd.UserID = *userID
	res, err := a.submit(env.Ctx, cmd)
	if err != nil {
		return explainNotFound(res, err, id)
	}
	if a.json {
		return printJSON(env.Stdout, res.Project)
	}
	fmt.Fprintf(env.Stdout, uc.done, *userID, id)
	warnUnconfirmed(env.Stderr, res)
	return nil
}

func oneID(pos []string, sub string) (string, error) {
	switch {
	case len(pos) == 0:
		return "", fmt.Errorf("which project? give its id: hissuno project %s ID", sub)
	case len(pos) > 1:
		return "", fmt.Errorf("one project id, got %d arguments: %s", len(pos), strings.Join(pos, " "))
	case !project.ValidID(pos[0]):
		return "", fmt.Errorf("%q is not a project id (letters, digits, '-', '_'; `hissuno project create` prints it)", pos[0])
	}
	return pos[0], nil
}

// explainNotFound says what to do when the rotator found no such project.
func explainNotFound(res admin.Result, err error, id string) error {
	if res.Code == events.ErrorNotFound {
		return fmt.Errorf("no project %q: check the id (`hissuno project create` prints it)", id)
	}
	return err
}

func warnUnconfirmed(w io.Writer, res admin.Result) {
	if len(res.Unconfirmed) == 0 {
		return
	}
	fmt.Fprintf(w, "warning: %d verifier(s) did not confirm in time and refuse this project's attempts until they catch up: %s\n",
		len(res.Unconfirmed), strings.Join(res.Unconfirmed, ", "))
}

func printProject(w io.Writer, p *events.ProjectView) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "Project\t%s\n", p.ProjectID)
	fmt.Fprintf(tw, "Name\t%s\n", p.Name)
	fmt.Fprintf(tw, "Require token\t%v\n", p.RequireToken)
	if len(p.Origins) == 0 {
		fmt.Fprintf(tw, "Allowed origins\t(any: the list is empty)\n")
	} else {
		fmt.Fprintf(tw, "Allowed origins\t%s\n", strings.Join(p.Origins, ", "))
	}
	fmt.Fprintf(tw, "Key version\t%d\n", p.KeyVersion)
	for _, k := range p.Keys {
		state := "current"
		if k.ValidUntil != nil {
			state = "grace until " + k.ValidUntil.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "Key v%d\tfingerprint %s, %s, created %s\n", k.Version, k.Fingerprint, state, k.CreatedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Revoked users\t%d\n", p.RevokedUsers)
	fmt.Fprintf(tw, "Updated\t%s\n", p.UpdatedAt.UTC().Format(time.RFC3339))
	_ = tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

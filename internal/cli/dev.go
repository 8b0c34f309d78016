package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/console"
	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/stack"
)

// DemoProjectID is the project `hissuno dev` creates on its first start.
const DemoProjectID = "proj_demo"

// demoKeyFile holds the demo project's secret key in the data directory.
const demoKeyFile = "demo-secret-key"

func runDev(env Env, args []string) error {
	fs := newFlags("dev", "hissuno dev [--data DIR] [--listen ADDR] [--nats-listen ADDR] [--clickhouse DSN] [--demo-listen ADDR]", env.Stderr)
	var lf logFlags
	lf.register(fs, "console")
	data := fs.String("data", defaultDataDir, "directory for JetStream's store, the master key and the demo key [HISSUNO_DATA]")
	listen := fs.String("listen", ingress.DefaultListen, "HTTP address of the widget API [HISSUNO_LISTEN]")
	natsListen := fs.String("nats-listen", bus.DefaultListen, "address of the embedded NATS server [HISSUNO_NATS_LISTEN]")
	verifiers := fs.Int("verifiers", 1, "how many verifiers to run")
	dsn := fs.String("clickhouse", "", "ClickHouse DSN for the audit; default: start clickhouse-server from PATH with its data under --data [HISSUNO_CLICKHOUSE_DSN]")
	demoListen := fs.String("demo-listen", "127.0.0.1:8081", "HTTP address of the demo customer site; empty disables it [HISSUNO_DEMO_LISTEN]")
	var edge edgeFlags
	edge.register(fs)
	consoleListen := fs.String("console-listen", console.DefaultListen, "HTTP address of the admin console and its API; empty disables it [HISSUNO_CONSOLE_LISTEN]")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	log, err := lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	var masterKey []byte
	if v := os.Getenv("HISSUNO_MASTER_KEY"); v != "" {
		if masterKey, err = project.ParseMasterKey(v); err != nil {
			return fmt.Errorf("HISSUNO_MASTER_KEY: %w", err)
		}
	}
	audit, auditReader, stopCH, err := devClickHouse(env.Ctx, *dsn, *data, log)
	if err != nil {
		return err
	}
	defer stopCH()
	var icfg ingress.Config
	edge.apply(&icfg)
	st, err := stack.Start(env.Ctx, stack.Config{
		Ingress:             icfg,
		ClickHouseDSN:       audit,
		ClickHouseReaderDSN: auditReader,
		DataDir:             *data,
		NATSListen:          *natsListen,
		HTTPListen:          *listen,
		MasterKey:           masterKey,
		Verifiers:           *verifiers,
		ConsoleListen:       *consoleListen,
	}, log)
	if err != nil {
		return fmt.Errorf("%w (is another `hissuno dev` running? change --listen / --nats-listen / --console-listen or stop it)", err)
	}
	defer st.Stop()
	unregister, err := stack.RegisterDevServer(st.NATSURL, *data)
	if err != nil {
		log.Warn().Err(err).Msg("commands run elsewhere will need --nats-user and a password (they are in the data directory)")
	} else {
		defer unregister()
	}
	if st.MasterKeyCreated {
		log.Info().Str("file", filepath.Join(*data, "master.key")).Msg("created a master key (mode 0600); keep it: project keys are sealed with it")
	}
	created, err := ensureDemoProject(env.Ctx, st, *data)
	if err != nil {
		return err
	}
	demoURL, stopDemo, err := startDemoSite(env.Ctx, *demoListen, st, *data, log)
	if err != nil {
		return err
	}
	defer stopDemo()
	var owner devOwner
	if st.Console != nil {
		if owner, err = ensureDevOwner(env.Ctx, st.Console.Accounts(), *data); err != nil {
			return err
		}
	}
	printBanner(env.Stdout, st, *data, created, audit, demoURL, owner)
	select {
	case <-env.Ctx.Done():
		log.Info().Msg("stopping: finishing requests in flight")
	case <-st.Failed():
		return fmt.Errorf("a role stopped: %w", st.Err())
	}
	return nil
}

// ensureDemoProject creates the demo project on the first start, through the
// rotator like any admin would, and keeps its key in the data directory.
func ensureDemoProject(ctx context.Context, st *stack.Stack, data string) (bool, error) {
	nc, err := st.ConnectAs(events.SourceAdmin, "dev-setup")
	if err != nil {
		return false, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return false, err
	}
	kv, err := js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		return false, err
	}
	if _, _, err := project.NewStore(kv).Get(ctx, DemoProjectID); err == nil {
		return false, nil
	} else if !errors.Is(err, project.ErrNotFound) {
		return false, err
	}
	client, err := admin.New(nc, events.SourceAdmin)
	if err != nil {
		return false, err
	}
	cmd := admin.NewCommand(events.CommandCreateProject, DemoProjectID, "hissuno-dev")
	cmd.Name = "Demo"
	res, err := client.Submit(ctx, cmd, 20*time.Second)
	if err != nil {
		return false, fmt.Errorf("create the demo project: %w", err)
	}
	if err := os.WriteFile(filepath.Join(data, demoKeyFile), []byte(res.SecretKey+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("save the demo key: %w", err)
	}
	return true, nil
}

// DevOwnerEmail is the development owner `hissuno dev` creates on its first
// start, with a random password kept in the data directory.
const DevOwnerEmail = "owner@dev.hissuno.test"

// devOwnerFile holds the development owner's first password.
const devOwnerFile = "console-owner-password"

// devOwner is the console sign-in the banner prints.
type devOwner struct {
	email, password, file string
	created               bool
}

// ensureDevOwner creates the development owner on the first start, and
// otherwise finds the password it was made with (unless it was changed
// since: the file is then stale, and the banner says so).
func ensureDevOwner(ctx context.Context, store *account.Store, data string) (devOwner, error) {
	o := devOwner{email: DevOwnerEmail, file: filepath.Join(data, devOwnerFile)}
	if _, err := store.Account(ctx, DevOwnerEmail); err == nil {
		if b, err := os.ReadFile(o.file); err == nil {
			o.password = strings.TrimSpace(string(b))
		}
		return o, nil
	} else if !errors.Is(err, account.ErrNotFound) {
		return o, fmt.Errorf("read the development owner: %w", err)
	}
	pw, err := account.GeneratePassword()
	if err != nil {
		return o, err
	}
	if _, err := store.CreateAccount(ctx, DevOwnerEmail, account.RoleOwner, nil, pw); err != nil && !errors.Is(err, account.ErrExists) {
		return o, fmt.Errorf("create the development owner: %w", err)
	}
	if err := os.WriteFile(o.file, []byte(pw+"\n"), 0o600); err != nil {
		return o, fmt.Errorf("save the development owner's password: %w", err)
	}
	o.password, o.created = pw, true
	return o, nil
}

// cliName is how the banner tells the user to run hissuno.
func cliName() string {
	if _, err := exec.LookPath("hissuno"); err == nil {
		return "hissuno"
	}
	return "go run ./cmd/hissuno"
}

// devClickHouse picks the audit's ClickHouse: the DSN given, else one it
// starts from PATH with its data under the data directory (stopped with
// dev), else none: the audit then waits in JetStream. It returns the DSN
// the auditor writes with and the one the audit's readers use: on its own
// ClickHouse, as in docker-compose.yml, the database hissuno, written by
// the auditor and read by the console and `hissuno audit` as the
// read-only user of deploy/clickhouse/users.d/hissuno-reader.xml (its
// password made at each start, its DSN in the data directory's
// clickhouse-dsn, mode 0600).
func devClickHouse(ctx context.Context, dsn, data string, log zerolog.Logger) (writer, reader string, stop func(), err error) {
	dsnFile := filepath.Join(data, devDSNFile)
	if dsn != "" {
		_ = os.Remove(dsnFile)
		return dsn, dsn, func() {}, nil
	}
	if !localclickhouse.Available() {
		_ = os.Remove(dsnFile)
		log.Warn().Msg("no ClickHouse: clickhouse-server is not on PATH and no --clickhouse DSN was given; audit records wait in JetStream until an auditor with a ClickHouse runs (hissuno auditor --clickhouse DSN)")
		return "", "", func() {}, nil
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return "", "", nil, err
	}
	readerPassword := hex.EncodeToString(pw)
	srv, err := localclickhouse.StartWith(ctx, filepath.Join(data, "clickhouse"), localclickhouse.Options{
		UsersFiles: map[string][]byte{"hissuno-reader.xml": deploy.ClickHouseReaderUsers},
		Env:        []string{deploy.ClickHouseReaderPasswordVar + "=" + readerPassword},
	})
	if err != nil {
		return "", "", nil, fmt.Errorf("start ClickHouse for the audit: %w (or give --clickhouse DSN)", err)
	}
	if err := createAuditDatabase(ctx, srv.DSN); err != nil {
		srv.Stop()
		return "", "", nil, err
	}
	writer = srv.DSNAs("default", "", deploy.ClickHouseDatabase)
	reader = srv.DSNAs(deploy.ClickHouseReader, readerPassword, deploy.ClickHouseDatabase)
	if err := os.WriteFile(dsnFile, []byte(reader+"\n"), 0o600); err != nil {
		srv.Stop()
		return "", "", nil, err
	}
	log.Info().Str("dsn", writer).Str("readers_user", deploy.ClickHouseReader).Str("readers_dsn_file", dsnFile).Msg("started ClickHouse for the audit")
	return writer, reader, func() { srv.Stop(); _ = os.Remove(dsnFile) }, nil
}

// createAuditDatabase creates the audit's database on a local ClickHouse,
// as the ClickHouse image does from CLICKHOUSE_DB.
func createAuditDatabase(ctx context.Context, dsn string) error {
	conn, err := audit.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+deploy.ClickHouseDatabase); err != nil {
		return fmt.Errorf("create the audit's database: %w", err)
	}
	return nil
}

func printBanner(w io.Writer, st *stack.Stack, data string, created bool, audit, demo string, owner devOwner) {
	base := "http://" + st.HTTPAddr
	keyFile := filepath.Join(data, demoKeyFile)
	auditLine := "ClickHouse " + audit + "\n               " + cliName() + " audit query --since 1h"
	if audit == "" {
		auditLine = "none: records wait in JetStream until a ClickHouse is given (--clickhouse DSN)"
	}
	demoLine := ""
	if demo != "" {
		demoLine = "  Demo site    " + demo + "  (open it in a browser)\n"
	}
	if st.Console != nil {
		scheme := "http://"
		if st.Console.SecureCookies() {
			scheme = "https://"
		}
		demoLine += "  Console      " + scheme + st.ConsoleAddr + "/  API " + scheme + st.ConsoleAddr + "/api/v1/openapi.json\n"
		switch {
		case owner.password != "":
			demoLine += "               sign in as " + owner.email + " with " + owner.password + "  (development owner; kept in " + owner.file + ")\n"
		default:
			demoLine += "               sign in as " + owner.email + " with the password you set (the first one was in " + owner.file + ")\n"
		}
	}
	fmt.Fprintf(w, `
Hissuno widget authentication is running.

  Widget API   %[1]s/v1/widget/connect
  Health       %[1]s/readyz   Metrics %[1]s/metrics
  NATS         %[2]s  (a user per role; credentials in %[3]s/nats/, which the CLI finds)
  Data         %[3]s
  Audit        %[8]s
%[9]s
Demo project %[4]s (no token required, every origin allowed)%[5]s. Try it:

  curl -s %[1]s/v1/widget/connect -H 'Content-Type: application/json' -H 'Origin: https://shop.example' -d '{"projectId":"%[4]s","userId":"visitor-1"}'

With a token signed by the demo key (kept in %[6]s):

  TOKEN=$(%[7]s token mint --secret "$(cat %[6]s)" --user alice --meta name=Alice)
  curl -s %[1]s/v1/widget/connect -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" -d '{"projectId":"%[4]s"}'

Admin: %[7]s project create --name "My shop" --require-token --origin https://myshop.example --nats %[2]s
Stop with Ctrl-C.
`, base, st.NATSURL, data, DemoProjectID, map[bool]string{true: ", created now", false: ""}[created], keyFile, cliName(), auditLine, demoLine)
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestMain clears the HISSUNO_ environment so that the flags' defaults do
// not depend on the shell the tests run in.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "HISSUNO_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

// result is what one command line did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// run runs a command line as a user would, with buffers for its output.
func run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Run(Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}, args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// closedNATS is a NATS URL nothing listens on.
const closedNATS = "nats://127.0.0.1:1"

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantPos  []string
		wantJSON bool
		wantName string
		wantErr  error
	}{
		{name: "flag after positionals", args: []string{"get", "ID", "--json"}, wantPos: []string{"get", "ID"}, wantJSON: true},
		{name: "flag before positionals", args: []string{"--json", "get", "ID"}, wantPos: []string{"get", "ID"}, wantJSON: true},
		{name: "flag between positionals", args: []string{"get", "--json", "ID"}, wantPos: []string{"get", "ID"}, wantJSON: true},
		{name: "single dash flags", args: []string{"get", "-json", "ID", "-name", "n"}, wantPos: []string{"get", "ID"}, wantJSON: true, wantName: "n"},
		{name: "flag with a value after positionals", args: []string{"get", "ID", "--name", "My app", "--json"}, wantPos: []string{"get", "ID"}, wantJSON: true, wantName: "My app"},
		{name: "flag with = after positionals", args: []string{"ID", "--name=x"}, wantPos: []string{"ID"}, wantName: "x"},
		{name: "no flags", args: []string{"a", "b", "c"}, wantPos: []string{"a", "b", "c"}},
		{name: "nothing", args: nil, wantPos: nil},
		{name: "double dash ends flags", args: []string{"--", "--json"}, wantPos: []string{"--json"}},
		{name: "double dash after a positional", args: []string{"get", "--", "ID", "--json"}, wantPos: []string{"get", "ID", "--json"}},
		{name: "flags before the double dash", args: []string{"get", "--json", "--", "-x", "--name=y"}, wantPos: []string{"get", "-x", "--name=y"}, wantJSON: true},
		{name: "a second double dash is positional", args: []string{"--", "a", "--", "b"}, wantPos: []string{"a", "--", "b"}},
		{name: "single dash is positional", args: []string{"get", "-"}, wantPos: []string{"get", "-"}},
		{name: "unknown flag after positionals", args: []string{"get", "ID", "--nope"}, wantErr: errUsage},
		{name: "unknown flag before positionals", args: []string{"--nope", "get"}, wantErr: errUsage},
		{name: "missing flag value", args: []string{"get", "--name"}, wantErr: errUsage},
		{name: "help", args: []string{"get", "-h"}, wantErr: flag.ErrHelp},
		{name: "help long", args: []string{"--help"}, wantErr: flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlags("test", "test", io.Discard)
			jsonFlag := fs.Bool("json", false, "")
			name := fs.String("name", "", "")
			pos, err := parse(fs, tt.args)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parse(%q) error = %v, want %v", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tt.args, err)
			}
			if len(pos) != 0 || len(tt.wantPos) != 0 {
				if !reflect.DeepEqual(pos, tt.wantPos) {
					t.Errorf("positionals %q, want %q", pos, tt.wantPos)
				}
			}
			if *jsonFlag != tt.wantJSON {
				t.Errorf("--json = %v, want %v", *jsonFlag, tt.wantJSON)
			}
			if *name != tt.wantName {
				t.Errorf("--name = %q, want %q", *name, tt.wantName)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stderr
		notWant  []string // not in stderr
	}{
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, want: []string{"frobnicate", "hissuno help"}},
		{name: "no command", args: nil, wantCode: 2, want: []string{"commands:"}},
		{name: "project alone", args: []string{"project"}, wantCode: 2, want: []string{"usage"}},
		{name: "project unknown subcommand", args: []string{"project", "destroy"}, wantCode: 2, want: []string{"destroy"}},
		{name: "project get without id", args: []string{"project", "get", "--nats", closedNATS}, wantCode: 1, want: []string{"give its id", "hissuno project get ID"}},
		{name: "project get with two ids", args: []string{"project", "get", "a", "b", "--nats", closedNATS}, wantCode: 1, want: []string{"one project id"}},
		{name: "project get bad id", args: []string{"project", "get", "a.b", "--nats", closedNATS}, wantCode: 1, want: []string{`"a.b" is not a project id`}},
		{name: "project get unknown flag", args: []string{"project", "get", "ID", "--nope"}, wantCode: 2, want: []string{"nope"}},
		{name: "project get no NATS", args: []string{"project", "get", "ID", "--nats", "nats://alice:s3cr3tpw@127.0.0.1:1"}, wantCode: 1,
			want: []string{"cannot connect to NATS", "127.0.0.1:1", "hissuno dev"}, notWant: []string{"s3cr3tpw"}},
		{name: "project get no NATS, url without a scheme", args: []string{"project", "get", "ID", "--nats", "alice:s3cr3tpw@127.0.0.1:1"}, wantCode: 1,
			want: []string{"cannot connect to NATS", "127.0.0.1:1"}, notWant: []string{"s3cr3tpw"}},
		{name: "project create without name", args: []string{"project", "create", "--nats", closedNATS}, wantCode: 1, want: []string{"add --name"}},
		{name: "project create blank name", args: []string{"project", "create", "--name", "  ", "--nats", closedNATS}, wantCode: 1, want: []string{"add --name"}},
		{name: "project create positional name", args: []string{"project", "create", "myapp", "--nats", closedNATS}, wantCode: 1, want: []string{"--name"}},
		{name: "project create bad origin", args: []string{"project", "create", "--name", "x", "--origin", "*.com", "--nats", closedNATS}, wantCode: 1,
			want: []string{"*.com", "--origin"}, notWant: []string{"cannot connect", "NATS"}},
		{name: "project create origin with a path", args: []string{"project", "create", "--name", "x", "--origin", "https://a.example.com/", "--nats", closedNATS}, wantCode: 1,
			want: []string{"https://a.example.com/"}, notWant: []string{"cannot connect"}},
		{name: "project create bad id", args: []string{"project", "create", "--name", "x", "--id", "a b", "--nats", closedNATS}, wantCode: 1,
			want: []string{`"a b"`}, notWant: []string{"cannot connect"}},
		{name: "project update nothing to change", args: []string{"project", "update", "ID", "--nats", closedNATS}, wantCode: 1,
			want: []string{"nothing to change"}, notWant: []string{"cannot connect"}},
		{name: "project update clear and origin", args: []string{"project", "update", "ID", "--clear-origins", "--origin", "https://a.example.com", "--nats", closedNATS}, wantCode: 1,
			want: []string{"one or the other"}, notWant: []string{"cannot connect"}},
		{name: "project update bad origin", args: []string{"project", "update", "ID", "--origin", "*.co.uk", "--nats", closedNATS}, wantCode: 1,
			want: []string{"*.co.uk"}, notWant: []string{"cannot connect"}},
		{name: "project update bad require-token", args: []string{"project", "update", "ID", "--require-token=maybe", "--nats", closedNATS}, wantCode: 2,
			want: []string{"maybe"}},
		{name: "project update without id", args: []string{"project", "update", "--require-token", "--nats", closedNATS}, wantCode: 1, want: []string{"hissuno project update ID"}},
		{name: "project rotate negative grace", args: []string{"project", "rotate", "ID", "--grace", "-1s", "--nats", closedNATS}, wantCode: 1,
			want: []string{"--grace", "negative"}, notWant: []string{"cannot connect"}},
		{name: "project rotate sub-second grace", args: []string{"project", "rotate", "ID", "--grace", "500ms", "--nats", closedNATS}, wantCode: 1,
			want: []string{"--grace"}, notWant: []string{"cannot connect"}},
		{name: "project rotate without id", args: []string{"project", "rotate", "--nats", closedNATS}, wantCode: 1, want: []string{"hissuno project rotate ID"}},
		{name: "project revoke-user without user", args: []string{"project", "revoke-user", "ID", "--nats", closedNATS}, wantCode: 1,
			want: []string{"--user"}, notWant: []string{"cannot connect"}},
		{name: "token alone", args: []string{"token"}, wantCode: 2, want: []string{"token mint"}},
		{name: "token unknown subcommand", args: []string{"token", "burn"}, wantCode: 2, want: []string{"token mint"}},
		{name: "token mint without secret", args: []string{"token", "mint", "--user", "u"}, wantCode: 1, want: []string{"--secret", "sk_live_"}},
		{name: "token mint secret without prefix", args: []string{"token", "mint", "--secret", "abcdef", "--user", "u"}, wantCode: 1, want: []string{"sk_live_"}, notWant: []string{"abcdef"}},
		{name: "token mint without user", args: []string{"token", "mint", "--secret", "sk_live_x"}, wantCode: 1, want: []string{"--user"}},
		{name: "token mint zero ttl", args: []string{"token", "mint", "--secret", "sk_live_x", "--user", "u", "--ttl", "0"}, wantCode: 1, want: []string{"--ttl"}},
		{name: "token mint bad meta", args: []string{"token", "mint", "--secret", "sk_live_x", "--user", "u", "--meta", "novalue"}, wantCode: 1, want: []string{"key=value"}},
		{name: "token mint empty meta key", args: []string{"token", "mint", "--secret", "sk_live_x", "--user", "u", "--meta", "=v"}, wantCode: 1, want: []string{"key=value"}},
		{name: "token mint extra argument", args: []string{"token", "mint", "--secret", "sk_live_x", "--user", "u", "extra"}, wantCode: 1, want: []string{"extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", r.code, tt.wantCode, r)
			}
			if r.code != 0 && r.stderr == "" {
				t.Errorf("a failing command printed nothing on stderr\n%s", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q\n%s", w, r)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(r.stderr, w) {
					t.Errorf("stderr says %q\n%s", w, r)
				}
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"help", []string{"help"}},
		{"-h", []string{"-h"}},
		{"--help", []string{"--help"}},
		{"project get --help", []string{"project", "get", "--help"}},
		{"project create -h", []string{"project", "create", "-h"}},
		{"token mint --help", []string{"token", "mint", "--help"}},
		// The top-level usage says "run `hissuno COMMAND --help` for a
		// command's flags".
		{"project --help", []string{"project", "--help"}},
		{"token --help", []string{"token", "--help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.args...)
			if r.code != 0 {
				t.Errorf("exit %d, want 0\n%s", r.code, r)
			}
			if r.stdout+r.stderr == "" {
				t.Error("help printed nothing")
			}
		})
	}
	r := run(t, "help")
	for _, c := range []string{"project", "token", "dev"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("help does not list %q:\n%s", c, r.stdout)
		}
	}
}

// mintClaims checks that tok is an HS256 JWT signed with secret and returns
// its claims.
func mintClaims(t *testing.T, tok, secret string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("the minted token does not verify with HS256 and the secret: %v\ntoken: %s", err, tok)
	}
	if parsed.Header["alg"] != "HS256" {
		t.Errorf("alg %v, want HS256", parsed.Header["alg"])
	}
	return claims
}

func TestTokenMint(t *testing.T) {
	t.Parallel()
	const secret = "sk_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	before := time.Now()
	r := run(t, "token", "mint", "--secret", secret, "--user", "u", "--meta", "a=b", "--meta", "plan=pro=x", "--ttl", "1h")
	if r.code != 0 {
		t.Fatalf("token mint failed\n%s", r)
	}
	tok := strings.TrimSpace(r.stdout)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout is not one JWT: %q", r.stdout)
	}
	claims := mintClaims(t, tok, secret)
	if claims["userId"] != "u" {
		t.Errorf("userId %v, want u", claims["userId"])
	}
	wantMeta := map[string]any{"a": "b", "plan": "pro=x"}
	if !reflect.DeepEqual(claims["userMetadata"], wantMeta) {
		t.Errorf("userMetadata %v, want %v", claims["userMetadata"], wantMeta)
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		t.Fatalf("no iat: %v", err)
	}
	if d := iat.Sub(before); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("iat %v, want about now (%v)", iat, before)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		t.Fatalf("no exp: %v", err)
	}
	if d := exp.Sub(before.Add(time.Hour)); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("exp %v, want about now+1h (%v)", exp, before.Add(time.Hour))
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("sk_live_other"), nil }); err == nil {
		t.Error("the token verifies with another key")
	}
	if strings.Contains(r.stderr, secret) || strings.Contains(r.stdout, secret) {
		t.Error("token mint printed the secret")
	}

	// Without --meta there is no userMetadata claim; the default ttl is 24h.
	r = run(t, "token", "mint", "--user", "u2", "--secret", secret)
	if r.code != 0 {
		t.Fatalf("token mint failed\n%s", r)
	}
	claims = mintClaims(t, strings.TrimSpace(r.stdout), secret)
	if _, ok := claims["userMetadata"]; ok {
		t.Errorf("userMetadata %v without --meta", claims["userMetadata"])
	}
	exp, _ = claims.GetExpirationTime()
	if d := exp.Sub(before.Add(24 * time.Hour)); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("default exp %v, want about now+24h", exp)
	}
}

// TestErrorsHideSecrets: no error a command prints shows a secret key given
// on its command line.
func TestErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	const secret = "sk_live_SECRETSECRET"
	tests := []struct {
		name string
		args []string
	}{
		{"negative ttl", []string{"token", "mint", "--secret", secret, "--user", "u", "--ttl", "-1h"}},
		{"negative ttl with =", []string{"token", "mint", "--secret=" + secret, "--user=u", "--ttl=-1h"}},
		{"no user", []string{"token", "mint", "--secret", secret}},
		{"bad meta", []string{"token", "mint", "--secret", secret, "--user", "u", "--meta", "novalue"}},
		{"meta holding the secret", []string{"token", "mint", "--secret", secret, "--user", "u", "--meta", secret}},
		{"secret as a positional", []string{"token", "mint", "--user", "u", secret}},
		{"secret after the double dash", []string{"token", "mint", "--user", "u", "--", secret}},
		{"unknown flag", []string{"token", "mint", "--secret", secret, "--user", "u", "--nope"}},
		{"secret pasted as the ttl", []string{"token", "mint", "--user", "u", "--ttl", secret}},
		{"secret as an origin", []string{"project", "create", "--name", "x", "--origin", secret, "--nats", closedNATS}},
		{"secret as a project id", []string{"project", "get", secret, "--nats", closedNATS}},
		{"secret as a user to revoke, NATS down", []string{"project", "revoke-user", "p1", "--user", secret, "--nats", closedNATS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.args...)
			if r.code == 0 {
				t.Fatalf("the command succeeded\n%s", r)
			}
			if strings.Contains(r.stderr, "SECRETSECRET") || strings.Contains(r.stdout, "SECRETSECRET") {
				t.Errorf("the output shows the secret key\n%s", r)
			}
		})
	}
}

// TestUsageHidesSecretsFromEnvironment: a usage message (after a mistyped
// flag, or --help) lists the flags' defaults, which come from the
// environment; secrets there must not be printed.
func TestUsageHidesSecretsFromEnvironment(t *testing.T) {
	t.Setenv("HISSUNO_SECRET_KEY", "sk_live_ENVSECRETKEY")
	t.Setenv("HISSUNO_NATS_PASSWORD", "ENVNATSPASSWORD")
	t.Setenv("HISSUNO_NATS_TOKEN", "ENVNATSTOKEN")
	tests := []struct {
		name string
		args []string
	}{
		{"token mint unknown flag", []string{"token", "mint", "--nope"}},
		{"token mint help", []string{"token", "mint", "--help"}},
		{"project get unknown flag", []string{"project", "get", "ID", "--nope"}},
		{"project rotate help", []string{"project", "rotate", "--help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			for _, s := range []string{"ENVSECRETKEY", "ENVNATSPASSWORD", "ENVNATSTOKEN"} {
				if strings.Contains(r.stderr, s) || strings.Contains(r.stdout, s) {
					t.Errorf("the usage message shows %s from the environment\n%s", s, r)
				}
			}
		})
	}
}

// connect posts a widget connection attempt from https://a.example.com to
// the stack's ingress.
func connect(t *testing.T, st *stack.Stack, projectID, token string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"projectId": projectID, "widgetToken": token})
	req, err := http.NewRequest(http.MethodPost, "http://"+st.HTTPAddr+"/v1/widget/connect", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://a.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestProjectCommands(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	nats := stacktest.NATSArgs(t, st, events.SourceAdmin)

	// create --json
	r := run(t, append([]string{"project", "create", "--name", "My app", "--origin", "https://a.example.com", "--json"}, nats...)...)
	if r.code != 0 {
		t.Fatalf("project create failed\n%s", r)
	}
	var created struct {
		ProjectID  string              `json:"projectId"`
		SecretKey  string              `json:"secretKey"`
		KeyVersion int                 `json:"keyVersion"`
		Project    *events.ProjectView `json:"project"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatalf("create --json: %v\n%s", err, r)
	}
	if created.ProjectID == "" || !strings.HasPrefix(created.SecretKey, "sk_live_") || len(created.SecretKey) != 51 {
		t.Fatalf("create --json answered projectId %q secretKey %q", created.ProjectID, created.SecretKey)
	}
	if created.KeyVersion != 1 || created.Project == nil || created.Project.Name != "My app" {
		t.Errorf("create --json: keyVersion %d project %+v", created.KeyVersion, created.Project)
	}
	id, key1 := created.ProjectID, created.SecretKey
	secrets := []string{key1}

	// getJSON reads the project with `project get ID --json`.
	getJSON := func(t *testing.T) events.ProjectView {
		t.Helper()
		r := run(t, append([]string{"project", "get", id, "--json"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project get --json failed\n%s", r)
		}
		for _, s := range append(secrets, "sk_live_") {
			if strings.Contains(r.stdout, s) {
				t.Fatalf("project get --json shows a key\n%s", r)
			}
		}
		var v events.ProjectView
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("get --json: %v\n%s", err, r)
		}
		return v
	}

	t.Run("create table", func(t *testing.T) {
		r := run(t, append([]string{"project", "create", "--name", "Table app"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project create failed\n%s", r)
		}
		if !strings.Contains(r.stdout, "sk_live_") || !strings.Contains(r.stdout, "shown this once") {
			t.Errorf("project create does not show the new key once\n%s", r)
		}
		if strings.Contains(r.stderr, "sk_live_") {
			t.Errorf("stderr shows a key\n%s", r)
		}
	})

	t.Run("create with a taken id", func(t *testing.T) {
		r := run(t, append([]string{"project", "create", "--name", "Dup", "--id", id}, nats...)...)
		if r.code != 1 {
			t.Errorf("exit %d, want 1\n%s", r.code, r)
		}
	})

	t.Run("key stored sealed", func(t *testing.T) {
		nc := stacktest.ConnectAs(t, st, stacktest.Superuser)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, events.BucketProjects)
		if err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(e.Value()), key1) || strings.Contains(string(e.Value()), "sk_live_") {
			t.Errorf("the KV entry holds the key in clear: %s", e.Value())
		}
	})

	t.Run("get table", func(t *testing.T) {
		r := run(t, append([]string{"project", "get", id}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project get failed\n%s", r)
		}
		if strings.Contains(r.stdout, "sk_live_") || strings.Contains(r.stdout, key1) {
			t.Errorf("project get shows the key\n%s", r)
		}
		for _, w := range []string{id, "My app", "https://a.example.com", "fingerprint"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("project get does not show %q\n%s", w, r)
			}
		}
	})

	t.Run("get json", func(t *testing.T) {
		v := getJSON(t)
		if v.ProjectID != id || v.Name != "My app" || v.KeyVersion != 1 || len(v.Keys) != 1 {
			t.Errorf("get --json = %+v", v)
		}
		if want := []string{"https://a.example.com"}; !reflect.DeepEqual(v.Origins, want) {
			t.Errorf("origins %q, want %q", v.Origins, want)
		}
		// Flags before the id work too.
		r := run(t, append(append([]string{"project", "get", "--json"}, nats...), id)...)
		if r.code != 0 || !json.Valid([]byte(r.stdout)) {
			t.Errorf("project get --json ID\n%s", r)
		}
	})

	t.Run("get unknown", func(t *testing.T) {
		r := run(t, append([]string{"project", "get", "nope"}, nats...)...)
		if r.code != 1 {
			t.Errorf("exit %d, want 1\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, `no project "nope"`) || !strings.Contains(r.stderr, "check the id") {
			t.Errorf("stderr does not say clearly that the project does not exist\n%s", r)
		}
	})

	t.Run("token accepted", func(t *testing.T) {
		r := run(t, "token", "mint", "--secret", key1, "--user", "u1")
		if r.code != 0 {
			t.Fatalf("mint\n%s", r)
		}
		status, body := connect(t, st, id, strings.TrimSpace(r.stdout))
		if status != http.StatusOK || body["session"] != "authenticated" || body["userId"] != "u1" {
			t.Errorf("connect with a token of the current key: %d %v", status, body)
		}
	})

	t.Run("update", func(t *testing.T) {
		r := run(t, append([]string{"project", "update", id, "--require-token=true", "--origin", "https://B.example.com", "--origin", "*.c.example.com"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project update failed\n%s", r)
		}
		v := getJSON(t)
		if !v.RequireToken {
			t.Error("requireToken not set")
		}
		if want := []string{"https://b.example.com", "https://*.c.example.com"}; !reflect.DeepEqual(v.Origins, want) {
			t.Errorf("origins %q, want %q", v.Origins, want)
		}
		r = run(t, append([]string{"project", "update", id, "--clear-origins", "--require-token=false"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project update --clear-origins failed\n%s", r)
		}
		v = getJSON(t)
		if v.RequireToken || len(v.Origins) != 0 {
			t.Errorf("after --clear-origins --require-token=false: %+v", v)
		}
	})

	t.Run("update unknown", func(t *testing.T) {
		r := run(t, append([]string{"project", "update", "nope", "--require-token=true"}, nats...)...)
		if r.code != 1 || !strings.Contains(r.stderr, `no project "nope"`) {
			t.Errorf("update of an unknown project\n%s", r)
		}
	})

	var key2 string
	t.Run("rotate json", func(t *testing.T) {
		r := run(t, append([]string{"project", "rotate", id, "--json"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project rotate failed\n%s", r)
		}
		var rotated struct {
			ProjectID  string `json:"projectId"`
			SecretKey  string `json:"secretKey"`
			KeyVersion int    `json:"keyVersion"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rotated); err != nil {
			t.Fatalf("rotate --json: %v\n%s", err, r)
		}
		if rotated.ProjectID != id || rotated.KeyVersion != 2 {
			t.Errorf("rotate --json: projectId %q keyVersion %d, want %q 2", rotated.ProjectID, rotated.KeyVersion, id)
		}
		if !strings.HasPrefix(rotated.SecretKey, "sk_live_") || rotated.SecretKey == key1 {
			t.Fatalf("rotate --json secretKey %q: want a new key", rotated.SecretKey)
		}
		key2 = rotated.SecretKey
		secrets = append(secrets, key2)
		v := getJSON(t)
		if v.KeyVersion != 2 || len(v.Keys) != 1 || v.Keys[0].Version != 2 {
			t.Errorf("after an immediate rotation: keyVersion %d keys %+v, want only v2", v.KeyVersion, v.Keys)
		}
	})

	t.Run("old key refused after rotation", func(t *testing.T) {
		if key2 == "" {
			stacktest.Missing(t, `no rotated key: the subtest "rotate json" failed or did not run (a -run pattern must take it too)`)
		}
		old := strings.TrimSpace(run(t, "token", "mint", "--secret", key1, "--user", "u1").stdout)
		status, body := connect(t, st, id, old)
		if status != http.StatusUnauthorized || body["reason"] != "token_bad_signature" {
			t.Errorf("a token of the retired key: %d %v, want 401 token_bad_signature", status, body)
		}
		cur := strings.TrimSpace(run(t, "token", "mint", "--secret", key2, "--user", "u1").stdout)
		if status, body := connect(t, st, id, cur); status != http.StatusOK {
			t.Errorf("a token of the new key: %d %v, want 200", status, body)
		}
	})

	t.Run("rotate with grace", func(t *testing.T) {
		before := time.Now()
		r := run(t, append([]string{"project", "rotate", id, "--grace", "10s"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("project rotate --grace failed\n%s", r)
		}
		if !strings.Contains(r.stdout, "sk_live_") {
			t.Errorf("rotate does not show the new key\n%s", r)
		}
		for _, line := range strings.Split(r.stdout, "\n") {
			if k := strings.TrimSpace(line); strings.HasPrefix(k, "sk_live_") {
				secrets = append(secrets, k)
			}
		}
		v := getJSON(t)
		if v.KeyVersion != 3 || len(v.Keys) != 2 {
			t.Fatalf("after a rotation with grace: keyVersion %d keys %+v, want v3 and v2", v.KeyVersion, v.Keys)
		}
		var prev *events.KeyView
		for i := range v.Keys {
			if v.Keys[i].Version == 2 {
				prev = &v.Keys[i]
			} else if v.Keys[i].ValidUntil != nil {
				t.Errorf("the current key v%d has validUntil %v", v.Keys[i].Version, v.Keys[i].ValidUntil)
			}
		}
		if prev == nil || prev.ValidUntil == nil {
			t.Fatalf("the previous key has no validUntil: %+v", v.Keys)
		}
		if d := prev.ValidUntil.Sub(before.Add(10 * time.Second)); d < -2*time.Second || d > 10*time.Second {
			t.Errorf("validUntil %v, want about now+10s", prev.ValidUntil)
		}
		// The key in grace still verifies.
		tok := strings.TrimSpace(run(t, "token", "mint", "--secret", key2, "--user", "u1").stdout)
		if status, body := connect(t, st, id, tok); status != http.StatusOK {
			t.Errorf("a token of the key in grace: %d %v, want 200", status, body)
		}
	})

	t.Run("revoke user", func(t *testing.T) {
		r := run(t, append([]string{"project", "revoke-user", id, "--user", "u"}, nats...)...)
		if r.code != 0 {
			t.Fatalf("revoke-user failed\n%s", r)
		}
		if v := getJSON(t); v.RevokedUsers != 1 {
			t.Errorf("revokedUsers %d, want 1", v.RevokedUsers)
		}
		r = run(t, append([]string{"project", "revoke-user", id}, nats...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "--user") {
			t.Errorf("revoke-user without --user\n%s", r)
		}
	})

	t.Run("no key in any output", func(t *testing.T) {
		for _, args := range [][]string{
			{"project", "get", id},
			{"project", "get", id, "--json"},
			{"project", "update", id, "--require-token=false"},
			{"project", "update", id, "--require-token=false", "--json"},
			{"project", "revoke-user", id, "--user", "v", "--json"},
		} {
			r := run(t, append(args, nats...)...)
			if r.code != 0 {
				t.Errorf("%q failed\n%s", args, r)
			}
			if strings.Contains(r.stdout+r.stderr, "sk_live_") {
				t.Errorf("%q shows a key\n%s", args, r)
			}
		}
	})
}

// TestProjectCommandsWithoutRotator: a command stored in JetStream that no
// rotator answers fails after --timeout and says what to start.
func TestProjectCommandsWithoutRotator(t *testing.T) {
	t.Parallel()
	ns, _ := stacktest.NATS(t)
	tests := []struct {
		name string
		args []string
	}{
		{"rotate", []string{"project", "rotate", "proj_x", "--timeout", "1s", "--nats", ns.ClientURL()}},
		{"create", []string{"project", "create", "--name", "x", "--timeout", "1s", "--nats", ns.ClientURL()}},
		{"revoke-user", []string{"project", "revoke-user", "proj_x", "--user", "u", "--timeout", "1s", "--nats", ns.ClientURL()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := run(t, tt.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\n%s", r.code, r)
			}
			for _, w := range []string{"hissuno dev", "hissuno rotator"} {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say to start %q\n%s", w, r)
				}
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %v with --timeout 1s", d)
			}
		})
	}
}

// TestProjectGetWithoutBucket: get against a NATS that never ran hissuno
// says what is missing.
func TestProjectGetWithoutBucket(t *testing.T) {
	t.Parallel()
	// A server with JetStream but without the project's streams and bucket.
	ns, err := bus.RunEmbedded(bus.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	r := run(t, "project", "get", "proj_x", "--timeout", "2s", "--nats", ns.ClientURL())
	if r.code != 1 || !strings.Contains(r.stderr, "hissuno dev") {
		t.Errorf("get without the bucket\n%s", r)
	}
}

// TestCLIFindsDevCredentials: next to a running `hissuno dev`, the CLI
// connects with the credentials it keeps in its data directory, without
// flags, and only to that server.
func TestCLIFindsDevCredentials(t *testing.T) {
	data := t.TempDir()
	st := stacktest.Start(t, stack.Config{DataDir: data})
	other := stacktest.Start(t, stack.Config{})
	for _, v := range []string{"HISSUNO_NATS_USER", "HISSUNO_NATS_PASSWORD", "HISSUNO_NATS_TOKEN", "HISSUNO_NATS_CREDS"} {
		t.Setenv(v, "")
	}
	t.Setenv("HISSUNO_DATA", data)

	r := run(t, "project", "create", "--name", "found", "--json", "--nats", st.NATSURL)
	if r.code != 0 {
		t.Fatalf("project create with the dev credentials: %s", r)
	}
	var created struct {
		ProjectID string `json:"projectId"`
		SecretKey string `json:"secretKey"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || !strings.HasPrefix(created.SecretKey, "sk_live_") {
		t.Fatalf("project create --json: %v\n%s", err, r)
	}
	if r := run(t, "project", "get", created.ProjectID, "--nats", st.NATSURL); r.code != 0 {
		t.Fatalf("project get with the dev credentials: %s", r)
	}

	// audit tail takes the read-only audit user's.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut stacktest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}, []string{"audit", "tail", "--nats", st.NATSURL})
	}()
	stacktest.Eventually(t, 20*time.Second, "audit tail following", func() error {
		if msg := errOut.String(); !strings.Contains(msg, "following decisions live") {
			return fmt.Errorf("its stderr says %q", msg)
		}
		return nil
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("audit tail with the dev credentials exited %d: %s", code, errOut.String())
	}

	// Another server never gets them.
	r = run(t, "project", "get", created.ProjectID, "--nats", other.NATSURL)
	if r.code == 0 || !strings.Contains(r.stderr, "Authorization Violation") {
		t.Errorf("project get on another server with this data directory: %s; want an authorization refusal", r)
	}
	// Without the data directory, nothing is found...
	t.Setenv("HISSUNO_DATA", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	r = run(t, "project", "get", created.ProjectID, "--nats", st.NATSURL)
	if r.code == 0 || !strings.Contains(r.stderr, "Authorization Violation") {
		t.Errorf("project get without the dev credentials: %s; want an authorization refusal", r)
	}
	// ... unless `hissuno dev` noted where its server keeps them, as it does
	// while it runs: then a command run from anywhere finds them.
	unregister, err := stack.RegisterDevServer(st.NATSURL, data)
	if err != nil {
		t.Fatal(err)
	}
	if r := run(t, "project", "get", created.ProjectID, "--nats", st.NATSURL); r.code != 0 {
		t.Errorf("project get with the dev server's note: %s", r)
	}
	if r := run(t, "project", "get", created.ProjectID, "--nats", other.NATSURL); r.code == 0 {
		t.Errorf("project get on another server with the note: %s; want a refusal", r)
	}
	unregister()
	if r := run(t, "project", "get", created.ProjectID, "--nats", st.NATSURL); r.code == 0 {
		t.Errorf("project get once the note is gone: %s; want a refusal", r)
	}
}

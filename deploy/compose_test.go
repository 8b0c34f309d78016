package deploy_test

import (
	"bufio"
	"context"
	"encoding/xml"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/hissuno/widgetauth/deploy"
)

// No Docker engine runs where the tests run: these tests read
// docker-compose.yml and the Dockerfile and check everything they point at
// that can run here — the NATS configuration, the binary's commands, flags
// and environment variables.

const (
	composeFile   = "../docker-compose.yml"
	dockerfile    = "../Dockerfile"
	envExample    = "../.env.example"
	dockerignore  = "../.dockerignore"
	natsConfMount = "/etc/nats/nats.conf"
	hissunoImage  = "hissuno:local"
)

// compose is the part of a compose file the tests read.
type compose struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string               `yaml:"image"`
	Build       string               `yaml:"build"`
	Command     []string             `yaml:"command"`
	Environment map[string]string    `yaml:"environment"`
	Volumes     []string             `yaml:"volumes"`
	Ports       []string             `yaml:"ports"`
	DependsOn   map[string]dependsOn `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Restart  string   `yaml:"restart"`
	Profiles []string `yaml:"profiles"`
	ReadOnly bool     `yaml:"read_only"`
	User     string   `yaml:"user"`
	Ulimits  map[string]struct {
		Soft int `yaml:"soft"`
		Hard int `yaml:"hard"`
	} `yaml:"ulimits"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

type dependsOn struct {
	Condition string `yaml:"condition"`
}

// oneShot reports whether a service is a tool run by hand (`docker compose
// run`), never started by `up`.
func (s service) oneShot() bool { return s.Restart == "no" && len(s.Profiles) > 0 }

// job reports whether a service is a one-shot job `up` starts, which runs
// to completion: others wait for it with service_completed_successfully.
func (s service) job() bool { return s.Restart == "no" && len(s.Profiles) == 0 }

// hissuno reports whether the service runs the project's image.
func (s service) hissuno() bool { return s.Build == "." }

func readCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return c
}

// roleUsers maps each service that runs a role to its NATS user.
var roleUsers = map[string]string{"setup": "setup", "ingress": "ingress", "verifier": "verifier", "rotator": "rotator", "auditor": "auditor", "admin": "admin", "audit": "audit", "console": "console"}

// roles are the services that run a role of the binary until stopped.
var roles = []string{"ingress", "verifier", "rotator", "auditor"}

func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"nats", "clickhouse", "setup", "ingress", "verifier", "rotator", "auditor"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	if n := c.Services["verifier"].Deploy.Replicas; n < 2 {
		t.Errorf("verifier replicas %d, want at least 2", n)
	}
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			switch {
			case s.hissuno():
				if s.Image != hissunoImage {
					t.Errorf("image %q, want %q built from the Dockerfile", s.Image, hissunoImage)
				}
				if !s.ReadOnly {
					t.Error("the root file system is writable: set read_only: true (the roles write nothing)")
				}
			case s.Image == "":
				t.Error("no image")
			case strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":"):
				t.Errorf("image %q: pin a version", s.Image)
			}
			if s.Healthcheck == nil && !s.oneShot() && !s.job() {
				t.Fatal("neither a health check, a one-shot tool (restart: \"no\" and a profile) nor a job (restart: \"no\")")
			}
			if s.Healthcheck != nil && (len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD") {
				t.Errorf("health check %q: use the exec form [\"CMD\", …]", s.Healthcheck.Test)
			}
			if d, ok := s.DependsOn["nats"]; s.hissuno() && (!ok || d.Condition != "service_healthy") {
				t.Error("does not wait for nats to be healthy")
			}
			for dep, d := range s.DependsOn {
				target, ok := c.Services[dep]
				switch {
				case !ok:
					t.Errorf("depends on %s, which is no service", dep)
				case target.oneShot():
					t.Errorf("depends on %s, a tool `up` never starts", dep)
				case target.job() && d.Condition != "service_completed_successfully":
					t.Errorf("depends on the job %s with condition %q, want service_completed_successfully", dep, d.Condition)
				case target.job():
				case d.Condition != "service_healthy":
					t.Errorf("depends on %s with condition %q, want service_healthy", dep, d.Condition)
				case target.Healthcheck == nil:
					t.Errorf("waits for %s to be healthy, which has no health check", dep)
				}
			}
		})
	}
	if d := c.Services["auditor"].DependsOn["clickhouse"]; d.Condition != "service_healthy" {
		t.Error("the auditor does not wait for ClickHouse to be healthy")
	}
}

// TestComposeSetup checks that the setup job, the only one whose NATS user
// may create and update the streams, runs `hissuno setup` once at every
// `up`, before any role; the roles only check that the streams exist.
func TestComposeSetup(t *testing.T) {
	c := readCompose(t)
	setup := c.Services["setup"]
	if len(setup.Command) == 0 || setup.Command[0] != "setup" {
		t.Errorf("setup runs %q, want hissuno setup", setup.Command)
	}
	if !setup.job() {
		t.Errorf("setup: restart %q, profiles %q; want a job `up` starts and that does not restart: restart: \"no\", no profile", setup.Restart, setup.Profiles)
	}
	if setup.Healthcheck != nil {
		t.Error("setup has a health check: it exits once done, nothing waits for it to be healthy")
	}
	for _, role := range roles {
		s := c.Services[role]
		if d := s.DependsOn["setup"]; d.Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for setup to complete (depends_on setup: condition %q)", role, d.Condition)
		}
		if !ensureStreamsOff(s) {
			t.Errorf("%s creates or updates the streams at start, which its NATS user may not: give --ensure-streams=false or HISSUNO_ENSURE_STREAMS: \"false\"", role)
		}
		// Any role may start first: none needs another to create anything.
		if _, ok := s.DependsOn["rotator"]; ok {
			t.Errorf("%s waits for the rotator, which creates nothing any more", role)
		}
	}
}

// ensureStreamsOff reports whether a service's command or environment
// turns --ensure-streams off; the command line wins, as in the binary.
func ensureStreamsOff(s service) bool {
	for _, arg := range s.Command {
		switch arg {
		case "--ensure-streams=false", "-ensure-streams=false":
			return true
		case "--ensure-streams", "-ensure-streams", "--ensure-streams=true", "-ensure-streams=true":
			return false
		}
	}
	return s.Environment["HISSUNO_ENSURE_STREAMS"] == "false"
}

func TestComposeHealthChecks(t *testing.T) {
	c := readCompose(t)
	natsOpts := processNATSConf(t, natsConf)
	cases := []struct {
		name    string
		service string
		port    string
		path    string
	}{
		{"nats monitoring, JetStream included", "nats", strconv.Itoa(natsOpts.HTTPPort), "/healthz?js-enabled-only=true"},
		{"clickhouse ping", "clickhouse", "8123", "/ping"},
		{"ingress on its --listen", "ingress", flagPort(t, c.Services["ingress"].Command, "--listen"), "/readyz"},
		{"verifier on its --metrics-listen", "verifier", flagPort(t, c.Services["verifier"].Command, "--metrics-listen"), "/readyz"},
		{"rotator on its --metrics-listen", "rotator", flagPort(t, c.Services["rotator"].Command, "--metrics-listen"), "/readyz"},
		{"auditor on its --metrics-listen", "auditor", flagPort(t, c.Services["auditor"].Command, "--metrics-listen"), "/readyz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := c.Services[tc.service].Healthcheck
			if hc == nil {
				t.Fatal("no health check")
			}
			var u *url.URL
			for _, arg := range hc.Test {
				if strings.HasPrefix(arg, "http://") {
					var err error
					if u, err = url.Parse(arg); err != nil {
						t.Fatal(err)
					}
				}
			}
			if u == nil {
				t.Fatalf("health check %q asks no URL", hc.Test)
			}
			if u.Port() != tc.port || u.RequestURI() != tc.path {
				t.Errorf("health check asks %s, want port %s path %s", u, tc.port, tc.path)
			}
			if !slices.Contains([]string{"localhost", "127.0.0.1"}, u.Hostname()) {
				t.Errorf("health check asks %s, not the container itself", u)
			}
			if hc.Test[1] == "wget" && !imageHasWget(t, c.Services[tc.service]) {
				t.Errorf("health check runs wget, which image %s lacks", c.Services[tc.service].Image)
			}
		})
	}
}

// imageHasWget reports whether a service's image has wget: the alpine
// variants (busybox) and ClickHouse's image have it; the nats scratch image
// and distroless have not.
func imageHasWget(t *testing.T, s service) bool {
	t.Helper()
	switch {
	case s.hissuno():
		stages := dockerStages(t)
		return strings.HasPrefix(stages[len(stages)-1].from, "alpine:")
	case strings.HasPrefix(s.Image, "clickhouse/clickhouse-server:"):
		return true
	}
	return strings.HasSuffix(s.Image, "-alpine") || strings.Contains(s.Image, "-alpine")
}

func TestComposeImages(t *testing.T) {
	c := readCompose(t)
	if img := c.Services["nats"].Image; !strings.HasPrefix(img, "nats:2.") {
		t.Errorf("nats image %q, want nats:2.x", img)
	}
	ch := c.Services["clickhouse"]
	if !strings.HasPrefix(ch.Image, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse image %q, want clickhouse/clickhouse-server", ch.Image)
	}
	if n := ch.Ulimits["nofile"]; n.Soft < 262144 || n.Hard < 262144 {
		t.Errorf("clickhouse nofile ulimits %d/%d, want 262144", n.Soft, n.Hard)
	}
	for _, v := range []string{"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DB"} {
		if ch.Environment[v] == "" {
			t.Errorf("clickhouse: no %s", v)
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	c := readCompose(t)
	used := map[string]bool{}
	mounts := map[string]string{} // service/target → source
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q: write SOURCE:TARGET", name, v)
				continue
			}
			src, target := parts[0], parts[1]
			mounts[name+target] = src
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
				continue
			}
			used[src] = true
			if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s uses volume %s, which is not declared", name, src)
			}
		}
	}
	for v := range c.Volumes {
		if !used[v] {
			t.Errorf("volume %s is declared and unused", v)
		}
	}
	natsOpts := processNATSConf(t, natsConf)
	if src := mounts["nats"+natsOpts.StoreDir]; src == "" || strings.HasPrefix(src, ".") {
		t.Errorf("nats keeps JetStream in %s: mount a named volume there", natsOpts.StoreDir)
	}
	if src := mounts["clickhouse/var/lib/clickhouse"]; src == "" || strings.HasPrefix(src, ".") {
		t.Error("clickhouse: mount a named volume on /var/lib/clickhouse")
	}
}

func TestComposeNATS(t *testing.T) {
	c := readCompose(t)
	n := c.Services["nats"]
	if !slices.Equal(n.Command, []string{"-c", natsConfMount}) {
		t.Errorf("nats command %q, want [-c %s]: nats.conf holds JetStream, monitoring and the users", n.Command, natsConfMount)
	}
	var mounted bool
	for _, v := range n.Volumes {
		if strings.HasPrefix(v, "./deploy/nats/nats.conf:"+natsConfMount) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("nats does not mount ./deploy/nats/nats.conf at %s", natsConfMount)
	}
	// Every password nats.conf reads from the environment, and nothing else.
	var want []string
	for _, u := range deploy.NATSUsers {
		want = append(want, deploy.PasswordVar(u))
	}
	slices.Sort(want)
	got := slices.Sorted(maps.Keys(n.Environment))
	if !slices.Equal(got, want) {
		t.Errorf("nats environment %v, want %v", got, want)
	}
	for _, v := range want {
		if ref := interpolated(n.Environment[v]); !slices.Equal(ref, []string{v}) {
			t.Errorf("nats: %s = %q, want it from ${%s}", v, n.Environment[v], v)
		}
	}
}

// TestNATSConf parses nats.conf as nats-server does and checks what
// docker-compose.yml relies on.
func TestNATSConf(t *testing.T) {
	opts := processNATSConf(t, natsConf)
	if !opts.JetStream || opts.StoreDir != "/data" {
		t.Errorf("JetStream %v in %q, want on in /data", opts.JetStream, opts.StoreDir)
	}
	if opts.HTTPPort != 8222 {
		t.Errorf("monitoring on port %d, want 8222", opts.HTTPPort)
	}
	if opts.Port != 4222 {
		t.Errorf("clients on port %d, want 4222", opts.Port)
	}
	var got []string
	for _, u := range opts.Users {
		got = append(got, u.Username)
		if u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Publish.Allow) == 0 {
			t.Errorf("user %s has no publish allow list: it could publish anything", u.Username)
		}
		if u.Permissions == nil || u.Permissions.Subscribe == nil || len(u.Permissions.Subscribe.Allow) == 0 {
			t.Errorf("user %s has no subscribe allow list: it could read anything", u.Username)
		}
		if strings.HasPrefix(u.Password, "$2") {
			continue // a bcrypt hash
		}
		if u.Password != "pw-"+u.Username {
			t.Errorf("user %s: password not taken from %s", u.Username, deploy.PasswordVar(u.Username))
		}
	}
	if !slices.Equal(got, deploy.NATSUsers) {
		t.Errorf("users %v, want %v", got, deploy.NATSUsers)
	}
	if opts.NoAuthUser != "" {
		t.Errorf("no_auth_user %q lets anyone in", opts.NoAuthUser)
	}
}

// processNATSConf parses a nats-server configuration with a password per
// user in the environment.
func processNATSConf(t *testing.T, path string) *server.Options {
	t.Helper()
	for _, u := range deploy.NATSUsers {
		t.Setenv(deploy.PasswordVar(u), "pw-"+u)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return opts
}

// TestComposeCommands checks that every hissuno service runs a real command
// with flags and environment variables that command knows, and the NATS
// user and password of its role.
func TestComposeCommands(t *testing.T) {
	c := readCompose(t)
	for name, s := range c.Services {
		if !s.hissuno() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if len(s.Command) == 0 {
				t.Fatal("no command: the image's default only prints the usage")
			}
			help := commandHelp(t, s.Command)
			for _, arg := range s.Command[1:] {
				flag, ok := strings.CutPrefix(arg, "--")
				if !ok {
					continue
				}
				flag, _, _ = strings.Cut(flag, "=")
				if !strings.Contains(help, "\n  -"+flag+" ") && !strings.Contains(help, "\n  -"+flag+"\n") {
					t.Errorf("hissuno %s has no flag --%s", s.Command[0], flag)
				}
			}
			known := settingsHelp(t, name, s)
			for v := range s.Environment {
				if !strings.HasPrefix(v, "HISSUNO_") {
					t.Errorf("environment %s is no setting of hissuno", v)
					continue
				}
				if !strings.Contains(known, v) {
					t.Errorf("%s: no command it runs reads %s (their --help does not name it)", name, v)
				}
			}
			user := s.Environment["HISSUNO_NATS_USER"]
			if want := roleUsers[name]; user != want {
				t.Errorf("NATS user %q, want %q", user, want)
			}
			if ref := interpolated(s.Environment["HISSUNO_NATS_PASSWORD"]); !slices.Equal(ref, []string{deploy.PasswordVar(user)}) {
				t.Errorf("HISSUNO_NATS_PASSWORD = %q, want it from ${%s}", s.Environment["HISSUNO_NATS_PASSWORD"], deploy.PasswordVar(user))
			}
			if u := s.Environment["HISSUNO_NATS_URL"]; u != "nats://nats:4222" {
				t.Errorf("HISSUNO_NATS_URL %q, want nats://nats:4222", u)
			}
		})
	}
	for _, role := range []string{"verifier", "rotator"} {
		if ref := interpolated(c.Services[role].Environment["HISSUNO_MASTER_KEY"]); !slices.Equal(ref, []string{"HISSUNO_MASTER_KEY"}) {
			t.Errorf("%s: HISSUNO_MASTER_KEY not from ${HISSUNO_MASTER_KEY}", role)
		}
	}
	for _, role := range []string{"ingress", "auditor"} {
		if _, ok := c.Services[role].Environment["HISSUNO_MASTER_KEY"]; ok {
			t.Errorf("%s gets the master key, which it has no use for", role)
		}
	}
	t.Run("auditor's ClickHouse DSN", func(t *testing.T) {
		ch := c.Services["clickhouse"].Environment
		u, err := url.Parse(substitute(c.Services["auditor"].Environment["HISSUNO_CLICKHOUSE_DSN"]))
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := u.User.Password()
		switch {
		case u.Scheme != "clickhouse" || u.Host != "clickhouse:9000":
			t.Errorf("DSN %s does not reach the clickhouse service's native port", u.Redacted())
		case u.User.Username() != substitute(ch["CLICKHOUSE_USER"]) || pw != substitute(ch["CLICKHOUSE_PASSWORD"]):
			t.Errorf("DSN user and password are not the clickhouse service's CLICKHOUSE_USER and CLICKHOUSE_PASSWORD")
		case strings.TrimPrefix(u.Path, "/") != ch["CLICKHOUSE_DB"]:
			t.Errorf("DSN database %s, the service creates %s", u.Path, ch["CLICKHOUSE_DB"])
		}
	})
}

// commandHelp runs a service's command with --help and returns what it
// printed; the command line must parse.
func commandHelp(t *testing.T, command []string) string {
	t.Helper()
	stdout, stderr, code := runCLI(context.Background(), append(slices.Clone(command), "--help")...)
	if code != 0 {
		t.Fatalf("hissuno %s --help: exit %d\n%s", strings.Join(command, " "), code, stderr)
	}
	return stdout + stderr
}

// toolCommands are the commands an admin runs with the one-shot admin
// service.
var toolCommands = [][]string{{"project", "create"}, {"project", "rotate"}, {"audit", "query"}, {"audit", "tail"}}

// settingsHelp is the --help of the commands a service runs, which names
// every environment variable they read: its role's, or the admin's
// commands for the one-shot tool.
func settingsHelp(t *testing.T, name string, s service) string {
	t.Helper()
	if !s.oneShot() {
		return commandHelp(t, s.Command[:1])
	}
	var help strings.Builder
	for _, c := range toolCommands {
		help.WriteString(commandHelp(t, c))
	}
	return help.String()
}

// interpolation matches a compose ${VAR}, ${VAR:?message} or ${VAR:-default}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?\-+][^}]*)?\}`)

// interpolated returns the variables a compose value takes from the
// environment.
func interpolated(v string) []string {
	var names []string
	for _, m := range interpolation.FindAllStringSubmatch(v, -1) {
		names = append(names, m[1])
	}
	return names
}

// substitute replaces each ${NAME…} of a compose value by a stand-in
// value of NAME, as compose would with a .env of letters and digits.
func substitute(v string) string {
	return interpolation.ReplaceAllStringFunc(v, func(m string) string {
		return "value" + strings.ToLower(strings.ReplaceAll(interpolation.FindStringSubmatch(m)[1], "_", ""))
	})
}

// TestEnvExample checks that .env.example lists every variable
// docker-compose.yml takes from the environment, and nothing else.
func TestEnvExample(t *testing.T) {
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, v := range interpolated(string(b)) {
		want[v] = true
	}
	got := map[string]bool{}
	f, err := os.Open(envExample)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example: %q is not NAME=value", line)
			continue
		}
		if value != "" {
			t.Errorf(".env.example: %s has a value; leave secrets empty so that compose refuses to start without them", name)
		}
		got[name] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for v := range want {
		if !got[v] {
			t.Errorf("docker-compose.yml reads ${%s}, which .env.example does not list", v)
		}
	}
	for v := range got {
		if !want[v] {
			t.Errorf(".env.example lists %s, which docker-compose.yml does not read", v)
		}
	}
	// Every variable compose reads is required: an empty one stops it.
	for _, m := range interpolation.FindAllString(string(b), -1) {
		if !strings.Contains(m, ":?") {
			t.Errorf("%s: write ${NAME:?message} so that compose refuses to start without it", m)
		}
	}
}

// stage is one FROM of the Dockerfile and its instructions.
type stage struct {
	from  string
	lines []string
}

func dockerStages(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "FROM "); ok {
			stages = append(stages, stage{from: strings.Fields(rest)[0]})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := dockerStages(t)
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2: build, then a small final image", len(stages))
	}
	build, final := stages[0], stages[1]
	if !strings.HasPrefix(build.from, "golang:1.26") {
		t.Errorf("builder %s, want golang:1.26 (go.mod)", build.from)
	}
	buildCmd := strings.Join(build.lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/hissuno"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("the build stage does not use %s", want)
		}
	}
	if _, err := os.Stat("../cmd/hissuno/main.go"); err != nil {
		t.Error(err)
	}
	var user string
	finalLines := strings.Join(final.lines, "\n")
	for _, l := range final.lines {
		if u, ok := strings.CutPrefix(l, "USER "); ok {
			user = strings.Split(u, ":")[0]
		}
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("the final image runs as %q: give it a USER that is not root", user)
	}
	for _, want := range []string{`ENTRYPOINT ["/hissuno"]`, "COPY --from=build /out/hissuno /hissuno", "EXPOSE 8080 9090"} {
		if !strings.Contains(finalLines, want) {
			t.Errorf("the final stage has no %s", want)
		}
	}
	if strings.Contains(finalLines, "golang") || strings.Contains(final.from, "golang") {
		t.Error("the final image carries the Go toolchain")
	}
}

func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for _, want := range []string{".git", ".env", "hissuno-data/"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not keep %s out of the image's build context", want)
		}
	}
}

// flagPort returns the port of a host:port flag in a command.
func flagPort(t *testing.T, command []string, flag string) string {
	t.Helper()
	i := slices.Index(command, flag)
	if i < 0 || i+1 >= len(command) {
		t.Fatalf("command %q has no %s", command, flag)
	}
	_, port, ok := strings.Cut(command[i+1], ":")
	if !ok {
		t.Fatalf("%s %s is not host:port", flag, command[i+1])
	}
	return port
}

// chUsers is the part of a ClickHouse users file the tests read.
type chUsers struct {
	Profiles struct {
		Items []struct {
			XMLName  xml.Name
			Readonly int `xml:"readonly"`
		} `xml:",any"`
	} `xml:"profiles"`
	Users struct {
		Items []struct {
			XMLName  xml.Name
			Password struct {
				FromEnv string `xml:"from_env,attr"`
				Value   string `xml:",chardata"`
			} `xml:"password"`
			Profile   string   `xml:"profile"`
			Databases []string `xml:"allow_databases>database"`
		} `xml:",any"`
	} `xml:"users"`
}

// TestComposeClickHouseReader checks least privilege in ClickHouse: the
// readers of the audit (the console, `audit query|stats` from the admin and
// audit tools) connect as the read-only user of
// deploy/clickhouse/users.d/hissuno-reader.xml, which the clickhouse
// service mounts with that user's password in its environment; only the
// auditor connects as the writer. TestClickHouseReaderUser proves the file
// on a real server.
func TestComposeClickHouseReader(t *testing.T) {
	c := readCompose(t)
	b, err := os.ReadFile(readerUsersFile)
	if err != nil {
		t.Fatal(err)
	}
	var users chUsers
	if err := xml.Unmarshal(b, &users); err != nil {
		t.Fatalf("%s: %v", readerUsersFile, err)
	}
	readonly := map[string]int{}
	for _, p := range users.Profiles.Items {
		readonly[p.XMLName.Local] = p.Readonly
	}
	if len(users.Users.Items) != 1 {
		t.Fatalf("%s defines %d users, want the reader alone", readerUsersFile, len(users.Users.Items))
	}
	u := users.Users.Items[0]
	switch {
	case u.XMLName.Local != readerUser:
		t.Errorf("user %s, want %s", u.XMLName.Local, readerUser)
	case readonly[u.Profile] != 2:
		t.Errorf("user %s has profile %q with readonly %d, want 2 (reads and query settings only)", u.XMLName.Local, u.Profile, readonly[u.Profile])
	case u.Password.FromEnv != readerPassVar || strings.TrimSpace(u.Password.Value) != "":
		t.Errorf("the reader's password is not read from %s alone", readerPassVar)
	case !slices.Equal(u.Databases, []string{c.Services["clickhouse"].Environment["CLICKHOUSE_DB"]}):
		t.Errorf("the reader may read databases %v, want the audit's alone", u.Databases)
	}
	ch := c.Services["clickhouse"]
	if ref := interpolated(ch.Environment[readerPassVar]); !slices.Equal(ref, []string{readerPassVar}) {
		t.Errorf("clickhouse: %s = %q, want it from ${%s}", readerPassVar, ch.Environment[readerPassVar], readerPassVar)
	}
	if !slices.Contains(ch.Volumes, "./deploy/"+readerUsersFile+":/etc/clickhouse-server/users.d/"+filepath.Base(readerUsersFile)+":ro") {
		t.Errorf("clickhouse does not mount ./deploy/%s read-only into /etc/clickhouse-server/users.d/", readerUsersFile)
	}
	for name, s := range c.Services {
		v, ok := s.Environment["HISSUNO_CLICKHOUSE_DSN"]
		if !ok {
			continue
		}
		dsn, err := url.Parse(substitute(v))
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := dsn.User.Password()
		wantUser, wantPass := readerUser, substitute("${"+readerPassVar+"}")
		if name == "auditor" {
			wantUser, wantPass = substitute(ch.Environment["CLICKHOUSE_USER"]), substitute(ch.Environment["CLICKHOUSE_PASSWORD"])
		}
		if dsn.User.Username() != wantUser || pw != wantPass {
			t.Errorf("%s connects to ClickHouse as %q, want %q with its password", name, dsn.User.Username(), wantUser)
		}
	}
}

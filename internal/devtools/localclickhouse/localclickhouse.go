// Package localclickhouse runs a private ClickHouse server for development and
// tests: Debian's clickhouse-server from PATH, with its data in a directory
// of ours, on free loopback ports, stopped with the process that started it.
// It is never used in production, where ClickHouse is its own service.
package localclickhouse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/hissuno/widgetauth/internal/devtools/freeport"
)

// ErrNotInstalled means no clickhouse-server (or clickhouse) binary is on
// PATH.
var ErrNotInstalled = errors.New("clickhouse-server is not installed (apt-get install -y clickhouse-server)")

// Server is a running local ClickHouse.
type Server struct {
	// DSN is the native-protocol address, e.g. clickhouse://127.0.0.1:41234/default.
	DSN string
	// Addr is the native-protocol host:port.
	Addr   string
	dir    string
	bin    []string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Available reports whether a ClickHouse server binary is on PATH.
func Available() bool {
	_, err := binary()
	return err == nil
}

func binary() ([]string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, ErrNotInstalled
}

// Options are what a server has besides its files and ports.
type Options struct {
	// UsersFiles are ClickHouse users configuration files (file name →
	// XML, root <yandex>) written into users.d/, where the server merges
	// them with its own users.xml (a passwordless default user on
	// loopback): deploy/clickhouse/users.d/hissuno-reader.xml, say.
	UsersFiles map[string][]byte
	// Env is added to the server's environment, "NAME=value" each: the
	// values those files read with from_env.
	Env []string
}

// Start starts a ClickHouse server with its files under dir and waits up to
// a minute until it answers.
func Start(ctx context.Context, dir string) (*Server, error) {
	return StartWith(ctx, dir, Options{})
}

// StartWith is Start with more users (opts).
func StartWith(ctx context.Context, dir string, opts Options) (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ports, err := freeport.Ports(3)
	if err != nil {
		return nil, err
	}
	s, err := prepare(dir, bin, ports, "")
	if err != nil {
		return nil, err
	}
	if err := s.addUsers(opts); err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// addUsers writes opts' users files into the server's users.d/ and keeps
// its environment for the process.
func (s *Server) addUsers(opts Options) error {
	s.env = opts.Env
	if len(opts.UsersFiles) == 0 {
		return nil
	}
	usersD := filepath.Join(s.dir, "users.d")
	if err := os.MkdirAll(usersD, 0o700); err != nil {
		return fmt.Errorf("clickhouse dir: %w", err)
	}
	for name, xml := range opts.UsersFiles {
		if name != filepath.Base(name) || filepath.Ext(name) != ".xml" {
			return fmt.Errorf("users file %q: a file name ending in .xml", name)
		}
		if err := os.WriteFile(filepath.Join(usersD, name), xml, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// prepare writes a server's configuration under dir, for the native, HTTP
// and interserver ports, with extra inside <yandex>.
func prepare(dir string, bin []string, ports []int, extra string) (*Server, error) {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("clickhouse dir: %w", err)
		}
	}
	cfg := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(configXML, dir, ports[0], ports[1], ports[2], extra)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o600); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	return &Server{DSN: "clickhouse://" + addr + "/default", Addr: addr, dir: dir, bin: bin}, nil
}

// StartCluster starts n servers, under dir/1 … dir/n, as the n replicas of
// the one shard of a cluster named cluster (ClusterConfig), coordinated by
// the ZooKeeper at zookeeper (host:port), and waits until each answers.
func StartCluster(ctx context.Context, dir, cluster, zookeeper string, n int) ([]*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ports, err := freeport.Ports(3 * n)
	if err != nil {
		return nil, err
	}
	replicas := make([]string, n)
	for i := range n {
		replicas[i] = fmt.Sprintf("127.0.0.1:%d", ports[3*i])
	}
	var servers []*Server
	for i := range n {
		extra := ClusterConfig(cluster, zookeeper, replicas, i)
		s, err := prepare(filepath.Join(dir, fmt.Sprint(i+1)), bin, ports[3*i:3*i+3], extra)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	for i, s := range servers {
		err := s.run(ctx)
		if err == nil {
			err = s.waitDDLQueue(ctx)
		}
		if err != nil {
			for _, started := range servers[:i+1] {
				started.Stop()
			}
			return nil, err
		}
	}
	return servers, nil
}

// waitDDLQueue waits up to a minute until the server reaches ZooKeeper and
// sees the queue of ON CLUSTER statements. ClickHouse 18.16 answers before
// it has a ZooKeeper session, and an ON CLUSTER statement sent then crashes
// it (a segmentation fault in zkutil::ZooKeeper::createImpl).
func (s *Server) waitDDLQueue(ctx context.Context) error {
	opts, err := clickhouse.ParseDSN(s.DSN)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		var n uint64
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.QueryRow(qctx, "SELECT count() FROM system.zookeeper WHERE path = '/clickhouse/task_queue' AND name = 'ddl'").Scan(&n)
		cancel()
		if err == nil && n == 1 {
			return nil
		}
		if err == nil {
			err = errors.New("no /clickhouse/task_queue/ddl in ZooKeeper yet")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("clickhouse-server %s did not reach ZooKeeper within a minute: %w (see %s)", s.Addr, err, filepath.Join(s.dir, "log"))
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ClusterConfig is what a node's config.xml holds, inside <yandex>, to be
// replica number self (from 0; macros shard 01, replica replica<self+1>)
// of a cluster named cluster whose one shard has the replicas given
// (host:port of their native protocol), coordinated by the ZooKeeper at zookeeper (host:port):
// <zookeeper>, <remote_servers> (internal_replication: an insert into the
// Distributed table writes one replica, replication copies it),
// <macros> for the tables' ZooKeeper paths, <distributed_ddl> for ON
// CLUSTER, and the host the other replicas fetch parts from. Valid for
// 18.16 and current releases.
func ClusterConfig(cluster, zookeeper string, replicas []string, self int) string {
	zkHost, zkPort, _ := strings.Cut(zookeeper, ":")
	var b strings.Builder
	fmt.Fprintf(&b, "    <zookeeper>\n        <node><host>%s</host><port>%s</port></node>\n    </zookeeper>\n", zkHost, zkPort)
	fmt.Fprintf(&b, "    <remote_servers>\n        <%s>\n            <shard>\n                <internal_replication>true</internal_replication>\n", cluster)
	for _, r := range replicas {
		host, port, _ := strings.Cut(r, ":")
		fmt.Fprintf(&b, "                <replica><host>%s</host><port>%s</port></replica>\n", host, port)
	}
	fmt.Fprintf(&b, "            </shard>\n        </%s>\n    </remote_servers>\n", cluster)
	fmt.Fprintf(&b, "    <macros>\n        <shard>01</shard>\n        <replica>replica%d</replica>\n    </macros>\n", self+1)
	b.WriteString("    <distributed_ddl>\n        <path>/clickhouse/task_queue/ddl</path>\n    </distributed_ddl>\n")
	host, _, _ := strings.Cut(replicas[self], ":")
	fmt.Fprintf(&b, "    <interserver_http_host>%s</interserver_http_host>\n", host)
	return b.String()
}

// run starts the process with the written configuration and waits until it
// answers.
func (s *Server) run(ctx context.Context) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin[0], append(s.bin[1:], "--config-file="+filepath.Join(s.dir, "config.xml"))...)
	cmd.Dir = s.dir
	if len(s.env) > 0 {
		cmd.Env = append(os.Environ(), s.env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start clickhouse-server: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(time.Minute)
	for {
		if err := ping(ctx, s.DSN); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("clickhouse-server exited: %v (see %s)", waitErr, filepath.Join(s.dir, "log"))
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("clickhouse-server did not answer within a minute (see %s)", filepath.Join(s.dir, "log"))
		}
	}
}

// Kill stops the server at once (SIGKILL), as a crash would; tests use it.
func (s *Server) Kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// Restart starts the server again on the same ports and data after Stop or
// Kill, and waits until it answers.
func (s *Server) Restart(ctx context.Context) error { return s.run(ctx) }

// DSNAs is the server's DSN for user with password, on database.
func (s *Server) DSNAs(user, password, database string) string {
	u, err := url.Parse(s.DSN)
	if err != nil {
		return s.DSN // never: DSN is ours
	}
	u.User = url.User(user)
	if password != "" {
		u.User = url.UserPassword(user, password)
	}
	u.Path = "/" + database
	return u.String()
}

// Stop stops the server and waits for it to exit.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

func ping(ctx context.Context, dsn string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	opts.DialTimeout = time.Second
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

// configXML: %[1]s the directory, %[2]d the native port, %[3]d the HTTP
// port, %[4]d the interserver port, %[5]s more (ClusterConfig). Valid for
// 18.16 and current releases.
const configXML = `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>%[1]s/log/server.log</log>
        <errorlog>%[1]s/log/server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <interserver_http_port>%[4]d</interserver_http_port>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <timezone>UTC</timezone>
%[5]s</yandex>
`

const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><max_memory_usage>4000000000</max_memory_usage></default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
                <read_rows>0</read_rows><execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`

// Package localzookeeper runs a private ZooKeeper for tests of a replicated
// ClickHouse: Debian's zookeeper package (its jar, run by java in the
// foreground), standalone, with its data in a directory of ours, on a free
// loopback port, stopped with the process that started it. It is never
// used in production, where ZooKeeper is its own service.
package localzookeeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hissuno/widgetauth/internal/devtools/freeport"
)

// Jar is where Debian's zookeeper package puts the server; its manifest
// names the jars it needs.
const Jar = "/usr/share/java/zookeeper.jar"

// ErrNotInstalled means java or Debian's zookeeper is missing.
var ErrNotInstalled = errors.New("zookeeper is not installed (apt-get install -y zookeeper, which brings java)")

// Server is a running local ZooKeeper.
type Server struct {
	// Addr is its client address, 127.0.0.1:port.
	Addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Available reports whether java and the ZooKeeper jar are installed.
func Available() bool {
	_, err := exec.LookPath("java")
	if err != nil {
		return false
	}
	_, err = os.Stat(Jar)
	return err == nil
}

// Start starts a standalone ZooKeeper with its files under dir and waits
// up to a minute until it answers.
func Start(ctx context.Context, dir string) (*Server, error) {
	if !Available() {
		return nil, ErrNotInstalled
	}
	java, _ := exec.LookPath("java")
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("zookeeper dir: %w", err)
	}
	ports, err := freeport.Ports(1)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, zooCfg, dir, ports[0]), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(java, "-Xmx256m", "-Dzookeeper.admin.enableServer=false", "-cp", Jar,
		"org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start zookeeper: %w", err)
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), dir: dir, cmd: cmd, exited: make(chan struct{})}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(time.Minute)
	for !s.ok() {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("zookeeper exited: %v (see %s)", waitErr, filepath.Join(dir, "zookeeper.log"))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("zookeeper did not answer within a minute (see %s)", filepath.Join(dir, "zookeeper.log"))
		}
	}
	return s, nil
}

// ok asks the server srvr and reports whether it serves requests: ruok
// answers imok before it does, and a ClickHouse 18.16 that connects then
// may crash later.
func (s *Server) ok() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return strings.Contains(string(b), "Mode: standalone")
}

// Stop stops the server and waits for it to exit.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// zooCfg: %[1]s the directory, %[2]d the client port.
const zooCfg = `tickTime=500
initLimit=10
syncLimit=5
dataDir=%[1]s/data
clientPort=%[2]d
clientPortAddress=127.0.0.1
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=srvr
`

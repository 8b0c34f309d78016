package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hissuno/widgetauth/internal/devtools/freeport"
	"github.com/hissuno/widgetauth/internal/stack"
)

// auditorProcess is `hissuno auditor` run as its own process, as
// production runs it, at a lower CPU priority (nice) than the hot path:
// its once-a-second batches then wait for a free core instead of taking
// one from a request.
type auditorProcess struct {
	cmd *exec.Cmd
}

// startAuditorProcess starts the auditor against the stack's NATS as the
// auditor user, writing to dsn with cfg's batches, at nice level
// cfg.AuditorNice, and waits until it is ready.
func startAuditorProcess(ctx context.Context, st *stack.Stack, dsn string, cfg Config) (*auditorProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(filepath.Base(exe), "hissuno") {
		return nil, fmt.Errorf("bench: --auditor-nice runs `hissuno auditor`; run the bench from the hissuno binary, or give --auditor-nice -1")
	}
	creds, ok := st.Credentials("auditor")
	if !ok {
		return nil, fmt.Errorf("bench: the stack has no auditor user")
	}
	addr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	args := []string{"auditor", "--nats", creds.URL, "--nats-user", creds.User, "--clickhouse", dsn,
		"--metrics-listen", addr, "--instance", "auditor-bench", "--log-level", "warn", "--log-format", "console", "--ensure-streams=false"}
	if cfg.AuditBatchSize > 0 {
		args = append(args, "--batch-size", fmt.Sprint(cfg.AuditBatchSize))
	}
	if cfg.AuditBatchWait > 0 {
		args = append(args, "--batch-wait", cfg.AuditBatchWait.String())
	}
	// Through nice(1), so that every thread of the process starts at that
	// priority: renicing it once it runs changes one thread, and only the
	// threads it makes afterwards inherit it (the report checks them all).
	nice, err := exec.LookPath("nice")
	if err != nil {
		return nil, fmt.Errorf("bench: --auditor-nice needs nice(1) (coreutils): %w", err)
	}
	cmd := exec.Command(nice, append([]string{"-n", strconv.Itoa(cfg.AuditorNice), exe}, args...)...)
	cmd.Env = append(os.Environ(), "HISSUNO_NATS_PASSWORD="+creds.Password)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the auditor: %w", err)
	}
	p := &auditorProcess{cmd: cmd}
	if err := waitReady(ctx, addr, "the auditor", time.Minute); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// threadNices are the nice levels of the process's threads, from
// /proc/PID/task/*/stat (field 19), each level once.
func (p *auditorProcess) threadNices() (nices []int, threads int, err error) {
	dir := "/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue // a thread that ended
		}
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 17 {
			return nil, 0, fmt.Errorf("bench: %s/%s/stat: unexpected format", dir, t.Name())
		}
		n, err := strconv.Atoi(f[16])
		if err != nil {
			return nil, 0, fmt.Errorf("bench: %s/%s/stat: nice %q: %w", dir, t.Name(), f[16], err)
		}
		threads++
		if !slices.Contains(nices, n) {
			nices = append(nices, n)
		}
	}
	return nices, threads, nil
}

// stop ends the auditor (SIGTERM: it finishes its batch) and waits.
func (p *auditorProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	cmd     *exec.Cmd
	metrics string // its /metrics address
}

// startAuditorProcess starts the auditor against the stack's NATS as the
// auditor user, writing to dsn, reniced to nice (0–19), and waits until it
// is ready.
func startAuditorProcess(ctx context.Context, st *stack.Stack, dsn string, nice int, cfg Config) (*auditorProcess, error) {
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
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "HISSUNO_NATS_PASSWORD="+creds.Password)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the auditor: %w", err)
	}
	p := &auditorProcess{cmd: cmd, metrics: addr}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, nice); err != nil {
		p.stop()
		return nil, fmt.Errorf("bench: renice the auditor to %d: %w", nice, err)
	}
	client := &http.Client{Timeout: time.Second}
	for start := time.Now(); ; {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Since(start) > time.Minute {
			p.stop()
			return nil, fmt.Errorf("bench: the auditor was not ready within a minute")
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the auditor (SIGTERM: it finishes its batch) and waits.
func (p *auditorProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hissuno/widgetauth/internal/devtools/freeport"
	"github.com/hissuno/widgetauth/internal/stack"
)

// Scale is how a separate verifier process copes with the projects in the
// KV: how long until it is ready, and its memory once ready.
type Scale struct {
	Projects int
	Ready    time.Duration
	RSSMiB   float64
	PeakMiB  float64
}

// verifierScale starts `hissuno verifier` as its own process against the
// stack's NATS and master key, and measures the time until its /readyz
// answers 200 and its resident memory then.
func verifierScale(ctx context.Context, creds stack.Credentials, masterKeyFile string, projects int) (Scale, error) {
	exe, err := os.Executable()
	if err != nil {
		return Scale{}, err
	}
	if !strings.HasPrefix(filepath.Base(exe), "hissuno") {
		return Scale{}, fmt.Errorf("the scale check runs `hissuno verifier`; run the bench from the hissuno binary")
	}
	addr, err := freeport.Addr()
	if err != nil {
		return Scale{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "verifier", "--nats", creds.URL, "--nats-user", creds.User, "--master-key-file", masterKeyFile,
		"--metrics-listen", addr, "--instance", "verifier-scale", "--log-level", "warn", "--ensure-streams=false")
	cmd.Env = append(os.Environ(), "HISSUNO_MASTER_KEY=", "HISSUNO_NATS_PASSWORD="+creds.Password)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Scale{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitReady(ctx, addr, "the verifier", 2*time.Minute); err != nil {
		return Scale{}, err
	}
	s := Scale{Projects: projects, Ready: time.Since(start)}
	s.RSSMiB, s.PeakMiB = rss(cmd.Process.Pid)
	return s, nil
}

// waitReady polls the /readyz of a role's process at addr every 10 ms
// until it answers 200, for at most within; who names it in the error.
func waitReady(ctx context.Context, addr, who string, within time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	for start := time.Now(); ; {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Since(start) > within {
			return fmt.Errorf("bench: %s was not ready within %s", who, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// rss reads a process's resident and peak resident memory in MiB.
func rss(pid int) (current, peak float64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			current = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return current, peak
}

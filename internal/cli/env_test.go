package cli

import (
	"strings"
	"testing"
)

// TestBadEnvironmentValues: a HISSUNO_… variable with a value its flag
// cannot take is an error naming the variable, never silently ignored.
func TestBadEnvironmentValues(t *testing.T) {
	tests := []struct {
		name     string
		env, val string
		args     []string
	}{
		{"an int", "HISSUNO_CONCURRENCY", "lots", []string{"verifier"}},
		{"a duration without its unit", "HISSUNO_DEADLINE", "3", []string{"ingress"}},
		{"a bool", "HISSUNO_ENSURE_STREAMS", "maybe", []string{"rotator"}},
		{"replicas", "HISSUNO_REPLICAS", "three", []string{"setup"}},
		{"a byte size", "HISSUNO_DECISIONS_MAX_BYTES", "8GiB", []string{"setup"}},
		{"a batch size", "HISSUNO_AUDIT_BATCH_SIZE", "1e4", []string{"auditor"}},
		{"a retention in weeks", "HISSUNO_AUDIT_RETENTION", "2w", []string{"auditor"}},
		{"a retention of hours", "HISSUNO_AUDIT_ADMIN_RETENTION", "36h", []string{"auditor"}},
		{"a confirm timeout", "HISSUNO_CONFIRM_TIMEOUT", "soon", []string{"rotator"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, tt.val)
			r := run(t, append(tt.args, "--nats", closedNATS)...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.env) || !strings.Contains(r.stderr, tt.val) {
				t.Errorf("%s=%s: exit %d, want an error naming the variable and its value\n%s", tt.env, tt.val, r.code, r)
			}
		})
	}
}

// TestEnvironmentSetsFlags: a variable sets its flag, and a flag on the
// command line wins over it.
func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("HISSUNO_LOG_LEVEL", "loud")
	r := run(t, "ingress", "--nats", closedNATS)
	if r.code == 0 || !strings.Contains(r.stderr, `--log-level "loud"`) {
		t.Errorf("HISSUNO_LOG_LEVEL=loud did not reach --log-level: exit %d\n%s", r.code, r)
	}
	r = run(t, "ingress", "--nats", closedNATS, "--log-level", "nonsense")
	if r.code == 0 || !strings.Contains(r.stderr, `--log-level "nonsense"`) {
		t.Errorf("--log-level on the command line did not win over HISSUNO_LOG_LEVEL: exit %d\n%s", r.code, r)
	}
}

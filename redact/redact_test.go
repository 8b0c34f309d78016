package redact

import "testing"

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain text stays", "connection refused", "connection refused"},
		{"secret key", "bad key sk_live_AbC-123_x in config", "bad key sk_live_[redacted] in config"},
		{"two keys", "sk_live_a sk_live_b", "sk_live_[redacted] sk_live_[redacted]"},
		{"jwt", "token eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ1In0.sig-_x rejected", "token [token redacted] rejected"},
		{"unsigned jwt", "eyJhbGciOiJub25lIn0.eyJ1In0.", "[token redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

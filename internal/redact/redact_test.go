package redact

import (
	"maps"
	"slices"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ1In0.sig-_x"
	tests := []struct {
		name, in, want string
	}{
		{"plain text stays", "connection refused", "connection refused"},
		{"secret key", "bad key sk_live_AbC-123_x in config", "bad key sk_live_[redacted] in config"},
		{"two keys", "sk_live_a sk_live_b", "sk_live_[redacted] sk_live_[redacted]"},
		{"jwt", "token " + jwt + " rejected", "token [token redacted] rejected"},
		{"unsigned jwt", "eyJhbGciOiJub25lIn0.eyJ1In0.", "[token redacted]"},
		{"jwt as an origin", "https://" + jwt + ".example", "https://[token redacted].example"},
		{"jwt in a user agent", "Mozilla/5.0 (" + jwt + ")", "Mozilla/5.0 ([token redacted])"},
		{"jwt glued to text", "x" + jwt, "x[token redacted]"},
		{"key and jwt", "sk_live_k " + jwt, "sk_live_[redacted] [token redacted]"},
		{"API token", "Bearer hst_2bX9kQ0aZ7 refused", "Bearer hst_[redacted] refused"},
		{"API token glued to text", "tokhst_abc", "tokhst_[redacted]"},
		{"hst_ alone stays", "hst_", "hst_"},
		{"eyJ alone stays", "eyJ", "eyJ"},
		{"eyJ with empty parts stays", "eyJ..", "eyJ.."},
		{"a dotted name after eyJ stays", "eyJ.example.com", "eyJ.example.com"},
		{"two parts stay", "eyJhbGciOiJIUzI1NiJ9.eyJ1In0", "eyJhbGciOiJIUzI1NiJ9.eyJ1In0"},
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

func TestStringsAndMap(t *testing.T) {
	t.Parallel()
	clean := []string{"https://shop.example", "*.shop.example"}
	if got := Strings(clean); &got[0] != &clean[0] {
		t.Errorf("Strings copied a list with nothing to scrub")
	}
	dirty := []string{"a", "sk_live_k", "b"}
	if got := Strings(dirty); !slices.Equal(got, []string{"a", "sk_live_[redacted]", "b"}) || dirty[1] != "sk_live_k" {
		t.Errorf("Strings(%q) = %q (input now %q)", []string{"a", "sk_live_k", "b"}, got, dirty)
	}
	m := map[string]string{"plan": "pro", "key": "sk_live_k", "sk_live_x": "v"}
	want := map[string]string{"plan": "pro", "key": "sk_live_[redacted]", "sk_live_[redacted]": "v"}
	if got := Map(m); !maps.Equal(got, want) || m["key"] != "sk_live_k" {
		t.Errorf("Map = %v, want %v (input now %v)", got, want, m)
	}
	if Map(nil) != nil {
		t.Errorf("Map(nil) is not nil")
	}
}

// BenchmarkStringClean is the cost of String on text with nothing to
// scrub, what every stored field of every decision pays.
func BenchmarkStringClean(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = String("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
	}
}

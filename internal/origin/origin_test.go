package origin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParsePattern(t *testing.T) {
	t.Parallel()
	valid := []struct{ in, canonical string }{
		{"https://myapp.com", "https://myapp.com"},
		{"myapp.com", "https://myapp.com"},
		{"http://myapp.com", "http://myapp.com"},
		{"HTTPS://MyApp.com", "https://myapp.com"},
		{"https://myapp.com:443", "https://myapp.com"},
		{"https://myapp.com:8443", "https://myapp.com:8443"},
		{"*.myapp.com", "https://*.myapp.com"},
		{"http://*.myapp.com:8080", "http://*.myapp.com:8080"},
		{"*.bücher.de", "https://*.xn--bcher-kva.de"},
		{"*.shop.example", "https://*.shop.example"},
		{"*.myapp.co.uk", "https://*.myapp.co.uk"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"localhost", "https://localhost"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://[::1]:8080", "http://[::1]:8080"},
	}
	for _, tt := range valid {
		t.Run("valid "+tt.in, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePattern(tt.in)
			if err != nil {
				t.Fatalf("ParsePattern(%q): %v", tt.in, err)
			}
			if p.String() != tt.canonical {
				t.Errorf("canonical %q, want %q", p.String(), tt.canonical)
			}
			if q, err := ParsePattern(p.String()); err != nil || q != p {
				t.Errorf("canonical form does not parse back: %v %v", q, err)
			}
		})
	}
	invalid := []struct{ in, says string }{
		{"", "empty"},
		{"*", "wildcard"},
		{"https://*", "wildcard"},
		{"*.", "host"},
		{"*.com", "public suffix"},
		{"*.co.uk", "public suffix"},
		{"https://*.com", "public suffix"},
		{"*.github.io", "public suffix"},
		{"*myapp.com", "wildcard"},
		{"a.*.myapp.com", "wildcard"},
		{"https://my*app.com", "wildcard"},
		{"*.*.myapp.com", "wildcard"},
		{"https://myapp.com/", "path"},
		{"https://myapp.com/app", "path"},
		{"https://myapp.com?x=1", "query"},
		{"https://myapp.com#top", "fragment"},
		{"https://user@myapp.com", "user info"},
		{"ftp://myapp.com", "scheme"},
		{"ws://myapp.com", "scheme"},
		{"javascript:alert(1)", "port"},
		{"https://myapp.com ", "white space"},
		{" myapp.com", "white space"},
		{"my app.com", "white space"},
		{"https://myapp.com,https://b.com", "list separator"},
		{"https://myapp.com.", "trailing dot"},
		{"https://myapp.com:0", "port"},
		{"https://myapp.com:99999", "port"},
		{"https://myapp.com:http", "port"},
		{"https://", "host"},
		{"https://my_app.com", "domain"},
		{"https://-myapp.com", "domain"},
		{"*.127.0.0.1", "IP"},
		{"\xff", "UTF-8"},
		{"ｺ｡", "trailing dot"},
		{"myapp.com\u3002", "trailing dot"},
		{"https://bad\xffhost.com", "UTF-8"},
		{"http://::1", "brackets"},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.in, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePattern(tt.in)
			if err == nil {
				t.Fatalf("ParsePattern(%q) accepted it", tt.in)
			}
			if !errors.Is(err, ErrInvalidPattern) {
				t.Errorf("error %v does not wrap ErrInvalidPattern", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Errorf("error %q does not name the pattern", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

package authz

import (
	"errors"
	"testing"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/origin"
)

func TestOriginMatching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string
		origin   string
		allowed  bool
	}{
		{"exact https", []string{"https://myapp.com"}, "https://myapp.com", true},
		{"pattern without scheme means https", []string{"myapp.com"}, "https://myapp.com", true},
		{"pattern without scheme never http", []string{"myapp.com"}, "http://myapp.com", false},
		{"http written out", []string{"http://myapp.com"}, "http://myapp.com", true},
		{"http pattern never https", []string{"http://myapp.com"}, "https://myapp.com", false},
		{"https pattern never http", []string{"https://myapp.com"}, "http://myapp.com", false},
		{"explicit default port equals none", []string{"https://myapp.com"}, "https://myapp.com:443", true},
		{"pattern with default port", []string{"https://myapp.com:443"}, "https://myapp.com", true},
		{"other port refused", []string{"https://myapp.com"}, "https://myapp.com:8443", false},
		{"port written in pattern", []string{"http://localhost:3000"}, "http://localhost:3000", true},
		{"port pattern, other port", []string{"http://localhost:3000"}, "http://localhost:3001", false},
		{"port pattern, no port", []string{"http://localhost:3000"}, "http://localhost", false},
		{"http default port 80", []string{"http://myapp.com"}, "http://myapp.com:80", true},
		{"https on port 80 is not default", []string{"https://myapp.com"}, "https://myapp.com:80", false},
		{"upper case origin host", []string{"https://myapp.com"}, "https://MyApp.COM", true},
		{"upper case pattern host", []string{"https://MYAPP.com"}, "https://myapp.com", true},
		{"upper case scheme", []string{"https://myapp.com"}, "HTTPS://myapp.com", true},
		{"wildcard one level", []string{"*.myapp.com"}, "https://a.myapp.com", true},
		{"wildcard two levels", []string{"*.myapp.com"}, "https://a.b.myapp.com", true},
		{"wildcard never the apex", []string{"*.myapp.com"}, "https://myapp.com", false},
		{"wildcard: evilmyapp.com", []string{"*.myapp.com"}, "https://evilmyapp.com", false},
		{"wildcard: myapp.com.evil.com", []string{"*.myapp.com"}, "https://myapp.com.evil.com", false},
		{"wildcard: a.myapp.com.evil.com", []string{"*.myapp.com"}, "https://a.myapp.com.evil.com", false},
		{"wildcard: path trick", []string{"*.myapp.com"}, "https://evil.com/.myapp.com", false},
		{"wildcard: port trick", []string{"*.myapp.com"}, "https://evil.com:any.myapp.com", false},
		{"wildcard: fragment trick", []string{"*.myapp.com"}, "https://evil.com#.myapp.com", false},
		{"wildcard: query trick", []string{"*.myapp.com"}, "https://evil.com?.myapp.com", false},
		{"wildcard: userinfo trick", []string{"*.myapp.com"}, "https://a.myapp.com@evil.com", false},
		{"wildcard: backslash trick", []string{"*.myapp.com"}, `https://evil.com\.myapp.com`, false},
		{"wildcard: http refused", []string{"*.myapp.com"}, "http://a.myapp.com", false},
		{"wildcard with http written out", []string{"http://*.myapp.com"}, "http://a.myapp.com", true},
		{"wildcard with port", []string{"https://*.myapp.com:8443"}, "https://a.myapp.com:8443", true},
		{"wildcard without port, other port", []string{"*.myapp.com"}, "https://a.myapp.com:8443", false},
		{"wildcard upper case origin", []string{"*.myapp.com"}, "https://A.MyApp.Com", true},
		{"exact never a subdomain", []string{"https://myapp.com"}, "https://a.myapp.com", false},
		{"userinfo", []string{"https://myapp.com"}, "https://user:pass@myapp.com", false},
		{"userinfo without password", []string{"https://myapp.com"}, "https://user@myapp.com", false},
		{"trailing dot", []string{"https://myapp.com"}, "https://myapp.com.", false},
		{"trailing dot on a subdomain", []string{"*.myapp.com"}, "https://a.myapp.com.", false},
		{"trailing slash", []string{"https://myapp.com"}, "https://myapp.com/", false},
		{"a path", []string{"https://myapp.com"}, "https://myapp.com/app", false},
		{"empty query", []string{"https://myapp.com"}, "https://myapp.com?", false},
		{"empty fragment", []string{"https://myapp.com"}, "https://myapp.com#", false},
		{"empty port", []string{"https://myapp.com"}, "https://myapp.com:", false},
		{"several origins in one header", []string{"https://myapp.com"}, "https://myapp.com https://evil.com", false},
		{"comma-separated origins", []string{"https://myapp.com"}, "https://myapp.com,https://evil.com", false},
		{"leading space", []string{"https://myapp.com"}, " https://myapp.com", false},
		{"trailing space", []string{"https://myapp.com"}, "https://myapp.com ", false},
		{"tab inside", []string{"https://myapp.com"}, "https://my\tapp.com", false},
		{"null", []string{"https://myapp.com"}, "null", false},
		{"empty", []string{"https://myapp.com"}, "", false},
		{"no scheme in origin", []string{"https://myapp.com"}, "myapp.com", false},
		{"scheme-relative", []string{"https://myapp.com"}, "//myapp.com", false},
		{"one slash", []string{"https://myapp.com"}, "https:/myapp.com", false},
		{"other scheme", []string{"https://myapp.com"}, "ftp://myapp.com", false},
		{"file scheme", []string{"https://myapp.com"}, "file://", false},
		{"javascript", []string{"https://myapp.com"}, "javascript:alert(1)", false},
		{"percent-encoded host", []string{"https://myapp.com"}, "https://myapp%2ecom", false},
		{"IDN pattern in Unicode, origin in punycode", []string{"https://bücher.de"}, "https://xn--bcher-kva.de", true},
		{"IDN pattern in punycode, origin in Unicode", []string{"https://xn--bcher-kva.de"}, "https://bücher.de", true},
		{"IDN wildcard in Unicode", []string{"*.bücher.de"}, "https://shop.xn--bcher-kva.de", true},
		{"IDN upper case Unicode", []string{"https://bücher.de"}, "https://BÜCHER.de", true},
		{"IDN lookalike refused", []string{"https://bücher.de"}, "https://bucher.de", false},
		{"IP exact", []string{"http://127.0.0.1:8080"}, "http://127.0.0.1:8080", true},
		{"IP other", []string{"http://127.0.0.1:8080"}, "http://127.0.0.2:8080", false},
		{"IPv6 exact", []string{"http://[::1]:8080"}, "http://[::1]:8080", true},
		{"IPv6 other spelling", []string{"http://[::1]:8080"}, "http://[0:0:0:0:0:0:0:1]:8080", true},
		{"second pattern matches", []string{"https://a.example", "https://myapp.com"}, "https://myapp.com", true},
		{"port out of range", []string{"https://myapp.com"}, "https://myapp.com:70000", false},
		{"port with sign", []string{"https://myapp.com"}, "https://myapp.com:+443", false},
		{"invalid UTF-8 host", []string{"*.myapp.com"}, "https://a\xff.myapp.com", false},
		{"ideographic full stop at the end", []string{"https://myapp.com"}, "https://myapp.com\u3002", false},
		{"ideographic full stop inside", []string{"*.myapp.com"}, "https://a\u3002myapp.com", true},
	}
	// One cache for every case, as a Decider has, each origin checked twice
	// through it (parsed, then remembered) and once without it.
	var cache origin.Cache
	cached := func(patterns []origin.Pattern, h string) error { return checkOriginWith(patterns, h, cache.Parse) }
	uncached := func(patterns []origin.Pattern, h string) error { return checkOriginWith(patterns, h, origin.Parse) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			patterns := mustPatterns(t, tt.patterns...)
			for i, check := range []func([]origin.Pattern, string) error{uncached, cached, cached} {
				err := check(patterns, tt.origin)
				if (err == nil) != tt.allowed {
					t.Errorf("check %d: origin %q against %v: allowed=%v, want %v (%v)", i, tt.origin, tt.patterns, err == nil, tt.allowed, err)
				}
				if err != nil && !errors.Is(err, ErrOriginNotAllowed) && !errors.Is(err, ErrOriginMissing) {
					t.Errorf("check %d: error %v is not an origin refusal", i, err)
				}
			}
			// The console's origin test says the same, with the pattern.
			v, err := CheckOrigin(tt.patterns, tt.origin)
			if err != nil || v.Allowed != tt.allowed || v.Explanation == "" {
				t.Errorf("CheckOrigin(%v, %q) = %+v, %v; want allowed=%v with an explanation", tt.patterns, tt.origin, v, err, tt.allowed)
			}
			if v.Allowed != (v.Pattern != "") || v.Allowed != (v.Reason == "") {
				t.Errorf("CheckOrigin(%v, %q) = %+v: a match names its pattern, a refusal its reason", tt.patterns, tt.origin, v)
			}
		})
	}
}

func TestOriginMissingVersusNotAllowed(t *testing.T) {
	t.Parallel()
	patterns := mustPatterns(t, "https://myapp.com")
	for _, h := range []string{"", "null"} {
		if err := checkOriginWith(patterns, h, origin.Parse); !errors.Is(err, ErrOriginMissing) {
			t.Errorf("%q: %v, want origin missing", h, err)
		}
	}
	for _, h := range []string{"NULL", "https://evil.com"} {
		if err := checkOriginWith(patterns, h, origin.Parse); !errors.Is(err, ErrOriginNotAllowed) {
			t.Errorf("%q: %v, want origin not allowed", h, err)
		}
	}
	for _, h := range []string{"", "null", "garbage"} {
		if err := checkOriginWith(nil, h, origin.Parse); err != nil {
			t.Errorf("empty allowlist refused %q: %v", h, err)
		}
		if v, err := CheckOrigin(nil, h); err != nil || !v.Allowed || v.Pattern != "" {
			t.Errorf("CheckOrigin with an empty allowlist, %q: %+v, %v", h, v, err)
		}
	}
	if v, _ := CheckOrigin([]string{"https://myapp.com"}, ""); v.Allowed || v.Reason != events.ReasonOriginMissing {
		t.Errorf("CheckOrigin without an Origin: %+v, want origin_missing", v)
	}
	if v, _ := CheckOrigin([]string{"https://myapp.com"}, "https://evil.com"); v.Allowed || v.Reason != events.ReasonOriginNotAllowed {
		t.Errorf("CheckOrigin of another site: %+v, want origin_not_allowed", v)
	}
	if _, err := CheckOrigin([]string{"https://*.myapp.com/path"}, "https://a.myapp.com"); err == nil {
		t.Error("CheckOrigin took an invalid pattern")
	}
}

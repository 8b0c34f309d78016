package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/console"
	"github.com/hissuno/widgetauth/internal/stack"
)

// TestBehindATLSProxy: a console on a loopback address behind a reverse
// proxy that terminates HTTPS (--tls-proxy) hands out the cookie a browser
// needs there, Secure and __Host- prefixed, and answers with HSTS.
func TestBehindATLSProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *stack.Config) { c.Console.TLSProxy = true })
	if !e.st.Console.SecureCookies() {
		t.Fatal("behind a TLS proxy on loopback, the cookie is not Secure")
	}
	pw := e.account(t, "ada@example.com", account.RoleAdmin)
	r := e.browser(t).do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": "ada@example.com", "password": pw}).want(t, http.StatusOK)
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want the session's", cookies)
	}
	if ck := cookies[0]; !strings.HasPrefix(ck.Name, "__Host-") || !ck.Secure || !ck.HttpOnly || ck.Domain != "" || ck.Path != "/" || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %s: want __Host-, Secure, HttpOnly, no Domain, Path=/, SameSite=Strict", r.header.Get("Set-Cookie"))
	}
	if hsts := r.header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
		t.Errorf("Strict-Transport-Security %q, want max-age", hsts)
	}
}

// TestTLSConfigurationRefused: the console serves HTTPS itself or sits
// behind a proxy that does, not both, and needs both halves of a key pair.
func TestTLSConfigurationRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  console.Config
		want string
	}{
		{"a certificate without its key", console.Config{TLSCertFile: "c.pem"}, "both --tls-cert and --tls-key"},
		{"a key without its certificate", console.Config{TLSKeyFile: "k.pem"}, "both --tls-cert and --tls-key"},
		{"its own TLS and a proxy's", console.Config{TLSCertFile: "c.pem", TLSKeyFile: "k.pem", TLSProxy: true}, "give one of them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Validate only checks a connection is given.
			tc.cfg.NATS, tc.cfg.Instance, tc.cfg.CommandTimeout = &nats.Conn{}, "console-1", console.DefaultCommandTimeout
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

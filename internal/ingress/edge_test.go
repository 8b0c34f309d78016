package ingress_test

// Black-box tests of the public edge: the client's address behind a
// trusted load balancer, the rate limits and the connection limits.

import (
	"net/netip"
	"testing"

	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// decidedIP sends one attempt with the headers and returns the clientIp
// its stored decision carries.
func decidedIP(t *testing.T, st *stack.Stack, headers map[string]string) string {
	t.Helper()
	if headers == nil {
		headers = map[string]string{}
	}
	headers["Content-Type"] = "application/json"
	a := post(t, st.HTTPAddr, []byte(`{"projectId":"proj_nobody"}`), headers)
	id, ok := a.str("decisionId")
	if !ok {
		t.Fatalf("no decision: %s", a)
	}
	ds := storedDecisions(t, jetStream(t, st), id)
	if len(ds) != 1 {
		t.Fatalf("%d decisions stored for %s", len(ds), id)
	}
	return ds[0].ClientIP
}

func TestClientIPBehindProxies(t *testing.T) {
	t.Parallel()
	// The test client connects from 127.0.0.1.
	trusting := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
	}})
	distrusting := stacktest.Start(t, stack.Config{Ingress: ingress.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}})
	for _, tc := range []struct {
		name    string
		st      *stack.Stack
		headers map[string]string
		want    string
	}{
		{name: "untrusted peer, no header", st: distrusting, want: "127.0.0.1"},
		{name: "untrusted peer, spoofed XFF", st: distrusting, headers: map[string]string{"X-Forwarded-For": "198.51.100.9"}, want: "127.0.0.1"},
		{name: "untrusted peer, spoofed Forwarded", st: distrusting, headers: map[string]string{"Forwarded": "for=198.51.100.9"}, want: "127.0.0.1"},
		{name: "trusted peer, no header", st: trusting, want: "127.0.0.1"},
		{name: "trusted peer, XFF chain", st: trusting, headers: map[string]string{"X-Forwarded-For": "1.2.3.4, 198.51.100.9, 10.0.0.7"}, want: "198.51.100.9"},
		{name: "trusted peer, Forwarded IPv6", st: trusting, headers: map[string]string{"Forwarded": `for="[2001:db8::5]:443";proto=https`}, want: "2001:db8::5"},
		{name: "trusted peer, malformed XFF", st: trusting, headers: map[string]string{"X-Forwarded-For": "198.51.100.9, bogus"}, want: "127.0.0.1"},
		{name: "trusted peer, obfuscated Forwarded", st: trusting, headers: map[string]string{"Forwarded": "for=_hidden"}, want: "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decidedIP(t, tc.st, tc.headers); got != tc.want {
				t.Errorf("clientIp = %q, want %q", got, tc.want)
			}
		})
	}
}

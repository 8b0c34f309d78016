package console_test

// Helpers of the security tests: a clock the tests move, the console over
// TLS with a certificate made for the test, clients that come from other
// loopback addresses or send exactly the headers a case needs, requests
// outside the API, and the admin events as ClickHouse holds them.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// manualClock is a clock that moves only when a test moves it; the
// console's sessions, API tokens and sign-in throttle run on it
// (withClock(c.Now)).
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock(start time.Time) *manualClock { return &manualClock{t: start} }

// Now is the clock's time.
func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// withTLS serves the console over HTTPS (its --tls-cert and --tls-key)
// with a self-signed certificate for 127.0.0.1 made for the test; the
// env's clients trust that certificate only.
func withTLS(t testing.TB) envOption {
	t.Helper()
	cert, key := selfSigned(t)
	return func(c *stack.Config) { c.Console.TLSCertFile, c.Console.TLSKeyFile = cert, key }
}

// withPromptAudit makes the auditor store what it holds after 50 ms, so
// that the tests wait less for admin events.
func withPromptAudit() envOption {
	return func(c *stack.Config) { c.Auditor.BatchWait = 50 * time.Millisecond }
}

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, and its key, into a temporary directory.
func selfSigned(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "hissuno console test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "console.crt"), filepath.Join(dir, "console.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// trusting is a transport that trusts the certificate in certFile and no
// other.
func trusting(t testing.TB, certFile string) http.RoundTripper {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", certFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// browserFrom is a browser whose connections come from the loopback
// address ip (127.0.0.2, …), with userAgent: the console sees another
// client. Plain HTTP only.
func (e *env) browserFrom(t testing.TB, ip, userAgent string) *client {
	t.Helper()
	c := e.browser(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}).DialContext
	t.Cleanup(tr.CloseIdleConnections)
	c.hc.Transport = tr
	c.headers.Set("User-Agent", userAgent)
	return c
}

// with is c sending the headers h in place of its own, with the same
// cookie jar and transport.
func (c *client) with(h http.Header) *client {
	cp := *c
	cp.headers = h
	return &cp
}

// withCookie is a client that sends one session cookie and nothing else a
// browser keeps: a stolen or remembered cookie replayed.
func (e *env) withCookie(name, value string) *client {
	return &client{e: e, hc: &http.Client{Timeout: 60 * time.Second, Transport: e.rt},
		headers: http.Header{"Cookie": {name + "=" + value}, "Sec-Fetch-Site": {"same-origin"}}}
}

// cookieName is the session cookie's name on this env's console.
func (e *env) cookieName() string {
	if e.st.Console.SecureCookies() {
		return "__Host-hissuno_session"
	}
	return "hissuno_session"
}

// session is the session cookie c's jar holds; empty when it holds none.
func (c *client) session(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(c.e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.hc.Jar.Cookies(u) {
		if ck.Name == c.e.cookieName() {
			return ck.Value
		}
	}
	return ""
}

// setCookie is the answer's Set-Cookie line for the cookie name, as sent
// and parsed; "" and nil when there is none.
func (r *resp) setCookie(t testing.TB, name string) (string, *http.Cookie) {
	t.Helper()
	for _, line := range r.header.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("%s %s: Set-Cookie %q: %v", r.method, r.path, line, err)
		}
		if ck.Name == name {
			return line, ck
		}
	}
	return "", nil
}

// fetch sends a request without the OpenAPI check, for what lies outside
// the API's operations (/healthz, the document itself, unknown paths).
func (c *client) fetch(t testing.TB, method, path string, body []byte, header ...string) *resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(stacktest.Context(t, time.Minute), method, c.e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return &resp{method: method, path: path, status: res.StatusCode, header: res.Header, body: b}
}

// storedEvent is an admin event as ClickHouse holds it: the columns the
// sign-in tests read.
type storedEvent struct {
	Kind, Actor, Account, ClientIP, UserAgent, Reason, ProjectID string
}

// storedEvents waits until ClickHouse holds at least n admin events of
// the kinds, and returns them, oldest first.
func (e *env) storedEvents(t testing.TB, n int, kinds ...events.AdminEventKind) []storedEvent {
	t.Helper()
	var in []string
	var args []any
	for _, k := range kinds {
		in = append(in, "?")
		args = append(args, string(k))
	}
	q := "SELECT kind, actor, account, client_ip, user_agent, reason, project_id FROM hissuno_admin_events FINAL WHERE kind IN (" +
		strings.Join(in, ", ") + ") ORDER BY time, time_us, event_id"
	var got []storedEvent
	stacktest.Eventually(t, 30*time.Second, fmt.Sprintf("%d admin events %v in ClickHouse", n, kinds), func() error {
		rows, err := e.ch.Query(stacktest.Context(t, 30*time.Second), q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		got = got[:0]
		for rows.Next() {
			var ev storedEvent
			if err := rows.Scan(&ev.Kind, &ev.Actor, &ev.Account, &ev.ClientIP, &ev.UserAgent, &ev.Reason, &ev.ProjectID); err != nil {
				return err
			}
			got = append(got, ev)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(got) < n {
			return fmt.Errorf("%d stored", len(got))
		}
		return nil
	})
	return got
}

// eventsOf are the events of evs whose account is account.
func eventsOf(evs []storedEvent, account string) []storedEvent {
	var out []storedEvent
	for _, ev := range evs {
		if ev.Account == account {
			out = append(out, ev)
		}
	}
	return out
}

package ingress_test

// Connection-level limits: caps on open connections, in total and per
// client address, and the read deadlines that cut off a slowloris client.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// holdFor bounds how long a test holds a connection waiting for the server
// to act: far above any timeout under test, so that only a server that
// never acts fails, whatever the machine's load.
const holdFor = 30 * time.Second

// startEdge runs an ingress with cfg on its own NATS server until the test
// ends, and returns its address.
func startEdge(t *testing.T, cfg ingress.Config) string {
	t.Helper()
	_, nc := stacktest.NATS(t)
	cfg.NATS, cfg.Listen = nc, "127.0.0.1:0"
	in, err := ingress.New(cfg, stacktest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingress run: %v", err)
		}
	})
	select {
	case <-in.Listening():
	case err := <-done:
		t.Fatalf("ingress stopped before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("ingress not listening after 10 s")
	}
	return in.Addr()
}

// conn is a raw client connection with its reader.
type conn struct {
	net.Conn
	r *bufio.Reader
}

// dial connects to addr from the loopback address from (127.0.0.x).
func dial(t *testing.T, addr, from string) *conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &conn{Conn: c, r: bufio.NewReader(c)}
}

// served sends GET /healthz on c and reads its answer: nil when the
// connection is served.
func (c *conn) served() error {
	_ = c.SetDeadline(time.Now().Add(holdFor))
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: ingress\r\n\r\n")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}

// closedByServer waits, up to holdFor, for the server to close c, reading
// and dropping whatever it answers first: nil once it is closed.
func (c *conn) closedByServer() error {
	_ = c.SetReadDeadline(time.Now().Add(holdFor))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("still open after %s", holdFor)
		}
		return nil // EOF or reset: closed
	}
}

func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	t.Run("total", func(t *testing.T) {
		t.Parallel()
		addr := startEdge(t, ingress.Config{MaxConns: 2, MaxConnsPerIP: -1})
		c1, c2 := dial(t, addr, "127.0.0.1"), dial(t, addr, "127.0.0.2")
		for _, c := range []*conn{c1, c2} {
			if err := c.served(); err != nil {
				t.Fatalf("within the cap: %v", err)
			}
		}
		before := throttled(events.ThrottleConnections)
		if err := dial(t, addr, "127.0.0.3").closedByServer(); err != nil {
			t.Fatalf("a connection over the total cap: %v", err)
		}
		if got := throttled(events.ThrottleConnections); got != before+1 {
			t.Errorf("throttled{reason=connections} %v → %v, want +1", before, got)
		}
		// A closed connection gives its place back.
		_ = c1.Close()
		stacktest.Eventually(t, holdFor, "a new connection served once one closed", func() error {
			return dial(t, addr, "127.0.0.3").served()
		})
	})
	t.Run("per IP", func(t *testing.T) {
		t.Parallel()
		addr := startEdge(t, ingress.Config{MaxConnsPerIP: 2})
		for range 2 {
			if err := dial(t, addr, "127.0.0.1").served(); err != nil {
				t.Fatalf("within the cap: %v", err)
			}
		}
		before := throttled(events.ThrottleIPConnections)
		if err := dial(t, addr, "127.0.0.1").closedByServer(); err != nil {
			t.Fatalf("a third connection from one address: %v", err)
		}
		if got := throttled(events.ThrottleIPConnections); got < before+1 {
			t.Errorf("throttled{reason=ip_connections} %v → %v, want +1", before, got)
		}
		if err := dial(t, addr, "127.0.0.2").served(); err != nil {
			t.Fatalf("another address shares the first one's cap: %v", err)
		}
	})
	t.Run("a trusted proxy is exempt from the per-IP cap", func(t *testing.T) {
		t.Parallel()
		addr := startEdge(t, ingress.Config{MaxConnsPerIP: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
		for i := range 3 {
			if err := dial(t, addr, "127.0.0.1").served(); err != nil {
				t.Fatalf("connection %d of the balancer: %v", i+1, err)
			}
		}
	})
}

// TestReadDeadlines: a client that trickles its headers (slowloris), its
// body, or holds a keep-alive connection idle is cut off by the server.
func TestReadDeadlines(t *testing.T) {
	t.Parallel()
	addr := startEdge(t, ingress.Config{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	// trickle writes head, then one of drip every 50 ms until the server
	// closes the connection or holdFor passes.
	trickle := func(t *testing.T, head, drip string) {
		t.Helper()
		c := dial(t, addr, "127.0.0.1")
		closed := make(chan error, 1)
		go func() { closed <- c.closedByServer() }()
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
				return
			case <-tick.C:
				// A write may fail once the server has closed: the reader
				// then reports it.
				_, _ = c.Write([]byte(drip))
			}
		}
	}
	t.Run("headers trickled", func(t *testing.T) {
		t.Parallel()
		trickle(t, "POST "+ingress.ConnectPath+" HTTP/1.1\r\nHost: ingress\r\n", "X-Slow: 1\r\n")
	})
	t.Run("body trickled", func(t *testing.T) {
		t.Parallel()
		trickle(t, "POST "+ingress.ConnectPath+" HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\nContent-Length: 16000\r\n\r\n{", " ")
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr, "127.0.0.1")
		if err := c.served(); err != nil {
			t.Fatal(err)
		}
		if err := c.closedByServer(); err != nil {
			t.Fatalf("an idle keep-alive connection: %v", err)
		}
	})
	t.Run("a prompt client is served", func(t *testing.T) {
		t.Parallel()
		if err := dial(t, addr, "127.0.0.1").served(); err != nil {
			t.Fatal(err)
		}
	})
}

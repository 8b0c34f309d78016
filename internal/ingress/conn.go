package ingress

import (
	"net"
	"sync"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/clientip"
	"github.com/hissuno/widgetauth/internal/metrics"
)

// connLimiter caps the connections a listener holds open, in total and
// per client address (per /64 for IPv6; the TCP peer: a trusted proxy is
// exempt from the per-address cap, it carries many clients). A connection
// over a cap is closed as soon as it is accepted, so that it neither waits
// in the kernel's backlog nor holds a goroutine. Its table holds only the
// addresses with a connection open: it is bounded by the total cap.
type connLimiter struct {
	net.Listener
	total, perIP int // ≤ 0: no cap
	trusted      *clientip.Resolver
	// refused, when set, is told of each connection closed at once: the
	// client address as the limits count it ("" when the peer is none)
	// and why.
	refused func(ip string, why events.Throttle)

	mu   sync.Mutex
	n    int
	open map[string]int
}

func newConnLimiter(ln net.Listener, total, perIP int, trusted *clientip.Resolver) *connLimiter {
	return &connLimiter{Listener: ln, total: total, perIP: perIP, trusted: trusted, open: make(map[string]int)}
}

// Accept returns the next connection within the caps, closing those over
// them.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, peer := "", ""
		a, ok := clientip.Peer(c.RemoteAddr().String())
		if ok {
			peer = ipKey(a)
		}
		if ok && l.perIP > 0 && !l.trusted.Trusted(a) {
			key = peer
		}
		if why, ok := l.acquire(key); !ok {
			metrics.IngressThrottled.WithLabelValues(string(why)).Inc()
			if l.refused != nil {
				l.refused(peer, why)
			}
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *connLimiter) acquire(key string) (events.Throttle, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.n >= l.total {
		return events.ThrottleConnections, false
	}
	if key != "" && l.open[key] >= l.perIP {
		return events.ThrottleIPConnections, false
	}
	l.n++
	if key != "" {
		l.open[key]++
	}
	return "", true
}

func (l *connLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if key == "" {
		return
	}
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// limitedConn gives its place back once, when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

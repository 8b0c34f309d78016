package stacktest

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/devtools/freeport"
)

// Cluster is an embedded JetStream cluster of this test process: every node
// routes to every other, each with its own store and free ports.
type Cluster struct {
	// Servers are the nodes, in start order; a node the test shut down stays
	// in the list (Running reports false).
	Servers []*server.Server
}

// clusterName is the name every test cluster's nodes share.
const clusterName = "hissuno-test"

// StartCluster starts an n-node JetStream cluster, waits until it has
// elected a meta leader that sees every node and every node's JetStream is
// current, and shuts every node down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("a cluster needs at least one node, not %d", n)
	}
	// The cluster ports must be known before any node starts, as each node's
	// routes name all of them; a port taken between reserving and binding
	// makes that start fail, and it is tried again on new ports.
	var c *Cluster
	var err error
	for try := 0; try < 3; try++ {
		if c, err = startCluster(t, n); err == nil {
			break
		}
		t.Logf("start cluster (try %d): %v", try+1, err)
	}
	if err != nil {
		t.Fatalf("start a %d-node JetStream cluster: %v", n, err)
	}
	t.Cleanup(c.Shutdown)
	Eventually(t, time.Minute, "the cluster elects a meta leader that sees every node, and every node is current", c.ready)
	return c
}

func startCluster(t testing.TB, n int) (*Cluster, error) {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: clusterName,
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("node %s: %w", opts.ServerName, err)
		}
		log := Logger(t).With().Str("component", "nats-server").Str("node", opts.ServerName).Logger()
		ns.SetLoggerV2(bus.ServerLogger(log), false, false, false)
		go ns.Start()
		c.Servers = append(c.Servers, ns)
		if !ns.ReadyForConnections(30 * time.Second) {
			c.Shutdown()
			return nil, fmt.Errorf("node %s not ready for connections after 30 s (cluster port %d taken?)", opts.ServerName, ports[i])
		}
	}
	return c, nil
}

// ready is nil once a running node leads the meta group and sees every
// node as a peer, and every running node's JetStream is current; else an
// error says which of these is missing.
func (c *Cluster) ready() error {
	leader := c.MetaLeader()
	if leader == nil {
		return errors.New("no meta leader")
	}
	if peers := len(leader.JetStreamClusterPeers()); peers != len(c.Servers) {
		return fmt.Errorf("the meta leader %s sees %d of %d nodes", leader.Name(), peers, len(c.Servers))
	}
	for _, s := range c.Servers {
		if s.Running() && !s.JetStreamIsCurrent() {
			return fmt.Errorf("node %s is not current", s.Name())
		}
	}
	return nil
}

// MetaLeader is the running node leading the JetStream meta group, or nil
// while there is none.
func (c *Cluster) MetaLeader() *server.Server {
	for _, s := range c.Servers {
		if s.Running() && s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// Server is the node named name (as a stream's cluster info names its
// leader), or nil.
func (c *Cluster) Server(name string) *server.Server {
	for _, s := range c.Servers {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// URLs is every node's client URL, comma-separated, as --nats and
// bus.ConnConfig take them, so that a client fails over between nodes.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// NameOf is the name of the node whose client URL is u (as
// nats.Conn.ConnectedUrl gives it), or "" when none.
func (c *Cluster) NameOf(u string) string {
	want, err := url.Parse(u)
	if err != nil {
		return ""
	}
	for _, s := range c.Servers {
		if have, err := url.Parse(s.ClientURL()); err == nil && have.Host == want.Host {
			return s.Name()
		}
	}
	return ""
}

// Shutdown stops every node still running and waits until each is down.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	for _, s := range c.Servers {
		s.WaitForShutdown()
	}
}

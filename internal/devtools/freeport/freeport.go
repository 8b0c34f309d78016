// Package freeport finds free TCP ports on the loopback interface, for the
// development tooling and the tests that start servers of their own (a
// ClickHouse, a NATS cluster, a role's metrics). A port is free when asked;
// a caller that binds it later may find it taken and must say so.
package freeport

import (
	"fmt"
	"net"
)

// Ports reserves n distinct free ports on 127.0.0.1 and releases them.
func Ports(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Addr is a free loopback address, host:port.
func Addr() (string, error) {
	p, err := Ports(1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p[0]), nil
}

// Package clientip finds the address of the client behind a request: the
// TCP peer, or, when that peer is a trusted proxy (a load balancer the
// operator names), the right-most address of its Forwarded (RFC 7239 for=)
// or X-Forwarded-For header that is not itself a trusted proxy.
//
// It must never believe a header from a peer it does not trust (anyone can
// write any address there), nor skip an address it cannot read: a
// malformed or obfuscated hop ends the search at the peer.
package clientip

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Header names read from trusted proxies.
const (
	HeaderForwarded     = "Forwarded"
	HeaderXForwardedFor = "X-Forwarded-For"
)

// ParsePrefixes parses a comma-separated list of CIDRs (a bare address is
// a /32 or a /128); blanks are skipped.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR", f)
			}
			a = a.Unmap().WithZone("")
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not a CIDR (%v)", f, err)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("trusted proxy %q: an IPv4-mapped prefix shorter than /96", f)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Resolver finds client addresses; its zero value trusts no proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// New makes a resolver that reads forwarding headers from peers inside
// trusted.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// Trusted reports whether a is inside a trusted proxy's prefix.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer parses a net/http RemoteAddr ("host:port"); ok is false when it is
// not an IP address.
func Peer(remoteAddr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	a, err := netip.ParseAddr(remoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// ClientIP is the client's address of a request from remoteAddr with
// headers h: the peer unless it is trusted; from a trusted peer, the
// right-most untrusted hop of the forwarding headers, or the peer when
// they hold none, are malformed, name a hop by an obfuscated identifier or
// "unknown" where the client should be, or (both present) disagree. ok is
// false when remoteAddr is no address at all.
func (r *Resolver) ClientIP(remoteAddr string, h http.Header) (netip.Addr, bool) {
	peer, ok := Peer(remoteAddr)
	if !ok || !r.Trusted(peer) {
		return peer, ok
	}
	fwd, fok := r.fromForwarded(h.Values(HeaderForwarded))
	xff, xok := r.fromXFF(h.Values(HeaderXForwardedFor))
	switch {
	case fok == found && xok == found:
		// A balancer that writes one header passes the other on as the
		// client wrote it: when they disagree there is no telling which
		// one it wrote.
		if fwd != xff {
			return peer, true
		}
		return fwd, true
	case fok == found && xok == absent:
		return fwd, true
	case xok == found && fok == absent:
		return xff, true
	}
	return peer, true
}

// result of reading one header.
type result int

const (
	absent    result = iota // no such header, or every hop trusted
	found                   // a client address
	malformed               // unreadable, or the client hop has no address
)

// fromXFF reads X-Forwarded-For lines, a comma-separated list of addresses
// (several lines are one list, in order).
func (r *Resolver) fromXFF(lines []string) (netip.Addr, result) {
	if len(lines) == 0 {
		return netip.Addr{}, absent
	}
	for i := len(lines) - 1; i >= 0; i-- {
		hops := strings.Split(lines[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop := strings.TrimSpace(hops[j])
			if hop == "" && len(hops) == 1 {
				continue // an empty line
			}
			a, ok := parseNode(hop)
			if !ok {
				return netip.Addr{}, malformed
			}
			if !r.Trusted(a) {
				return a, found
			}
		}
	}
	return netip.Addr{}, absent
}

// fromForwarded reads Forwarded lines (RFC 7239): comma-separated elements
// of semicolon-separated pairs; the for= of each element is its hop.
func (r *Resolver) fromForwarded(lines []string) (netip.Addr, result) {
	if len(lines) == 0 {
		return netip.Addr{}, absent
	}
	var elems []string
	for _, l := range lines {
		es, ok := splitElements(l)
		if !ok {
			return netip.Addr{}, malformed
		}
		elems = append(elems, es...)
	}
	for i := len(elems) - 1; i >= 0; i-- {
		node, ok := forValue(elems[i])
		if !ok {
			return netip.Addr{}, malformed
		}
		a, ok := parseNode(node)
		if !ok {
			// "unknown", an obfuscated "_hidden", or garbage: the hop
			// cannot be skipped, and has no address.
			return netip.Addr{}, malformed
		}
		if !r.Trusted(a) {
			return a, found
		}
	}
	return netip.Addr{}, absent
}

// splitElements splits a Forwarded line on the commas outside quoted
// strings; ok is false for an unterminated quote.
func splitElements(line string) ([]string, bool) {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			out = append(out, line[start:i])
			start = i + 1
		}
	}
	if quoted {
		return nil, false
	}
	out = append(out, line[start:])
	return out, true
}

// forValue is the for= value of one Forwarded element, unquoted; ok is
// false when it has none or a pair is malformed.
func forValue(elem string) (string, bool) {
	var val string
	var seen bool
	for pair := range splitPairs(elem) {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return "", false
		}
		if !strings.EqualFold(strings.TrimSpace(k), "for") {
			continue
		}
		if seen {
			return "", false // two for= in one element
		}
		seen = true
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, `"`) {
			u, ok := unquote(v)
			if !ok {
				return "", false
			}
			v = u
		}
		val = v
	}
	return val, seen
}

// splitPairs yields the semicolon-separated pairs of an element, keeping
// quoted strings whole.
func splitPairs(elem string) func(func(string) bool) {
	return func(yield func(string) bool) {
		start, quoted := 0, false
		for i := 0; i < len(elem); i++ {
			switch c := elem[i]; {
			case quoted && c == '\\':
				i++
			case c == '"':
				quoted = !quoted
			case !quoted && c == ';':
				if !yield(elem[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(elem[start:])
	}
}

// unquote undoes an HTTP quoted-string.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				return "", false
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), true
}

// parseNode reads one hop: an IPv4 address, an IPv6 address bare or in
// brackets, either with a port; not "unknown" nor an obfuscated
// identifier.
func parseNode(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	// RFC 7239 allows an obfuscated port ("[2001:db8::1]:_p") and a
	// bracketed address without one.
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := s[end+1:]
		if rest != "" && !validPort(rest) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap().WithZone(""), true
	}
	if host, port, ok := strings.Cut(s, ":"); ok && validPort(":"+port) {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	}
	return netip.Addr{}, false
}

// validPort is ":" and a port number or an obfuscated port ("_…").
func validPort(s string) bool {
	if len(s) < 2 || s[0] != ':' {
		return false
	}
	p := s[1:]
	if p[0] == '_' {
		for _, c := range p[1:] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return true
	}
	if len(p) > 5 {
		return false
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Package origin is the allowed-origins vocabulary of Hissuno: it parses,
// validates and canonicalises a project's allowed-origin patterns
// (https://myapp.com, *.myapp.com, http://localhost:3000) and the Origin
// header of a request, and matches one against the other, by scheme, IDNA
// host and port, never by string prefix or suffix. The decision core, the
// rotator's validation of a settings change and the CLI all use it, so a
// pattern means the same everywhere.
//
// It does no I/O and holds no project: a Cache of parsed headers is shared
// by every project.
package origin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// ErrInvalidPattern is wrapped by every error ParsePattern returns; the
// message names the pattern and says what is wrong with it.
var ErrInvalidPattern = errors.New("invalid allowed-origin pattern")

// errNotOrigin is wrapped by Parse errors: the header is not a bare
// serialized origin and matches nothing.
var errNotOrigin = errors.New("not a bare serialized origin")

// hostProfile maps a host name the way a browser does before it puts it in an
// Origin header: UTS #46 lookup mapping (case folding, NFC), IDNA to ASCII,
// letters-digits-hyphen only, DNS label lengths checked.
var hostProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(true),
)

// Pattern is one validated entry of a project's allowed-origins list:
// an exact origin (`https://myapp.com`, `http://localhost:3000`) or a
// subdomain wildcard (`*.myapp.com`). A pattern without a scheme means https;
// without a port, the scheme's default port.
type Pattern struct {
	scheme   string // "https" or "http"
	host     string // ASCII, lower case; for a wildcard, the parent domain
	port     int    // the effective port: 443 or 80 where none was written
	wildcard bool   // true for `*.domain`: any subdomain, never domain itself
}

// Origin is a parsed request Origin header: a scheme, an ASCII host and an
// effective port.
type Origin struct {
	scheme string
	host   string
	port   int
	ip     bool
}

// Wildcard reports whether the pattern is a subdomain wildcard
// (`*.myapp.com`).
func (p Pattern) Wildcard() bool { return p.wildcard }

// ParsePattern validates an allowed-origin pattern and returns it in parsed
// form. It refuses anything that is not `[scheme://]host[:port]` or
// `[scheme://]*.domain[:port]`: `*`, `https://*`, a wildcard over a public
// suffix such as `*.com`, paths, queries, fragments, user info, schemes other
// than http and https, and white space. The error names the pattern.
func ParsePattern(s string) (Pattern, error) {
	fail := func(why string) (Pattern, error) {
		return Pattern{}, fmt.Errorf("%w %q: %s", ErrInvalidPattern, s, why)
	}
	if s == "" {
		return fail("empty; write an origin such as https://myapp.com or *.myapp.com")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\u00a0' || r == '\u3000' }); i >= 0 {
		return fail("contains white space or a control character")
	}
	rest, scheme := s, "https"
	if i := strings.Index(s, "://"); i >= 0 {
		scheme = strings.ToLower(s[:i])
		rest = s[i+3:]
		if scheme != "https" && scheme != "http" {
			return fail(fmt.Sprintf("scheme %q is not allowed; only https:// (the default) and http://", scheme))
		}
	}
	if strings.ContainsAny(rest, "/?#@\\%,;") {
		return fail("a pattern is an origin only: no path (not even a trailing slash), query, fragment, user info or list separator")
	}
	wildcard := strings.HasPrefix(rest, "*.")
	if wildcard {
		rest = rest[2:]
	}
	if strings.Contains(rest, "*") {
		return fail(`a wildcard is only allowed as a leading "*." before a domain, as in *.myapp.com`)
	}
	hostPart, port, err := splitHostPort(rest, scheme)
	if err != nil {
		return fail(err.Error())
	}
	host, isIP, err := canonicalHost(hostPart)
	if err != nil {
		return fail(err.Error())
	}
	if wildcard {
		if isIP {
			return fail("a wildcard needs a domain name, not an IP address")
		}
		if suffix, _ := publicsuffix.PublicSuffix(host); suffix == host {
			return fail(fmt.Sprintf("*.%s would allow every site under the public suffix %q; name your own domain, as in *.myapp.com", host, host))
		}
	}
	return Pattern{scheme: scheme, host: host, port: port, wildcard: wildcard}, nil
}

// ParsePatterns validates every pattern of an allowed-origins list and
// returns the first error.
func ParsePatterns(list []string) ([]Pattern, error) {
	out := make([]Pattern, 0, len(list))
	for _, s := range list {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// CanonicalPatterns validates an allowed-origins list and returns it in
// canonical form (Pattern.String), without duplicates. The error names the
// first bad pattern.
func CanonicalPatterns(list []string) ([]string, error) {
	patterns, err := ParsePatterns(list)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if s := p.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// String is the canonical form of the pattern: scheme written out, host in
// ASCII lower case, port only where it is not the scheme's default.
func (p Pattern) String() string {
	var b strings.Builder
	b.WriteString(p.scheme)
	b.WriteString("://")
	if p.wildcard {
		b.WriteString("*.")
	}
	if strings.Contains(p.host, ":") {
		b.WriteString("[" + p.host + "]")
	} else {
		b.WriteString(p.host)
	}
	if p.port != defaultPort(p.scheme) {
		b.WriteString(":" + strconv.Itoa(p.port))
	}
	return b.String()
}

// Match reports whether the origin is allowed by the pattern: same scheme,
// same effective port, and the same host (exact pattern) or a host that is a
// subdomain of the pattern's domain at any depth (wildcard pattern).
func (p Pattern) Match(o Origin) bool {
	if p.scheme != o.scheme || p.port != o.port {
		return false
	}
	if !p.wildcard {
		return p.host == o.host
	}
	if o.ip || len(o.host) <= len(p.host)+1 {
		return false
	}
	// Both hosts are canonical ASCII, so a label boundary is a dot.
	return o.host[len(o.host)-len(p.host)-1] == '.' && o.host[len(o.host)-len(p.host):] == p.host
}

// Parse parses an Origin header. It accepts a bare serialized origin
// only (`scheme://host[:port]`, http or https, nothing before or after):
// anything else (a path, even "/", a query, a fragment, user info, a trailing
// dot, several origins, white space) is an error, and such a header matches
// no pattern.
func Parse(h string) (Origin, error) {
	fail := func(why string) (Origin, error) {
		return Origin{}, fmt.Errorf("%w: %s", errNotOrigin, why)
	}
	if strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f || r == ',' || r == '\\' || r == '%' }) {
		return fail("white space, control characters, commas, backslashes and escapes never appear in an origin")
	}
	u, err := url.Parse(h)
	if err != nil {
		return fail(err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fail("scheme must be http or https")
	}
	if u.Opaque != "" || u.User != nil || u.Path != "" || u.RawPath != "" || u.ForceQuery || u.RawQuery != "" ||
		u.Fragment != "" || strings.ContainsAny(h, "?#@") || u.Host == "" || strings.HasSuffix(u.Host, ":") ||
		!strings.HasPrefix(h[len(u.Scheme):], "://") {
		return fail("only scheme://host[:port] is an origin")
	}
	port := defaultPort(u.Scheme)
	if p := u.Port(); p != "" {
		if port, err = parsePort(p); err != nil {
			return fail(err.Error())
		}
	}
	host, isIP, err := canonicalHost(u.Hostname())
	if err != nil {
		return fail(err.Error())
	}
	return Origin{scheme: u.Scheme, host: host, port: port, ip: isIP}, nil
}

// String is the origin in serialized form.
func (o Origin) String() string {
	return Pattern{scheme: o.scheme, host: o.host, port: o.port}.String()
}

func splitHostPort(s, scheme string) (host string, port int, err error) {
	port = defaultPort(scheme)
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, errors.New("an IPv6 address must be closed with ]")
		}
		host, s = s[1:end], s[end+1:]
		if s == "" {
			return host, port, nil
		}
		if s[0] != ':' {
			return "", 0, errors.New("only a :port may follow an IPv6 address")
		}
		port, err = parsePort(s[1:])
		return host, port, err
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, port, nil
	}
	if strings.Contains(s[:i], ":") {
		return "", 0, errors.New("write IPv6 addresses in brackets, as in http://[::1]:8080")
	}
	port, err = parsePort(s[i+1:])
	return s[:i], port, err
}

func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

// canonicalHost turns a host into the form origins compare in: an IP address
// in its canonical text, or a domain name in ASCII (IDNA) lower case.
func canonicalHost(h string) (host string, isIP bool, err error) {
	if h == "" {
		return "", false, errors.New("the host is missing")
	}
	if strings.HasSuffix(h, ".") {
		return "", false, errors.New("a trailing dot is not allowed in a host")
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return "", false, errors.New("an IPv6 zone is not allowed")
		}
		return ip.Unmap().String(), true, nil
	}
	if net.ParseIP(h) != nil || strings.Contains(h, ":") {
		return "", false, fmt.Errorf("host %q is not a valid address", h)
	}
	if !utf8.ValidString(h) {
		return "", false, errors.New("the host is not valid UTF-8")
	}
	a, err := hostProfile.ToASCII(h)
	if err != nil {
		return "", false, fmt.Errorf("host %q is not a valid domain name", h)
	}
	// Mapping may turn a Unicode full stop (U+3002, U+FF61, …) into a
	// trailing dot.
	if strings.HasSuffix(a, ".") {
		return "", false, errors.New("a trailing dot is not allowed in a host")
	}
	// The ASCII form must be its own canonical form, or a pattern saved in
	// it would not parse back (and an origin would compare unstably).
	if again, err := hostProfile.ToASCII(a); err != nil || again != a {
		return "", false, fmt.Errorf("host %q is not a valid domain name", h)
	}
	return a, false, nil
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// maxCachedOrigins bounds the parsed-origin cache; when full it starts over.
const maxCachedOrigins = 4096

// Cache remembers parsed Origin headers: a project's widget sends the
// same few origins again and again, and parsing one (net/url, IDNA) was a
// third of a cached decision. Only well-formed origins are kept; the
// parse does not depend on any project, so one cache serves them all.
type Cache struct {
	mu sync.RWMutex
	m  map[string]Origin
}

// Parse is Parse through the cache; the zero Cache is ready for use and
// safe for concurrent use.
func (c *Cache) Parse(h string) (Origin, error) {
	c.mu.RLock()
	o, ok := c.m[h]
	c.mu.RUnlock()
	if ok {
		return o, nil
	}
	o, err := Parse(h)
	if err != nil {
		return o, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedOrigins {
		c.m = make(map[string]Origin, 64)
	}
	c.m[h] = o
	c.mu.Unlock()
	return o, nil
}

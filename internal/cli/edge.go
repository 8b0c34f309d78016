package cli

import (
	"flag"
	"net/netip"
	"strings"

	"github.com/hissuno/widgetauth/internal/clientip"
	"github.com/hissuno/widgetauth/internal/ingress"
)

// edgeFlags are the ingress's flags for its public edge: whom to believe
// about the client's address, and the limits.
type edgeFlags struct {
	trusted prefixList
	limits  ingress.Limits
	conns   ingress.Config // only its connection fields
	rollup  ingress.Rollup
}

func (e *edgeFlags) register(fs *flag.FlagSet) {
	fs.Var(&e.trusted, "trusted-proxies", "CIDRs (or addresses) of the load balancers in front, comma-separated: only from them are Forwarded and X-Forwarded-For read for the client's IP; empty: the client is the TCP peer [HISSUNO_TRUSTED_PROXIES]")
	l := &e.limits
	fs.Float64Var(&l.IP.Rate, "rate-ip", ingress.DefaultIPLimit.Rate, "requests a second per client IP (per /64 for IPv6) at this ingress, then 429; 0 or negative: no limit [HISSUNO_RATE_IP]")
	fs.IntVar(&l.IP.Burst, "burst-ip", ingress.DefaultIPLimit.Burst, "requests a client IP may send at once above --rate-ip [HISSUNO_BURST_IP]")
	fs.Float64Var(&l.Project.Rate, "rate-project", ingress.DefaultProjectLimit.Rate, "requests a second per project at this ingress, then 429; 0 or negative: no limit [HISSUNO_RATE_PROJECT]")
	fs.IntVar(&l.Project.Burst, "burst-project", ingress.DefaultProjectLimit.Burst, "requests a project may get at once above --rate-project [HISSUNO_BURST_PROJECT]")
	fs.Float64Var(&l.Unseen.Rate, "rate-unseen-project", ingress.DefaultUnseenLimit.Rate, "requests a second, all together, for projectIds no verifier has known at this ingress yet (unknown ones, and a project's first), then 429; 0 or negative: no limit [HISSUNO_RATE_UNSEEN_PROJECT]")
	fs.IntVar(&l.Unseen.Burst, "burst-unseen-project", ingress.DefaultUnseenLimit.Burst, "requests for unseen projectIds at once above --rate-unseen-project [HISSUNO_BURST_UNSEEN_PROJECT]")
	c := &e.conns
	fs.IntVar(&c.MaxConns, "max-conns", ingress.DefaultMaxConns, "connections open at once; one more is closed at once; negative: no cap [HISSUNO_MAX_CONNS]")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", ingress.DefaultMaxConnsPerIP, "connections one client IP (per /64 for IPv6) holds open; a trusted proxy is exempt; negative: no cap [HISSUNO_MAX_CONNS_PER_IP]")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", ingress.DefaultReadHeaderTimeout, "time to send a request's headers; a slower client is cut off [HISSUNO_READ_HEADER_TIMEOUT]")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", ingress.DefaultReadTimeout, "time to send a whole request, body included [HISSUNO_READ_TIMEOUT]")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", ingress.DefaultIdleTimeout, "a keep-alive connection idle that long is closed [HISSUNO_IDLE_TIMEOUT]")
	fs.IntVar(&l.Keys, "rate-keys", ingress.DefaultLimitKeys, "client IPs, and projects, whose buckets are kept (about 150 B each); the least recently seen go first [HISSUNO_RATE_KEYS]")
	fs.IntVar(&e.rollup.Keys, "throttled-keys", ingress.DefaultRollupKeys, "(project, client IP, reason) keys of throttled requests counted apart a minute for the audit; the rest are counted in one overflow row per reason [HISSUNO_THROTTLED_KEYS]")
}

// apply sets the ingress configuration from the flags.
func (e *edgeFlags) apply(cfg *ingress.Config) {
	cfg.TrustedProxies = e.trusted
	cfg.Limits = e.limits
	cfg.Rollup.Keys = e.rollup.Keys
	cfg.MaxConns, cfg.MaxConnsPerIP = e.conns.MaxConns, e.conns.MaxConnsPerIP
	cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.IdleTimeout = e.conns.ReadHeaderTimeout, e.conns.ReadTimeout, e.conns.IdleTimeout
}

// prefixList is a flag of comma-separated CIDRs; each use adds to it.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	ps, err := clientip.ParsePrefixes(v)
	if err != nil {
		return err
	}
	*l = append(*l, ps...)
	return nil
}

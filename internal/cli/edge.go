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
}

func (e *edgeFlags) register(fs *flag.FlagSet) {
	fs.Var(&e.trusted, "trusted-proxies", "CIDRs (or addresses) of the load balancers in front, comma-separated: only from them are Forwarded and X-Forwarded-For read for the client's IP; empty: the client is the TCP peer [HISSUNO_TRUSTED_PROXIES]")
}

// apply sets the ingress configuration from the flags.
func (e *edgeFlags) apply(cfg *ingress.Config) {
	cfg.TrustedProxies = e.trusted
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

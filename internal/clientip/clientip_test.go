package clientip_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/hissuno/widgetauth/internal/clientip"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted, err := clientip.ParsePrefixes("10.0.0.0/8, 2001:db8:ffff::/48,192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	r := clientip.New(trusted)
	for _, tc := range []struct {
		name   string
		peer   string
		xff    []string
		fwd    []string
		want   string
		noAddr bool
	}{
		{name: "no headers", peer: "203.0.113.5:4000", want: "203.0.113.5"},
		{name: "untrusted peer, spoofed XFF ignored", peer: "203.0.113.5:4000", xff: []string{"1.2.3.4"}, want: "203.0.113.5"},
		{name: "untrusted peer, spoofed Forwarded ignored", peer: "203.0.113.5:4000", fwd: []string{"for=1.2.3.4"}, want: "203.0.113.5"},
		{name: "untrusted peer inside a trusted-looking chain", peer: "198.51.100.1:1", xff: []string{"1.2.3.4, 10.0.0.1"}, want: "198.51.100.1"},
		{name: "trusted peer, no header", peer: "10.1.2.3:5000", want: "10.1.2.3"},
		{name: "trusted peer, XFF", peer: "10.1.2.3:5000", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "client's spoofed XFF prefix is not the client", peer: "10.1.2.3:5000", xff: []string{"1.2.3.4, 198.51.100.9"}, want: "198.51.100.9"},
		{name: "chain through trusted proxies", peer: "10.1.2.3:5000", xff: []string{"1.2.3.4, 198.51.100.9, 10.9.9.9, 192.0.2.7"}, want: "198.51.100.9"},
		{name: "several XFF lines are one list", peer: "10.1.2.3:5000", xff: []string{"1.2.3.4", "198.51.100.9, 10.0.0.2", "10.0.0.3"}, want: "198.51.100.9"},
		{name: "every hop trusted", peer: "10.1.2.3:5000", xff: []string{"10.0.0.2, 10.0.0.3"}, want: "10.1.2.3"},
		{name: "XFF with ports", peer: "10.1.2.3:5000", xff: []string{"198.51.100.9:1234"}, want: "198.51.100.9"},
		{name: "XFF IPv6 bare", peer: "10.1.2.3:5000", xff: []string{"2001:db8:1::5"}, want: "2001:db8:1::5"},
		{name: "XFF IPv6 bracketed with port", peer: "10.1.2.3:5000", xff: []string{"[2001:db8:1::5]:443"}, want: "2001:db8:1::5"},
		{name: "XFF IPv4-mapped", peer: "10.1.2.3:5000", xff: []string{"::ffff:198.51.100.9"}, want: "198.51.100.9"},
		{name: "XFF garbage falls back to the peer", peer: "10.1.2.3:5000", xff: []string{"1.2.3.4, not-an-ip"}, want: "10.1.2.3"},
		{name: "XFF empty hop falls back to the peer", peer: "10.1.2.3:5000", xff: []string{"1.2.3.4,,"}, want: "10.1.2.3"},
		{name: "garbage left of the client is never read", peer: "10.1.2.3:5000", xff: []string{"garbage, 198.51.100.9"}, want: "198.51.100.9"},
		{name: "Forwarded for=", peer: "10.1.2.3:5000", fwd: []string{"for=198.51.100.9;proto=https;by=10.1.2.3"}, want: "198.51.100.9"},
		{name: "Forwarded case-insensitive key", peer: "10.1.2.3:5000", fwd: []string{"For=198.51.100.9"}, want: "198.51.100.9"},
		{name: "Forwarded chain", peer: "10.1.2.3:5000", fwd: []string{`for=1.2.3.4, for=198.51.100.9;proto=https, for="10.0.0.9"`}, want: "198.51.100.9"},
		{name: "Forwarded IPv6 quoted with port", peer: "10.1.2.3:5000", fwd: []string{`for="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17"},
		{name: "Forwarded IPv6 quoted", peer: "10.1.2.3:5000", fwd: []string{`for="[2001:db8:cafe::17]"`}, want: "2001:db8:cafe::17"},
		{name: "Forwarded obfuscated port", peer: "10.1.2.3:5000", fwd: []string{`for="198.51.100.9:_abc"`}, want: "198.51.100.9"},
		{name: "Forwarded obfuscated client falls back to the peer", peer: "10.1.2.3:5000", fwd: []string{"for=1.2.3.4, for=_hidden"}, want: "10.1.2.3"},
		{name: "Forwarded unknown falls back to the peer", peer: "10.1.2.3:5000", fwd: []string{"for=1.2.3.4, for=unknown"}, want: "10.1.2.3"},
		{name: "obfuscated trusted-side hop after the client", peer: "10.1.2.3:5000", fwd: []string{"for=198.51.100.9, for=_proxy"}, want: "10.1.2.3"},
		{name: "Forwarded element without for= falls back", peer: "10.1.2.3:5000", fwd: []string{"proto=https"}, want: "10.1.2.3"},
		{name: "Forwarded unterminated quote falls back", peer: "10.1.2.3:5000", fwd: []string{`for="198.51.100.9`}, want: "10.1.2.3"},
		{name: "Forwarded quoted comma stays in its element", peer: "10.1.2.3:5000", fwd: []string{`for=198.51.100.9;ext="a,b"`}, want: "198.51.100.9"},
		{name: "Forwarded bare IPv6 unquoted is malformed", peer: "10.1.2.3:5000", fwd: []string{"for=[2001:db8::1"}, want: "10.1.2.3"},
		{name: "Forwarded two lines", peer: "10.1.2.3:5000", fwd: []string{"for=1.2.3.4", "for=198.51.100.9"}, want: "198.51.100.9"},
		{name: "both headers agree", peer: "10.1.2.3:5000", fwd: []string{"for=198.51.100.9"}, xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "both headers disagree: the peer", peer: "10.1.2.3:5000", fwd: []string{"for=1.2.3.4"}, xff: []string{"198.51.100.9"}, want: "10.1.2.3"},
		{name: "one header malformed: the peer", peer: "10.1.2.3:5000", fwd: []string{"for=_x"}, xff: []string{"198.51.100.9"}, want: "10.1.2.3"},
		{name: "trusted IPv6 peer", peer: "[2001:db8:ffff::1]:443", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "IPv4-mapped trusted peer", peer: "[::ffff:10.0.0.1]:443", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "trusted single address", peer: "192.0.2.7:80", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "untrusted neighbour of a single address", peer: "192.0.2.8:80", xff: []string{"198.51.100.9"}, want: "192.0.2.8"},
		{name: "peer with zone", peer: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "no address", peer: "pipe", noAddr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.fwd {
				h.Add("Forwarded", v)
			}
			got, ok := r.ClientIP(tc.peer, h)
			if ok == tc.noAddr {
				t.Fatalf("ok = %v", ok)
			}
			if tc.noAddr {
				return
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Errorf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNoTrustedProxies(t *testing.T) {
	t.Parallel()
	h := http.Header{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=1.2.3.4"}}
	for _, r := range []*clientip.Resolver{nil, {}, clientip.New(nil)} {
		if got, _ := r.ClientIP("127.0.0.1:9", h); got != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("ClientIP = %s, want the peer", got)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     []string
		err      bool
	}{
		{name: "empty", in: ""},
		{name: "list", in: "10.0.0.0/8, 2001:db8::/32", want: []string{"10.0.0.0/8", "2001:db8::/32"}},
		{name: "bare addresses", in: "192.0.2.1,::1", want: []string{"192.0.2.1/32", "::1/128"}},
		{name: "host bits masked", in: "10.1.2.3/8", want: []string{"10.0.0.0/8"}},
		{name: "mapped prefix", in: "::ffff:10.0.0.0/104", want: []string{"10.0.0.0/8"}},
		{name: "garbage", in: "10.0.0.0/8,nope", err: true},
		{name: "bad bits", in: "10.0.0.0/33", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := clientip.ParsePrefixes(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].String() != tc.want[i] {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

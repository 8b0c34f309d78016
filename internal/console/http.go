package console

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"

	"github.com/hissuno/widgetauth/internal/redact"
)

// MaxBodyBytes bounds a request body; a larger one is refused.
const MaxBodyBytes = 64 << 10

// contentSecurityPolicy allows the console's own scripts, styles and
// images only: no inline script, no framing, no plug-ins, forms and
// fetches to the console itself.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// protect wraps the console's routes: security headers on every answer,
// cross-origin protection of every request that changes something (Go's
// CrossOriginProtection refuses a non-safe request a browser marks
// cross-site with Sec-Fetch-Site, or whose Origin is not the Host), and a
// bound on request bodies.
func (c *Console) protect(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The path and Origin are the forged page's to choose: scrubbed.
		c.log.Warn().Str("method", r.Method).Str("path", redact.String(r.URL.Path)).Str("origin", redact.String(r.Header.Get("Origin"))).
			Str("sec_fetch_site", redact.String(r.Header.Get("Sec-Fetch-Site"))).Str("client_ip", clientIP(r)).Msg("cross-origin request refused")
		writeProblem(w, http.StatusForbidden, "cross-origin request refused: the console accepts changes from its own pages only")
	}))
	guarded := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if c.cfg.TLSCertFile != "" || c.cfg.TLSProxy {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if strings.HasPrefix(r.URL.Path, APIPrefix+"/") {
			h.Set("Cache-Control", "no-store")
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		guarded.ServeHTTP(w, r)
	})
}

// writeProblem answers an RFC 9457 problem, as the API's errors are.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

// clientIP is the address the request came from: the peer's. A reverse
// proxy in front hides the browser's; trusting its forwarding headers is
// configured with the edge, not here.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

package ingress

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/throttle"
)

// Default rate limits, per ingress: far above what a real site sends, so
// that only a flood meets them (README "Operations", "Rate limits").
var (
	// DefaultIPLimit is per client address (per /64 for IPv6): a busy
	// office or carrier NAT behind one address stays far under it.
	DefaultIPLimit = throttle.Limit{Rate: 100, Burst: 1000}
	// DefaultProjectLimit is per project a verifier has known.
	DefaultProjectLimit = throttle.Limit{Rate: 2000, Burst: 20000}
	// DefaultUnseenLimit is one bucket shared by every projectId no
	// verifier has known at this ingress yet: a project's first requests
	// after the ingress starts, and every unknown projectId.
	DefaultUnseenLimit = throttle.Limit{Rate: 100, Burst: 1000}
)

// DefaultLimitKeys bounds each table of buckets (client addresses,
// projects): about 150 bytes a key.
const DefaultLimitKeys = 100_000

// Limits are the ingress's rate limits, checked before anything is
// published. A zero Limit gets its default; a negative Rate turns that
// limit off.
type Limits struct {
	// IP is per client address (clientip), per /64 for IPv6.
	IP throttle.Limit
	// Project is per project that a verifier has decided as existing (any
	// decision but unknown_project) at this ingress.
	Project throttle.Limit
	// Unseen is one bucket for every other projectId.
	Unseen throttle.Limit
	// Keys bounds each table (addresses, projects); default
	// DefaultLimitKeys. The least recently used key is dropped first.
	Keys int
}

// NoLimits turns every rate limit off (the benchmarks, the flood drill
// through one address).
var NoLimits = Limits{IP: throttle.Limit{Rate: -1}, Project: throttle.Limit{Rate: -1}, Unseen: throttle.Limit{Rate: -1}}

func (l *Limits) setDefaults() {
	for _, d := range []struct {
		l   *throttle.Limit
		def throttle.Limit
	}{{&l.IP, DefaultIPLimit}, {&l.Project, DefaultProjectLimit}, {&l.Unseen, DefaultUnseenLimit}} {
		if *d.l == (throttle.Limit{}) {
			*d.l = d.def
		}
	}
	if l.Keys == 0 {
		l.Keys = DefaultLimitKeys
	}
}

func (l Limits) validate() error {
	for _, c := range []struct {
		name string
		l    throttle.Limit
	}{{"IP", l.IP}, {"project", l.Project}, {"unseen project", l.Unseen}} {
		if c.l.On() && c.l.Burst < 1 {
			return fmt.Errorf("ingress: the %s rate limit needs a burst of at least 1", c.name)
		}
		if math.IsInf(c.l.Rate, 0) || math.IsNaN(c.l.Rate) {
			return fmt.Errorf("ingress: the %s rate limit is not a number", c.name)
		}
	}
	if l.Keys < 1 {
		return fmt.Errorf("ingress: the rate limits must hold at least 1 key")
	}
	return nil
}

// limiter holds the ingress's buckets.
type limiter struct {
	ips      *throttle.Table
	projects *throttle.Table // its keys are the projects a verifier has known
	unseen   *throttle.Table // one key
}

func newLimiter(l Limits) *limiter {
	return &limiter{
		ips:      throttle.NewTable(l.IP, l.Keys),
		projects: throttle.NewTable(l.Project, l.Keys),
		unseen:   throttle.NewTable(l.Unseen, 1),
	}
}

// ipKey is the bucket of a client address: the address, or its /64.
func ipKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// allowIP takes a token of the client's address; ok when a is no address.
func (l *limiter) allowIP(a netip.Addr, ok bool, now time.Time) (bool, time.Duration) {
	if !ok {
		return true, 0
	}
	return l.ips.Allow(ipKey(a), now)
}

// allowProject takes a token of the project's bucket, or of the unseen
// projects' one.
func (l *limiter) allowProject(projectID string, now time.Time) (bool, time.Duration, events.Throttle) {
	if l.projects.Has(projectID) {
		ok, after := l.projects.Allow(projectID, now)
		return ok, after, events.ThrottleProject
	}
	ok, after := l.unseen.Allow("", now)
	return ok, after, events.ThrottleUnseenProject
}

// learn records that a verifier knows the project (Add works with the
// project limit off too).
func (l *limiter) learn(projectID string, now time.Time) {
	l.projects.Add(projectID, now)
}

// throttleMessages explain a 429 in the contract's words.
var throttleMessages = map[events.Throttle]string{
	events.ThrottleIP:            "too many requests from this address",
	events.ThrottleProject:       "too many requests for this project",
	events.ThrottleUnseenProject: "too many requests for projects this ingress does not know yet",
}

// writeThrottled answers 429 with Retry-After (whole seconds, at least 1)
// and counts it.
func writeThrottled(w http.ResponseWriter, reason events.Throttle, after time.Duration) {
	metrics.IngressThrottled.WithLabelValues(string(reason)).Inc()
	secs := max(1, int64(math.Ceil(after.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, ErrorResponse{
		Error:  fmt.Sprintf("%s; retry in %d s", throttleMessages[reason], secs),
		Reason: string(reason),
	})
}

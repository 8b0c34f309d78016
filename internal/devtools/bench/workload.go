package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// kind is what a request of the mix should get.
type kind int

const (
	kindAuthenticated kind = iota // 70 %: a valid token from an allowed origin
	kindAnonymous                 // 15 %: no token on a project without requireToken
	kindUnauthorized              // 10 %: 401 of varied reasons
	kindBlocked                   // 5 %: a blocked origin
)

// request is one prepared connect request: the HTTP body and headers, and
// the status it must get.
type request struct {
	kind   kind
	body   []byte
	origin string
	status int
}

// benchProject is a project the bench creates.
type benchProject struct {
	id           string
	secret       string
	requireToken bool
	origin       string
	// origins is its allowlist: origin and its subdomains.
	origins []string
}

// seedProjects writes n projects straight into the KV bucket (the rotator's
// path costs a round trip each; the verifiers see them through their watch
// either way). Every fourth project accepts anonymous visitors.
func seedProjects(ctx context.Context, nc *nats.Conn, sealer *project.Sealer, n int) ([]benchProject, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]benchProject, 0, n)
	for i := 0; i < n; i++ {
		bp := benchProject{
			id:           fmt.Sprintf("proj_bench_%06d", i),
			requireToken: i%4 != 0,
			origin:       fmt.Sprintf("https://shop%d.example", i),
		}
		bp.origins = []string{bp.origin, fmt.Sprintf("https://*.shop%d.example", i)}
		rec, secret, err := project.New(sealer, bp.id, "bench "+bp.id, bp.requireToken, bp.origins, now)
		if err != nil {
			return nil, err
		}
		bp.secret = secret
		b, err := rec.Encode()
		if err != nil {
			return nil, err
		}
		if _, err := js.PublishAsync("$KV."+events.BucketProjects+"."+bp.id, b); err != nil {
			return nil, fmt.Errorf("seed project %s: %w", bp.id, err)
		}
		out = append(out, bp)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Minute):
		return nil, fmt.Errorf("seeding %d projects did not finish in 5 minutes", n)
	}
	return out, nil
}

// buildRequests prepares a pool of requests in the mix of the issue: 70 %
// authenticated accepts, 15 % anonymous accepts, 10 % 401 of varied
// reasons, 5 % blocked origins, spread over every project. Tokens repeat
// (a widget reconnects with the token its page holds), users differ.
func buildRequests(projects []benchProject, n int, rng *rand.Rand) ([]request, error) {
	now := time.Now()
	var anon, strict []benchProject
	for _, p := range projects {
		if p.requireToken {
			strict = append(strict, p)
		} else {
			anon = append(anon, p)
		}
	}
	if len(anon) == 0 || len(strict) == 0 {
		return nil, fmt.Errorf("the mix needs at least 2 projects")
	}
	mint := func(p benchProject, user string, exp time.Time, key string) (string, error) {
		return widgettoken.Mint(key, widgettoken.Claims{UserID: user, UserMetadata: map[string]string{"name": "User " + user, "plan": "pro"}, IssuedAt: now, Expires: exp})
	}
	body := func(v map[string]any) []byte {
		b, _ := json.Marshal(v)
		return b
	}
	out := make([]request, 0, n)
	for i := 0; i < n; i++ {
		roll := rng.IntN(100)
		user := fmt.Sprintf("user-%d", rng.IntN(100_000))
		switch {
		case roll < 70:
			p := strict[rng.IntN(len(strict))]
			tok, err := mint(p, user, now.Add(24*time.Hour), p.secret)
			if err != nil {
				return nil, err
			}
			out = append(out, request{kind: kindAuthenticated, status: 200, origin: "https://app." + p.origin[len("https://"):],
				body: body(map[string]any{"projectId": p.id, "widgetToken": tok, "userId": user})})
		case roll < 85:
			p := anon[rng.IntN(len(anon))]
			out = append(out, request{kind: kindAnonymous, status: 200, origin: p.origin,
				body: body(map[string]any{"projectId": p.id, "userId": "visitor-" + user, "userMetadata": map[string]string{"page": "/pricing"}})})
		case roll < 95:
			p := strict[rng.IntN(len(strict))]
			r := request{kind: kindUnauthorized, status: 401, origin: p.origin}
			switch rng.IntN(5) {
			case 0: // expired
				tok, err := mint(p, user, now.Add(-time.Hour), p.secret)
				if err != nil {
					return nil, err
				}
				r.body = body(map[string]any{"projectId": p.id, "widgetToken": tok})
			case 1: // signed with another key
				tok, err := mint(p, user, now.Add(time.Hour), "sk_live_not_the_project_key_0123456789abcdef")
				if err != nil {
					return nil, err
				}
				r.body = body(map[string]any{"projectId": p.id, "widgetToken": tok})
			case 2: // malformed
				r.body = body(map[string]any{"projectId": p.id, "widgetToken": "not.a.jwt"})
			case 3: // token required
				r.body = body(map[string]any{"projectId": p.id, "userId": user})
			default: // unknown project
				r.body = body(map[string]any{"projectId": "proj_unknown_" + user})
			}
			out = append(out, r)
		default:
			p := strict[rng.IntN(len(strict))]
			tok, err := mint(p, user, now.Add(24*time.Hour), p.secret)
			if err != nil {
				return nil, err
			}
			out = append(out, request{kind: kindBlocked, status: 403, origin: "https://evil" + p.origin[len("https://"):],
				body: body(map[string]any{"projectId": p.id, "widgetToken": tok})})
		}
	}
	return out, nil
}

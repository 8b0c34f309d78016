package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
)

// permission is what an operation needs of the account or token asking.
type permission string

const (
	// permPublic: no one needs to be signed in (signing in itself).
	permPublic permission = ""
	// permSignedIn: any account or token (who am I, sign out).
	permSignedIn permission = "signed-in"
	// permAccount: a signed-in account, not a token (changing one's own
	// password).
	permAccount permission = "account"
	// permReadProjects: settings, fingerprints, revocations, origin tests.
	permReadProjects permission = "projects:read"
	// permChangeProjects: create, update, rotate, revoke; the answers of
	// create and rotate hold a new secret key.
	permChangeProjects permission = "projects:change"
	// permReadAudit: decisions, series, users, admin events, export.
	permReadAudit permission = "audit:read"
	// permManageAccounts: accounts and API tokens.
	permManageAccounts permission = "accounts:manage"
)

// allows is the role × permission table: owner everything, admin projects
// and the audit, security reads only (settings, fingerprints, the audit,
// admin events; never a change, never a key).
func allows(r account.Role, p permission) bool {
	switch p {
	case permPublic, permSignedIn, permAccount:
		return true
	case permReadProjects, permReadAudit:
		return r == account.RoleOwner || r == account.RoleAdmin || r == account.RoleSecurity
	case permChangeProjects:
		return r == account.RoleOwner || r == account.RoleAdmin
	case permManageAccounts:
		return r == account.RoleOwner
	}
	return false
}

// principal is who is asking, as the console authenticated it.
type principal struct {
	// actor is how admin events name it: console:<email> or token:<id>.
	actor string
	// account is the email of an account, the id of a token.
	account string
	role    account.Role
	// projects limits what it may see; nil: every project.
	projects []string
	// session is the session's secret when it signed in with a cookie.
	session string
	// token is set when it is an API token.
	token bool
	client
}

// client is the browser or program a request came from.
type client struct {
	ip        string
	userAgent string
}

// canSee reports whether the principal may see a project: anything else
// answers 404, as a project that does not exist, so ids do not leak.
func (p *principal) canSee(projectID string) bool {
	return p.projects == nil || slices.Contains(p.projects, projectID)
}

// scope is the project restriction of audit queries: nil for every project.
func (p *principal) scope() []string {
	if p.projects == nil {
		return nil
	}
	return append([]string{}, p.projects...)
}

type ctxKey int

const (
	principalKey ctxKey = iota
	clientKey
)

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey).(*principal)
	return p
}

func clientFrom(ctx context.Context) client {
	c, _ := ctx.Value(clientKey).(client)
	return c
}

// Security scheme names in the OpenAPI document.
const (
	schemeSession = "session"
	schemeBearer  = "bearer"
)

// newAPI makes the huma API on mux: its OpenAPI document, its
// authentication middleware and every operation.
func (c *Console) newAPI(mux *http.ServeMux) huma.API {
	config := huma.DefaultConfig("Hissuno console API", "1.0.0")
	config.Info.Description = "The admin API of Hissuno widget authentication: projects, key rotation, revocations, " +
		"the audit of every decision and admin event, accounts and API tokens. Sign in with POST /api/v1/session " +
		"(a session cookie) or send an API token as Authorization: Bearer hst_…."
	config.OpenAPIPath = APIPrefix + "/openapi"
	config.DocsPath = ""
	config.SchemasPath = ""
	config.CreateHooks = nil // no $schema links in answers
	config.RejectUnknownQueryParameters = true
	config.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		schemeSession: {Type: "apiKey", In: "cookie", Name: c.cookieName(), Description: "The session cookie POST /api/v1/session sets."},
		schemeBearer:  {Type: "http", Scheme: "bearer", Description: "An API token (hst_…) an owner made with POST /api/v1/tokens."},
	}
	api := humago.New(mux, config)
	api.UseMiddleware(c.authenticate(api))
	c.registerSession(api)
	c.registerProjects(api)
	c.registerAudit(api)
	c.registerAccounts(api)
	return api
}

// register adds an operation that needs perm, whose handler gets the
// principal asking (nil for permPublic).
func register[I, O any](api huma.API, op huma.Operation, perm permission, h func(ctx context.Context, p *principal, in *I) (*O, error)) {
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata["permission"] = perm
	if op.MaxBodyBytes == 0 {
		// huma answers 413 past its own bound; past protect's
		// http.MaxBytesReader alone it would answer 500.
		op.MaxBodyBytes = MaxBodyBytes
	}
	switch op.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		// protect's cross-origin refusal, which can answer any change.
		op.Errors = appendMissing(op.Errors, http.StatusForbidden)
	}
	if perm != permPublic {
		op.Security = []map[string][]string{{schemeSession: {}}, {schemeBearer: {}}}
		if perm == permAccount {
			op.Security = op.Security[:1]
		}
		op.Errors = appendMissing(op.Errors, http.StatusUnauthorized)
		if perm != permSignedIn {
			op.Errors = appendMissing(op.Errors, http.StatusForbidden)
		}
		op.Description = strings.TrimSpace(op.Description + "\n\nNeeds: " + permissionDoc[perm] + ".")
	}
	huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
		return h(ctx, principalFrom(ctx), in)
	})
}

var permissionDoc = map[permission]string{
	permSignedIn:       "any account or API token",
	permAccount:        "a signed-in account (not an API token)",
	permReadProjects:   "role owner, admin or security",
	permChangeProjects: "role owner or admin",
	permReadAudit:      "role owner, admin or security",
	permManageAccounts: "role owner",
}

func appendMissing(codes []int, code int) []int {
	if slices.Contains(codes, code) {
		return codes
	}
	return append(codes, code)
}

// authenticate resolves who is asking (an API token in Authorization, else
// the session cookie), refuses with 401 when an operation needs someone and
// nobody valid asks, and with 403, recorded as an admin event, when the
// role does not allow the operation or an API token asks for what only an
// account may do.
func (c *Console) authenticate(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		cl := client{ip: clientIP(r), userAgent: clip(r.UserAgent(), events.MaxUserAgentBytes)}
		ctx = huma.WithValue(ctx, clientKey, cl)
		perm, _ := ctx.Operation().Metadata["permission"].(permission)
		if perm == permPublic {
			next(ctx)
			return
		}
		p, err := c.principal(ctx.Context(), r, cl)
		if err != nil {
			if errors.Is(err, errUnauthenticated) {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="hissuno"`)
				_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "sign in first (POST /api/v1/session), or send a valid API token as Authorization: Bearer hst_…")
				return
			}
			c.log.Error().Err(err).Msg("authentication failed")
			_ = huma.WriteErr(api, ctx, http.StatusServiceUnavailable, "the console cannot check who you are right now; try again shortly")
			return
		}
		if perm == permAccount && p.token {
			c.denied(ctx.Context(), p, ctx.Method()+" "+ctx.Operation().Path+": API tokens cannot do this, only a signed-in account")
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "API tokens cannot do this: sign in with an account")
			return
		}
		if !allows(p.role, perm) {
			c.denied(ctx.Context(), p, ctx.Method()+" "+ctx.Operation().Path+": role "+string(p.role)+" lacks "+string(perm))
			_ = huma.WriteErr(api, ctx, http.StatusForbidden, "your role ("+string(p.role)+") does not allow this; needs "+permissionDoc[perm])
			return
		}
		next(huma.WithValue(ctx, principalKey, p))
	}
}

// errUnauthenticated means no valid session or token came with a request.
var errUnauthenticated = errors.New("not signed in")

// principal authenticates a request: its bearer token, else its session
// cookie.
func (c *Console) principal(ctx context.Context, r *http.Request, cl client) (*principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, errUnauthenticated
		}
		tok, err := c.accounts.Authenticate(ctx, strings.TrimSpace(secret))
		if errors.Is(err, account.ErrBadToken) {
			return nil, errUnauthenticated
		}
		if err != nil {
			return nil, err
		}
		role, projects, err := c.tokenPower(ctx, tok)
		if err != nil {
			return nil, err
		}
		return &principal{actor: events.ActorToken + tok.ID, account: tok.ID, role: role, projects: projects, token: true, client: cl}, nil
	}
	ck, err := r.Cookie(c.cookieName())
	if err != nil || ck.Value == "" {
		return nil, errUnauthenticated
	}
	_, acc, err := c.accounts.Session(ctx, ck.Value)
	if errors.Is(err, account.ErrNoSession) {
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	return &principal{actor: events.ActorConsole + acc.Email, account: acc.Email, role: acc.Role, projects: nilIfAll(acc.Projects), session: ck.Value, client: cl}, nil
}

// tokenPower is what an API token may do now: at most what its maker may
// do now, the account that made it or, for a token made with a token, that
// token's power in turn. A token whose maker was disabled, removed, revoked
// or expired since works no more (errUnauthenticated); one whose maker lost
// a role or projects loses them too: no token outlives its maker's power.
func (c *Console) tokenPower(ctx context.Context, tok account.Token) (account.Role, []string, error) {
	role, projects := tok.Role, nilIfAll(tok.Projects)
	for range maxTokenChain {
		if email, ok := strings.CutPrefix(tok.CreatedBy, events.ActorConsole); ok {
			maker, err := c.accounts.Account(ctx, email)
			switch {
			case errors.Is(err, account.ErrNotFound):
				return "", nil, errUnauthenticated
			case err != nil:
				return "", nil, err
			case maker.Disabled:
				return "", nil, errUnauthenticated
			}
			return lesser(role, maker.Role), narrowest(projects, nilIfAll(maker.Projects)), nil
		}
		id, ok := strings.CutPrefix(tok.CreatedBy, events.ActorToken)
		if !ok {
			return "", nil, errUnauthenticated
		}
		maker, err := c.accounts.Token(ctx, id)
		switch {
		case errors.Is(err, account.ErrNotFound):
			return "", nil, errUnauthenticated
		case err != nil:
			return "", nil, err
		case !maker.RevokedAt.IsZero(), !maker.ExpiresAt.IsZero() && !c.cfg.Clock().Before(maker.ExpiresAt):
			return "", nil, errUnauthenticated
		}
		role, projects, tok = lesser(role, maker.Role), narrowest(projects, nilIfAll(maker.Projects)), maker
	}
	return "", nil, errUnauthenticated
}

// maxTokenChain bounds how many tokens made with tokens tokenPower follows
// to an account.
const maxTokenChain = 16

// lesser is the role of the two that may do less.
func lesser(a, b account.Role) account.Role {
	if a.AtMost(b) {
		return a
	}
	return b
}

// narrowest is the projects both lists allow (nil allows every project).
func narrowest(a, b []string) []string {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	both := []string{}
	for _, p := range a {
		if slices.Contains(b, p) {
			both = append(both, p)
		}
	}
	return both
}

// nilIfAll turns an empty project list (every project) into nil.
func nilIfAll(projects []string) []string {
	if len(projects) == 0 {
		return nil
	}
	return projects
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8ValidEnd(s) {
		s = s[:len(s)-1]
	}
	return s
}

func utf8ValidEnd(s string) bool {
	return strings.ToValidUTF8(s, "\uFFFD") == s
}

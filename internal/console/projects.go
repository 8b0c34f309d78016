package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/admin"
	"github.com/hissuno/widgetauth/internal/audit"
	"github.com/hissuno/widgetauth/internal/authz"
	"github.com/hissuno/widgetauth/internal/origin"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/redact"
)

// Project is a project's settings and keys as admins see them: fingerprints
// and versions, never a key.
type Project struct {
	ProjectID    string          `json:"projectId" example:"proj_4f8kq2m9xv3b7n1c"`
	Name         string          `json:"name"`
	RequireToken bool            `json:"requireToken" doc:"Widgets without a valid token are refused (401 token_required)."`
	Origins      []string        `json:"origins" doc:"Allowed origins; empty allows every origin."`
	KeyVersion   int             `json:"keyVersion"`
	Keys         []Key           `json:"keys" doc:"The keys that verify tokens now: the current one and any in its grace period."`
	RevokedUsers int             `json:"revokedUsers"`
	CreatedAt    time.Time       `json:"createdAt"`
	UpdatedAt    time.Time       `json:"updatedAt"`
	Revision     uint64          `json:"revision" doc:"The settings' revision; it grows with every change."`
	Last24h      *ProjectTraffic `json:"last24h,omitempty" doc:"Decisions of the last 24 hours; absent when the audit is not reachable."`
}

// Key describes one key without revealing it.
type Key struct {
	Version     int        `json:"version"`
	Fingerprint string     `json:"fingerprint" doc:"The first 16 hex digits of the key's SHA-256."`
	CreatedAt   time.Time  `json:"createdAt"`
	GraceUntil  *time.Time `json:"graceUntil,omitempty" doc:"A previous key stops verifying then."`
}

// ProjectTraffic is a project's decisions over a period.
type ProjectTraffic struct {
	Decisions   uint64  `json:"decisions"`
	Refused     uint64  `json:"refused"`
	RefusalRate float64 `json:"refusalRate" doc:"Refused over decisions, 0 to 1; 0 without decisions."`
}

func projectOf(v events.ProjectView) Project {
	p := Project{
		ProjectID: v.ProjectID, Name: v.Name, RequireToken: v.RequireToken, Origins: nonNil(v.Origins), KeyVersion: v.KeyVersion,
		RevokedUsers: v.RevokedUsers, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt, Revision: v.Revision, Keys: []Key{},
	}
	for _, k := range v.Keys {
		p.Keys = append(p.Keys, Key{Version: k.Version, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt, GraceUntil: k.ValidUntil})
	}
	return p
}

type ProjectPath struct {
	ProjectID string `path:"projectId" maxLength:"64" doc:"The project's id."`
}

type projectsOutput struct {
	Body struct {
		Projects []Project `json:"projects"`
		// AuditError says why last24h is missing.
		AuditError string `json:"auditError,omitempty"`
	}
}

type projectOutput struct {
	Body Project
}

// KeyAnswer is the answer of a change that made a new secret key: the key
// itself, in this answer only.
type KeyAnswer struct {
	Project   Project `json:"project"`
	SecretKey string  `json:"secretKey" doc:"The new secret key (sk_live_…), shown this once: mint tokens with it. Nothing shows it again."`
	Confirmations
}

// Confirmations are the verifiers that confirmed a change, and those that
// did not in time (they refuse the project's attempts until they catch up).
type Confirmations struct {
	Confirmed   []string `json:"confirmed"`
	Unconfirmed []string `json:"unconfirmed"`
	// AlreadyApplied is true when the same command had been applied
	// before (a retry); no new key is shown then.
	AlreadyApplied bool `json:"alreadyApplied,omitempty"`
}

type keyOutput struct {
	Body KeyAnswer
}

// ChangeAnswer is the answer of a change that made no key.
type ChangeAnswer struct {
	Project Project `json:"project"`
	Confirmations
}

type changeOutput struct {
	Body ChangeAnswer
}

type createProjectInput struct {
	Body struct {
		Reason       string   `json:"reason,omitempty" maxLength:"1000" doc:"Why, in free text; shown with the change in the audit."`
		Name         string   `json:"name" minLength:"1" maxLength:"200"`
		ProjectID    string   `json:"projectId,omitempty" maxLength:"64" doc:"The id; default: a random proj_… id."`
		RequireToken bool     `json:"requireToken,omitempty"`
		Origins      []string `json:"origins,omitempty" maxItems:"100" doc:"https://myapp.com, *.myapp.com, http://localhost:3000; none allows every origin."`
	}
}

type updateProjectInput struct {
	ProjectPath
	Body struct {
		Reason       string   `json:"reason,omitempty" maxLength:"1000" doc:"Why, in free text; shown with the change in the audit."`
		RequireToken *bool    `json:"requireToken,omitempty"`
		Origins      []string `json:"origins,omitempty" maxItems:"100" nullable:"false" doc:"Replaces the whole list; [] empties it (every origin allowed)."`
	}
}

type rotateInput struct {
	ProjectPath
	Body struct {
		Reason       string `json:"reason,omitempty" maxLength:"1000" doc:"Why, in free text; shown with the change in the audit."`
		GraceSeconds int64  `json:"graceSeconds,omitempty" minimum:"0" maximum:"2592000" doc:"Keep the previous key verifying this many seconds (server time); 0 stops it at once."`
	}
}

// Revocation is a user whose tokens issued before a time are refused.
type Revocation struct {
	UserID        string    `json:"userId"`
	RevokedBefore time.Time `json:"revokedBefore" doc:"Tokens of the user issued before this (or without iat) get 401 token_revoked."`
}

type revocationsOutput struct {
	Body struct {
		Revocations []Revocation `json:"revocations"`
	}
}

type revokeInput struct {
	ProjectPath
	Body struct {
		Reason string `json:"reason,omitempty" maxLength:"1000" doc:"Why, in free text; shown with the change in the audit."`
		UserID string `json:"userId" minLength:"1" maxLength:"256"`
	}
}

type unrevokeInput struct {
	ProjectPath
	UserID string `path:"userId" maxLength:"256"`
	Reason string `query:"reason" maxLength:"1000" doc:"Why, in free text; shown in the audit."`
}

type originCheckInput struct {
	ProjectPath
	Origin string `query:"origin" maxLength:"2048" doc:"The Origin header to test, e.g. https://shop.example; empty tests a request without one."`
}

type originCheckOutput struct {
	Body authz.OriginVerdict
}

func (c *Console) registerProjects(api huma.API) {
	tags := []string{"Projects"}
	register(api, huma.Operation{
		OperationID: "list-projects", Method: http.MethodGet, Path: APIPrefix + "/projects", Tags: tags,
		Summary: "List projects", Description: "Every project you may see, with its decisions and refusal rate of the last 24 hours.",
	}, permReadProjects, func(ctx context.Context, p *principal, _ *struct{}) (*projectsOutput, error) {
		entries, err := c.projects.List(ctx)
		if err != nil {
			return nil, c.internal("list projects", err)
		}
		out := &projectsOutput{}
		out.Body.Projects = []Project{}
		var ids []string
		for _, e := range entries {
			if p.canSee(e.Record.ID) {
				out.Body.Projects = append(out.Body.Projects, projectOf(e.Record.View(e.Revision)))
				ids = append(ids, e.Record.ID)
			}
		}
		if len(ids) == 0 {
			return out, nil
		}
		counts, err := c.projectCounts(ctx, ids)
		if err != nil {
			out.Body.AuditError = err.Error()
			return out, nil
		}
		for i := range out.Body.Projects {
			n := counts[out.Body.Projects[i].ProjectID]
			out.Body.Projects[i].Last24h = traffic(n)
		}
		return out, nil
	})

	register(api, huma.Operation{
		OperationID: "create-project", Method: http.MethodPost, Path: APIPrefix + "/projects", Tags: tags, DefaultStatus: http.StatusCreated,
		Summary: "Create a project", Description: "The answer holds the project's secret key, this once.",
		Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity, http.StatusGatewayTimeout},
	}, permChangeProjects, func(ctx context.Context, p *principal, in *createProjectInput) (*keyOutput, error) {
		if p.projects != nil {
			c.denied(ctx, p, "create a project: limited to some projects")
			return nil, huma.Error403Forbidden("an account or token limited to some projects cannot create projects")
		}
		if strings.TrimSpace(in.Body.Name) == "" {
			return nil, huma.Error422UnprocessableEntity("a project needs a name")
		}
		canon, err := origin.CanonicalPatterns(in.Body.Origins)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity(err.Error() + "; fix the origins")
		}
		id := in.Body.ProjectID
		if id == "" {
			if id, err = project.NewID(); err != nil {
				return nil, c.internal("create a project id", err)
			}
		} else if !project.ValidID(id) {
			return nil, huma.Error422UnprocessableEntity("project id " + id + ": use 1 to 64 letters, digits, '-' or '_'")
		}
		cmd := admin.NewCommand(events.CommandCreateProject, id, p.actor)
		cmd.Reason, cmd.Name, cmd.Origins = in.Body.Reason, in.Body.Name, canon
		rt := in.Body.RequireToken
		cmd.RequireToken = &rt
		res, err := c.submit(ctx, p, cmd)
		if err != nil {
			return nil, err
		}
		return &keyOutput{Body: keyAnswer(res)}, nil
	})

	register(api, huma.Operation{
		OperationID: "get-project", Method: http.MethodGet, Path: APIPrefix + "/projects/{projectId}", Tags: tags,
		Summary: "Get a project", Errors: []int{http.StatusNotFound},
	}, permReadProjects, func(ctx context.Context, p *principal, in *ProjectPath) (*projectOutput, error) {
		rec, rev, err := c.project(ctx, p, in.ProjectID)
		if err != nil {
			return nil, err
		}
		out := projectOf(rec.View(rev))
		if counts, err := c.projectCounts(ctx, []string{rec.ID}); err == nil {
			out.Last24h = traffic(counts[rec.ID])
		}
		return &projectOutput{Body: out}, nil
	})

	register(api, huma.Operation{
		OperationID: "update-project", Method: http.MethodPatch, Path: APIPrefix + "/projects/{projectId}", Tags: tags,
		Summary:     "Change a project's settings",
		Description: "requireToken and origins; a field left out is kept. Every verifier holds the change before the answer, or is named unconfirmed.",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusGatewayTimeout},
	}, permChangeProjects, func(ctx context.Context, p *principal, in *updateProjectInput) (*changeOutput, error) {
		if _, _, err := c.project(ctx, p, in.ProjectID); err != nil {
			return nil, err
		}
		if in.Body.RequireToken == nil && in.Body.Origins == nil {
			return nil, huma.Error422UnprocessableEntity("nothing to change: give requireToken or origins")
		}
		cmd := admin.NewCommand(events.CommandUpdateProject, in.ProjectID, p.actor)
		cmd.Reason, cmd.RequireToken = in.Body.Reason, in.Body.RequireToken
		if in.Body.Origins != nil {
			canon, err := origin.CanonicalPatterns(in.Body.Origins)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity(err.Error() + "; fix the origins")
			}
			cmd.Origins, cmd.ClearOrigins = canon, len(canon) == 0
		}
		res, err := c.submit(ctx, p, cmd)
		if err != nil {
			return nil, err
		}
		return &changeOutput{Body: changeAnswer(res)}, nil
	})

	register(api, huma.Operation{
		OperationID: "rotate-key", Method: http.MethodPost, Path: APIPrefix + "/projects/{projectId}/rotate", Tags: tags,
		Summary:     "Rotate the secret key",
		Description: "Makes a new key, in this answer only. Without graceSeconds every previous key stops verifying at once (tokens signed with it get 401 token_bad_signature).",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusGatewayTimeout},
	}, permChangeProjects, func(ctx context.Context, p *principal, in *rotateInput) (*keyOutput, error) {
		if _, _, err := c.project(ctx, p, in.ProjectID); err != nil {
			return nil, err
		}
		cmd := admin.NewCommand(events.CommandRotateKey, in.ProjectID, p.actor)
		cmd.Reason, cmd.GraceSeconds = in.Body.Reason, in.Body.GraceSeconds
		res, err := c.submit(ctx, p, cmd)
		if err != nil {
			return nil, err
		}
		return &keyOutput{Body: keyAnswer(res)}, nil
	})

	register(api, huma.Operation{
		OperationID: "list-revocations", Method: http.MethodGet, Path: APIPrefix + "/projects/{projectId}/revocations", Tags: tags,
		Summary: "List revoked users", Errors: []int{http.StatusNotFound},
	}, permReadProjects, func(ctx context.Context, p *principal, in *ProjectPath) (*revocationsOutput, error) {
		rec, _, err := c.project(ctx, p, in.ProjectID)
		if err != nil {
			return nil, err
		}
		out := &revocationsOutput{}
		out.Body.Revocations = []Revocation{}
		for u, at := range rec.Revocations() {
			out.Body.Revocations = append(out.Body.Revocations, Revocation{UserID: u, RevokedBefore: at})
		}
		slices.SortFunc(out.Body.Revocations, func(a, b Revocation) int { return strings.Compare(a.UserID, b.UserID) })
		return out, nil
	})

	register(api, huma.Operation{
		OperationID: "revoke-user", Method: http.MethodPost, Path: APIPrefix + "/projects/{projectId}/revocations", Tags: tags,
		Summary:     "Revoke a user's tokens",
		Description: "Tokens of the user issued before now (or without iat) are refused with token_revoked; tokens minted from now on work.",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusGatewayTimeout},
	}, permChangeProjects, func(ctx context.Context, p *principal, in *revokeInput) (*changeOutput, error) {
		if _, _, err := c.project(ctx, p, in.ProjectID); err != nil {
			return nil, err
		}
		cmd := admin.NewCommand(events.CommandRevokeUser, in.ProjectID, p.actor)
		cmd.Reason, cmd.UserID = in.Body.Reason, in.Body.UserID
		res, err := c.submit(ctx, p, cmd)
		if err != nil {
			return nil, err
		}
		return &changeOutput{Body: changeAnswer(res)}, nil
	})

	register(api, huma.Operation{
		OperationID: "lift-revocation", Method: http.MethodDelete, Path: APIPrefix + "/projects/{projectId}/revocations/{userId}", Tags: tags,
		Summary: "Lift a user's revocation", Description: "The user's tokens that are otherwise valid work again.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusGatewayTimeout},
	}, permChangeProjects, func(ctx context.Context, p *principal, in *unrevokeInput) (*changeOutput, error) {
		if _, _, err := c.project(ctx, p, in.ProjectID); err != nil {
			return nil, err
		}
		cmd := admin.NewCommand(events.CommandUnrevokeUser, in.ProjectID, p.actor)
		cmd.Reason, cmd.UserID = in.Reason, in.UserID
		res, err := c.submit(ctx, p, cmd)
		if err != nil {
			return nil, err
		}
		return &changeOutput{Body: changeAnswer(res)}, nil
	})

	register(api, huma.Operation{
		OperationID: "check-origin", Method: http.MethodGet, Path: APIPrefix + "/projects/{projectId}/origin-check", Tags: tags,
		Summary:     "Test an Origin against the allowed origins",
		Description: "Would a widget loaded from this Origin pass the project's allowed-origins list, and why: the verifier's own matcher answers.",
		Errors:      []int{http.StatusNotFound},
	}, permReadProjects, func(ctx context.Context, p *principal, in *originCheckInput) (*originCheckOutput, error) {
		rec, _, err := c.project(ctx, p, in.ProjectID)
		if err != nil {
			return nil, err
		}
		v, err := authz.CheckOrigin(rec.Origins, in.Origin)
		if err != nil {
			return nil, c.internal("check an origin", err)
		}
		return &originCheckOutput{Body: v}, nil
	})
}

// project reads a project the principal may see; one it may not see
// answers 404 as one that does not exist (and is recorded as denied).
func (c *Console) project(ctx context.Context, p *principal, id string) (project.Record, uint64, error) {
	notFound := huma.Error404NotFound("no project " + id)
	if !p.canSee(id) {
		c.denied(ctx, p, "project "+id+" is outside the account's projects")
		return project.Record{}, 0, notFound
	}
	rec, rev, err := c.projects.Get(ctx, id)
	if errors.Is(err, project.ErrNotFound) {
		return project.Record{}, 0, notFound
	}
	if err != nil {
		return project.Record{}, 0, c.internal("read a project", err)
	}
	return rec, rev, nil
}

// submit sends a command as the console, naming the principal, and maps
// the rotator's refusals to answers. The reason and the user agent are
// scrubbed before they reach the admin stream, where commands are kept
// (the rotator scrubs the events it records too).
func (c *Console) submit(ctx context.Context, p *principal, cmd events.Command) (admin.Result, error) {
	cmd.Actor, cmd.ClientIP, cmd.UserAgent = p.actor, p.ip, redact.String(p.userAgent)
	cmd.Reason = redact.String(cmd.Reason)
	res, err := c.admin.Submit(ctx, cmd, c.cfg.CommandTimeout)
	switch {
	case err == nil:
		if len(res.Unconfirmed) > 0 {
			c.log.Warn().Str("command", cmd.CommandID).Strs("unconfirmed", res.Unconfirmed).Msg("verifiers did not confirm the change in time")
		}
		return res, nil
	case errors.Is(err, admin.ErrRefused):
		switch res.Code {
		case events.ErrorNotFound:
			return res, huma.Error404NotFound("no project " + cmd.ProjectID)
		case events.ErrorExists:
			return res, huma.Error409Conflict(res.Error)
		case events.ErrorExpired:
			return res, huma.Error503ServiceUnavailable(res.Error)
		default:
			return res, huma.Error422UnprocessableEntity(res.Error)
		}
	case errors.Is(err, admin.ErrNoAnswer):
		c.log.Warn().Str("command", cmd.CommandID).Msg("no rotator answered in time")
		return res, huma.Error504GatewayTimeout("no rotator answered in time; the change may still be applied: read the project again before retrying")
	}
	return res, c.internal("send an admin command", err)
}

func keyAnswer(res admin.Result) KeyAnswer {
	return KeyAnswer{Project: projectOf(*res.Project), SecretKey: res.SecretKey, Confirmations: confirmations(res)}
}

func changeAnswer(res admin.Result) ChangeAnswer {
	return ChangeAnswer{Project: projectOf(*res.Project), Confirmations: confirmations(res)}
}

func confirmations(res admin.Result) Confirmations {
	return Confirmations{Confirmed: nonNil(res.Confirmed), Unconfirmed: nonNil(res.Unconfirmed), AlreadyApplied: res.AlreadyApplied}
}

// projectCounts reads the last 24 hours' decisions of some projects.
func (c *Console) projectCounts(ctx context.Context, ids []string) (map[string]audit.Counts, error) {
	conn, err := c.auditConn(ctx)
	if err != nil {
		return nil, err
	}
	return audit.ProjectCounts(ctx, conn, c.cfg.Clock().Add(-24*time.Hour), ids)
}

func traffic(n audit.Counts) *ProjectTraffic {
	t := &ProjectTraffic{Decisions: n.Decisions, Refused: n.Refused}
	if n.Decisions > 0 {
		t.RefusalRate = float64(n.Refused) / float64(n.Decisions)
	}
	return t
}

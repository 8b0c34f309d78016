package console

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
)

// Account is a console account as owners see it: never its password.
type Account struct {
	Email             string    `json:"email"`
	Role              string    `json:"role" enum:"owner,admin,security"`
	Projects          []string  `json:"projects" doc:"The projects it may see; empty: every project."`
	Disabled          bool      `json:"disabled"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	PasswordChangedAt time.Time `json:"passwordChangedAt"`
}

func accountOf(a account.Account) Account {
	return Account{Email: a.Email, Role: string(a.Role), Projects: nonNil(a.Projects), Disabled: a.Disabled,
		CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, PasswordChangedAt: a.PasswordChangedAt}
}

// Token is an API token as owners see it: never the token itself.
type Token struct {
	ID         string     `json:"id" example:"tok_5xq2m9vb3n7k1c8d"`
	Name       string     `json:"name"`
	Role       string     `json:"role" enum:"owner,admin,security"`
	Projects   []string   `json:"projects" doc:"The projects it may see; empty: every project."`
	CreatedBy  string     `json:"createdBy"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

func tokenOf(t account.Token) Token {
	opt := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		return &v
	}
	return Token{ID: t.ID, Name: t.Name, Role: string(t.Role), Projects: nonNil(t.Projects), CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		ExpiresAt: opt(t.ExpiresAt), RevokedAt: opt(t.RevokedAt), LastUsedAt: opt(t.LastUsedAt)}
}

type accountsOutput struct {
	Body struct {
		Accounts []Account `json:"accounts"`
	}
}

type accountOutput struct {
	Body Account
}

// NewAccount is the answer of an account's creation or password reset:
// the one-time password, in this answer only, unless the owner gave one.
type NewAccount struct {
	Account  Account `json:"account"`
	Password string  `json:"password,omitempty" doc:"The one-time password made for it, shown this once; absent when you gave one."`
}

type newAccountOutput struct {
	Body NewAccount
}

type createAccountInput struct {
	Body struct {
		Email    string   `json:"email" maxLength:"254"`
		Role     string   `json:"role" enum:"owner,admin,security"`
		Projects []string `json:"projects,omitempty" maxItems:"1000" doc:"Limit it to these projects; none: every project."`
		Password string   `json:"password,omitempty" maxLength:"256" doc:"Its password; default: a one-time password made for it, in the answer."`
	}
}

type EmailPath struct {
	Email string `path:"email" maxLength:"254" doc:"The account's email."`
}

type updateAccountInput struct {
	EmailPath
	Body struct {
		Role     *string   `json:"role,omitempty" enum:"owner,admin,security"`
		Projects *[]string `json:"projects,omitempty" maxItems:"1000" doc:"The new list; [] allows every project."`
		Disabled *bool     `json:"disabled,omitempty" doc:"Disabling ends every session of the account at once."`
	}
}

type resetPasswordInput struct {
	EmailPath
	Body struct {
		Password string `json:"password,omitempty" maxLength:"256" doc:"The new password; default: a one-time password, in the answer."`
	}
}

type tokensOutput struct {
	Body struct {
		Tokens []Token `json:"tokens"`
	}
}

// NewToken is the answer of a token's creation: the token itself, in this
// answer only.
type NewToken struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret" doc:"The API token (hst_…), shown this once: send it as Authorization: Bearer. Only its hash is kept."`
}

type newTokenOutput struct {
	Body NewToken
}

type createTokenInput struct {
	Body struct {
		Name      string     `json:"name" minLength:"1" maxLength:"100"`
		Role      string     `json:"role" enum:"owner,admin,security" doc:"At most your own role."`
		Projects  []string   `json:"projects,omitempty" maxItems:"1000" doc:"Limit it to these projects; none: every project you may see."`
		ExpiresAt *time.Time `json:"expiresAt,omitempty" doc:"When it stops working; default: never."`
	}
}

type tokenPath struct {
	ID string `path:"tokenId" maxLength:"64"`
}

type tokenOutput struct {
	Body Token
}

func (c *Console) registerAccounts(api huma.API) {
	tags := []string{"Accounts"}
	register(api, huma.Operation{
		OperationID: "list-accounts", Method: http.MethodGet, Path: APIPrefix + "/accounts", Tags: tags, Summary: "List accounts",
	}, permManageAccounts, func(ctx context.Context, _ *principal, _ *struct{}) (*accountsOutput, error) {
		list, err := c.accounts.Accounts(ctx)
		if err != nil {
			return nil, c.internal("list accounts", err)
		}
		out := &accountsOutput{}
		out.Body.Accounts = []Account{}
		for _, a := range list {
			out.Body.Accounts = append(out.Body.Accounts, accountOf(a))
		}
		return out, nil
	})

	register(api, huma.Operation{
		OperationID: "create-account", Method: http.MethodPost, Path: APIPrefix + "/accounts", Tags: tags, DefaultStatus: http.StatusCreated,
		Summary: "Create an account", Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity},
	}, permManageAccounts, func(ctx context.Context, p *principal, in *createAccountInput) (*newAccountOutput, error) {
		role, err := account.ParseRole(in.Body.Role)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity(err.Error())
		}
		password, made := in.Body.Password, false
		if password == "" {
			if password, err = account.GeneratePassword(); err != nil {
				return nil, c.internal("make a password", err)
			}
			made = true
		}
		acc, err := c.accounts.CreateAccount(ctx, in.Body.Email, role, in.Body.Projects, password)
		if err != nil {
			return nil, c.accountError("create an account", err)
		}
		if err := c.record(ctx, accountEvent{kind: events.AdminAccountCreated, actor: p.actor, account: acc.Email,
			reason: "role " + string(acc.Role) + scopeText(acc.Projects), client: p.client}); err != nil {
			return nil, huma.Error503ServiceUnavailable("the account was created but the audit could not record it; check the audit")
		}
		out := &newAccountOutput{Body: NewAccount{Account: accountOf(acc)}}
		if made {
			out.Body.Password = password
		}
		return out, nil
	})

	register(api, huma.Operation{
		OperationID: "update-account", Method: http.MethodPatch, Path: APIPrefix + "/accounts/{email}", Tags: tags,
		Summary: "Change an account's role, projects or disabled flag", Description: "Disabling an account ends its sessions at once.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, permManageAccounts, func(ctx context.Context, p *principal, in *updateAccountInput) (*accountOutput, error) {
		var change account.AccountChange
		var what []string
		if in.Body.Role != nil {
			r, err := account.ParseRole(*in.Body.Role)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity(err.Error())
			}
			change.Role = &r
			what = append(what, "role "+string(r))
		}
		if in.Body.Projects != nil {
			change.Projects = in.Body.Projects
			what = append(what, "projects"+scopeText(*in.Body.Projects))
		}
		if in.Body.Disabled != nil {
			change.Disabled = in.Body.Disabled
			what = append(what, map[bool]string{true: "disabled: every session ended", false: "enabled"}[*in.Body.Disabled])
		}
		if len(what) == 0 {
			return nil, huma.Error422UnprocessableEntity("nothing to change: give role, projects or disabled")
		}
		if email, err := account.NormalizeEmail(in.Email); err == nil && email == p.account && !p.token &&
			(in.Body.Disabled != nil && *in.Body.Disabled || change.Role != nil && *change.Role != account.RoleOwner) {
			return nil, huma.Error422UnprocessableEntity("you cannot disable yourself or give up your own owner role; another owner can")
		}
		acc, err := c.accounts.UpdateAccount(ctx, in.Email, change)
		if err != nil {
			return nil, c.accountError("update an account", err)
		}
		_ = c.record(ctx, accountEvent{kind: events.AdminAccountUpdated, actor: p.actor, account: acc.Email, reason: strings.Join(what, "; "), client: p.client})
		return &accountOutput{Body: accountOf(acc)}, nil
	})

	register(api, huma.Operation{
		OperationID: "reset-password", Method: http.MethodPut, Path: APIPrefix + "/accounts/{email}/password", Tags: tags,
		Summary: "Reset an account's password", Description: "Ends every session of the account.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, permManageAccounts, func(ctx context.Context, p *principal, in *resetPasswordInput) (*newAccountOutput, error) {
		password, made := in.Body.Password, false
		var err error
		if password == "" {
			if password, err = account.GeneratePassword(); err != nil {
				return nil, c.internal("make a password", err)
			}
			made = true
		}
		acc, err := c.accounts.SetPassword(ctx, in.Email, password)
		if err != nil {
			return nil, c.accountError("reset a password", err)
		}
		_ = c.record(ctx, accountEvent{kind: events.AdminPasswordChanged, actor: p.actor, account: acc.Email, reason: "reset by an owner; every session ended", client: p.client})
		out := &newAccountOutput{Body: NewAccount{Account: accountOf(acc)}}
		if made {
			out.Body.Password = password
		}
		return out, nil
	})

	tags = []string{"API tokens"}
	register(api, huma.Operation{
		OperationID: "list-tokens", Method: http.MethodGet, Path: APIPrefix + "/tokens", Tags: tags, Summary: "List API tokens",
		Description: "Never the tokens themselves: their ids, names, roles, expiry, revocation and last use.",
	}, permManageAccounts, func(ctx context.Context, _ *principal, _ *struct{}) (*tokensOutput, error) {
		list, err := c.accounts.Tokens(ctx)
		if err != nil {
			return nil, c.internal("list tokens", err)
		}
		out := &tokensOutput{}
		out.Body.Tokens = []Token{}
		for _, t := range list {
			out.Body.Tokens = append(out.Body.Tokens, tokenOf(t))
		}
		return out, nil
	})

	register(api, huma.Operation{
		OperationID: "create-token", Method: http.MethodPost, Path: APIPrefix + "/tokens", Tags: tags, DefaultStatus: http.StatusCreated,
		Summary: "Make an API token", Description: "The answer holds the token, this once; only its hash is kept.",
		Errors: []int{http.StatusUnprocessableEntity},
	}, permManageAccounts, func(ctx context.Context, p *principal, in *createTokenInput) (*newTokenOutput, error) {
		role, err := account.ParseRole(in.Body.Role)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity(err.Error())
		}
		if !role.AtMost(p.role) {
			return nil, huma.Error422UnprocessableEntity("a token's role cannot exceed yours (" + string(p.role) + ")")
		}
		projects := in.Body.Projects
		if p.projects != nil {
			if len(projects) == 0 {
				projects = p.scope()
			}
			for _, id := range projects {
				if !p.canSee(id) {
					return nil, huma.Error422UnprocessableEntity("a token cannot see project " + id + ": you cannot")
				}
			}
		}
		spec := account.TokenSpec{Name: in.Body.Name, Role: role, Projects: projects, CreatedBy: p.actor}
		if in.Body.ExpiresAt != nil {
			spec.ExpiresAt = *in.Body.ExpiresAt
		}
		tok, secret, err := c.accounts.CreateToken(ctx, spec)
		if err != nil {
			return nil, c.accountError("make a token", err)
		}
		if err := c.record(ctx, accountEvent{kind: events.AdminTokenCreated, actor: p.actor, account: tok.ID,
			reason: tok.Name + ": role " + string(tok.Role) + scopeText(tok.Projects), client: p.client}); err != nil {
			_, _ = c.accounts.RevokeToken(ctx, tok.ID)
			return nil, huma.Error503ServiceUnavailable("the token could not be recorded in the audit, so it was revoked; try again shortly")
		}
		return &newTokenOutput{Body: NewToken{Token: tokenOf(tok), Secret: secret}}, nil
	})

	register(api, huma.Operation{
		OperationID: "revoke-token", Method: http.MethodDelete, Path: APIPrefix + "/tokens/{tokenId}", Tags: tags,
		Summary: "Revoke an API token", Description: "It stops working at once.", Errors: []int{http.StatusNotFound},
	}, permManageAccounts, func(ctx context.Context, p *principal, in *tokenPath) (*tokenOutput, error) {
		tok, err := c.accounts.RevokeToken(ctx, in.ID)
		if err != nil {
			return nil, c.accountError("revoke a token", err)
		}
		_ = c.record(ctx, accountEvent{kind: events.AdminTokenRevoked, actor: p.actor, account: tok.ID, reason: tok.Name, client: p.client})
		return &tokenOutput{Body: tokenOf(tok)}, nil
	})
}

// accountError maps the account store's errors to answers.
func (c *Console) accountError(what string, err error) error {
	switch {
	case errors.Is(err, account.ErrNotFound):
		return huma.Error404NotFound(err.Error())
	case errors.Is(err, account.ErrExists):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, account.ErrInvalid):
		return huma.Error422UnprocessableEntity(err.Error())
	case errors.Is(err, account.ErrConflict):
		return huma.Error409Conflict(err.Error())
	}
	return c.internal(what, err)
}

// scopeText says in an admin event's reason which projects an account or
// token may see.
func scopeText(projects []string) string {
	if len(projects) == 0 {
		return ", every project"
	}
	return ", projects " + strings.Join(projects, ",")
}

package console_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/hissuno/widgetauth/internal/account"
)

// TestSignInAndManageAProject walks an owner through the API: sign in,
// create a project (its key shown once), change it, rotate its key, revoke
// and lift a user, test an origin, sign out.
func TestSignInAndManageAProject(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.signIn(t, "ada@example.com", account.RoleOwner)
	var me struct {
		Actor, Email, Role string
	}
	owner.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK).decode(t, &me)
	if me.Actor != "console:ada@example.com" || me.Role != "owner" {
		t.Fatalf("session: %+v", me)
	}
	id, key := owner.createProject(t, "Shop", map[string]any{"origins": []string{"https://shop.example"}, "reason": "launch"})
	var got struct {
		ProjectID string
		Origins   []string
		Keys      []struct{ Fingerprint string }
	}
	r := owner.do(t, http.MethodGet, "/api/v1/projects/"+id, nil).want(t, http.StatusOK)
	r.decode(t, &got)
	if got.ProjectID != id || len(got.Keys) != 1 || len(got.Origins) != 1 {
		t.Fatalf("get project: %s", r.body)
	}
	if string(r.body) != "" && contains(r.body, key) {
		t.Fatal("the project's key is readable after its creation")
	}
	owner.do(t, http.MethodPatch, "/api/v1/projects/"+id, map[string]any{"requireToken": true, "reason": "tokens now"}).want(t, http.StatusOK)
	var rot struct {
		SecretKey string
		Project   struct{ KeyVersion int }
	}
	owner.do(t, http.MethodPost, "/api/v1/projects/"+id+"/rotate", map[string]any{"graceSeconds": 60}).want(t, http.StatusOK).decode(t, &rot)
	if rot.Project.KeyVersion != 2 || rot.SecretKey == "" || rot.SecretKey == key {
		t.Fatalf("rotate: %+v", rot)
	}
	owner.do(t, http.MethodPost, "/api/v1/projects/"+id+"/revocations", map[string]any{"userId": "u-1"}).want(t, http.StatusOK)
	owner.do(t, http.MethodDelete, "/api/v1/projects/"+id+"/revocations/u-1?reason=mistake", nil).want(t, http.StatusOK)
	var v struct {
		Allowed bool
		Pattern string
	}
	owner.do(t, http.MethodGet, "/api/v1/projects/"+id+"/origin-check?origin=https://shop.example", nil).want(t, http.StatusOK).decode(t, &v)
	if !v.Allowed || v.Pattern != "https://shop.example" {
		t.Fatalf("origin check: %+v", v)
	}
	owner.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusNoContent)
	owner.do(t, http.MethodGet, "/api/v1/projects", nil).want(t, http.StatusUnauthorized)
}

func contains(b []byte, s string) bool { return len(s) > 0 && bytes.Contains(b, []byte(s)) }

package account

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hissuno/widgetauth/internal/project"
)

// Role is what an account or an API token may do in the console.
type Role string

// The roles, from the most to the least powerful.
const (
	// RoleOwner may do everything, manage accounts included.
	RoleOwner Role = "owner"
	// RoleAdmin manages projects: creates and updates them, rotates keys,
	// revokes users, reads the audit.
	RoleAdmin Role = "admin"
	// RoleSecurity reads projects and the audit, and changes nothing.
	RoleSecurity Role = "security"
)

// Roles lists every role, the most powerful first.
var Roles = []Role{RoleOwner, RoleAdmin, RoleSecurity}

// ParseRole returns the role named s (case and surrounding spaces
// ignored); ErrInvalid otherwise.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("%w: role %q: use owner, admin or security", ErrInvalid, s)
	}
	return r, nil
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// rank orders the roles: a larger rank may do more. An unknown role has
// the rank 0, below every role.
func (r Role) rank() int {
	if i := slices.Index(Roles, r); i >= 0 {
		return len(Roles) - i
	}
	return 0
}

// AtMost reports whether r may do no more than other (owner > admin >
// security): a token's role must be at most its creator's. It is false when
// either role is unknown.
func (r Role) AtMost(other Role) bool {
	return r.Valid() && other.Valid() && r.rank() <= other.rank()
}

// MaxProjects bounds the projects an account or a token is limited to.
const MaxProjects = 100

// normalizeProjects checks a project list and returns it sorted without
// duplicates; nil (every project) for an empty one.
func normalizeProjects(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > MaxProjects {
		return nil, fmt.Errorf("%w: %d projects: limit to at most %d, or to none for all", ErrInvalid, len(ids), MaxProjects)
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !project.ValidID(id) {
			return nil, fmt.Errorf("%w: project id %q: use 1 to 64 letters, digits, '-' or '_'", ErrInvalid, id)
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// canSee reports whether a project list (empty: all projects) includes id.
func canSee(projects []string, id string) bool {
	if len(projects) == 0 {
		return true
	}
	return slices.Contains(projects, id)
}

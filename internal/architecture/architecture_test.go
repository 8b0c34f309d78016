// Package architecture holds the test that keeps the layout honest: the
// rules of the README's "Architecture" section, checked against what the
// packages really import.
package architecture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/hissuno/widgetauth"

// roles are the packages that run as a role of their own: they meet only
// through events/ and small shared packages, never by importing each other.
var roles = []string{
	module + "/internal/ingress",
	module + "/internal/verifier",
	module + "/internal/rotator",
	module + "/internal/auditor",
	module + "/internal/console",
}

// public are the packages others may import: the binary, the event
// contract and its schemas; deploy holds the deployment files. Everything
// else lives under internal/.
var public = []string{module + "/cmd/", module + "/events", module + "/schemas", module + "/deploy"}

// pages is the console's pages: a browser's, with no back door into the
// data the API guards.
const pages = module + "/internal/console/ui"

// edgeForbids are what the HTTP edge must never link: token verification
// and the key sealing stay with the verifiers.
var edgeForbids = []string{"github.com/golang-jwt/jwt/v5", module + "/internal/project", module + "/internal/authz"}

// rules returns every violation of the layout's rules in deps, a package's
// import path → the import paths it depends on (directly or not, tests
// left out), for every package of the module.
func rules(deps map[string][]string) []string {
	var out []string
	for _, pkg := range sortedKeys(deps) {
		d := deps[pkg]
		if !strings.HasPrefix(pkg, module+"/internal/") && !slices.ContainsFunc(public, func(p string) bool { return pkg == p || strings.HasPrefix(pkg, p) }) {
			out = append(out, fmt.Sprintf("%s is neither the public contract (cmd/, events/, schemas/, deploy/) nor under internal/", pkg))
		}
		if pkg == module+"/events" {
			for _, dep := range d {
				if strings.HasPrefix(dep, module+"/") {
					out = append(out, fmt.Sprintf("events imports %s: the contract imports nothing of the project", dep))
				}
			}
		}
		if slices.Contains(roles, pkg) {
			for _, dep := range d {
				if dep != pkg && slices.Contains(roles, dep) {
					out = append(out, fmt.Sprintf("role %s imports role %s: roles meet through events/ and shared packages only", short(pkg), short(dep)))
				}
			}
		}
		if pkg == pages {
			for _, dep := range d {
				if strings.HasPrefix(dep, module+"/") {
					out = append(out, fmt.Sprintf("the console's pages import %s: they reach data only through the admin API", short(dep)))
				}
			}
		}
		if pkg == module+"/internal/ingress" {
			for _, dep := range d {
				if slices.Contains(edgeForbids, dep) {
					out = append(out, fmt.Sprintf("the ingress links %s: the HTTP edge verifies no token and opens no key", dep))
				}
			}
		}
	}
	return out
}

// TestLayout lists the module's packages and their dependencies with `go
// list -deps` and checks them against the rules.
func TestLayout(t *testing.T) {
	t.Parallel()
	deps := moduleDeps(t)
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages of the module; the test would check nothing", len(deps))
	}
	for _, role := range roles[:4] {
		if _, ok := deps[role]; !ok {
			t.Errorf("no package %s: the role list is out of date", role)
		}
	}
	for _, v := range rules(deps) {
		t.Error(v)
	}
}

// TestRulesCatchViolations: each rule fails on the import it forbids.
func TestRulesCatchViolations(t *testing.T) {
	t.Parallel()
	ok := map[string][]string{
		module + "/events":            {"time"},
		module + "/internal/ingress":  {module + "/events", module + "/internal/bus"},
		module + "/internal/verifier": {module + "/events", module + "/internal/authz", "github.com/golang-jwt/jwt/v5"},
		module + "/cmd/hissuno":       {module + "/internal/cli"},
		pages:                         {"embed", "html/template"},
	}
	if v := rules(ok); len(v) != 0 {
		t.Fatalf("a layout that keeps the rules: %v", v)
	}
	tests := []struct {
		name string
		pkg  string
		dep  string
		want string
	}{
		{"a role imports a role", module + "/internal/ingress", module + "/internal/verifier", "role internal/ingress imports role internal/verifier"},
		{"the rotator imports the verifier", module + "/internal/rotator", module + "/internal/verifier", "role internal/rotator imports role internal/verifier"},
		{"events imports the project", module + "/events", module + "/internal/redact", "events imports"},
		{"the edge links golang-jwt", module + "/internal/ingress", "github.com/golang-jwt/jwt/v5", "the ingress links github.com/golang-jwt/jwt/v5"},
		{"the edge links the sealing", module + "/internal/ingress", module + "/internal/project", "the ingress links"},
		{"a package outside internal/", module + "/verifier", "time", "nor under internal/"},
		{"the pages read the audit", pages, module + "/internal/audit", "the console's pages import internal/audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			deps := map[string][]string{}
			for k, v := range ok {
				deps[k] = slices.Clone(v)
			}
			deps[tt.pkg] = append(deps[tt.pkg], tt.dep)
			v := rules(deps)
			if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("%s on %s: violations %v, want one saying %q", tt.dep, tt.pkg, v, tt.want)
			}
		})
	}
}

// moduleDeps runs `go list -deps` over the module and returns, for each of
// its packages, everything it depends on outside the standard library and
// inside the module (tests left out).
func moduleDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps,Standard", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		deps[p.ImportPath] = p.Deps
	}
	return deps
}

func short(pkg string) string { return strings.TrimPrefix(pkg, module+"/") }

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

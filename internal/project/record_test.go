package project_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/redact"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newRecord makes a record with its first key at t0.
func newRecord(t *testing.T, s *project.Sealer) (project.Record, string) {
	t.Helper()
	r, secret, err := project.New(s, "proj_test", "Test project", false, []string{"https://a.example.com"}, t0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, secret
}

// checkSecretKey checks the shape of a secret key.
func checkSecretKey(t *testing.T, secret string) {
	t.Helper()
	if len(secret) != 51 {
		t.Errorf("secret key %q has %d characters, want 51", secret, len(secret))
	}
	rest, ok := strings.CutPrefix(secret, "sk_live_")
	if !ok {
		t.Fatalf("secret key %q does not start with sk_live_", secret)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		t.Fatalf("secret key %q: %q is not unpadded base64url: %v", secret, rest, err)
	}
	if len(b) != 32 {
		t.Errorf("secret key %q holds %d random bytes, want 32", secret, len(b))
	}
}

// openKey opens the stored key of a version.
func openKey(t *testing.T, s *project.Sealer, r project.Record, version int) string {
	t.Helper()
	for _, k := range r.Keys {
		if k.Version == version {
			b, err := s.Open(k.Sealed, r.ID, k.Version)
			if err != nil {
				t.Fatalf("open key v%d: %v", version, err)
			}
			return string(b)
		}
	}
	t.Fatalf("no key v%d in %+v", version, r.Keys)
	return ""
}

func versions(r project.Record) []int {
	var out []int
	for _, k := range r.Keys {
		out = append(out, k.Version)
	}
	return out
}

func TestNew(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, secret, err := project.New(s, "proj_abc", "My app", true, []string{"https://a.example.com", "https://*.b.example.com"}, t0)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	checkSecretKey(t, secret)
	if r.ID != "proj_abc" || r.Name != "My app" || !r.RequireToken {
		t.Errorf("record %+v does not hold the given id, name and requireToken", r)
	}
	if want := []string{"https://a.example.com", "https://*.b.example.com"}; !reflect.DeepEqual(r.Origins, want) {
		t.Errorf("Origins = %q, want %q", r.Origins, want)
	}
	if r.KeyVersion != 1 || len(r.Keys) != 1 || r.Keys[0].Version != 1 {
		t.Fatalf("KeyVersion %d, keys %v; want one key, version 1", r.KeyVersion, versions(r))
	}
	k := r.Keys[0]
	if k.Fingerprint != redact.Fingerprint(secret) {
		t.Errorf("fingerprint %q, want redact.Fingerprint(secret) = %q", k.Fingerprint, redact.Fingerprint(secret))
	}
	if k.ValidUntil != nil {
		t.Errorf("the current key has ValidUntil %v", k.ValidUntil)
	}
	if strings.Contains(k.Sealed, secret) || strings.Contains(k.Sealed, "sk_live_") {
		t.Errorf("sealed key %q holds the key in clear", k.Sealed)
	}
	if got := openKey(t, s, r, 1); got != secret {
		t.Errorf("the stored key opens to %q, want the returned %q", got, secret)
	}
	if !r.CreatedAt.Equal(t0) || !r.UpdatedAt.Equal(t0) || !k.CreatedAt.Equal(t0) {
		t.Errorf("times %v %v %v, want %v", r.CreatedAt, r.UpdatedAt, k.CreatedAt, t0)
	}
	if r.SchemaVersion == 0 {
		t.Error("SchemaVersion not set")
	}
}

func TestNewCopiesOrigins(t *testing.T) {
	t.Parallel()
	origins := []string{"https://a.example.com"}
	r, _, err := project.New(newSealer(t), "p", "n", false, origins, t0)
	if err != nil {
		t.Fatal(err)
	}
	origins[0] = "https://evil.example"
	if r.Origins[0] != "https://a.example.com" {
		t.Errorf("the record shares the caller's origins slice: %q", r.Origins)
	}
}

func TestNewKeysDiffer(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	seen := map[string]bool{}
	for i := range 20 {
		_, secret, err := project.New(s, fmt.Sprintf("p%d", i), "n", false, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		checkSecretKey(t, secret)
		if seen[secret] {
			t.Fatalf("secret key %q made twice", secret)
		}
		seen[secret] = true
	}
	a, err := project.NewSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := project.NewSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	checkSecretKey(t, a)
	if a == b {
		t.Errorf("NewSecretKey returned %q twice", a)
	}
}

func TestNewInvalid(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	tooMany := make([]string, project.MaxOrigins+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("https://o%d.example.com", i)
	}
	tests := []struct {
		name, id, projName string
		origins            []string
	}{
		{name: "empty id", id: "", projName: "n"},
		{name: "id with a dot", id: "a.b", projName: "n"},
		{name: "id with a space", id: "a b", projName: "n"},
		{name: "id with a wildcard", id: "a*", projName: "n"},
		{name: "id of 65 characters", id: strings.Repeat("a", 65), projName: "n"},
		{name: "empty name", id: "p", projName: ""},
		{name: "blank name", id: "p", projName: " \t "},
		{name: "name too long", id: "p", projName: strings.Repeat("x", project.MaxNameBytes+1)},
		{name: "too many origins", id: "p", projName: "n", origins: tooMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, secret, err := project.New(s, tt.id, tt.projName, false, tt.origins, t0)
			if !errors.Is(err, project.ErrInvalid) {
				t.Fatalf("New(%q, %q) error = %v, want ErrInvalid", tt.id, tt.projName, err)
			}
			if secret != "" || r.ID != "" {
				t.Errorf("New returned a record %q or a key along with the error", r.ID)
			}
		})
	}
	// The limits themselves are accepted.
	if _, _, err := project.New(s, strings.Repeat("a", 64), strings.Repeat("x", project.MaxNameBytes), false, tooMany[:project.MaxOrigins], t0); err != nil {
		t.Errorf("New at the limits: %v", err)
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"a", "proj_abc", "A-Z_0-9", strings.Repeat("x", 64)} {
		if !project.ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", "a.b", "a>", "a*", "a b", "é", strings.Repeat("x", 65), "a\n"} {
		if project.ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
	id, err := project.NewID()
	if err != nil {
		t.Fatal(err)
	}
	if !project.ValidID(id) || !strings.HasPrefix(id, "proj_") {
		t.Errorf("NewID() = %q, not a valid proj_ id", id)
	}
}

func TestRotateImmediate(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, first := newRecord(t, s)
	now := t0.Add(time.Hour)
	secret, previous, err := r.Rotate(s, 0, now)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	checkSecretKey(t, secret)
	if secret == first {
		t.Fatal("the rotated key equals the old one")
	}
	if previous != 1 {
		t.Errorf("previous = %d, want 1", previous)
	}
	if r.KeyVersion != 2 {
		t.Errorf("KeyVersion = %d, want 2", r.KeyVersion)
	}
	if got := versions(r); !reflect.DeepEqual(got, []int{2}) {
		t.Fatalf("keys after an immediate rotation: %v, want only [2]", got)
	}
	if r.Keys[0].ValidUntil != nil {
		t.Errorf("the new key has ValidUntil %v", r.Keys[0].ValidUntil)
	}
	if r.Keys[0].Fingerprint != redact.Fingerprint(secret) {
		t.Error("the new key's fingerprint is not its own")
	}
	if got := openKey(t, s, r, 2); got != secret {
		t.Errorf("key v2 opens to %q, want %q", got, secret)
	}
	if !r.UpdatedAt.Equal(now) {
		t.Errorf("UpdatedAt = %v, want %v", r.UpdatedAt, now)
	}
}

func TestRotateWithGrace(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, first := newRecord(t, s)

	// v1 → v2 with 10 minutes of grace: v1 is kept until t1+10m.
	t1 := t0.Add(time.Hour)
	second, previous, err := r.Rotate(s, 10*time.Minute, t1)
	if err != nil {
		t.Fatal(err)
	}
	if previous != 1 {
		t.Errorf("previous = %d, want 1", previous)
	}
	if got := versions(r); !reflect.DeepEqual(got, []int{2, 1}) {
		t.Fatalf("keys %v, want [2 1] (newest first)", got)
	}
	if r.Keys[0].ValidUntil != nil {
		t.Errorf("the current key has ValidUntil %v", r.Keys[0].ValidUntil)
	}
	if vu := r.Keys[1].ValidUntil; vu == nil || !vu.Equal(t1.Add(10*time.Minute)) {
		t.Errorf("the previous key's ValidUntil = %v, want %v", vu, t1.Add(10*time.Minute))
	}
	if got := openKey(t, s, r, 1); got != first {
		t.Errorf("the previous key opens to %q, want %q", got, first)
	}
	if got := openKey(t, s, r, 2); got != second {
		t.Errorf("the current key opens to %q, want %q", got, second)
	}

	// v2 → v3 with grace after v1's grace ended: v1 is dropped, v2 kept.
	t2 := t1.Add(20 * time.Minute)
	if _, _, err := r.Rotate(s, 5*time.Minute, t2); err != nil {
		t.Fatal(err)
	}
	if got := versions(r); !reflect.DeepEqual(got, []int{3, 2}) {
		t.Fatalf("keys %v, want [3 2]: v1's grace ended", got)
	}
	if vu := r.Keys[1].ValidUntil; vu == nil || !vu.Equal(t2.Add(5*time.Minute)) {
		t.Errorf("v2's ValidUntil = %v, want %v", vu, t2.Add(5*time.Minute))
	}

	// v3 → v4 with grace while v2 is still in grace: both kept.
	t3 := t2.Add(time.Minute)
	if _, _, err := r.Rotate(s, time.Hour, t3); err != nil {
		t.Fatal(err)
	}
	if got := versions(r); !reflect.DeepEqual(got, []int{4, 3, 2}) {
		t.Fatalf("keys %v, want [4 3 2]: v2 is still in grace", got)
	}
	if vu := r.Keys[2].ValidUntil; vu == nil || !vu.Equal(t2.Add(5*time.Minute)) {
		t.Errorf("v2's ValidUntil changed to %v, want it kept at %v", vu, t2.Add(5*time.Minute))
	}

	// v4 → v5 immediately: every old key goes, those in grace too.
	t4 := t3.Add(time.Second)
	fifth, previous, err := r.Rotate(s, 0, t4)
	if err != nil {
		t.Fatal(err)
	}
	if previous != 4 {
		t.Errorf("previous = %d, want 4", previous)
	}
	if got := versions(r); !reflect.DeepEqual(got, []int{5}) {
		t.Fatalf("keys %v after an immediate rotation, want [5]: keys in grace must go too", got)
	}
	if got := openKey(t, s, r, 5); got != fifth {
		t.Errorf("key v5 opens to %q, want %q", got, fifth)
	}
}

func TestRotateGraceEndsExactly(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, _ := newRecord(t, s)
	if _, _, err := r.Rotate(s, time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	// At exactly ValidUntil, v1's grace has ended.
	if _, _, err := r.Rotate(s, time.Minute, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := versions(r); !reflect.DeepEqual(got, []int{3, 2}) {
		t.Errorf("keys %v, want [3 2]", got)
	}
}

func TestRotateNegativeGrace(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, _ := newRecord(t, s)
	before := r
	before.Keys = append([]project.StoredKey(nil), r.Keys...)
	secret, _, err := r.Rotate(s, -time.Second, t0.Add(time.Hour))
	if !errors.Is(err, project.ErrInvalid) {
		t.Fatalf("Rotate with negative grace: error %v, want ErrInvalid", err)
	}
	if secret != "" {
		t.Errorf("a key was returned with the error")
	}
	if !reflect.DeepEqual(r, before) {
		t.Errorf("a refused rotation changed the record: %+v", r)
	}
}

func TestRotateDoesNotAliasKeys(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, _ := newRecord(t, s)
	old := r.Keys
	oldFirst := old[0]
	if _, _, err := r.Rotate(s, time.Minute, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old[0], oldFirst) {
		t.Errorf("Rotate changed the key slice of the record it was read from: %+v", old[0])
	}
}

func TestRevokeUser(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	tests := []struct {
		name    string
		user    string
		wantErr bool
	}{
		{"simple", "user-1", false},
		{"at the limit", strings.Repeat("u", events.MaxUserIDBytes), false},
		{"unicode", "ユーザー", false},
		{"empty", "", true},
		{"too long", strings.Repeat("u", events.MaxUserIDBytes+1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newRecord(t, s)
			now := t0.Add(time.Hour)
			err := r.RevokeUser(tt.user, now)
			if tt.wantErr {
				if !errors.Is(err, project.ErrInvalid) {
					t.Fatalf("RevokeUser(%q) error = %v, want ErrInvalid", tt.user, err)
				}
				if len(r.RevokedUsers) != 0 {
					t.Errorf("a refused revocation was recorded: %v", r.RevokedUsers)
				}
				return
			}
			if err != nil {
				t.Fatalf("RevokeUser(%q): %v", tt.user, err)
			}
			if got := r.RevokedUsers[tt.user]; !got.Equal(now) {
				t.Errorf("revoked at %v, want %v", got, now)
			}
			if !r.UpdatedAt.Equal(now) {
				t.Errorf("UpdatedAt = %v, want %v", r.UpdatedAt, now)
			}
			// Revoking again moves the time forward.
			later := now.Add(time.Hour)
			if err := r.RevokeUser(tt.user, later); err != nil {
				t.Fatal(err)
			}
			if got := r.RevokedUsers[tt.user]; !got.Equal(later) || len(r.RevokedUsers) != 1 {
				t.Errorf("after a second revocation: %v, want one entry at %v", r.RevokedUsers, later)
			}
		})
	}
}

func TestUnrevokeUser(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, _ := newRecord(t, s)
	now := t0.Add(time.Hour)
	if err := r.UnrevokeUser("user-1", now); !errors.Is(err, project.ErrInvalid) {
		t.Fatalf("lifting a revocation nobody made: error = %v, want ErrInvalid", err)
	}
	for _, u := range []string{"user-1", "user-2"} {
		if err := r.RevokeUser(u, now); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Minute)
	if err := r.UnrevokeUser("user-1", later); err != nil {
		t.Fatalf("UnrevokeUser: %v", err)
	}
	if got := r.Revocations(); len(got) != 1 || !got["user-2"].Equal(now) {
		t.Errorf("after lifting user-1: revocations %v, want user-2 alone", got)
	}
	if !r.UpdatedAt.Equal(later) {
		t.Errorf("UpdatedAt = %v, want %v", r.UpdatedAt, later)
	}
	if err := r.UnrevokeUser("user-2", later); err != nil {
		t.Fatal(err)
	}
	if r.RevokedUsers != nil {
		t.Errorf("no revocation left, but RevokedUsers = %v", r.RevokedUsers)
	}
	// Revocations is a copy: changing it changes nothing.
	_ = r.RevokeUser("user-3", later)
	r.Revocations()["user-4"] = later
	if _, ok := r.RevokedUsers["user-4"]; ok {
		t.Error("Revocations handed out the record's own map")
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	yes, no := true, false
	tests := []struct {
		name         string
		requireToken *bool
		origins      []string
		clear        bool
		wantErr      bool
		wantRequire  bool
		wantOrigins  []string
	}{
		{name: "nothing", wantOrigins: []string{"https://a.example.com"}},
		{name: "require token", requireToken: &yes, wantRequire: true, wantOrigins: []string{"https://a.example.com"}},
		{name: "require token false", requireToken: &no, wantOrigins: []string{"https://a.example.com"}},
		{name: "origins replace", origins: []string{"https://b.example.com", "https://*.c.example.com"}, wantOrigins: []string{"https://b.example.com", "https://*.c.example.com"}},
		{name: "clear", clear: true, wantOrigins: nil},
		{name: "both", requireToken: &yes, origins: []string{"https://b.example.com"}, wantRequire: true, wantOrigins: []string{"https://b.example.com"}},
		{name: "clear and origins", origins: []string{"https://b.example.com"}, clear: true, wantErr: true},
		{name: "too many origins", origins: make([]string, project.MaxOrigins+1), wantErr: true},
		{name: "require token with too many origins", requireToken: &yes, origins: make([]string, project.MaxOrigins+1), wantErr: true},
		{name: "require token with clear and origins", requireToken: &yes, origins: []string{"https://b.example.com"}, clear: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := newRecord(t, s)
			before := r
			before.Origins = append([]string(nil), r.Origins...)
			now := t0.Add(time.Hour)
			err := r.Update(tt.requireToken, tt.origins, tt.clear, now)
			if tt.wantErr {
				if !errors.Is(err, project.ErrInvalid) {
					t.Fatalf("Update error = %v, want ErrInvalid", err)
				}
				if !reflect.DeepEqual(r, before) {
					t.Errorf("a refused update changed the record:\n got %+v\nwant %+v", r, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if r.RequireToken != tt.wantRequire {
				t.Errorf("RequireToken = %v, want %v", r.RequireToken, tt.wantRequire)
			}
			if len(r.Origins) != 0 || len(tt.wantOrigins) != 0 {
				if !reflect.DeepEqual(r.Origins, tt.wantOrigins) {
					t.Errorf("Origins = %q, want %q", r.Origins, tt.wantOrigins)
				}
			}
			if !r.UpdatedAt.Equal(now) {
				t.Errorf("UpdatedAt = %v, want %v", r.UpdatedAt, now)
			}
			if r.KeyVersion != 1 || len(r.Keys) != 1 {
				t.Errorf("Update touched the keys: %v", versions(r))
			}
		})
	}
}

func TestUpdateCopiesOrigins(t *testing.T) {
	t.Parallel()
	r, _ := newRecord(t, newSealer(t))
	origins := []string{"https://b.example.com"}
	if err := r.Update(nil, origins, false, t0); err != nil {
		t.Fatal(err)
	}
	origins[0] = "https://evil.example"
	if r.Origins[0] != "https://b.example.com" {
		t.Errorf("the record shares the caller's origins slice: %q", r.Origins)
	}
}

func TestMarkApplied(t *testing.T) {
	t.Parallel()
	r, _ := newRecord(t, newSealer(t))
	if r.Applied("cmd_0") {
		t.Fatal("a new record has applied cmd_0")
	}
	for i := range 100 {
		r.MarkApplied(fmt.Sprintf("cmd_%d", i))
	}
	if len(r.AppliedCommands) != 64 {
		t.Fatalf("%d applied ids kept, want 64", len(r.AppliedCommands))
	}
	for i := range 100 {
		id := fmt.Sprintf("cmd_%d", i)
		if want := i >= 36; r.Applied(id) != want {
			t.Errorf("Applied(%q) = %v, want %v", id, !want, want)
		}
	}
	if first, last := r.AppliedCommands[0], r.AppliedCommands[63]; first != "cmd_36" || last != "cmd_99" {
		t.Errorf("kept %s … %s, want cmd_36 … cmd_99 (newest last)", first, last)
	}
}

func TestViewHasNoKey(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, first := newRecord(t, s)
	second, _, err := r.Rotate(s, time.Hour, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeUser("u1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	v := r.View(42)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, bad := range []string{"sk_live_", first, second, r.Keys[0].Sealed, r.Keys[1].Sealed, "sealed"} {
		if strings.Contains(js, bad) {
			t.Errorf("the view's JSON holds %q: %s", bad, js)
		}
	}
	if v.ProjectID != r.ID || v.Name != r.Name || v.KeyVersion != 2 || v.Revision != 42 || v.RevokedUsers != 1 {
		t.Errorf("view %+v does not match the record", v)
	}
	if len(v.Keys) != 2 || v.Keys[0].Fingerprint != redact.Fingerprint(second) || v.Keys[1].Fingerprint != redact.Fingerprint(first) {
		t.Errorf("view keys %+v, want the fingerprints of v2 then v1", v.Keys)
	}
	if v.Keys[1].ValidUntil == nil || !v.Keys[1].ValidUntil.Equal(t0.Add(time.Minute+time.Hour)) {
		t.Errorf("v1's ValidUntil in the view = %v", v.Keys[1].ValidUntil)
	}
	// The view's origins are a copy.
	v.Origins[0] = "https://evil.example"
	if r.Origins[0] == "https://evil.example" {
		t.Error("the view shares the record's origins")
	}
	// An empty origins list is [] in JSON, never null.
	r2, _, err := project.New(s, "p2", "n", false, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(r2.View(1))
	if !strings.Contains(string(b), `"origins":[]`) {
		t.Errorf("the view of a record without origins: %s, want \"origins\":[]", b)
	}
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	r, _ := newRecord(t, s)
	if _, _, err := r.Rotate(s, time.Hour, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeUser("u1", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.MarkApplied("cmd_1")
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := project.Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	// The stored form keeps the keys sealed, openable after decoding.
	if strings.Contains(string(b), "sk_live_") {
		t.Errorf("the encoded record holds a key in clear: %s", b)
	}
	openKey(t, s, got, 1)
	openKey(t, s, got, 2)
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "not json", "[]", "{}", `{"projectId":""}`, `{"projectId":1}`} {
		if _, err := project.Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) = nil error", in)
		}
	}
}

// TestNewRefusesKeyShapedIDs: the audit scrubs every stored string, so a
// project whose id looks like a secret key could never be found in it.
func TestNewRefusesKeyShapedIDs(t *testing.T) {
	t.Parallel()
	s := newSealer(t)
	for _, id := range []string{"sk_live_shop", "xsk_live_", "sk_live_"} {
		if _, _, err := project.New(s, id, "n", false, nil, time.Now()); !errors.Is(err, project.ErrInvalid) {
			t.Errorf("New(%q): %v, want ErrInvalid", id, err)
		}
	}
	if _, _, err := project.New(s, "sk_test_shop", "n", false, nil, time.Now()); err != nil {
		t.Errorf("New(sk_test_shop): %v", err)
	}
}

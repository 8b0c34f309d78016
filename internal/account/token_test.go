package account_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

var (
	tokenRE   = regexp.MustCompile(`^hst_[0-9A-Za-z]{66}$`)
	tokenIDRE = regexp.MustCompile(`^tok_[a-z2-7]{20}$`)
)

func TestTokenFormat(t *testing.T) {
	t.Parallel()
	// The format is a contract with secret scanners: pinned.
	var id [12]byte
	var secret [32]byte
	if got, want := account.FormatToken(id, secret), "hst_"+strings.Repeat("0", 60)+"177iej"; got != want {
		t.Errorf("the token of zero bytes is %s, want %s", got, want)
	}
	for i := range id {
		id[i] = 0xff
	}
	for i := range secret {
		secret[i] = 0xff
	}
	maxTok := account.FormatToken(id, secret)
	if !strings.HasPrefix(maxTok, "hst_1CT4kYsZSIT8iwHqyMBsQ1z1XeumlKXRW0i3uTGCe0bHv7nJQ4fuOU2UzZg3") || !account.ValidTokenFormat(maxTok) {
		t.Errorf("the largest token %s is not valid", maxTok)
	}
	gotID, gotSecret, ok := account.TokenParts(maxTok)
	if !ok || gotID != id || gotSecret != secret {
		t.Error("the largest token does not read back")
	}

	rand.Read(id[:])
	rand.Read(secret[:])
	tok := account.FormatToken(id, secret)
	if len(tok) != account.TokenLen || !tokenRE.MatchString(tok) || !account.ValidTokenFormat(tok) {
		t.Fatalf("token %s: not hst_ and 66 base62 digits", tok)
	}
	gotID, gotSecret, ok = account.TokenParts(tok)
	if !ok || gotID != id || gotSecret != secret {
		t.Fatal("a token does not read back")
	}
	if !tokenIDRE.MatchString(account.TokenID(id)) {
		t.Errorf("token id %s", account.TokenID(id))
	}

	// One character changed anywhere after the prefix fails the checksum.
	const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := len(account.TokenPrefix); i < len(tok); i++ {
		for _, c := range []byte{digits[(strings.IndexByte(digits, tok[i])+1)%62], digits[(strings.IndexByte(digits, tok[i])+31)%62]} {
			b := []byte(tok)
			b[i] = c
			if account.ValidTokenFormat(string(b)) {
				t.Fatalf("%s, one character from a valid token, passes the checksum", b)
			}
		}
	}
	// A payload beyond 352 bits with a right checksum is refused too.
	over := "hst_" + strings.Repeat("Z", 60)
	for _, s := range []string{over + account.TokenChecksum(over[4:]), "", "hst_", tok[:len(tok)-1], tok + "0", "ghp_" + tok[4:], " " + tok, strings.Replace(tok, "hst_", "HST_", 1)} {
		if account.ValidTokenFormat(s) {
			t.Errorf("ValidTokenFormat(%q) = true", s)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	created := e.clock.Now()
	expires := created.Add(24 * time.Hour)
	tok, secret, err := e.store.CreateToken(ctx, account.TokenSpec{
		Name: " deploy bot ", Role: account.RoleAdmin, Projects: []string{"proj_b", "proj_a"},
		CreatedBy: events.ActorConsole + "owner@example.com", ExpiresAt: expires,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !tokenRE.MatchString(secret) || !tokenIDRE.MatchString(tok.ID) || !strings.HasPrefix(secret, account.TokenPrefix) {
		t.Fatalf("token %q id %q", secret, tok.ID)
	}
	if id, _, _ := account.TokenParts(secret); account.TokenID(id) != tok.ID {
		t.Error("the token's id is not the one inside the token")
	}
	want := account.Token{
		ID: tok.ID, Name: "deploy bot", Role: account.RoleAdmin, Projects: []string{"proj_a", "proj_b"},
		CreatedBy: "console:owner@example.com", CreatedAt: created, ExpiresAt: expires,
	}
	if !equalTokens(tok, want) {
		t.Fatalf("created %+v, want %+v", tok, want)
	}
	if !tok.CanSee("proj_a") || tok.CanSee("proj_c") {
		t.Error("CanSee ignores the token's projects")
	}
	b, _ := json.Marshal(tok)
	if strings.Contains(string(b), secret[4:20]) || strings.Contains(string(b), "secret") {
		t.Errorf("a token's JSON holds its secret or hash: %s", b)
	}

	t.Run("authenticate and last use", func(t *testing.T) {
		kv := e.kv[events.BucketConsoleTokens]
		rev := func() uint64 {
			en, err := kv.Get(ctx, tok.ID)
			if err != nil {
				t.Fatal(err)
			}
			return en.Revision()
		}
		r0 := rev()
		got, err := e.store.Authenticate(ctx, secret)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		want := want
		want.LastUsedAt = e.clock.Now()
		if !equalTokens(got, want) {
			t.Fatalf("Authenticate = %+v, want %+v", got, want)
		}
		r1 := rev()
		if r1 == r0 {
			t.Fatal("the first use was not recorded")
		}
		e.clock.Advance(30 * time.Second)
		if _, err := e.store.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if rev() != r1 {
			t.Error("a use within the minute wrote the token")
		}
		e.clock.Advance(30 * time.Second)
		if _, err := e.store.Authenticate(ctx, secret); err != nil {
			t.Fatal(err)
		}
		listed, err := e.store.Token(ctx, tok.ID)
		if err != nil || !listed.LastUsedAt.Equal(e.clock.Now()) {
			t.Errorf("last use %v, want %v (%v)", listed.LastUsedAt, e.clock.Now(), err)
		}
	})

	t.Run("list", func(t *testing.T) {
		e.clock.Advance(time.Second)
		second, _, err := e.store.CreateToken(ctx, account.TokenSpec{Name: "audit export", Role: account.RoleSecurity, CreatedBy: "console:sec@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		list, err := e.store.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range list {
			ids = append(ids, l.ID)
		}
		if !slices.Equal(ids, []string{tok.ID, second.ID}) {
			t.Fatalf("Tokens: %v, want the oldest first", ids)
		}
		if !second.ExpiresAt.IsZero() || !second.RevokedAt.IsZero() || second.Projects != nil {
			t.Errorf("a token without expiry or projects: %+v", second)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		e.clock.Advance(time.Second)
		revoked, err := e.store.RevokeToken(ctx, tok.ID)
		if err != nil || !revoked.RevokedAt.Equal(e.clock.Now()) {
			t.Fatalf("RevokeToken = %+v, %v", revoked, err)
		}
		if _, err := e.store.Authenticate(ctx, secret); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("a revoked token authenticates: %v", err)
		}
		e.clock.Advance(time.Second)
		again, err := e.store.RevokeToken(ctx, tok.ID)
		if err != nil || !again.RevokedAt.Equal(revoked.RevokedAt) {
			t.Errorf("revoking twice: %+v, %v; want the first revocation kept", again, err)
		}
		for _, id := range []string{"tok_aaaaaaaaaaaaaaaaaaaa", "nope", ""} {
			if _, err := e.store.RevokeToken(ctx, id); !errors.Is(err, account.ErrNotFound) {
				t.Errorf("RevokeToken(%q): %v, want ErrNotFound", id, err)
			}
			if _, err := e.store.Token(ctx, id); !errors.Is(err, account.ErrNotFound) {
				t.Errorf("Token(%q): %v, want ErrNotFound", id, err)
			}
		}
	})

	t.Run("invalid specs", func(t *testing.T) {
		cases := []struct {
			name string
			spec account.TokenSpec
		}{
			{"no name", account.TokenSpec{Role: account.RoleAdmin, CreatedBy: "console:a@example.com"}},
			{"long name", account.TokenSpec{Name: strings.Repeat("n", 101), Role: account.RoleAdmin, CreatedBy: "console:a@example.com"}},
			{"control character", account.TokenSpec{Name: "a\nb", Role: account.RoleAdmin, CreatedBy: "console:a@example.com"}},
			{"no role", account.TokenSpec{Name: "n", CreatedBy: "console:a@example.com"}},
			{"bad role", account.TokenSpec{Name: "n", Role: "root", CreatedBy: "console:a@example.com"}},
			{"no creator", account.TokenSpec{Name: "n", Role: account.RoleAdmin}},
			{"bad project", account.TokenSpec{Name: "n", Role: account.RoleAdmin, CreatedBy: "c", Projects: []string{"a b"}}},
			{"expired already", account.TokenSpec{Name: "n", Role: account.RoleAdmin, CreatedBy: "c", ExpiresAt: e.clock.Now()}},
		}
		for _, tc := range cases {
			if _, _, err := e.store.CreateToken(ctx, tc.spec); !errors.Is(err, account.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
			}
		}
	})
}

// TestTokenRefusals: every way a token fails gives one error.
func TestTokenRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)
	mk := func(name string, expires time.Time) string {
		_, secret, err := e.store.CreateToken(ctx, account.TokenSpec{Name: name, Role: account.RoleAdmin, CreatedBy: "console:o@example.com", ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	good := mk("good", time.Time{})
	expiring := mk("expiring", e.clock.Now().Add(time.Hour))
	revoked := mk("revoked", time.Time{})
	id, _, _ := account.TokenParts(revoked)
	if _, err := e.store.RevokeToken(ctx, account.TokenID(id)); err != nil {
		t.Fatal(err)
	}
	id, _, _ = account.TokenParts(good)
	var otherSecret, otherID [32]byte
	rand.Read(otherSecret[:])
	rand.Read(otherID[:])
	wrongSecret := account.FormatToken(id, otherSecret)
	unknown := account.FormatToken([12]byte(otherID[:12]), otherSecret)
	flipped := []byte(good)
	if flipped[10] = '0'; good[10] == '0' {
		flipped[10] = '1'
	}

	if _, err := e.store.Authenticate(ctx, good); err != nil {
		t.Fatalf("the good token: %v", err)
	}
	if _, err := e.store.Authenticate(ctx, expiring); err != nil {
		t.Fatalf("the expiring token before its expiry: %v", err)
	}
	e.clock.Advance(time.Hour)
	cases := []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", "hst_"},
		{"not a token", "sk_live_abcdef"},
		{"bad checksum", string(flipped)},
		{"truncated", good[:len(good)-1]},
		{"unknown id", unknown},
		{"wrong secret", wrongSecret},
		{"revoked", revoked},
		{"expired", expiring},
		{"with spaces", " " + good},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.store.Authenticate(ctx, tc.token)
			if err != account.ErrBadToken {
				t.Errorf("Authenticate(%s) = %v, want exactly ErrBadToken", tc.name, err)
			}
		})
	}
	if _, err := e.store.Authenticate(ctx, good); err != nil {
		t.Errorf("the good token after the refusals: %v", err)
	}

	t.Run("the bucket never holds a secret", func(t *testing.T) {
		for _, tok := range []string{good, expiring, revoked} {
			for _, s := range tokenForms(tok) {
				for _, m := range stacktest.ReadStream(t, e.js, "KV_"+events.BucketConsoleTokens) {
					if strings.Contains(m.Subject(), s) || strings.Contains(string(m.Data()), s) {
						t.Fatalf("the tokens bucket holds a token's secret (%q) in %s", s, m.Subject())
					}
				}
			}
		}
	})
}

// tokenForms are the spellings of a token's secret a leak could take: the
// token, its payload, its secret bytes in hex and base64.
func tokenForms(tok string) []string {
	_, secret, _ := account.TokenParts(tok)
	return []string{
		tok, tok[4:], tok[4:64],
		hex.EncodeToString(secret[:]),
		base64.StdEncoding.EncodeToString(secret[:])[:40],
		base64.RawURLEncoding.EncodeToString(secret[:])[:40],
	}
}

func equalTokens(a, b account.Token) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

package account_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestNoSecretStored runs a whole scenario (accounts made and changed,
// sign-ins that work, fail and get locked, sessions used, ended and signed
// out, tokens made, used and revoked, a damaged hash) and then reads every
// revision of every entry of the four buckets, and every log line: none
// holds a password, a session secret or a token secret in clear.
func TestNoSecretStored(t *testing.T) {
	t.Parallel()
	var logs stacktest.SyncBuffer
	e := newEnv(t, account.Config{Logger: zerolog.New(&logs).Level(zerolog.TraceLevel)})
	ctx := testCtx(t)
	var secrets []string // every secret of the scenario, in clear
	keep := func(s ...string) { secrets = append(secrets, s...) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	generated, err := account.GeneratePassword()
	must(err)
	keep(goodPassword, otherPassword, generated, "wrong-password-one", "wrong-password-two", "next password for owner")
	_, err = e.store.CreateAccount(ctx, "owner@example.com", account.RoleOwner, nil, goodPassword)
	must(err)
	_, err = e.store.CreateAccount(ctx, "admin@example.com", account.RoleAdmin, []string{"proj_a"}, generated)
	must(err)
	_, err = e.store.CreateAccount(ctx, "sec@example.com", account.RoleSecurity, nil, otherPassword)
	must(err)

	_, s1 := e.mustSignIn(t, "owner@example.com", goodPassword)
	_, s2 := e.mustSignIn(t, "admin@example.com", generated)
	_, s3 := e.mustSignIn(t, "sec@example.com", otherPassword)
	keep(s1, s2, s3)
	for range 6 {
		e.store.SignIn(ctx, "owner@example.com", "wrong-password-one", "192.0.2.99", "")
		e.store.SignIn(ctx, "ghost@example.com", "wrong-password-two", "192.0.2.99", "")
	}
	e.clock.Advance(2 * time.Minute)
	_, _, err = e.store.Session(ctx, s1)
	must(err)
	must(e.store.SignOut(ctx, s3))
	e.clock.Advance(15 * time.Minute)
	_, err = e.store.ChangePassword(ctx, "owner@example.com", goodPassword, "next password for owner")
	must(err)
	_, s4 := e.mustSignIn(t, "owner@example.com", "next password for owner")
	keep(s4)
	_, err = e.store.SetPassword(ctx, "admin@example.com", otherPassword)
	must(err)
	_, err = e.store.UpdateAccount(ctx, "sec@example.com", account.AccountChange{Disabled: ptr(true)})
	must(err)
	_, err = e.store.EndSessions(ctx, "owner@example.com")
	must(err)

	_, t1, err := e.store.CreateToken(ctx, account.TokenSpec{Name: "ci", Role: account.RoleAdmin, CreatedBy: "console:owner@example.com"})
	must(err)
	t2tok, t2, err := e.store.CreateToken(ctx, account.TokenSpec{Name: "old", Role: account.RoleSecurity, CreatedBy: "console:owner@example.com", ExpiresAt: e.clock.Now().Add(time.Hour)})
	must(err)
	_, err = e.store.Authenticate(ctx, t1)
	must(err)
	_, err = e.store.Authenticate(ctx, t2)
	must(err)
	_, err = e.store.RevokeToken(ctx, t2tok.ID)
	must(err)
	keep(tokenForms(t1)...)
	keep(tokenForms(t2)...)

	// A damaged hash: the sign-in is refused like a wrong password, and
	// the operator is told, without the password.
	acctKV := e.kv[events.BucketConsoleAccounts]
	var damagedKey string
	for _, m := range stacktest.ReadStream(t, e.js, "KV_"+events.BucketConsoleAccounts) {
		if strings.Contains(string(m.Data()), `"sec@example.com"`) {
			damagedKey = m.Subject()[len("$KV."+events.BucketConsoleAccounts+"."):]
		}
	}
	en, err := acctKV.Get(ctx, damagedKey)
	must(err)
	var raw map[string]any
	must(json.Unmarshal(en.Value(), &raw))
	raw["passwordHash"], raw["disabled"] = "$argon2id$broken", false
	b, _ := json.Marshal(raw)
	_, err = acctKV.Update(ctx, damagedKey, b, en.Revision())
	must(err)
	if _, _, err := e.store.SignIn(ctx, "sec@example.com", otherPassword, "192.0.2.3", ""); !errors.Is(err, account.ErrBadCredentials) {
		t.Fatalf("a damaged hash: %v, want ErrBadCredentials", err)
	}
	if !strings.Contains(logs.String(), "cannot verify") {
		t.Error("a damaged hash was not logged")
	}

	// Every accounts entry holds an argon2id hash, never the password.
	var entries int
	for _, bucket := range events.ConsoleBuckets {
		for _, m := range stacktest.ReadStream(t, e.js, "KV_"+bucket) {
			entries++
			for _, s := range secrets {
				if strings.Contains(m.Subject(), s) || strings.Contains(string(m.Data()), s) {
					t.Errorf("%s holds a secret of the scenario (%d characters) in %s", bucket, len(s), m.Subject())
				}
			}
			if strings.Contains(m.Subject(), "@") {
				t.Errorf("%s has a key holding an email: %s", bucket, m.Subject())
			}
		}
	}
	if entries < 20 {
		t.Fatalf("only %d entries read: the scan saw too little", entries)
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds a secret of the scenario (%d characters)", len(s))
		}
	}
	if strings.Contains(logs.String(), "$argon2id$") {
		t.Error("the log holds a password hash")
	}

	// No listed account or token carries a hash.
	accounts, err := e.store.Accounts(ctx)
	must(err)
	tokens, err := e.store.Tokens(ctx)
	must(err)
	listed, _ := json.Marshal([]any{accounts, tokens})
	if strings.Contains(string(listed), "argon2") || strings.Contains(strings.ToLower(string(listed)), "hash") || strings.Contains(string(listed), "sha256") {
		t.Errorf("listings carry hashes: %s", listed)
	}
}

package account_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hissuno/widgetauth/internal/account"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
)

// TestAsConsoleUser runs every kind of store operation as the console's
// NATS user of deploy/nats/nats.conf, on a whole stack: its permissions
// allow everything the store does, and it needs no right to create a
// bucket.
func TestAsConsoleUser(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	js, err := jetstream.New(stacktest.ConnectAs(t, st, "console"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	c := newClock()
	s, err := account.Open(ctx, js, account.Config{Clock: c.Now, HashConcurrency: 2})
	if err != nil {
		t.Fatalf("Open as the console user: %v", err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as the console user: %v", what, err)
		}
	}
	_, err = s.CreateAccount(ctx, "owner@example.com", account.RoleOwner, nil, goodPassword)
	must("CreateAccount", err)
	_, err = s.UpdateAccount(ctx, "owner@example.com", account.AccountChange{Projects: &[]string{"proj_a"}})
	must("UpdateAccount", err)
	list, err := s.Accounts(ctx)
	must("Accounts", err)
	if len(list) != 1 {
		t.Fatalf("Accounts: %d", len(list))
	}
	if _, _, err := s.SignIn(ctx, "owner@example.com", otherPassword, "192.0.2.1", "ua"); !errors.Is(err, account.ErrBadCredentials) {
		t.Fatalf("a failed sign-in as the console user: %v", err)
	}
	_, secret, err := s.SignIn(ctx, "owner@example.com", goodPassword, "192.0.2.1", "ua")
	must("SignIn", err)
	c.Advance(2 * time.Minute)
	_, _, err = s.Session(ctx, secret)
	must("Session", err)
	if got, _, err := s.Session(ctx, secret); err != nil || !got.LastSeenAt.Equal(c.Now()) {
		t.Fatalf("the last use was not recorded as the console user: %+v, %v", got, err)
	}
	must("SignOut", s.SignOut(ctx, secret))
	_, err = s.EndSessions(ctx, "owner@example.com")
	must("EndSessions", err)
	_, err = s.ChangePassword(ctx, "owner@example.com", goodPassword, otherPassword)
	must("ChangePassword", err)

	tok, token, err := s.CreateToken(ctx, account.TokenSpec{Name: "ci", Role: account.RoleAdmin, CreatedBy: "console:owner@example.com"})
	must("CreateToken", err)
	_, err = s.Authenticate(ctx, token)
	must("Authenticate", err)
	if got, err := s.Token(ctx, tok.ID); err != nil || !got.LastUsedAt.Equal(c.Now()) {
		t.Fatalf("the last use was not recorded as the console user: %+v, %v", got, err)
	}
	_, err = s.Tokens(ctx)
	must("Tokens", err)
	_, err = s.RevokeToken(ctx, tok.ID)
	must("RevokeToken", err)
}

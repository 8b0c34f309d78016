package account_test

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/account"
)

func TestAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	ctx := testCtx(t)

	created, err := e.store.CreateAccount(ctx, "  Owner@Example.com ", account.RoleOwner, nil, goodPassword)
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	now := e.clock.Now()
	want := account.Account{
		Email: "owner@example.com", Role: account.RoleOwner,
		CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now, SessionsValidAfter: now,
	}
	if !equalAccounts(created, want) {
		t.Fatalf("created %+v, want %+v", created, want)
	}
	if !created.CanSee("proj_any") {
		t.Error("an account without projects cannot see every project")
	}
	e.clock.Advance(time.Second)
	e.mustAccount(t, "sec@example.com", account.RoleSecurity, "proj_b", "proj_a", "proj_b")
	e.mustAccount(t, "admin@example.com", account.RoleAdmin)

	t.Run("get by any spelling", func(t *testing.T) {
		got, err := e.store.Account(ctx, "OWNER@example.com")
		if err != nil || !equalAccounts(got, want) {
			t.Fatalf("Account = %+v, %v; want %+v", got, err, want)
		}
	})

	t.Run("projects sorted without duplicates", func(t *testing.T) {
		got, err := e.store.Account(ctx, "sec@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Projects, []string{"proj_a", "proj_b"}) || !got.CanSee("proj_a") || got.CanSee("proj_c") {
			t.Fatalf("projects %v", got.Projects)
		}
	})

	t.Run("list sorted by email", func(t *testing.T) {
		list, err := e.store.Accounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var emails []string
		for _, a := range list {
			emails = append(emails, a.Email)
		}
		if !slices.Equal(emails, []string{"admin@example.com", "owner@example.com", "sec@example.com"}) {
			t.Fatalf("Accounts: %v", emails)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			name string
			err  error
			want error
		}{
			{"create taken email", second(e.store.CreateAccount(ctx, "OWNER@example.com", account.RoleAdmin, nil, otherPassword)), account.ErrExists},
			{"create bad email", second(e.store.CreateAccount(ctx, "owner", account.RoleAdmin, nil, otherPassword)), account.ErrInvalid},
			{"create bad role", second(e.store.CreateAccount(ctx, "x@example.com", "root", nil, otherPassword)), account.ErrInvalid},
			{"create bad project", second(e.store.CreateAccount(ctx, "x@example.com", account.RoleAdmin, []string{"no spaces"}, otherPassword)), account.ErrInvalid},
			{"create short password", second(e.store.CreateAccount(ctx, "x@example.com", account.RoleAdmin, nil, "short")), account.ErrInvalid},
			{"create password is email", second(e.store.CreateAccount(ctx, "long.name@example.com", account.RoleAdmin, nil, "Long.Name@example.com")), account.ErrInvalid},
			{"get unknown", second(e.store.Account(ctx, "nobody@example.com")), account.ErrNotFound},
			{"get malformed", second(e.store.Account(ctx, "nobody")), account.ErrNotFound},
			{"update unknown", second(e.store.UpdateAccount(ctx, "nobody@example.com", account.AccountChange{Disabled: ptr(true)})), account.ErrNotFound},
			{"update bad role", second(e.store.UpdateAccount(ctx, "owner@example.com", account.AccountChange{Role: ptr(account.Role("root"))})), account.ErrInvalid},
			{"set password unknown", second(e.store.SetPassword(ctx, "nobody@example.com", otherPassword)), account.ErrNotFound},
			{"set password short", second(e.store.SetPassword(ctx, "owner@example.com", "short")), account.ErrInvalid},
			{"end sessions unknown", second(e.store.EndSessions(ctx, "nobody@example.com")), account.ErrNotFound},
		}
		for _, tc := range cases {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
			}
		}
		if _, err := e.store.Account(ctx, "x@example.com"); !errors.Is(err, account.ErrNotFound) {
			t.Errorf("a refused create stored the account: %v", err)
		}
	})

	t.Run("update", func(t *testing.T) {
		e.clock.Advance(time.Minute)
		got, err := e.store.UpdateAccount(ctx, "admin@example.com", account.AccountChange{
			Role: ptr(account.RoleSecurity), Projects: &[]string{"proj_x"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Role != account.RoleSecurity || !slices.Equal(got.Projects, []string{"proj_x"}) || !got.UpdatedAt.Equal(e.clock.Now()) {
			t.Fatalf("updated %+v", got)
		}
		if got.SessionsValidAfter.Equal(e.clock.Now()) {
			t.Error("a role change ended the sessions")
		}
		got, err = e.store.UpdateAccount(ctx, "admin@example.com", account.AccountChange{Projects: &[]string{}})
		if err != nil || got.Projects != nil || got.Role != account.RoleSecurity {
			t.Fatalf("clearing the projects: %+v, %v", got, err)
		}
	})
}

// TestAccountConcurrentChanges runs changes of one account at once, from
// two stores sharing the bucket: compare-and-set loses none.
func TestAccountConcurrentChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, account.Config{})
	other, err := account.Open(testCtx(t), e.js, account.Config{Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	e.mustAccount(t, "a@example.com", account.RoleSecurity)

	changes := []func(*account.Store) error{
		func(s *account.Store) error {
			_, err := s.UpdateAccount(ctx, "a@example.com", account.AccountChange{Role: ptr(account.RoleAdmin)})
			return err
		},
		func(s *account.Store) error {
			_, err := s.UpdateAccount(ctx, "a@example.com", account.AccountChange{Projects: &[]string{"proj_1"}})
			return err
		},
		func(s *account.Store) error {
			_, err := s.UpdateAccount(ctx, "a@example.com", account.AccountChange{Disabled: ptr(true)})
			return err
		},
		func(s *account.Store) error {
			_, err := s.SetPassword(ctx, "a@example.com", otherPassword)
			return err
		},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(changes))
	for i, change := range changes {
		wg.Go(func() { errs[i] = change([]*account.Store{e.store, other}[i%2]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("change %d: %v", i, err)
		}
	}
	got, err := e.store.Account(ctx, "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != account.RoleAdmin || !slices.Equal(got.Projects, []string{"proj_1"}) || !got.Disabled {
		t.Errorf("after concurrent changes: %+v; a change was lost", got)
	}
	// The password change landed too: enabled again, the new password
	// signs in.
	if _, err := e.store.UpdateAccount(ctx, "a@example.com", account.AccountChange{Disabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.SignIn(ctx, "a@example.com", otherPassword, "192.0.2.9", ""); err != nil {
		t.Errorf("the concurrent password change was lost: %v", err)
	}

	t.Run("concurrent creates", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		results := map[string]int{}
		for i := range 4 {
			wg.Go(func() {
				_, err := []*account.Store{e.store, other}[i%2].CreateAccount(ctx, "race@example.com", account.RoleAdmin, nil, goodPassword)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					results["created"]++
				case errors.Is(err, account.ErrExists):
					results["exists"]++
				default:
					results[err.Error()]++
				}
			})
		}
		wg.Wait()
		if results["created"] != 1 || results["exists"] != 3 {
			t.Errorf("four creates of one email: %v, want one created and three ErrExists", results)
		}
	})
}

// second returns the error of a call returning a value and an error.
func second[T any](_ T, err error) error { return err }

func ptr[T any](v T) *T { return &v }

func equalAccounts(a, b account.Account) bool { return reflect.DeepEqual(a, b) }

package console_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/account"
)

// throttleForTests locks an email after 3 failures and an address after
// 5, for 1, 2, then 4 minutes at most.
var throttleForTests = account.Throttle{AccountFailures: 3, AddressFailures: 5, FirstLock: time.Minute, MaxLock: 4 * time.Minute, FailureMemory: time.Hour}

// answer is what a client can tell of an answer: its status, headers
// (but Date) and body.
func answer(r *resp) string {
	h := r.header.Clone()
	h.Del("Date")
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.status) + "\n")
	_ = h.Write(&b)
	b.Write(r.body)
	return b.String()
}

// TestSignInThrottledPerAccount fails sign-ins for a known and an unknown
// email in step, each attempt from a new address so that only the email's
// counter counts: the third failure locks the email for a minute, then
// every further failure doubles the lock up to 4 minutes; while locked,
// even the right password gets 429 with a Retry-After that counts down.
// The known and the unknown email get the same answers, byte for byte, at
// every step. Each failure and each lockout is an admin event with the
// email, the address and the user agent; the sign-in that works at last
// clears the email's failures.
func TestSignInThrottledPerAccount(t *testing.T) {
	t.Parallel()
	clock := newManualClock(time.Now())
	e := newEnv(t, withClock(clock.Now), withAccounts(account.Config{Throttle: throttleForTests}), withPromptAudit())
	pw := e.account(t, "ada@example.com", account.RoleAdmin)
	const agent = "throttle-test/1.0"
	last := 10
	var ips []string // of the attempts that got 401, in order
	attempt := func(t *testing.T, email, password string) *resp {
		t.Helper()
		last++
		ip := fmt.Sprintf("127.0.0.%d", last)
		r := e.browserFrom(t, ip, agent).do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password})
		if r.status == http.StatusUnauthorized {
			ips = append(ips, ip)
		}
		return r
	}
	// both tries ada's password (wrong or right) and a wrong one for
	// ghost, who has no account, and wants the same answer of status.
	both := func(t *testing.T, adaPassword string, status int, retryAfter string) {
		t.Helper()
		a := attempt(t, "ada@example.com", adaPassword).want(t, status)
		g := attempt(t, "ghost@example.com", "wrong password 1").want(t, status)
		if got := a.header.Get("Retry-After"); got != retryAfter {
			t.Fatalf("Retry-After %q, want %q: %s", got, retryAfter, a.body)
		}
		if answer(a) != answer(g) {
			t.Fatalf("a known and an unknown email answered apart:\n%s\n---\n%s", answer(a), answer(g))
		}
	}

	both(t, "wrong password 1", http.StatusUnauthorized, "")
	both(t, "wrong password 2", http.StatusUnauthorized, "")
	both(t, "wrong password 3", http.StatusUnauthorized, "") // locks for 1 min
	both(t, pw, http.StatusTooManyRequests, "60")
	clock.Advance(30 * time.Second)
	both(t, pw, http.StatusTooManyRequests, "30")
	clock.Advance(31 * time.Second)
	both(t, "wrong password 4", http.StatusUnauthorized, "") // locks for 2 min
	both(t, pw, http.StatusTooManyRequests, "120")
	clock.Advance(121 * time.Second)
	both(t, "wrong password 5", http.StatusUnauthorized, "") // locks for 4 min
	both(t, pw, http.StatusTooManyRequests, "240")
	clock.Advance(241 * time.Second)
	both(t, "wrong password 6", http.StatusUnauthorized, "") // 4 min: the longest
	both(t, pw, http.StatusTooManyRequests, "240")
	clock.Advance(241 * time.Second)
	attempt(t, "ada@example.com", pw).want(t, http.StatusOK)
	attempt(t, "ada@example.com", "wrong password 7").want(t, http.StatusUnauthorized)
	attempt(t, "ada@example.com", "wrong password 8").want(t, http.StatusUnauthorized) // the failures started again

	var adaIPs, ghostIPs []string
	for i, ip := range ips {
		if i < 12 && i%2 == 1 {
			ghostIPs = append(ghostIPs, ip)
		} else {
			adaIPs = append(adaIPs, ip)
		}
	}
	all := e.storedEvents(t, 2*6+2+2*4+1, events.AdminSignInFailed, events.AdminLocked, events.AdminSignedIn)
	for _, who := range []struct {
		email string
		ips   []string
		fails int
	}{
		{"ada@example.com", adaIPs, 8},
		{"ghost@example.com", ghostIPs, 6},
	} {
		evs := eventsOf(all, who.email)
		var failed []string
		var locks []string
		for _, ev := range evs {
			if ev.UserAgent != agent || ev.ClientIP == "" {
				t.Errorf("%s: an event without the client: %+v", who.email, ev)
			}
			switch events.AdminEventKind(ev.Kind) {
			case events.AdminSignInFailed:
				if ev.Actor != events.ActorAnonymous {
					t.Errorf("a failed sign-in's actor: %+v", ev)
				}
				failed = append(failed, ev.ClientIP)
			case events.AdminLocked:
				if ev.Actor != events.ActorAnonymous || !strings.Contains(ev.Reason, "for this email") {
					t.Errorf("a lockout: %+v", ev)
				}
				locks = append(locks, ev.Reason[strings.LastIndex(ev.Reason, " ")+1:])
			case events.AdminSignedIn:
				if ev.Actor != events.ActorConsole+who.email {
					t.Errorf("a sign-in: %+v", ev)
				}
			}
		}
		slices.Sort(failed)
		wantIPs := slices.Clone(who.ips)
		slices.Sort(wantIPs)
		if len(failed) != who.fails || !slices.Equal(failed, wantIPs) {
			t.Errorf("%s: failed sign-ins recorded from %v, want one from each of %v (the 429s are refused before any check, and not recorded one by one)", who.email, failed, wantIPs)
		}
		if want := []string{"1m0s", "2m0s", "4m0s", "4m0s"}; !slices.Equal(locks, want) {
			t.Errorf("%s: lockouts %v, want %v", who.email, locks, want)
		}
	}
}

// TestSignInThrottledPerAddress fails sign-ins for five emails, each once,
// from one address: the address is locked for every email, the right
// password of a real account included, while another address signs in;
// the lock doubles on the next failure after it ends. A sign-in that works
// from the address after that does not lock it again (nor does it wipe
// its failures: the next failure locks it at once).
func TestSignInThrottledPerAddress(t *testing.T) {
	t.Parallel()
	clock := newManualClock(time.Now())
	e := newEnv(t, withClock(clock.Now), withAccounts(account.Config{Throttle: throttleForTests}), withPromptAudit())
	pw := e.account(t, "ada@example.com", account.RoleAdmin)
	const agent = "spray-test/1.0"
	sprayer, elsewhere := e.browserFrom(t, "127.0.0.2", agent), e.browserFrom(t, "127.0.0.3", agent)
	signIn := func(c *client, email, password string, status int, retryAfter string) {
		t.Helper()
		r := c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": email, "password": password}).want(t, status)
		if got := r.header.Get("Retry-After"); got != retryAfter {
			t.Fatalf("%s: Retry-After %q, want %q", email, got, retryAfter)
		}
	}
	for i := range 5 {
		signIn(sprayer, fmt.Sprintf("spray%d@example.com", i), "wrong password", http.StatusUnauthorized, "")
	}
	signIn(sprayer, "spray5@example.com", "wrong password", http.StatusTooManyRequests, "60")
	signIn(sprayer, "ada@example.com", pw, http.StatusTooManyRequests, "60")
	signIn(elsewhere, "ada@example.com", pw, http.StatusOK, "")
	clock.Advance(61 * time.Second)
	signIn(sprayer, "spray6@example.com", "wrong password", http.StatusUnauthorized, "")
	signIn(sprayer, "ada@example.com", pw, http.StatusTooManyRequests, "120")
	clock.Advance(121 * time.Second)
	signIn(sprayer, "ada@example.com", pw, http.StatusOK, "")
	signIn(sprayer, "ada@example.com", pw, http.StatusOK, "")
	signIn(sprayer, "spray7@example.com", "wrong password", http.StatusUnauthorized, "")
	signIn(sprayer, "ada@example.com", pw, http.StatusTooManyRequests, "240")

	evs := e.storedEvents(t, 3, events.AdminLocked)
	for _, ev := range evs {
		if ev.ClientIP != "127.0.0.2" || ev.UserAgent != agent || !strings.Contains(ev.Reason, "from this address") || !strings.HasPrefix(ev.Account, "spray") {
			t.Errorf("an address lockout: %+v", ev)
		}
	}
	if len(evs) != 3 {
		t.Errorf("%d lockouts recorded, want 3: %+v", len(evs), evs)
	}
}

// TestSignInAnswersAlike signs in with a wrong password, an unknown email,
// the right password of a disabled account, the right password of another
// account, an email in other case, and text that is no email: every answer
// is the same, byte for byte but its Date, and each attempt runs one
// argon2id verification (19 MiB allocated), so that no work is skipped
// for an unknown account. Each is recorded alike: a failed sign-in by
// anonymous with the email tried (normalised, or "(not an email)"), the
// address and the user agent. A sign-in and a sign-out are recorded too.
//
// Not parallel: the allocation count is the process's.
func TestSignInAnswersAlike(t *testing.T) {
	e := newEnv(t, withPromptAudit())
	pw := e.account(t, "ada@example.com", account.RoleAdmin)
	bobPW := e.account(t, "bob@example.com", account.RoleAdmin)
	if _, err := e.st.Console.Accounts().UpdateAccount(t.Context(), "bob@example.com", account.AccountChange{Disabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	const agent = "enumeration-test/1.0"
	c := e.browser(t)
	c.headers.Set("User-Agent", agent)
	cases := []struct {
		name, email, password, recorded string
	}{
		{name: "wrong password", email: "ada@example.com", password: "not ada's password", recorded: "ada@example.com"},
		{name: "unknown email", email: "ghost@example.com", password: "not ada's password", recorded: "ghost@example.com"},
		{name: "disabled account, right password", email: "bob@example.com", password: bobPW, recorded: "bob@example.com"},
		{name: "unknown email, a real password", email: "nobody@example.com", password: pw, recorded: "nobody@example.com"},
		{name: "known email in other case", email: "  ADA@Example.COM ", password: "not ada's password", recorded: "ada@example.com"},
		{name: "no email at all", email: "correct horse battery staple", password: "not ada's password", recorded: "(not an email)"},
	}
	var first string
	allocated := make([]uint64, len(cases))
	for i, tc := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": tc.email, "password": tc.password}).want(t, http.StatusUnauthorized)
		runtime.ReadMemStats(&after)
		allocated[i] = after.TotalAlloc - before.TotalAlloc
		if first == "" {
			first = answer(r)
		} else if answer(r) != first {
			t.Errorf("%s: answered apart from %s:\n%s\n---\n%s", tc.name, cases[0].name, answer(r), first)
		}
	}
	// The first case verifies ada's stored hash: what it allocated is an
	// argon2id verification (19 MiB with today's parameters) and the
	// request around it. Whatever else runs meanwhile only adds; an attempt
	// that skipped the verification would allocate some KiB.
	if allocated[0] < 4<<20 {
		t.Fatalf("a wrong password allocated %d KiB: no argon2id verification?", allocated[0]>>10)
	}
	for i, tc := range cases[1:] {
		if got := allocated[i+1]; got < allocated[0]/2 {
			t.Errorf("%s: %d KiB allocated, a wrong password %d KiB: its argon2id verification did not run", tc.name, got>>10, allocated[0]>>10)
		}
	}
	c.do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": "ada@example.com", "password": pw}).want(t, http.StatusOK)
	c.do(t, http.MethodDelete, "/api/v1/session", nil).want(t, http.StatusNoContent)

	evs := e.storedEvents(t, len(cases)+2, events.AdminSignInFailed, events.AdminSignedIn, events.AdminSignedOut, events.AdminLocked)
	if len(evs) != len(cases)+2 {
		t.Fatalf("%d events, want %d: %+v", len(evs), len(cases)+2, evs)
	}
	for i, tc := range cases {
		want := storedEvent{Kind: string(events.AdminSignInFailed), Actor: events.ActorAnonymous, Account: tc.recorded, ClientIP: "127.0.0.1", UserAgent: agent}
		if evs[i] != want {
			t.Errorf("%s: recorded %+v, want %+v", tc.name, evs[i], want)
		}
	}
	for i, kind := range []events.AdminEventKind{events.AdminSignedIn, events.AdminSignedOut} {
		want := storedEvent{Kind: string(kind), Actor: "console:ada@example.com", Account: "ada@example.com", ClientIP: "127.0.0.1", UserAgent: agent}
		if got := evs[len(cases)+i]; got != want {
			t.Errorf("recorded %+v, want %+v", got, want)
		}
	}
}

// TestPasswordChangeThrottled guesses the current password from a
// signed-in session (a stolen cookie): the guesses count against the
// email as failed sign-ins do, each is recorded, the third locks the email
// (recorded as a lockout), and further changes, and sign-ins, get 429 with
// Retry-After, not an internal error. The session itself goes on.
func TestPasswordChangeThrottled(t *testing.T) {
	t.Parallel()
	clock := newManualClock(time.Now())
	e := newEnv(t, withClock(clock.Now), withAccounts(account.Config{Throttle: throttleForTests}), withPromptAudit())
	a := e.signIn(t, "ada@example.com", account.RoleAdmin)
	change := func(current string, status int, retryAfter string) {
		t.Helper()
		r := a.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": current, "newPassword": "the thief's new password"}).want(t, status)
		if got := r.header.Get("Retry-After"); got != retryAfter {
			t.Fatalf("Retry-After %q, want %q", got, retryAfter)
		}
	}
	for i := range 3 {
		change(fmt.Sprintf("guess number %d", i), http.StatusUnprocessableEntity, "")
	}
	change("guess number 3", http.StatusTooManyRequests, "60")
	change(a.password, http.StatusTooManyRequests, "60")
	e.browser(t).do(t, http.MethodPost, "/api/v1/session", map[string]string{"email": "ada@example.com", "password": a.password}).want(t, http.StatusTooManyRequests)
	a.do(t, http.MethodGet, "/api/v1/session", nil).want(t, http.StatusOK)

	evs := eventsOf(e.storedEvents(t, 4, events.AdminSignInFailed, events.AdminLocked), "ada@example.com")
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
		if ev.Actor != "console:ada@example.com" || ev.ClientIP != "127.0.0.1" || !strings.Contains(ev.Reason, "password change") {
			t.Errorf("a guess of the current password recorded as %+v", ev)
		}
	}
	slices.Sort(kinds)
	want := []string{string(events.AdminLocked), string(events.AdminSignInFailed), string(events.AdminSignInFailed), string(events.AdminSignInFailed)}
	if !slices.Equal(kinds, want) {
		t.Errorf("recorded %v, want %v", kinds, want)
	}

	clock.Advance(61 * time.Second)
	r := a.do(t, http.MethodPut, "/api/v1/session/password", map[string]string{"currentPassword": a.password, "newPassword": "ada's own new password"}).want(t, http.StatusOK)
	if _, ck := r.setCookie(t, e.cookieName()); ck == nil {
		t.Fatal("the change started no session")
	}
}

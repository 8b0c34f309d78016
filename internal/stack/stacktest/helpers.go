package stacktest

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hissuno/widgetauth/internal/devtools/freeport"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

// Mint signs a widget token as a customer's backend does
// (widgettoken.Mint), failing the test on error.
func Mint(t testing.TB, secret string, c widgettoken.Claims) string {
	t.Helper()
	tok, err := widgettoken.Mint(secret, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// MintMap signs arbitrary claims (widgettoken.MintMap), failing the test on
// error.
func MintMap(t testing.TB, secret string, claims map[string]any) string {
	t.Helper()
	tok, err := widgettoken.MintMap(secret, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// FreeAddr is a loopback address whose port was free a moment ago
// (freeport.Addr), failing the test on error.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Run runs a role's Run in a goroutine until the returned stop is called
// (or the test ends): stop ends its context and waits, at most 20 s, for
// Run to return, failing the test when it does not or returns an error.
func Run(t testing.TB, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return within 20 s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Ready is a condition for Eventually: nil once ready reports true.
func Ready(ready func() bool) func() error {
	return func() error {
		if !ready() {
			return errors.New("not ready yet")
		}
		return nil
	}
}

// SecretSealer is a sealer under a random master key.
func SecretSealer(t testing.TB) *project.Sealer {
	t.Helper()
	key := make([]byte, project.MasterKeyBytes)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := project.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

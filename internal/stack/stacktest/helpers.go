package stacktest

import (
	"testing"

	"github.com/hissuno/widgetauth/internal/devtools/freeport"
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

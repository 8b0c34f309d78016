// Package widgettoken mints widget tokens the way a customer's backend
// does (the docs' Node, Next.js and Flask examples): HS256, the project's
// secret key as the raw HMAC key, the claims userId, userMetadata, iat and
// exp. `hissuno token mint`, the bench and the tests use it; the demo site
// keeps its own minter on purpose, as a customer's backend would.
//
// It verifies nothing (internal/authz does) and never logs a key or a
// token.
package widgettoken

import (
	"fmt"
	"maps"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are a widget token's claims. Extra claims are added as they are;
// they may also override the others (a test's malformed claim, say).
type Claims struct {
	// UserID is the userId claim.
	UserID string
	// UserMetadata is the userMetadata claim; nil leaves it out.
	UserMetadata map[string]string
	// IssuedAt is the iat claim; zero leaves it out (as PyJWT does unless
	// asked).
	IssuedAt time.Time
	// Expires is the exp claim; zero leaves it out.
	Expires time.Time
	// Extra are more claims, added last.
	Extra map[string]any
}

// For is the claims of a token of userID issued at now and valid for ttl,
// as jwt.sign(…, {expiresIn}) makes them.
func For(userID string, metadata map[string]string, now time.Time, ttl time.Duration) Claims {
	return Claims{UserID: userID, UserMetadata: metadata, IssuedAt: now, Expires: now.Add(ttl)}
}

// Mint signs the claims with the secret key.
func Mint(secret string, c Claims) (string, error) {
	claims := jwt.MapClaims{"userId": c.UserID}
	if c.UserMetadata != nil {
		claims["userMetadata"] = c.UserMetadata
	}
	if !c.IssuedAt.IsZero() {
		claims["iat"] = c.IssuedAt.Unix()
	}
	if !c.Expires.IsZero() {
		claims["exp"] = c.Expires.Unix()
	}
	maps.Copy(claims, c.Extra)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign a widget token: %w", err)
	}
	return tok, nil
}

// MintMap signs arbitrary claims with the secret key, for a token no
// customer would make (claims of the wrong type, say).
func MintMap(secret string, claims map[string]any) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign a widget token: %w", err)
	}
	return tok, nil
}

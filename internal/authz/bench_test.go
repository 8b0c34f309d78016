package authz

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hissuno/widgetauth/events"
)

// benchToken is the token jsonwebtoken's documented call makes, at a fixed
// time so that the benchmarks are repeatable.
func benchToken(b *testing.B) (string, time.Time) {
	b.Helper()
	now := time.Now()
	c := goodClaims()
	c["iat"], c["exp"] = now.Unix(), now.Add(24*time.Hour).Unix()
	return sign(b, testKey1, hs256(), c), now
}

// BenchmarkDecide is an authenticated accept through the whole decision:
// project, origin, token (through the verified-token cache), revocation.
func BenchmarkDecide(b *testing.B) {
	tok, now := benchToken(b)
	p := testProject(b)
	d := NewDecider(DefaultCacheEntries)
	req := Request{ProjectID: p.ID, Origin: "https://app.myapp.com", Token: tok, UserID: "user-42"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if dec := d.Decide(p, req, now); dec.Reason != "" {
			b.Fatal(dec.Err)
		}
	}
}

// BenchmarkDecideUncached is the same decision with the cache disabled: every
// token is parsed and its HMAC computed.
func BenchmarkDecideUncached(b *testing.B) {
	tok, now := benchToken(b)
	p := testProject(b)
	d := NewDecider(0)
	req := Request{ProjectID: p.ID, Origin: "https://app.myapp.com", Token: tok, UserID: "user-42"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if dec := d.Decide(p, req, now); dec.Reason != "" {
			b.Fatal(dec.Err)
		}
	}
}

// BenchmarkBareParse is golang-jwt's Parse of the same token with the same
// options and nothing else: the baseline BenchmarkDecide is measured against.
func BenchmarkBareParse(b *testing.B) {
	tok, _ := benchToken(b)
	key := []byte(testKey1)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(60*time.Second),
		jwt.WithStrictDecoding(),
	)
	keyFunc := func(*jwt.Token) (any, error) { return key, nil }
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := parser.Parse(tok, keyFunc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideParallel is BenchmarkDecide from every core at once, the
// way a verifier runs it.
func BenchmarkDecideParallel(b *testing.B) {
	tok, now := benchToken(b)
	p := testProject(b)
	d := NewDecider(DefaultCacheEntries)
	req := Request{ProjectID: p.ID, Origin: "https://app.myapp.com", Token: tok, UserID: "user-42"}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if dec := d.Decide(p, req, now); dec.Reason != "" {
				b.Fatal(dec.Err)
			}
		}
	})
}

// BenchmarkDecisionEvent is the audit event of an authenticated accept,
// every stored field scrubbed of secrets, as the worker builds it.
func BenchmarkDecisionEvent(b *testing.B) {
	tok, now := benchToken(b)
	p := testProject(b)
	d := NewDecider(DefaultCacheEntries)
	a := &events.Attempt{
		SchemaVersion: events.SchemaVersion, AttemptID: "att_0123456789abcdefghijkl", ProjectID: p.ID,
		Origin: "https://app.myapp.com", WidgetToken: tok, UserID: "user-42",
		ReceivedAt: now.Add(-time.Millisecond), Deadline: now.Add(3 * time.Second), Ingress: "ingress-1",
		ClientIP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	}
	dec := d.Decide(p, Request{ProjectID: a.ProjectID, Origin: a.Origin, Token: a.WidgetToken, UserID: a.UserID}, now)
	if dec.Reason != "" {
		b.Fatal(dec.Err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = DecisionEvent(a, dec, "verifier-1")
	}
}

package ingress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkParse is the ingress's reading of a connect request into an
// attempt: the body of the docs' React example, a token and metadata.
func BenchmarkParse(b *testing.B) {
	in := &Ingress{cfg: Config{Instance: "ingress-1", Deadline: 3 * time.Second, Clock: time.Now}, replyPrefix: "_HISSUNO_REPLY.ingress-1."}
	body := []byte(`{"projectId":"proj_shop","widgetToken":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOiJ1c2VyXzQyIiwidXNlck1ldGFkYXRhIjp7Im5hbWUiOiJBZGEifSwiaWF0IjoxNzYwMDAwMDAwLCJleHAiOjE3NjAwODY0MDB9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln","userId":"user_42","userMetadata":{"name":"Ada","email":"ada@example.com"}}`)
	r := httptest.NewRequest(http.MethodPost, ConnectPath, nil)
	r.Header.Set("Origin", "https://shop.example")
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if _, err := in.parse(r, netip.MustParseAddr("192.0.2.1"), true); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, want string
		ok                 bool
	}{
		{"bearer", "Bearer abc.def.ghi", "abc.def.ghi", true},
		{"lower case scheme", "bearer abc", "abc", true},
		{"stripped once only", "Bearer Bearer abc", "Bearer abc", true},
		{"basic", "Basic dXNlcjpwYXNz", "", false},
		{"scheme alone", "Bearer", "", false},
		{"no space", "Bearerabc", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := BearerToken(tt.header)
			if got != tt.want || ok != tt.ok {
				t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
	// What the header leaves after the scheme goes to the verifier as it
	// is, to be refused there (authz's TestBearerLeftoversRefused): a
	// twice-prefixed header, a line break or a space inside or around the
	// token are Bearer credentials, never cleaned up here.
	const good = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiJ1In0.c2ln"
	for _, h := range []string{
		"Bearer Bearer " + good,
		"Bearer " + good[:10] + "\r\n" + good[10:],
		"Bearer " + good + "\n",
		"Bearer  " + good,
		"Bearer " + good + " ",
	} {
		tok, ok := BearerToken(h)
		if !ok || tok != h[len("Bearer "):] {
			t.Errorf("BearerToken(%q) = %q, %v; want the rest after the scheme, as it is", h, tok, ok)
		}
	}
}

package ingress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
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
		if _, err := in.parse(r); err != nil {
			b.Fatal(err)
		}
	}
}

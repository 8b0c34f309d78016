package ingress

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
)

// decisionReplies are verifier replies of every shape the HTTP answer
// takes: full decision events, as the verifier encodes them.
func decisionReplies(t testing.TB) map[string][]byte {
	t.Helper()
	at := time.Date(2026, 11, 25, 19, 6, 4, 123456789, time.UTC)
	base := events.Decision{
		SchemaVersion: events.SchemaVersion, DecisionID: "dec_att_1", AttemptID: "att_1", Time: at, ReceivedAt: at.Add(-time.Millisecond),
		ProjectID: "proj_1", Origin: "https://app.example.com", TokenFingerprint: "0123456789abcdef", Verifier: "verifier-1",
		Ingress: "ingress-1", ClientIP: "127.0.0.1", UserAgent: "Mozilla/5.0", LatencyMicros: 1000,
	}
	authenticated := base
	authenticated.Decision, authenticated.Session = events.OutcomeAccept, events.SessionAuthenticated
	authenticated.UserID, authenticated.UserVerified, authenticated.KeyVersion = "user_42", true, 3
	authenticated.UserMetadata = events.Metadata{"name": "Ada", "email": "ada@example.com"}
	authenticated.ClaimedUserID = "someone_else"
	anonymous := base
	anonymous.Decision, anonymous.Session, anonymous.TokenFingerprint = events.OutcomeAccept, events.SessionAnonymous, ""
	expired := base
	expired.Decision, expired.Reason, expired.Message = events.OutcomeUnauthorized, events.ReasonTokenExpired, "the token expired 90 s ago"
	expired.SkewSeconds, expired.LeewaySeconds = 90, 60
	blocked := base
	blocked.Decision, blocked.Reason, blocked.Message = events.OutcomeOriginBlocked, events.ReasonOriginNotAllowed, "https://app.example.com is not an allowed origin"
	badSig := base
	badSig.Decision, badSig.Reason, badSig.Message = events.OutcomeUnauthorized, events.ReasonTokenBadSignature, "the signature does not match"
	out := map[string][]byte{}
	for name, d := range map[string]events.Decision{
		"authenticated": authenticated, "anonymous": anonymous, "expired": expired, "blocked": blocked, "bad signature": badSig,
	} {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// TestAnswer pins the HTTP answer to each shape of verifier reply: status,
// headers and body, byte for byte.
func TestAnswer(t *testing.T) {
	replies := decisionReplies(t)
	tests := []struct {
		name   string
		reply  []byte
		status int
		body   string
	}{
		{"authenticated", replies["authenticated"], 200,
			`{"decision":"accept","session":"authenticated","userId":"user_42","userVerified":true,"userMetadata":{"email":"ada@example.com","name":"Ada"},"keyVersion":3,"decisionId":"dec_att_1"}`},
		{"anonymous", replies["anonymous"], 200,
			`{"decision":"accept","session":"anonymous","userId":"","userVerified":false,"decisionId":"dec_att_1"}`},
		{"expired", replies["expired"], 401,
			`{"decision":"unauthorized","reason":"token_expired","message":"the token expired 90 s ago","serverTime":"2026-11-25T19:06:04.123456789Z","skewSeconds":90,"leewaySeconds":60,"decisionId":"dec_att_1"}`},
		{"blocked", replies["blocked"], 403,
			`{"decision":"origin_blocked","reason":"origin_not_allowed","message":"https://app.example.com is not an allowed origin","decisionId":"dec_att_1"}`},
		{"bad signature", replies["bad signature"], 401,
			`{"decision":"unauthorized","reason":"token_bad_signature","message":"the signature does not match","decisionId":"dec_att_1"}`},
		{"not JSON", []byte(`{"decision":`), 502,
			`{"error":"the verifier's reply was not understood; retry"}`},
	}
	in := &Ingress{log: zerolog.Nop(), cfg: Config{Clock: time.Now}, limits: newLimiter(NoLimits)}
	att := &events.Attempt{AttemptID: "att_1", ProjectID: "proj_shop"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			in.answer(w, att, tt.reply)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if got := w.Body.String(); got != tt.body+"\n" {
				t.Errorf("body\n got %s\nwant %s", got, tt.body)
			}
			for h, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
				if got := w.Header().Values(h); len(got) != 1 || got[0] != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
		})
	}
}

// discard is a ResponseWriter that keeps nothing, so the benchmark
// measures the answer, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkAnswer is the ingress's work on a verifier's reply: decode it
// and write the HTTP answer.
func BenchmarkAnswer(b *testing.B) {
	replies := decisionReplies(b)
	in := &Ingress{log: zerolog.Nop(), cfg: Config{Clock: time.Now}, limits: newLimiter(NoLimits)}
	att := &events.Attempt{AttemptID: "att_1", ProjectID: "proj_shop"}
	for _, name := range []string{"authenticated", "anonymous", "expired"} {
		b.Run(name, func(b *testing.B) {
			reply := replies[name]
			b.ReportAllocs()
			for b.Loop() {
				in.answer(&discard{h: http.Header{}}, att, reply)
			}
		})
	}
}

// TestReplyFieldsAreDecisionFields keeps the ingress's view of a reply in
// step with the decision event: each of its fields decodes a field of
// events.Decision of the same JSON name and type.
func TestReplyFieldsAreDecisionFields(t *testing.T) {
	jsonName := func(f reflect.StructField) string { name, _, _ := strings.Cut(f.Tag.Get("json"), ","); return name }
	event := map[string]reflect.Type{}
	dt := reflect.TypeFor[events.Decision]()
	for i := range dt.NumField() {
		event[jsonName(dt.Field(i))] = dt.Field(i).Type
	}
	rt := reflect.TypeFor[reply]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if typ, ok := event[jsonName(f)]; !ok || typ != f.Type {
			t.Errorf("reply.%s (json %q, %s) is not a field of events.Decision", f.Name, jsonName(f), f.Type)
		}
	}
}

package ingress

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hissuno/widgetauth/events"
)

// Response is the body of a decision answer. An accept always carries
// userId ("" for an anonymous visitor who gave none).
type Response struct {
	Decision      events.Outcome    `json:"decision"`
	Session       events.Session    `json:"session,omitempty"`
	UserID        *string           `json:"userId,omitempty"`
	UserVerified  *bool             `json:"userVerified,omitempty"`
	UserMetadata  map[string]string `json:"userMetadata,omitempty"`
	Reason        events.Reason     `json:"reason,omitempty"`
	Message       string            `json:"message,omitempty"`
	ServerTime    *time.Time        `json:"serverTime,omitempty"`
	SkewSeconds   int64             `json:"skewSeconds,omitempty"`
	LeewaySeconds int64             `json:"leewaySeconds,omitempty"`
	KeyVersion    int               `json:"keyVersion,omitempty"`
	DecisionID    string            `json:"decisionId"`
}

// ErrorResponse is the body of a 400, 405, 429 or 503; a 429 names its
// Reason (events.Throttle).
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

// answer writes the HTTP answer to the verifier's reply to an attempt; a
// decision other than unknown_project tells the limits the project exists.
func (in *Ingress) answer(w http.ResponseWriter, a *events.Attempt, body []byte) {
	var d reply
	if err := json.Unmarshal(body, &d); err != nil {
		in.log.Error().Err(err).Str("attempt", a.AttemptID).Msg("verifier reply not understood")
		writeJSON(w, http.StatusBadGateway, ErrorResponse{Error: "the verifier's reply was not understood; retry"})
		return
	}
	if d.Reason != events.ReasonUnknownProject {
		in.limits.learn(a.ProjectID, in.cfg.Clock())
	}
	writeJSON(w, d.Decision.HTTPStatus(), responseFor(&d))
}

// reply is what the HTTP answer uses of the verifier's reply, a decision
// event (events.Decision): the decoder skips the other fields without
// allocating them.
type reply struct {
	DecisionID    string          `json:"decisionId"`
	Time          time.Time       `json:"time"`
	Decision      events.Outcome  `json:"decision"`
	Reason        events.Reason   `json:"reason"`
	Message       string          `json:"message"`
	Session       events.Session  `json:"session"`
	UserID        string          `json:"userId"`
	UserVerified  bool            `json:"userVerified"`
	UserMetadata  events.Metadata `json:"userMetadata"`
	KeyVersion    int             `json:"keyVersion"`
	SkewSeconds   int64           `json:"skewSeconds"`
	LeewaySeconds int64           `json:"leewaySeconds"`
}

// responseFor is the HTTP body of a decision.
func responseFor(d *reply) Response {
	resp := Response{Decision: d.Decision, DecisionID: d.DecisionID}
	if d.Decision == events.OutcomeAccept {
		verified, userID := d.UserVerified, d.UserID
		resp.Session, resp.UserID, resp.UserVerified, resp.UserMetadata = d.Session, &userID, &verified, d.UserMetadata
		resp.KeyVersion = d.KeyVersion
		return resp
	}
	resp.Reason, resp.Message = d.Reason, d.Message
	if d.Reason == events.ReasonTokenExpired || d.Reason == events.ReasonTokenNotYetValid {
		t := d.Time
		resp.ServerTime, resp.SkewSeconds, resp.LeewaySeconds = &t, d.SkewSeconds, d.LeewaySeconds
	}
	return resp
}

// setCORS lets the widget's cross-origin call read every answer, refusals
// included: the decision, not CORS, enforces the project's allowed origins.
func setCORS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	// The widget backs off a 429 for at least its Retry-After.
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "600")
	}
}

// statusWriter remembers the status code written, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Header values of every JSON answer, shared: net/http only reads them.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

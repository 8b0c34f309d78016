// Package ingress is the HTTP front of Hissuno widget authentication: it
// turns a widget's POST /v1/widget/connect into an attempt event, publishes
// it to JetStream, waits for a verifier's reply on its one reply
// subscription, and answers the browser (DESIGN.md "Public contract").
//
// It decides nothing itself and never logs a token: a malformed request is
// refused with 400 before anything is published; everything else is the
// verifier's decision.
package ingress

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/health"
	"github.com/hissuno/widgetauth/internal/metrics"
	"github.com/hissuno/widgetauth/internal/verifier"
	"github.com/hissuno/widgetauth/internal/widget"
)

// Limits of a connect request.
const (
	// MaxBodyBytes bounds the request body; a larger one gets 400.
	MaxBodyBytes = 16 << 10
	// MaxProjectIDBytes bounds the projectId.
	MaxProjectIDBytes = 256
	// ConnectPath is the widget's endpoint.
	ConnectPath = "/v1/widget/connect"
)

// Config configures an ingress.
type Config struct {
	// NATS is the connection to publish attempts on; required.
	NATS *nats.Conn
	// Listen is the HTTP address; default 127.0.0.1:8080.
	Listen string
	// Instance names this ingress in attempts, logs and the reply subject;
	// default: a random name.
	Instance string
	// Source is the NATS identity the ingress publishes attempts as: its
	// NATS user's name, under which nats.conf lets it publish
	// (hissuno.attempts.<source>.*) and receive replies; default
	// events.SourceIngress.
	Source string
	// Deadline is how long a request waits for a verifier before it gets
	// 503; default 3 s.
	Deadline time.Duration
	// Checks receives the ingress's readiness checks and is served on
	// /readyz; default: a new set.
	Checks *health.Checks
	// Mux, when set, receives the ingress's routes in addition to /healthz,
	// /readyz and /metrics, so other parts (the widget loader) can add
	// theirs; default: a new mux.
	Mux *http.ServeMux
	// Clock is the server clock; default time.Now.
	Clock func() time.Time
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Instance == "" {
		c.Instance = bus.InstanceName("ingress")
	}
	if c.Source == "" {
		c.Source = events.SourceIngress
	}
	if c.Deadline == 0 {
		c.Deadline = 3 * time.Second
	}
	if c.Checks == nil {
		c.Checks = &health.Checks{}
	}
	if c.Mux == nil {
		c.Mux = http.NewServeMux()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NATS == nil:
		return errors.New("ingress: no NATS connection")
	case c.Deadline < 10*time.Millisecond:
		return errors.New("ingress: the deadline must be at least 10 ms")
	case c.Deadline > events.AttemptWindow/2:
		// Republished attempts must reach JetStream within the window a
		// verifier accepts them in.
		return fmt.Errorf("ingress: the deadline must be at most %s", events.AttemptWindow/2)
	case !events.ValidToken(c.Instance):
		return fmt.Errorf("ingress: instance name %q must be one NATS subject token: 1 to 64 letters, digits, '-' or '_'", c.Instance)
	case !events.ValidToken(c.Source):
		return fmt.Errorf("ingress: source %q must be one NATS subject token: its NATS user's name", c.Source)
	}
	return nil
}

// Ingress is the ingress role.
type Ingress struct {
	cfg Config
	log zerolog.Logger
	js  jetstream.JetStream

	name        string // in attempts: events.IngressName(source, instance)
	subject     string // attempts are published on it
	replyPrefix string // verifiers' replies: replyPrefix + attempt id
	ackPrefix   string // JetStream's acknowledgements: ackPrefix + attempt id
	mu          sync.Mutex
	waiting     map[string]*pending

	listening chan struct{} // closed once the HTTP listener is bound
	addr      string        // the bound address
}

// New makes an ingress.
func New(cfg Config, log zerolog.Logger) (*Ingress, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.NATS)
	if err != nil {
		return nil, fmt.Errorf("ingress: jetstream: %w", err)
	}
	in := &Ingress{
		cfg:         cfg,
		log:         log.With().Str("component", "ingress").Str("instance", cfg.Instance).Logger(),
		js:          js,
		name:        events.IngressName(cfg.Source, cfg.Instance),
		subject:     events.AttemptSubject(events.IngressName(cfg.Source, cfg.Instance)),
		replyPrefix: events.ReplySubject(events.IngressName(cfg.Source, cfg.Instance), ""),
		ackPrefix:   cfg.NATS.NewInbox() + ".",
		waiting:     make(map[string]*pending),
		listening:   make(chan struct{}),
	}
	cfg.Mux.HandleFunc(ConnectPath, in.serveConnect)
	cfg.Mux.Handle("GET "+widget.Path, widget.Handler())
	health.Mount(cfg.Mux, cfg.Checks, nil)
	cfg.Checks.Add("nats", health.NATSConnected(cfg.NATS))
	cfg.Checks.Add("streams", func(ctx context.Context) error { return bus.Check(ctx, js) })
	cfg.Checks.Add(health.DecisionsStreamCheck, health.DecisionsStream(js))
	return in, nil
}

// Listening is closed once the HTTP listener is bound; Addr is then valid.
func (in *Ingress) Listening() <-chan struct{} { return in.listening }

// Addr is the address the ingress listens on (after Listening).
func (in *Ingress) Addr() string { return in.addr }

// Handler is the ingress's HTTP handler (its routes and the health ones).
func (in *Ingress) Handler() http.Handler { return in.cfg.Mux }

// Run subscribes to replies and serves HTTP until ctx ends; then it stops
// accepting requests and lets those in flight finish.
func (in *Ingress) Run(ctx context.Context) error {
	sub, err := in.cfg.NATS.Subscribe(in.replyPrefix+"*", in.onReply)
	if err != nil {
		return fmt.Errorf("ingress: subscribe to replies: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	defer func() { _ = sub.Unsubscribe() }()
	acks, err := in.cfg.NATS.Subscribe(in.ackPrefix+"*", in.onAck)
	if err != nil {
		return fmt.Errorf("ingress: subscribe to acknowledgements: %w", err)
	}
	_ = acks.SetPendingLimits(-1, -1)
	defer func() { _ = acks.Unsubscribe() }()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go in.republish(sweepCtx)

	svc, err := micro.AddService(in.cfg.NATS, micro.Config{
		Name:        events.ServiceIngress,
		Version:     "1.0.0",
		Description: "HTTP ingress of widget connection attempts",
		Metadata:    map[string]string{"instance": in.cfg.Instance, "listen": in.cfg.Listen},
	})
	if err != nil {
		return fmt.Errorf("ingress: micro service: %w", err)
	}
	defer func() { _ = svc.Stop() }()
	err = svc.AddEndpoint("status", micro.HandlerFunc(func(r micro.Request) {
		in.mu.Lock()
		n := len(in.waiting)
		in.mu.Unlock()
		_ = r.RespondJSON(map[string]any{"instance": in.cfg.Instance, "listen": in.cfg.Listen, "waiting": n})
	}), micro.WithEndpointSubject("hissuno.ingress."+in.cfg.Instance+".status"))
	if err != nil {
		return fmt.Errorf("ingress: micro endpoint: %w", err)
	}

	ln, err := net.Listen("tcp", in.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ingress: listen on %s: %w (is the port taken? use --listen)", in.cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           in.cfg.Mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      in.cfg.Deadline + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
	in.addr = ln.Addr().String()
	close(in.listening)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	in.log.Info().Str("listen", ln.Addr().String()).Msg("ingress serving")
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("ingress: serve: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), in.cfg.Deadline+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("ingress: shutdown: %w", err)
	}
	in.log.Info().Msg("ingress stopped")
	return nil
}

// pending is an attempt waiting for its verifier's reply.
type pending struct {
	msg    *nats.Msg    // the attempt as published, for a republish
	done   chan outcome // the reply, or the stream's refusal
	acked  atomic.Bool  // JetStream acknowledged storing the attempt
	sentAt atomic.Int64 // last publish, Unix ns
}

// outcome ends a pending attempt: the verifier's reply, or the stream's
// refusal to store it.
type outcome struct {
	reply []byte
	err   error
}

// send delivers o unless an outcome is already there: the first one counts.
func (p *pending) send(o outcome) {
	select {
	case p.done <- o:
	default:
	}
}

func (in *Ingress) onReply(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, in.replyPrefix)
	in.mu.Lock()
	p, ok := in.waiting[id]
	delete(in.waiting, id)
	in.mu.Unlock()
	if ok {
		p.send(outcome{reply: m.Data})
	}
}

// onAck handles JetStream's answer to an attempt's publish. The request
// does not wait for it (the verifier's reply proves the attempt was
// stored); it only stops republishing, or ends the request when the stream
// refused the attempt. "No responders" (the stream has no leader for a
// moment) republishes after noResponderWait.
func (in *Ingress) onAck(m *nats.Msg) {
	id := strings.TrimPrefix(m.Subject, in.ackPrefix)
	in.mu.Lock()
	p, ok := in.waiting[id]
	in.mu.Unlock()
	if !ok || p.acked.Load() {
		return
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		p.sentAt.Store(time.Now().Add(noResponderWait - publishTry).UnixNano())
		return
	}
	if _, err := bus.ParseAck(m.Data); err != nil {
		in.log.Warn().Err(err).Str("attempt", id).Msg("attempt not queued")
		p.send(outcome{err: err})
		return
	}
	p.acked.Store(true)
}

// Republishing: an attempt without JetStream's acknowledgement after
// publishTry (a publish sent to a stream leader that is stepping down is
// dropped unanswered), or noResponderWait after "no responders", is
// published again, until its request ends. Its Nats-Msg-Id makes a repeat
// a no-op.
const (
	publishTry      = time.Second
	noResponderWait = 250 * time.Millisecond
	sweepEvery      = 50 * time.Millisecond
)

// republish sweeps the pending attempts until ctx ends.
func (in *Ingress) republish(ctx context.Context) {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	var again []*pending
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		again = again[:0]
		in.mu.Lock()
		for _, p := range in.waiting {
			if !p.acked.Load() && now-p.sentAt.Load() >= int64(publishTry) {
				again = append(again, p)
			}
		}
		in.mu.Unlock()
		var failed int
		var lastErr error
		for _, p := range again {
			p.sentAt.Store(now)
			if err := in.cfg.NATS.PublishMsg(p.msg); err != nil {
				failed, lastErr = failed+1, err
			}
		}
		if failed > 0 {
			// One line per sweep, not one per attempt: during an outage every
			// pending attempt fails alike.
			in.log.Warn().Err(lastErr).Int("attempts", failed).Msg("attempts not republished; retrying until their deadlines")
		}
	}
}

// connectRequest is the body of POST /v1/widget/connect. Its keys match
// the documented names exactly (events.Unmarshal): a WAF or a proxy
// written from the contract reads {"PROJECTID": …} as no projectId, and so
// does the ingress.
type connectRequest struct {
	ProjectID    *string            `json:"projectId"`
	WidgetToken  *string            `json:"widgetToken"`
	UserID       *string            `json:"userId"`
	UserMetadata map[string]*string `json:"userMetadata"`
}

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

// ErrorResponse is the body of a 400, 405 or 503.
type ErrorResponse struct {
	Error string `json:"error"`
}

func (in *Ingress) serveConnect(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		w = sw
		defer func() {
			metrics.HTTPRequests.WithLabelValues(strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
		}()
	}
	setCORS(w, r)
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "use POST " + ConnectPath})
		return
	}
	a, err := in.parse(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return
	}
	body, status, err := in.roundTrip(r.Context(), a)
	if err != nil {
		writeJSON(w, status, ErrorResponse{Error: err.Error()})
		return
	}
	in.answer(w, a.AttemptID, body)
}

// answer writes the HTTP answer to the verifier's reply to an attempt.
func (in *Ingress) answer(w http.ResponseWriter, attemptID string, body []byte) {
	var d reply
	if err := json.Unmarshal(body, &d); err != nil {
		in.log.Error().Err(err).Str("attempt", attemptID).Msg("verifier reply not understood")
		writeJSON(w, http.StatusBadGateway, ErrorResponse{Error: "the verifier's reply was not understood; retry"})
		return
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

// parse validates a connect request into an attempt; its errors are 400s.
func (in *Ingress) parse(r *http.Request) (*events.Attempt, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("the body is over %d bytes", MaxBodyBytes)
		}
		return nil, fmt.Errorf("the body could not be read: %v", err)
	}
	var req connectRequest
	if err := events.Unmarshal(raw, &req); err != nil {
		// Refused: say why in encoding/json's terms, which bodyError words.
		return nil, stdBodyError(raw)
	}
	if req.ProjectID == nil || *req.ProjectID == "" {
		return nil, errors.New("projectId is missing")
	}
	if len(*req.ProjectID) > MaxProjectIDBytes {
		return nil, fmt.Errorf("projectId is over %d bytes", MaxProjectIDBytes)
	}
	now := in.cfg.Clock()
	received := now.Truncate(time.Millisecond) // as the attempt id carries it
	a := &events.Attempt{
		SchemaVersion: events.SchemaVersion,
		AttemptID:     events.NewAttemptID(received),
		ProjectID:     *req.ProjectID,
		Origin:        r.Header.Get("Origin"),
		ReceivedAt:    received.UTC(),
		Deadline:      now.Add(in.cfg.Deadline).UTC(),
		Ingress:       in.name,
		ClientIP:      clientIP(r),
		UserAgent:     clip(r.UserAgent(), 512),
	}
	a.ReplyTo = in.replyPrefix + a.AttemptID
	if req.WidgetToken != nil {
		a.WidgetToken = *req.WidgetToken
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := verifier.BearerToken(h)
		if !ok {
			return nil, errors.New("the Authorization header must be `Bearer <widget token>`")
		}
		if a.WidgetToken != "" && a.WidgetToken != tok {
			return nil, errors.New("widgetToken and the Authorization header carry different tokens; send one")
		}
		a.WidgetToken = tok
	}
	if req.UserID != nil {
		if len(*req.UserID) > verifier.MaxUserIDBytes {
			return nil, fmt.Errorf("userId is over %d bytes", verifier.MaxUserIDBytes)
		}
		a.UserID = *req.UserID
	}
	if req.UserMetadata != nil {
		if len(req.UserMetadata) > verifier.MaxMetadataKeys {
			return nil, fmt.Errorf("userMetadata has over %d keys", verifier.MaxMetadataKeys)
		}
		a.UserMetadata = make(map[string]string, len(req.UserMetadata))
		for k, v := range req.UserMetadata {
			if v == nil {
				return nil, fmt.Errorf("userMetadata[%q] is not a string", clip(k, 64))
			}
			if len(k) > verifier.MaxMetadataKeyBytes || len(*v) > verifier.MaxMetadataValueBytes {
				return nil, fmt.Errorf("userMetadata keys are at most %d bytes and values at most %d", verifier.MaxMetadataKeyBytes, verifier.MaxMetadataValueBytes)
			}
			a.UserMetadata[k] = *v
		}
	}
	return a, nil
}

// stdBodyError decodes a body the fast decoder refused with encoding/json,
// to say precisely what is wrong with it. Like the fast decoder it reads
// the documented keys by their exact names (encoding/json alone would match
// "USERID" to userId and blame a field the body does not hold): the object
// first, then each documented field in the contract's order.
func stdBodyError(raw []byte) error {
	dec := stdjson.NewDecoder(bytes.NewReader(raw))
	var obj map[string]stdjson.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("the body has data after its JSON object")
	}
	var req connectRequest
	for _, f := range []struct {
		name string
		v    any
	}{
		{"projectId", &req.ProjectID},
		{"widgetToken", &req.WidgetToken},
		{"userId", &req.UserID},
		{"userMetadata", &req.UserMetadata},
	} {
		v, ok := obj[f.name]
		if !ok {
			continue
		}
		if err := stdjson.Unmarshal(v, f.v); err != nil {
			var typeErr *stdjson.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				typeErr.Field = f.name
			}
			return bodyError(err)
		}
	}
	return errors.New("the body is not a JSON object of projectId, widgetToken, userId and userMetadata")
}

// bodyError says in the contract's words what is wrong with a body that
// does not decode.
func bodyError(err error) error {
	var typeErr *stdjson.UnmarshalTypeError
	var syntaxErr *stdjson.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return errors.New("the body must be a JSON object: {\"projectId\": …, \"widgetToken\"?: …, \"userId\"?: …, \"userMetadata\"?: {…}}")
	case errors.As(err, &typeErr) && strings.HasPrefix(typeErr.Field, "userMetadata"):
		return errors.New("userMetadata must be an object of string values")
	case errors.As(err, &typeErr):
		return fmt.Errorf("%s must be a string", typeErr.Field)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("the body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the body is empty or cut short; send a JSON object with projectId")
	}
	return errors.New("the body is not a JSON object of projectId, widgetToken, userId and userMetadata")
}

// errNotQueued answers an attempt JetStream did not store.
var errNotQueued = errors.New("the attempt could not be queued; retry shortly")

// roundTrip publishes the attempt and waits for the verifier's reply until
// the deadline. Its errors carry the HTTP status to answer.
func (in *Ingress) roundTrip(ctx context.Context, a *events.Attempt) ([]byte, int, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("attempt not encoded: %v", err)
	}
	msg := nats.NewMsg(in.subject)
	msg.Data = body
	msg.Reply = in.ackPrefix + a.AttemptID
	msg.Header.Set(events.HeaderMsgID, a.AttemptID)
	p := &pending{msg: msg, done: make(chan outcome, 1)}
	p.sentAt.Store(time.Now().UnixNano())
	in.mu.Lock()
	in.waiting[a.AttemptID] = p
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.waiting, a.AttemptID)
		in.mu.Unlock()
	}()

	if err := in.cfg.NATS.PublishMsg(msg); err != nil {
		in.log.Warn().Err(err).Str("attempt", a.AttemptID).Msg("attempt not queued")
		return nil, http.StatusServiceUnavailable, errNotQueued
	}
	timer := time.NewTimer(time.Until(a.Deadline))
	defer timer.Stop()
	select {
	case o := <-p.done:
		if o.err != nil {
			return nil, http.StatusServiceUnavailable, errNotQueued
		}
		return o.reply, 0, nil
	case <-timer.C:
		if !p.acked.Load() {
			in.log.Warn().Str("attempt", a.AttemptID).Msg("attempt not queued: no acknowledgement from JetStream before the deadline")
			return nil, http.StatusServiceUnavailable, errNotQueued
		}
		return nil, http.StatusServiceUnavailable, fmt.Errorf("no verifier answered within %s; retry shortly", in.cfg.Deadline)
	case <-ctx.Done():
		return nil, 499, errors.New("the client went away")
	}
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

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
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

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nuid"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/authz"
	"github.com/hissuno/widgetauth/internal/ingress"
	"github.com/hissuno/widgetauth/internal/origin"
)

// inlineVerifier is the decision without the pipeline, what the pipeline's
// latency is compared with: a net/http server configured as the
// ingress's, whose handler reads the connect request, looks its project up
// in a map, decides with the project's decision core (authz.Decider, with
// its verified-token cache) and answers as the ingress does. No bus, no
// audit, no other process: what a single inline Go service would do.
type inlineVerifier struct {
	projects map[string]*authz.Project
	decider  *authz.Decider
	srv      *http.Server
	addr     string
	errc     chan error
}

// inlineRequest is what the inline verifier reads of a connect request,
// by the same exact key names as the ingress.
type inlineRequest struct {
	ProjectID    string            `json:"projectId"`
	WidgetToken  string            `json:"widgetToken"`
	UserID       string            `json:"userId"`
	UserMetadata map[string]string `json:"userMetadata"`
}

// startInline serves the inline verifier on a loopback port for the
// projects.
func startInline(projects []benchProject) (*inlineVerifier, error) {
	v := &inlineVerifier{projects: make(map[string]*authz.Project, len(projects)), decider: authz.NewDecider(authz.DefaultCacheEntries), errc: make(chan error, 1)}
	for _, bp := range projects {
		pats, err := origin.ParsePatterns(bp.origins)
		if err != nil {
			return nil, fmt.Errorf("inline verifier: %w", err)
		}
		v.projects[bp.id] = &authz.Project{ID: bp.id, RequireToken: bp.requireToken, Origins: pats, Keys: []authz.Key{{Version: 1, Secret: []byte(bp.secret)}}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("inline verifier: listen: %w", err)
	}
	v.addr = ln.Addr().String()
	v.srv = &http.Server{
		Handler:           http.HandlerFunc(v.serve),
		ReadHeaderTimeout: ingress.DefaultReadHeaderTimeout,
		ReadTimeout:       ingress.DefaultReadTimeout,
		WriteTimeout:      ingress.DefaultReadTimeout + ingress.DefaultDeadline + 10*time.Second,
		IdleTimeout:       ingress.DefaultIdleTimeout,
		MaxHeaderBytes:    32 << 10,
	}
	go func() { v.errc <- v.srv.Serve(ln) }()
	return v, nil
}

func (v *inlineVerifier) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, ingress.MaxBodyBytes))
	var req inlineRequest
	if err == nil {
		err = events.Unmarshal(raw, &req)
	}
	if err != nil || req.ProjectID == "" {
		writeInline(w, http.StatusBadRequest, ingress.ErrorResponse{Error: "bad request"})
		return
	}
	dec := v.decider.Decide(v.projects[req.ProjectID], authz.Request{
		ProjectID: req.ProjectID, Origin: r.Header.Get("Origin"), Token: req.WidgetToken,
		UserID: req.UserID, UserMetadata: req.UserMetadata,
	}, time.Now())
	resp := ingress.Response{Decision: dec.Outcome, DecisionID: "dec_" + nuid.Next()}
	if dec.Outcome == events.OutcomeAccept {
		verified, userID := dec.UserVerified, dec.UserID
		resp.Session, resp.UserID, resp.UserVerified, resp.UserMetadata, resp.KeyVersion = dec.Session, &userID, &verified, dec.UserMetadata, dec.KeyVersion
	} else {
		resp.Reason, resp.Message = dec.Reason, dec.Message()
	}
	writeInline(w, dec.Outcome.HTTPStatus(), resp)
}

func writeInline(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// stop shuts the server down.
func (v *inlineVerifier) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = v.srv.Shutdown(ctx)
	if err := <-v.errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("inline verifier: serve: %w", err)
	}
	return nil
}

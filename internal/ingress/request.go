package ingress

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/hissuno/widgetauth/events"
)

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

// parse validates a connect request from the client address ip (ok: it is
// one; else RemoteAddr is kept as it is) into an attempt; its errors are
// 400s.
func (in *Ingress) parse(r *http.Request, ip netip.Addr, ipOK bool) (*events.Attempt, error) {
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
	if len(*req.ProjectID) > events.MaxProjectIDBytes {
		return nil, fmt.Errorf("projectId is over %d bytes", events.MaxProjectIDBytes)
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
		ClientIP:      r.RemoteAddr,
		UserAgent:     clip(r.UserAgent(), 512),
	}
	if ipOK {
		a.ClientIP = ip.String()
	}
	a.ReplyTo = in.replyPrefix + a.AttemptID
	if req.WidgetToken != nil {
		a.WidgetToken = *req.WidgetToken
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := BearerToken(h)
		if !ok {
			return nil, errors.New("the Authorization header must be `Bearer <widget token>`")
		}
		if a.WidgetToken != "" && a.WidgetToken != tok {
			return nil, errors.New("widgetToken and the Authorization header carry different tokens; send one")
		}
		a.WidgetToken = tok
	}
	if req.UserID != nil {
		if len(*req.UserID) > events.MaxUserIDBytes {
			return nil, fmt.Errorf("userId is over %d bytes", events.MaxUserIDBytes)
		}
		a.UserID = *req.UserID
	}
	if req.UserMetadata != nil {
		if len(req.UserMetadata) > events.MaxMetadataKeys {
			return nil, fmt.Errorf("userMetadata has over %d keys", events.MaxMetadataKeys)
		}
		a.UserMetadata = make(map[string]string, len(req.UserMetadata))
		for k, v := range req.UserMetadata {
			if v == nil {
				return nil, fmt.Errorf("userMetadata[%q] is not a string", clip(k, 64))
			}
			if len(k) > events.MaxMetadataKeyBytes || len(*v) > events.MaxMetadataValueBytes {
				return nil, fmt.Errorf("userMetadata keys are at most %d bytes and values at most %d", events.MaxMetadataKeyBytes, events.MaxMetadataValueBytes)
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

// bearerPrefix is stripped, once, from an Authorization header.
const bearerPrefix = "Bearer "

// BearerToken returns the token of an `Authorization: Bearer <token>`
// header. The scheme is matched case-insensitively and stripped exactly once;
// ok is false when the header is not a Bearer credential.
func BearerToken(header string) (token string, ok bool) {
	if len(header) < len(bearerPrefix) || !strings.EqualFold(header[:len(bearerPrefix)], bearerPrefix) {
		return "", false
	}
	return header[len(bearerPrefix):], true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

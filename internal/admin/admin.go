// Package admin is the one way a caller submits an admin command (create a
// project, change its settings, rotate its key, revoke a user's tokens) and
// reads the rotator's answer: the CLI, `hissuno dev` and tests use it.
//
// A command travels through JetStream on the subject of its source (the
// NATS user that sends it, events.CommandKind.SubjectFrom); the rotator
// answers on an inbox of that source only, and seals a new secret key to a
// curve key made for the one command, so that nobody else who can read the
// inbox can read the key. The key is never logged, stored or put in an
// error.
package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"
	"github.com/segmentio/encoding/json"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
)

// ErrNoAnswer means the command was stored but no rotator answered in time.
var ErrNoAnswer = errors.New("no rotator answered")

// ErrRefused wraps the rotator's refusal of a command; the message is the
// rotator's explanation.
var ErrRefused = errors.New("command refused")

// Client submits admin commands as one source over one NATS connection,
// which must use the source's inbox prefix (events.InboxPrefix(source)):
// the rotator answers nowhere else.
type Client struct {
	nc     *nats.Conn
	source string
}

// New returns a client submitting commands as source over nc.
func New(nc *nats.Conn, source string) (*Client, error) {
	if !events.ValidToken(source) {
		return nil, fmt.Errorf("admin: source %q must be one NATS subject token (its NATS user's name)", source)
	}
	return &Client{nc: nc, source: source}, nil
}

// NewCommand fills a command's id, schema version, actor and time.
func NewCommand(kind events.CommandKind, projectID, actor string) events.Command {
	return events.Command{
		SchemaVersion: events.SchemaVersion,
		CommandID:     "cmd_" + nuid.Next(),
		Kind:          kind,
		Actor:         actor,
		IssuedAt:      time.Now().UTC(),
		ProjectID:     projectID,
	}
}

// Result is the rotator's answer with the new secret key, when the command
// made one, opened.
type Result struct {
	events.CommandResult
	// SecretKey is the new key of a create or rotate, shown to the admin
	// once; empty otherwise.
	SecretKey string
}

// Submit publishes cmd and waits up to timeout for the rotator's answer. A
// refusal is returned as an error wrapping ErrRefused, with the result.
func (c *Client) Submit(ctx context.Context, cmd events.Command, timeout time.Duration) (Result, error) {
	key, err := NewAnswerKey()
	if err != nil {
		return Result{}, err
	}
	defer key.Wipe()
	cmd.ReplyKey = key.Public()
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return Result{}, fmt.Errorf("subscribe for the answer: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, err := json.Marshal(cmd)
	if err != nil {
		return Result{}, fmt.Errorf("encode command: %w", err)
	}
	m := nats.NewMsg(cmd.Kind.SubjectFrom(c.source))
	m.Data = body
	m.Header.Set(events.HeaderMsgID, cmd.CommandID)
	m.Header.Set(events.HeaderReplyTo, inbox)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := bus.Publish(ctx, c.nc, m); err != nil {
		if last := c.nc.LastError(); last != nil && strings.Contains(strings.ToLower(last.Error()), "permissions violation") {
			return Result{}, fmt.Errorf("this NATS user may not send admin commands as %q (%v): connect as the admin user of deploy/nats/nats.conf", c.source, last)
		}
		return Result{}, fmt.Errorf("the command could not be stored in JetStream: %w (is `hissuno dev` running, and --nats right?)", err)
	}
	for {
		reply, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("%w: the command %s is stored but no rotator answered within %s: start `hissuno dev` or `hissuno rotator`; it is applied if one picks it up within 2 minutes, otherwise it expires", ErrNoAnswer, cmd.CommandID, timeout)
		}
		var cr events.CommandResult
		if err := json.Unmarshal(reply.Data, &cr); err != nil || cr.CommandID != cmd.CommandID {
			continue
		}
		res, err := key.Open(cr)
		if err != nil {
			return res, err
		}
		if res.Error != "" {
			return res, fmt.Errorf("%w: %s", ErrRefused, res.Error)
		}
		return res, nil
	}
}

// AnswerKey is the curve key pair a client makes for one command: the
// command carries its public half (events.Command.ReplyKey), and only its
// private half opens the new secret key in the answer.
type AnswerKey struct{ kp nkeys.KeyPair }

// NewAnswerKey makes an answer key.
func NewAnswerKey() (*AnswerKey, error) {
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		return nil, fmt.Errorf("admin: answer key: %w", err)
	}
	return &AnswerKey{kp: kp}, nil
}

// Public is the key's public half, for events.Command.ReplyKey.
func (k *AnswerKey) Public() string {
	pub, _ := k.kp.PublicKey() // a curve key pair made by nkeys always has one
	return pub
}

// Wipe erases the private half.
func (k *AnswerKey) Wipe() { k.kp.Wipe() }

// Open returns the answer with its sealed secret key, if any, opened.
func (k *AnswerKey) Open(cr events.CommandResult) (Result, error) {
	res := Result{CommandResult: cr}
	if cr.SealedSecretKey == "" {
		return res, nil
	}
	b, err := base64.StdEncoding.DecodeString(cr.SealedSecretKey)
	if err != nil {
		return res, fmt.Errorf("admin: the answer's sealed key is not base64: %w", err)
	}
	key, err := k.kp.Open(b, cr.SealedBy)
	if err != nil {
		return res, fmt.Errorf("admin: the answer's sealed key does not open with this command's answer key: %w", err)
	}
	res.SecretKey = string(key)
	return res, nil
}

// Seal seals a secret key to the curve key recipient with a curve key made
// for this one answer, as the rotator does: it returns the sealed key in
// standard base64 and the sender's public key.
func Seal(secret, recipient string) (sealed, sender string, err error) {
	if !nkeys.IsValidPublicCurveKey(recipient) {
		return "", "", errors.New("the command's replyKey is not a public curve key (nkeys \"X…\")")
	}
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		return "", "", err
	}
	defer kp.Wipe()
	b, err := kp.Seal([]byte(secret), recipient)
	if err != nil {
		return "", "", err
	}
	if sender, err = kp.PublicKey(); err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(b), sender, nil
}

package events

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
)

// Attempt is one widget connection attempt, published by an ingress to
// SubjectAttempts. Its JSON Schema is public (schemas/attempt.schema.json):
// other ingresses may publish attempts themselves.
type Attempt struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// AttemptID identifies the attempt; it is also the Nats-Msg-Id, so a
	// retried publish is stored once, and the decision's id derives from it.
	AttemptID string `json:"attemptId"`
	// ProjectID is the projectId the widget sent.
	ProjectID string `json:"projectId"`
	// Origin is the request's Origin header, verbatim; empty when none.
	Origin string `json:"origin,omitempty"`
	// WidgetToken is the widget token, from the body or an Authorization
	// Bearer header. It never leaves the attempts stream: decisions carry
	// only its fingerprint.
	WidgetToken string `json:"widgetToken,omitempty"`
	// UserID and UserMetadata are what the client claims.
	UserID       string   `json:"userId,omitempty"`
	UserMetadata Metadata `json:"userMetadata,omitempty"`
	// ReceivedAt is when the ingress received the request.
	ReceivedAt time.Time `json:"receivedAt"`
	// Deadline is when the ingress stops waiting: an attempt decided later
	// is still recorded but not replied to.
	Deadline time.Time `json:"deadline"`
	// ReplyTo is the core-NATS subject the verifier replies on; empty when
	// nobody waits.
	ReplyTo string `json:"replyTo,omitempty"`
	// Ingress names the ingress instance.
	Ingress string `json:"ingress,omitempty"`
	// ClientIP and UserAgent describe the browser, for the audit.
	ClientIP  string `json:"clientIp,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// Decision is a verifier's decision on one attempt, published to
// SubjectDecisions before the reply and recorded by the auditor. The reply
// to the ingress is the same JSON.
type Decision struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// DecisionID identifies the decision; derived from the attempt id, so a
	// redelivered attempt cannot record a second decision.
	DecisionID string `json:"decisionId"`
	// AttemptID is the attempt decided.
	AttemptID string `json:"attemptId"`
	// Time is when the decision was made, by the verifier's clock.
	Time time.Time `json:"time"`
	// ReceivedAt is when the ingress received the attempt.
	ReceivedAt time.Time `json:"receivedAt"`
	// ProjectID is the projectId the widget sent (known or not).
	ProjectID string `json:"projectId"`
	// Decision is accept, unauthorized or origin_blocked.
	Decision Outcome `json:"decision"`
	// Reason is the refusal code; empty for an accept.
	Reason Reason `json:"reason"`
	// Message explains the refusal in words, for integrators.
	Message string `json:"message,omitempty"`
	// Session is authenticated or anonymous for an accept.
	Session Session `json:"session"`
	// UserID is the token's userId (authenticated) or the client's
	// (anonymous, unverified).
	UserID string `json:"userId"`
	// UserVerified is true when UserID comes from a verified token.
	UserVerified bool `json:"userVerified"`
	// UserMetadata is the token's (authenticated) or the client's.
	UserMetadata Metadata `json:"userMetadata,omitempty"`
	// ClaimedUserID is the client's userId when a verified token said
	// otherwise; never used as the identity.
	ClaimedUserID string `json:"claimedUserId"`
	// Origin is the request's Origin header, verbatim.
	Origin string `json:"origin"`
	// TokenFingerprint is the first 16 hex digits of the token's SHA-256.
	TokenFingerprint string `json:"tokenFingerprint"`
	// KeyVersion is the version of the key that verified the token.
	KeyVersion int `json:"keyVersion"`
	// SkewSeconds is, for token_expired and token_not_yet_valid, how far the
	// server's clock is past exp or before nbf/iat.
	SkewSeconds int64 `json:"skewSeconds,omitempty"`
	// LeewaySeconds is the clock skew the verifier allows.
	LeewaySeconds int64 `json:"leewaySeconds,omitempty"`
	// Verifier names the verifier instance that decided.
	Verifier string `json:"verifier"`
	// Ingress names the ingress instance that received the attempt.
	Ingress string `json:"ingress,omitempty"`
	// LatencyMicros is the time from ReceivedAt to Time.
	LatencyMicros int64 `json:"latencyMicros"`
	// ClientIP and UserAgent describe the browser.
	ClientIP  string `json:"clientIp,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// DecisionIDFor is the id of the decision on an attempt.
func DecisionIDFor(attemptID string) string { return "dec_" + attemptID }

// CommandKind names an admin command; it ends the command's subject.
type CommandKind string

// The admin commands the rotator handles.
const (
	CommandCreateProject CommandKind = "project.create"
	CommandUpdateProject CommandKind = "project.update"
	CommandRotateKey     CommandKind = "project.rotate"
	CommandRevokeUser    CommandKind = "project.revoke_user"
	CommandUnrevokeUser  CommandKind = "project.unrevoke_user"
)

// CommandKinds lists every command kind.
var CommandKinds = []CommandKind{CommandCreateProject, CommandUpdateProject, CommandRotateKey, CommandRevokeUser, CommandUnrevokeUser}

// SubjectFrom is the subject a command of this kind from source (the NATS
// user that sends it, e.g. SourceAdmin) is published on.
func (k CommandKind) SubjectFrom(source string) string {
	return SubjectCommandPrefix + source + "." + string(k)
}

// ParseCommandSubject splits a command's subject into its source and kind;
// ok is false when the subject is not SubjectFrom's form.
func ParseCommandSubject(subject string) (source string, kind CommandKind, ok bool) {
	rest, found := strings.CutPrefix(subject, SubjectCommandPrefix)
	if !found {
		return "", "", false
	}
	source, k, found := strings.Cut(rest, ".")
	if !found || !ValidToken(source) || k == "" {
		return "", "", false
	}
	return source, CommandKind(k), true
}

// Command is an admin command, published by `hissuno project …` to the admin
// stream and handled by the rotator. Which fields matter depends on Kind.
// It never carries a key: keys are made by the rotator.
type Command struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// CommandID identifies the command; it is the Nats-Msg-Id, and the
	// rotator applies a command id once, however often it is delivered.
	CommandID string `json:"commandId"`
	// Kind is what the command asks for.
	Kind CommandKind `json:"kind"`
	// Actor is who asked, as the console vouches for it
	// ("console:ada@example.com", "token:tok_…"). The rotator takes it only
	// from the console's source; from any other source the actor recorded
	// is the NATS user the command came from ("nats:admin"), whatever this
	// says.
	Actor string `json:"actor"`
	// Reason is the admin's free-text reason, shown in the audit.
	Reason string `json:"reason,omitempty"`
	// ClientIP and UserAgent describe the browser a console admin acted
	// from (console source only).
	ClientIP  string `json:"clientIp,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	// IssuedAt is when the admin asked.
	IssuedAt time.Time `json:"issuedAt"`
	// ProjectID is the project; for create, the id chosen for it.
	ProjectID string `json:"projectId"`
	// Name is the project's name (create).
	Name string `json:"name,omitempty"`
	// RequireToken sets the requireToken switch (create; update when set).
	RequireToken *bool `json:"requireToken,omitempty"`
	// Origins replaces the allowed-origins list (create; update when set).
	Origins []string `json:"origins,omitempty"`
	// ClearOrigins empties the allowed-origins list (update).
	ClearOrigins bool `json:"clearOrigins,omitempty"`
	// GraceSeconds keeps the previous key verifying this long after a
	// rotation, by server time (rotate).
	GraceSeconds int64 `json:"graceSeconds,omitempty"`
	// UserID is the user whose tokens are revoked (revoke-user).
	UserID string `json:"userId,omitempty"`
	// ReplyKey is the public curve key (an nkeys "X…" key) the new secret
	// key of a create or rotate is sealed to in the answer: only the client
	// holding its private half, made for this one command, can read the key,
	// whoever else can read the inbox. Required for create and rotate.
	ReplyKey string `json:"replyKey,omitempty"`
}

// CommandResult is the rotator's answer to a command, sent to the
// command's Hissuno-Reply-To inbox only (core NATS, never stored), which
// must be an inbox of the source that sent the command. The new secret key
// of a create or rotate travels in it only sealed to the command's
// ReplyKey.
type CommandResult struct {
	// CommandID is the command answered.
	CommandID string `json:"commandId"`
	// Error says why the command failed, in words; empty on success.
	Error string `json:"error,omitempty"`
	// Code is the machine-readable kind of the failure; set with Error.
	Code ErrorCode `json:"code,omitempty"`
	// Project is the project after the command.
	Project *ProjectView `json:"project,omitempty"`
	// SealedSecretKey is the new key (create, rotate), sealed with the
	// curve key SealedBy to the command's ReplyKey (nkeys xkeys), in
	// standard base64; empty when the command was a redelivery of one
	// already applied.
	SealedSecretKey string `json:"sealedSecretKey,omitempty"`
	// SealedBy is the public curve key the rotator sealed the key with, made
	// for this one answer.
	SealedBy string `json:"sealedBy,omitempty"`
	// AlreadyApplied is true when the command id had been applied before.
	AlreadyApplied bool `json:"alreadyApplied,omitempty"`
	// Confirmed lists the verifiers that confirmed they hold the change.
	Confirmed []string `json:"confirmed,omitempty"`
	// Unconfirmed lists the live verifiers that did not confirm in time; each
	// refuses to decide for the project until it has caught up.
	Unconfirmed []string `json:"unconfirmed,omitempty"`
}

// ErrorCode is the machine-readable kind of a command's failure: callers
// branch on it, never on the words of CommandResult.Error.
type ErrorCode string

// The failures of an admin command.
const (
	// ErrorInvalid: the settings or the id are not acceptable (the error
	// says which and why).
	ErrorInvalid ErrorCode = "invalid"
	// ErrorNotFound: no project has the id.
	ErrorNotFound ErrorCode = "not_found"
	// ErrorExists: a project with the id exists already.
	ErrorExists ErrorCode = "exists"
	// ErrorExpired: the command waited longer than its time to live before
	// a rotator got to it.
	ErrorExpired ErrorCode = "expired"
	// ErrorUnsupported: the command is of a schema version, or lacks a
	// field (its commandId, a replyKey), this rotator does not handle.
	ErrorUnsupported ErrorCode = "unsupported"
)

// ErrorCodes lists every ErrorCode.
var ErrorCodes = []ErrorCode{ErrorInvalid, ErrorNotFound, ErrorExists, ErrorExpired, ErrorUnsupported}

// ProjectView is a project as admins see it: settings and key versions,
// never a key.
type ProjectView struct {
	ProjectID    string    `json:"projectId"`
	Name         string    `json:"name"`
	RequireToken bool      `json:"requireToken"`
	Origins      []string  `json:"origins"`
	KeyVersion   int       `json:"keyVersion"`
	Keys         []KeyView `json:"keys"`
	RevokedUsers int       `json:"revokedUsers"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
	Revision     uint64    `json:"revision"`
}

// KeyView describes one key without revealing it.
type KeyView struct {
	Version     int        `json:"version"`
	Fingerprint string     `json:"fingerprint"`
	CreatedAt   time.Time  `json:"createdAt"`
	ValidUntil  *time.Time `json:"validUntil,omitempty"`
}

// AdminEventKind names an admin event; it ends the event's subject.
type AdminEventKind string

// The admin events the rotator records.
const (
	AdminProjectCreated AdminEventKind = "project.created"
	AdminProjectUpdated AdminEventKind = "project.updated"
	AdminKeyRotated     AdminEventKind = "key.rotated"
	AdminUserRevoked    AdminEventKind = "user.revoked"
	AdminUserUnrevoked  AdminEventKind = "user.unrevoked"
)

// The admin events the console records: sign-ins and what owners change of
// accounts and API tokens. Their subjects start with "account." or
// "token.", which only the console's NATS user may publish.
const (
	AdminSignedIn        AdminEventKind = "account.signed_in"
	AdminSignInFailed    AdminEventKind = "account.sign_in_failed"
	AdminSignedOut       AdminEventKind = "account.signed_out"
	AdminLocked          AdminEventKind = "account.locked"
	AdminPasswordChanged AdminEventKind = "account.password_changed"
	AdminAccountCreated  AdminEventKind = "account.created"
	AdminAccountUpdated  AdminEventKind = "account.updated"
	AdminTokenCreated    AdminEventKind = "token.created"
	AdminTokenRevoked    AdminEventKind = "token.revoked"
	// AdminAccessDenied: a signed-in account or an API token asked for
	// something its role or its projects do not allow; the reason says
	// what.
	AdminAccessDenied AdminEventKind = "account.access_denied"
)

// AdminEventKinds lists every admin event kind.
var AdminEventKinds = []AdminEventKind{
	AdminProjectCreated, AdminProjectUpdated, AdminKeyRotated, AdminUserRevoked, AdminUserUnrevoked,
	AdminSignedIn, AdminSignInFailed, AdminSignedOut, AdminLocked, AdminPasswordChanged,
	AdminAccountCreated, AdminAccountUpdated, AdminTokenCreated, AdminTokenRevoked, AdminAccessDenied,
}

// Actor prefixes: who an admin event's actor is, as the system knows it.
const (
	// ActorNATS starts the actor of a command from a NATS user other than
	// the console's: "nats:" and the user.
	ActorNATS = "nats:"
	// ActorConsole starts the actor of a console account:
	// "console:" and its email.
	ActorConsole = "console:"
	// ActorToken starts the actor of an API token: "token:" and its id.
	ActorToken = "token:"
	// ActorAnonymous is the actor of a sign-in that failed or was locked
	// out: nobody the system knows (the email tried is the event's
	// account).
	ActorAnonymous = "anonymous"
)

// SourceConsole is the source of the console role: the one source whose
// commands name their own actor (a console account or API token).
const SourceConsole = "console"

// Subject is the subject an admin event of this kind is published on.
func (k AdminEventKind) Subject() string { return SubjectAdminEventPrefix + string(k) }

// Console reports whether the console records events of this kind
// (account.*, token.*), not the rotator.
func (k AdminEventKind) Console() bool {
	return strings.HasPrefix(string(k), "account.") || strings.HasPrefix(string(k), "token.")
}

// ErrForgedAdminEvent means an admin event does not match the subject it
// was stored from, or names an actor its kind cannot have: it was not
// published by the role its subject belongs to.
var ErrForgedAdminEvent = errors.New("admin event does not match its subject")

// Verify checks an admin event against the subject it was stored from.
// NATS lets only the rotator publish project events
// (hissuno.admin.event.project.…, key.…, user.…), whose actor it takes from
// the command's subject, and only the console (and the rotator) publish
// account and token events: an event whose kind is not its subject's, or an
// account or token event whose actor is not a console account, an API token
// or anonymous, is refused.
func (e *AdminEvent) Verify(subject string) error {
	if !slices.Contains(AdminEventKinds, e.Kind) || subject != e.Kind.Subject() {
		return fmt.Errorf("%w: kind %q on %q", ErrForgedAdminEvent, e.Kind, subject)
	}
	if !e.Kind.Console() || e.Actor == ActorAnonymous {
		return nil
	}
	for _, p := range []string{ActorConsole, ActorToken} {
		if rest, ok := strings.CutPrefix(e.Actor, p); ok && rest != "" {
			return nil
		}
	}
	return fmt.Errorf("%w: a %s event cannot have the actor %q", ErrForgedAdminEvent, e.Kind, e.Actor)
}

// AdminEvent records what an admin command changed: who, when, what, and
// key versions and fingerprints, never a key. The auditor stores it.
type AdminEvent struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// EventID identifies the event (the Nats-Msg-Id); derived from the
	// command id.
	EventID string `json:"eventId"`
	// CommandID is the command that caused it.
	CommandID string `json:"commandId"`
	// Kind is what happened.
	Kind AdminEventKind `json:"kind"`
	// Actor is who did it, as the system knows it (ActorNATS,
	// ActorConsole, ActorToken), never as a caller claimed it.
	Actor string `json:"actor"`
	// Reason is the free-text reason given with the change.
	Reason string `json:"reason,omitempty"`
	// Account is the console account an account event concerns (its
	// email; for a failed sign-in, the email tried), or the API token's id
	// for a token event.
	Account string `json:"account,omitempty"`
	// ClientIP and UserAgent describe the browser it came from, when it
	// came through the console.
	ClientIP  string `json:"clientIp,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	// Time is when it was applied.
	Time time.Time `json:"time"`
	// ProjectID is the project.
	ProjectID string `json:"projectId"`
	// Name, RequireToken and Origins are the settings after the change
	// (created, updated).
	Name         string   `json:"name,omitempty"`
	RequireToken *bool    `json:"requireToken,omitempty"`
	Origins      []string `json:"origins,omitempty"`
	// KeyVersion is the current key version after the change.
	KeyVersion int `json:"keyVersion"`
	// PreviousKeyVersion is the key version a rotation retired.
	PreviousKeyVersion int `json:"previousKeyVersion,omitempty"`
	// KeyFingerprint identifies the new key (created, rotated).
	KeyFingerprint string `json:"keyFingerprint,omitempty"`
	// GraceSeconds is how long the previous key keeps verifying (rotated).
	GraceSeconds int64 `json:"graceSeconds,omitempty"`
	// GraceUntil is when the previous key stops verifying (rotated).
	GraceUntil *time.Time `json:"graceUntil,omitempty"`
	// UserID is the revoked user (user.revoked, user.unrevoked).
	UserID string `json:"userId,omitempty"`
	// RevokedBefore is the revocation time (user.revoked).
	RevokedBefore *time.Time `json:"revokedBefore,omitempty"`
	// Revision is the KV revision the change was written at.
	Revision uint64 `json:"revision"`
}

// AdminEventIDFor is the id of the admin event a command causes.
func AdminEventIDFor(commandID string) string { return "adm_" + commandID }

// Invalidation is the core-NATS broadcast on SubjectInvalidate after a
// project changed: every verifier applies the KV up to Revision before it
// decides for the project again.
type Invalidation struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// ProjectID is the project that changed.
	ProjectID string `json:"projectId"`
	// Revision is the KV revision of the change.
	Revision uint64 `json:"revision"`
	// KeyVersion is the project's current key version after the change.
	KeyVersion int `json:"keyVersion"`
}

// SyncRequest asks one verifier to confirm that it holds a project at a KV
// revision; the rotator sends it to each live verifier after a change.
type SyncRequest struct {
	// ProjectID is the project that changed.
	ProjectID string `json:"projectId"`
	// Revision is the KV revision the verifier must have applied.
	Revision uint64 `json:"revision"`
}

// SyncReply is a verifier's answer to a SyncRequest.
type SyncReply struct {
	// Verifier names the verifier instance.
	Verifier string `json:"verifier"`
	// Revision is the revision the verifier holds for the project (0 when
	// the project is gone).
	Revision uint64 `json:"revision"`
	// OK is true when Revision is at least the one asked for.
	OK bool `json:"ok"`
}

// Heartbeat is a verifier's periodic sign of life on SubjectHeartbeat.
type Heartbeat struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// Verifier names the verifier instance; its sync endpoint is
	// hissuno.verifier.<instance>.sync.
	Verifier string `json:"verifier"`
	// Revision is the last KV revision its view holds.
	Revision uint64 `json:"revision"`
	// Time is when it was sent, by the verifier's clock.
	Time time.Time `json:"time"`
	// Leaving is set on the last heartbeat of a verifier that stops: it no
	// longer needs to confirm changes.
	Leaving bool `json:"leaving,omitempty"`
}

// ThrottledUnknownProject is the project of a Throttled count whose
// requests name no project a verifier has decided as existing at the
// ingress (an unseen projectId, attacker-chosen as often as not), or no
// project at all (a request refused on its address before its body was
// read, a connection closed at once): such ids are never recorded one by
// one, which would let a flood choose the audit's rows.
const ThrottledUnknownProject = "unknown"

// Throttled is one rolled-up count of the requests an ingress refused over
// a rate limit (429) or connection cap in one minute, for one project,
// client address and reason, published on ThrottledSubject(Ingress) once
// the minute is over (and when the ingress stops) and stored by the
// auditor. An ingress records at most a bounded number of such keys a
// minute; the requests of every other key are counted in one Overflow
// count per reason, so that the counts of a minute always add up to the
// requests refused. Its JSON Schema is public
// (schemas/throttled.schema.json).
type Throttled struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// ID identifies the count; it is also the Nats-Msg-Id, so that a
	// retried publish is stored once, and the audit's de-duplication key.
	ID string `json:"id"`
	// Ingress names the ingress instance ("<source>.<instance>").
	Ingress string `json:"ingress"`
	// Minute is the start of the minute counted, by the ingress's clock.
	Minute time.Time `json:"minute"`
	// ProjectID is the project the requests named, when a verifier has
	// decided it exists; else ThrottledUnknownProject. Empty on an
	// overflow count.
	ProjectID string `json:"projectId"`
	// ClientIP is the client's address as the limits count it (its /64
	// for IPv6); empty on an overflow count.
	ClientIP string `json:"clientIp"`
	// Reason is why they were refused.
	Reason Throttle `json:"reason"`
	// Count is how many requests (or connections) were refused.
	Count uint64 `json:"count"`
	// Overflow marks the count of every key over the ingress's bound for
	// the minute, for this reason.
	Overflow bool `json:"overflow,omitempty"`
}

// ErrForgedThrottled means a count of throttled requests does not match
// the subject it was stored from, or is not one an ingress makes.
var ErrForgedThrottled = errors.New("throttled count does not match its subject")

// Verify checks a count of throttled requests against the subject it was
// stored from: NATS lets each ingress publish under its own name only, so
// a count whose ingress is not its subject's is another's forgery.
func (e *Throttled) Verify(subject string) error {
	switch {
	case !ValidIngress(e.Ingress) || subject != ThrottledSubject(e.Ingress):
		return fmt.Errorf("%w: ingress %q on %q", ErrForgedThrottled, e.Ingress, subject)
	case e.ID == "" || e.Minute.IsZero() || e.Count == 0:
		return fmt.Errorf("%w: no id, minute or count", ErrForgedThrottled)
	case !slices.Contains(Throttles, e.Reason):
		return fmt.Errorf("%w: reason %q", ErrForgedThrottled, e.Reason)
	case e.Overflow && (e.ProjectID != "" || e.ClientIP != ""):
		return fmt.Errorf("%w: an overflow count names a project or an address", ErrForgedThrottled)
	case !e.Overflow && !ValidToken(e.ProjectID):
		return fmt.Errorf("%w: project %q is not a project id", ErrForgedThrottled, e.ProjectID)
	case e.ClientIP != "" && !validAddress(e.ClientIP):
		return fmt.Errorf("%w: client IP %q is not an address", ErrForgedThrottled, e.ClientIP)
	}
	return nil
}

// validAddress reports whether s is an IP address or prefix (an IPv6 /64).
func validAddress(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// Metadata is userMetadata: string keys, string values.
type Metadata map[string]string

// UnmarshalJSON decodes into a map sized for the few entries userMetadata
// holds (the fast decoder would otherwise make room for 64 on every event).
func (m *Metadata) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = nil
		return nil
	}
	mm := make(map[string]string, 4)
	if err := json.Unmarshal(b, &mm); err != nil {
		return err
	}
	*m = mm
	return nil
}

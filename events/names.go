package events

import "strings"

// SchemaVersion is the version every event carries in its schemaVersion
// field. It changes only with an incompatible change to an event's schema.
const SchemaVersion = 1

// Subjects. Attempts, decisions and admin events are JetStream subjects; the
// invalidation broadcast and the dead-letter subjects are core NATS.
const (
	// SubjectAttempts is the root of the subjects ingresses publish
	// connection attempts on: SubjectAttempts + "." + the attempt's ingress
	// ("<source>.<instance>", AttemptSubject). NATS permissions let each
	// source's user publish under its own source only, and a verifier
	// refuses an attempt whose ingress is not the one its subject names.
	SubjectAttempts = "hissuno.attempts"
	// SubjectDecisions is where verifiers record decisions.
	SubjectDecisions = "hissuno.decisions"
	// SubjectAdmin is the root of admin commands and admin events.
	SubjectAdmin = "hissuno.admin"
	// SubjectCommandPrefix starts every admin command's subject; the
	// source that sent it (its NATS user) and the command's kind follow
	// (SubjectCommandPrefix + "admin.project.rotate", CommandKind.SubjectFrom).
	// NATS permissions let each source publish under its own name only: the
	// rotator takes the source from the subject, never from the command.
	SubjectCommandPrefix = "hissuno.admin.command."
	// SubjectAdminEventPrefix starts every admin event's subject; the
	// event's kind follows.
	SubjectAdminEventPrefix = "hissuno.admin.event."
	// SubjectHeartbeat is where every verifier says, each HeartbeatEvery,
	// that it is alive: the rotator waits for the confirmation of every
	// verifier heard from recently, not only those that answer discovery in
	// time.
	SubjectHeartbeat = "hissuno.verifier.heartbeat"
	// SubjectInvalidate is the core-NATS broadcast that tells every verifier
	// a project changed; the KV revision it names is the truth.
	SubjectInvalidate = "hissuno.invalidate"
	// SubjectDeadLetterPrefix starts the subject of a message that can never
	// be handled; the stream it came from follows.
	SubjectDeadLetterPrefix = "hissuno.deadletter."
	// SubjectThrottledPrefix starts the subjects ingresses publish their
	// rolled-up counts of throttled requests on: SubjectThrottledPrefix +
	// the ingress ("<source>.<instance>", ThrottledSubject). NATS
	// permissions let each source's user publish under its own source only,
	// and the auditor refuses a count whose ingress is not its subject's.
	SubjectThrottledPrefix = "hissuno.throttled."
	// SubjectReplyPrefix starts the subjects ingresses receive verifier
	// replies on: ReplySubject(ingress, attempt id). Verifiers reply to
	// nothing else, and only to the subject an attempt's ingress names.
	SubjectReplyPrefix = "hissuno.reply."
	// AdminInboxPrefix is the inbox prefix of the admin CLI's connections
	// (InboxPrefix(SourceAdmin)): the rotator answers the CLI's commands
	// there, and only the admin user may subscribe to it.
	AdminInboxPrefix = "_HISSUNO_ADMIN_INBOX"
)

// Sources: the NATS users that publish attempts or admin commands under
// their own name. Other ingresses (an edge gateway) and admin tools use a
// NATS user of their own, and its name as their source.
const (
	// SourceIngress is the source of Hissuno's HTTP ingress.
	SourceIngress = "ingress"
	// SourceAdmin is the source of the admin CLI (hissuno project …).
	SourceAdmin = "admin"
)

// InboxPrefix is the inbox prefix of a role's or source's connections
// ("_HISSUNO_VERIFIER_INBOX"): JetStream answers, deliveries and request
// replies arrive there, so NATS permissions can keep others from reading
// them. InboxPrefix(SourceAdmin) is AdminInboxPrefix.
func InboxPrefix(role string) string { return "_HISSUNO_" + strings.ToUpper(role) + "_INBOX" }

// ValidToken reports whether s can be one token of a NATS subject as
// Hissuno names them: 1 to 64 letters, digits, '-' or '_'.
func ValidToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// IngressName is the name an ingress instance gives itself in attempts:
// "<source>.<instance>", two subject tokens.
func IngressName(source, instance string) string { return source + "." + instance }

// ValidIngress reports whether s is an IngressName of two valid tokens.
func ValidIngress(s string) bool {
	source, instance, ok := strings.Cut(s, ".")
	return ok && ValidToken(source) && ValidToken(instance)
}

// AttemptSubject is the subject an ingress named ingress
// ("<source>.<instance>") publishes its attempts on.
func AttemptSubject(ingress string) string { return SubjectAttempts + "." + ingress }

// ThrottledSubject is the subject an ingress named ingress
// ("<source>.<instance>") publishes its counts of throttled requests on.
func ThrottledSubject(ingress string) string { return SubjectThrottledPrefix + ingress }

// SyncSubject is the subject of one verifier's sync endpoint: the rotator
// asks it there to confirm it holds a project at a KV revision.
func SyncSubject(instance string) string { return "hissuno.verifier." + instance + ".sync" }

// StatusSubject is the subject of one role instance's status endpoint
// (role "ingress", "verifier" or "rotator").
func StatusSubject(role, instance string) string {
	return "hissuno." + role + "." + instance + ".status"
}

// ReplySubject is the subject a verifier replies on to the ingress named
// ingress about one attempt.
func ReplySubject(ingress, attemptID string) string {
	return SubjectReplyPrefix + ingress + "." + attemptID
}

// Streams, consumers and buckets.
const (
	// StreamAttempts holds attempts (every subject under SubjectAttempts)
	// until a verifier has decided them (work-queue retention).
	StreamAttempts = "HISSUNO_ATTEMPTS"
	// StreamDecisions holds every decision until the auditor has copied
	// it into ClickHouse (interest retention: the auditor's ack removes
	// it), or until it ages out.
	StreamDecisions = "HISSUNO_DECISIONS"
	// StreamAdmin holds admin commands and admin events.
	StreamAdmin = "HISSUNO_ADMIN"
	// StreamThrottled holds the ingresses' counts of throttled requests
	// (every subject under SubjectThrottledPrefix) until the auditor has
	// copied them into ClickHouse (interest retention, like decisions). It
	// is apart from the decisions stream so that it never takes the room
	// decisions need: a full one refuses counts, never a decision.
	StreamThrottled = "HISSUNO_THROTTLED"
	// StreamDeadLetter holds messages that could never be handled, with the
	// error that stopped them.
	StreamDeadLetter = "HISSUNO_DEADLETTER"

	// ConsumerVerifiers is the one durable pull consumer every verifier
	// shares on StreamAttempts.
	ConsumerVerifiers = "verifiers"
	// ConsumerRotator is the durable consumer of admin commands.
	ConsumerRotator = "rotator"
	// ConsumerAuditDecisions is the auditor's durable consumer of decisions.
	ConsumerAuditDecisions = "auditor-decisions"
	// ConsumerAuditAdmin is the auditor's durable consumer of admin events.
	ConsumerAuditAdmin = "auditor-admin"

	// ConsumerAuditThrottled is the auditor's durable consumer of counts
	// of throttled requests.
	ConsumerAuditThrottled = "auditor-throttled"

	// BucketProjects is the KV bucket of project settings and sealed keys,
	// one entry per project id.
	BucketProjects = "hissuno_projects"

	// The console's KV buckets, which only the console's NATS user may
	// read or write: its accounts (password hashes), its sessions (by the
	// hash of the session id), its API tokens (by id, the secret hashed)
	// and its sign-in throttle (failures per account and per client IP).
	BucketConsoleAccounts = "hissuno_console_accounts"
	BucketConsoleSessions = "hissuno_console_sessions"
	BucketConsoleTokens   = "hissuno_console_tokens"
	BucketConsoleThrottle = "hissuno_console_throttle"
)

// ConsoleBuckets lists the console's KV buckets.
var ConsoleBuckets = []string{BucketConsoleAccounts, BucketConsoleSessions, BucketConsoleTokens, BucketConsoleThrottle}

// Headers.
const (
	// HeaderMsgID is JetStream's de-duplication header: a retried publish
	// with the same id is stored once.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderReplyTo carries, on an admin command, the inbox the rotator
	// answers on.
	HeaderReplyTo = "Hissuno-Reply-To"
	// HeaderError carries, on a dead letter, why it could not be handled.
	HeaderError = "Hissuno-Error"
	// HeaderSourceSubject carries, on a dead letter, the subject it came from.
	HeaderSourceSubject = "Hissuno-Source-Subject"
	// HeaderSourceSequence carries, on a dead letter, its stream sequence.
	HeaderSourceSequence = "Hissuno-Source-Sequence"
)

// Micro-service names, as `nats micro ls` shows them.
const (
	ServiceIngress  = "hissuno-ingress"
	ServiceVerifier = "hissuno-verifier"
	ServiceRotator  = "hissuno-rotator"
	ServiceAuditor  = "hissuno-auditor"
)

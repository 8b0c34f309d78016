package events

import "strings"

// SchemaVersion is the version every event carries in its schemaVersion
// field. It changes only with an incompatible change to an event's schema.
const SchemaVersion = 1

// Subjects. Attempts, decisions and admin events are JetStream subjects; the
// invalidation broadcast and the dead-letter subjects are core NATS.
const (
	// SubjectAttempts is where ingresses publish connection attempts.
	SubjectAttempts = "hissuno.attempts"
	// SubjectDecisions is where verifiers record decisions.
	SubjectDecisions = "hissuno.decisions"
	// SubjectAdmin is the root of admin commands and admin events.
	SubjectAdmin = "hissuno.admin"
	// SubjectCommandPrefix starts every admin command's subject; the
	// command's kind follows (SubjectCommandPrefix + "project.rotate").
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
	// SubjectReplyPrefix starts the subjects ingresses receive verifier
	// replies on: SubjectReplyPrefix + ingress instance + "." + attempt id.
	// Verifiers reply to nothing else.
	SubjectReplyPrefix = "hissuno.reply."
	// AdminInboxPrefix is the inbox prefix of admin clients (the CLI): the
	// rotator's answers, which carry new secret keys, go there, and only
	// admins may subscribe to it.
	AdminInboxPrefix = "_HISSUNO_ADMIN_INBOX"
)

// InboxPrefix is the inbox prefix of a role's connections
// ("_HISSUNO_VERIFIER_INBOX"): JetStream answers and deliveries to a role
// arrive there, so NATS permissions can keep other roles from reading them.
// InboxPrefix("admin") is AdminInboxPrefix.
func InboxPrefix(role string) string { return "_HISSUNO_" + strings.ToUpper(role) + "_INBOX" }

// Streams, consumers and buckets.
const (
	// StreamAttempts holds attempts until a verifier has decided them
	// (work-queue retention).
	StreamAttempts = "HISSUNO_ATTEMPTS"
	// StreamDecisions holds every decision until the auditor has copied
	// it into ClickHouse (interest retention: the auditor's ack removes
	// it), or until it ages out.
	StreamDecisions = "HISSUNO_DECISIONS"
	// StreamAdmin holds admin commands and admin events.
	StreamAdmin = "HISSUNO_ADMIN"
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

	// BucketProjects is the KV bucket of project settings and sealed keys,
	// one entry per project id.
	BucketProjects = "hissuno_projects"
)

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

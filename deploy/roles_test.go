package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/hissuno/widgetauth/deploy"
	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/bus"
	"github.com/hissuno/widgetauth/internal/project"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/internal/verifier"
)

// action is one thing a role might do on NATS.
type action struct {
	do func(ctx context.Context, nc *nats.Conn) error
	// subject starts the subject a refusal of the action names.
	subject string
}

// roleCase is a user trying an action, and whether nats.conf allows it.
type roleCase struct {
	name    string
	user    string
	do      action
	allowed bool
}

// TestEachRoleDoesOnlyItsJob connects as each user of nats.conf and tries
// every role's job: a user may do its own, and is refused the others' by a
// permissions violation.
func TestEachRoleDoesOnlyItsJob(t *testing.T) {
	s := startNATS(t)
	s.ensureStreams(t)
	projectID := seedProject(t, s)

	var (
		publishAttempt    = jsPublish(events.AttemptSubject("ingress.ingress-1"))
		spoofAttempt      = jsPublish(events.AttemptSubject("edge.gw-1"))
		publishDecision   = jsPublish(events.SubjectDecisions)
		rotateKey         = jsPublish(events.CommandRotateKey.SubjectFrom(events.SourceAdmin))
		updateSettings    = jsPublish(events.CommandUpdateProject.SubjectFrom(events.SourceAdmin))
		rotateAsConsole   = jsPublish(events.CommandRotateKey.SubjectFrom("console"))
		forgeAdminEvent   = jsPublish(events.AdminKeyRotated.Subject())
		readSealedKey     = kvGet(projectID)
		writeProject      = kvPut("proj_written")
		watchProjects     = kvWatch()
		consumeAttempts   = consume(events.StreamAttempts, verifier.AttemptsConsumer(10*time.Second))
		consumeCommands   = consume(events.StreamAdmin, jetstream.ConsumerConfig{Durable: events.ConsumerRotator, FilterSubject: events.SubjectCommandPrefix + ">", AckPolicy: jetstream.AckExplicitPolicy})
		auditDecisions    = consume(events.StreamDecisions, bus.AuditDecisionsConsumer(bus.AuditSettings{}))
		auditAdminEvents  = consume(events.StreamAdmin, bus.AuditAdminConsumer(bus.AuditSettings{}))
		auditThrottled    = consume(events.StreamThrottled, bus.AuditThrottledConsumer(bus.AuditSettings{}))
		seeThrottledCons  = consumerInfo(events.StreamThrottled, events.ConsumerAuditThrottled)
		makeThrottledCons = createConsumer(events.StreamThrottled, bus.AuditThrottledConsumer(bus.AuditSettings{}))
		makeAuditConsumer = createConsumer(events.StreamDecisions, bus.AuditDecisionsConsumer(bus.AuditSettings{}))
		seeAuditConsumer  = consumerInfo(events.StreamDecisions, events.ConsumerAuditDecisions)
		takeAuditDecision = fetch(events.StreamDecisions, events.ConsumerAuditDecisions)
		purgeStored       = purgeBelow(events.StreamDecisions, 1)
		tailDecisions     = followDecisions()
		changeStreams     = ensureTopology()
		checkStreams      = checkTopology()
		hearInvalidation  = subscribe(events.SubjectInvalidate)
		invalidate        = publish(events.SubjectInvalidate)
		hearReplies       = subscribe(events.ReplySubject("ingress.ingress-1", "*"))
		hearEdgeReplies   = subscribe(events.SubjectReplyPrefix + "edge.>")
		reply             = publish(events.ReplySubject("ingress.ingress-1", "att_1"))
		sniffDecisions    = subscribe(events.SubjectDecisions)
		readAdminAnswers  = subscribe(events.AdminInboxPrefix + ".>")
		answerAdmin       = publish(events.AdminInboxPrefix + ".x.y")
		discoverVerifier  = publish("$SRV.PING." + events.ServiceVerifier)
		syncVerifier      = publish(events.SyncSubject("verifier-1"))
		deadLetter        = func(stream string) action { return jsPublish(events.SubjectDeadLetterPrefix + stream) }
		everything        = subscribe(">")
		recordSignIn      = jsPublish(events.AdminSignedIn.Subject())
		recordTokenMade   = jsPublish(events.AdminTokenCreated.Subject())
		commandAs         = func(source string) action { return jsPublish(events.CommandRotateKey.SubjectFrom(source)) }
		readConsoleAnswer = subscribe(events.InboxPrefix(events.SourceConsole) + ".>")
	)

	cases := []roleCase{
		{"ingress publishes attempts", "ingress", publishAttempt, true},
		{"ingress receives its replies", "ingress", hearReplies, true},
		{"ingress checks the streams exist", "ingress", checkStreams, true},
		{"ingress cannot publish attempts as another source", "ingress", spoofAttempt, false},
		{"ingress cannot hear another source's replies", "ingress", hearEdgeReplies, false},
		{"ingress sees the auditor's consumer (readiness)", "ingress", seeAuditConsumer, true},
		{"ingress cannot make the auditor's consumer", "ingress", makeAuditConsumer, false},
		{"ingress cannot take the auditor's decisions", "ingress", takeAuditDecision, false},
		{"ingress cannot remove decisions", "ingress", purgeStored, false},
		{"ingress cannot rotate a key", "ingress", rotateKey, false},
		{"ingress cannot change settings", "ingress", updateSettings, false},
		{"ingress cannot read a sealed key", "ingress", readSealedKey, false},
		{"ingress cannot write a project", "ingress", writeProject, false},
		{"ingress cannot watch the projects", "ingress", watchProjects, false},
		{"ingress cannot consume decisions", "ingress", auditDecisions, false},
		{"ingress cannot follow decisions", "ingress", tailDecisions, false},
		{"ingress cannot sniff decisions", "ingress", sniffDecisions, false},
		{"ingress cannot forge a decision", "ingress", publishDecision, false},
		{"ingress cannot forge a reply", "ingress", reply, false},
		{"ingress cannot take attempts", "ingress", consumeAttempts, false},
		{"ingress cannot read admin answers", "ingress", readAdminAnswers, false},
		{"ingress cannot change the streams", "ingress", changeStreams, false},
		{"ingress cannot subscribe to everything", "ingress", everything, false},
		{"ingress cannot consume the throttled counts", "ingress", auditThrottled, false},
		{"ingress cannot make the auditor's consumer of throttled counts", "ingress", makeThrottledCons, false},

		{"verifier watches the projects", "verifier", watchProjects, true},
		{"verifier takes attempts", "verifier", consumeAttempts, true},
		{"verifier publishes decisions", "verifier", publishDecision, true},
		{"verifier replies to the ingress", "verifier", reply, true},
		{"verifier hears invalidations", "verifier", hearInvalidation, true},
		{"verifier dead-letters attempts", "verifier", deadLetter(events.StreamAttempts), true},
		{"verifier checks the streams exist", "verifier", checkStreams, true},
		{"verifier sees the auditor's consumer (readiness)", "verifier", seeAuditConsumer, true},
		{"verifier cannot make the auditor's consumer", "verifier", makeAuditConsumer, false},
		{"verifier cannot take the auditor's decisions", "verifier", takeAuditDecision, false},
		{"verifier cannot remove decisions", "verifier", purgeStored, false},
		{"verifier cannot write a project", "verifier", writeProject, false},
		{"verifier cannot change settings", "verifier", updateSettings, false},
		{"verifier cannot rotate a key", "verifier", rotateKey, false},
		{"verifier cannot forge an admin event", "verifier", forgeAdminEvent, false},
		{"verifier cannot invalidate", "verifier", invalidate, false},
		{"verifier cannot publish attempts", "verifier", publishAttempt, false},
		{"verifier cannot consume the audit", "verifier", auditDecisions, false},
		{"verifier cannot read admin answers", "verifier", readAdminAnswers, false},
		{"verifier cannot change the streams", "verifier", changeStreams, false},

		{"rotator reads a project", "rotator", readSealedKey, true},
		{"rotator writes a project", "rotator", writeProject, true},
		{"rotator takes admin commands", "rotator", consumeCommands, true},
		{"rotator records admin events", "rotator", forgeAdminEvent, true},
		{"rotator invalidates", "rotator", invalidate, true},
		{"rotator discovers verifiers", "rotator", discoverVerifier, true},
		{"rotator asks a verifier to confirm", "rotator", syncVerifier, true},
		{"rotator answers the admin", "rotator", answerAdmin, true},
		{"rotator dead-letters commands", "rotator", deadLetter(events.StreamAdmin), true},
		{"rotator checks the streams exist", "rotator", checkStreams, true},
		{"rotator sees the auditor's consumer (readiness)", "rotator", seeAuditConsumer, true},
		{"rotator cannot make the auditor's consumer", "rotator", makeAuditConsumer, false},
		{"rotator cannot remove decisions", "rotator", purgeStored, false},
		{"rotator cannot change the streams", "rotator", changeStreams, false},
		{"rotator cannot issue admin commands", "rotator", rotateKey, false},
		{"rotator cannot publish attempts", "rotator", publishAttempt, false},
		{"rotator cannot forge a decision", "rotator", publishDecision, false},
		{"rotator cannot forge a reply", "rotator", reply, false},
		{"rotator cannot consume the audit", "rotator", auditDecisions, false},
		{"rotator cannot read admin answers", "rotator", readAdminAnswers, false},

		{"auditor consumes decisions", "auditor", auditDecisions, true},
		{"auditor consumes admin events", "auditor", auditAdminEvents, true},
		{"auditor consumes throttled counts", "auditor", auditThrottled, true},
		{"auditor sees its consumer of throttled counts", "auditor", seeThrottledCons, true},
		{"auditor dead-letters throttled counts", "auditor", deadLetter(events.StreamThrottled), true},
		{"verifier cannot consume throttled counts", "verifier", auditThrottled, false},
		{"console cannot consume throttled counts", "console", auditThrottled, false},
		{"audit cannot consume throttled counts", "audit", auditThrottled, false},
		{"auditor dead-letters decisions", "auditor", deadLetter(events.StreamDecisions), true},
		{"auditor dead-letters admin events", "auditor", deadLetter(events.StreamAdmin), true},
		{"auditor checks the streams exist", "auditor", checkStreams, true},
		{"auditor makes its consumer", "auditor", makeAuditConsumer, true},
		{"auditor takes its decisions", "auditor", takeAuditDecision, true},
		{"auditor removes decisions it stored", "auditor", purgeStored, true},
		{"auditor cannot publish attempts", "auditor", publishAttempt, false},
		{"auditor cannot forge a decision", "auditor", publishDecision, false},
		{"auditor cannot read a sealed key", "auditor", readSealedKey, false},
		{"auditor cannot write a project", "auditor", writeProject, false},
		{"auditor cannot rotate a key", "auditor", rotateKey, false},
		{"auditor cannot take attempts", "auditor", consumeAttempts, false},
		{"auditor cannot read admin answers", "auditor", readAdminAnswers, false},
		{"auditor cannot change the streams", "auditor", changeStreams, false},

		{"admin rotates a key", "admin", rotateKey, true},
		{"admin changes settings", "admin", updateSettings, true},
		{"admin reads a project", "admin", readSealedKey, true},
		{"admin reads its answers", "admin", readAdminAnswers, true},
		{"admin cannot send commands as another source", "admin", rotateAsConsole, false},
		{"admin cannot follow decisions (that is the audit user's)", "admin", tailDecisions, false},
		{"admin cannot write a project directly", "admin", writeProject, false},
		{"admin cannot forge an admin event", "admin", forgeAdminEvent, false},
		{"admin cannot consume the auditor's decisions", "admin", auditDecisions, false},
		{"admin cannot make the auditor's consumer", "admin", makeAuditConsumer, false},
		{"admin cannot remove decisions", "admin", action{subject: "$JS.API.STREAM.", do: purgeStored.do}, false},
		{"admin cannot publish attempts", "admin", publishAttempt, false},
		{"admin cannot forge a decision", "admin", publishDecision, false},
		{"admin cannot invalidate", "admin", invalidate, false},
		{"admin cannot change the streams", "admin", changeStreams, false},

		{"audit follows decisions", "audit", tailDecisions, true},
		{"audit cannot make the auditor's consumer", "audit", makeAuditConsumer, false},
		{"audit cannot take the auditor's decisions", "audit", action{subject: "$JS.API.CONSUMER.", do: takeAuditDecision.do}, false},
		{"audit cannot remove decisions", "audit", purgeStored, false},
		{"audit cannot read admin answers", "audit", readAdminAnswers, false},
		{"audit cannot read a sealed key", "audit", action{subject: "$JS.API.", do: readSealedKey.do}, false},
		{"audit cannot rotate a key", "audit", rotateKey, false},
		{"audit cannot consume the auditor's decisions", "audit", auditDecisions, false},
		{"audit cannot sniff attempts", "audit", subscribe(events.SubjectAttempts + ".>"), false},
		{"audit cannot forge a reply", "audit", reply, false},
		{"audit cannot change the streams", "audit", changeStreams, false},

		{"console rotates a key as the console", "console", rotateAsConsole, true},
		{"console changes settings as the console", "console", jsPublish(events.CommandUpdateProject.SubjectFrom(events.SourceConsole)), true},
		{"console reads its answers", "console", readConsoleAnswer, true},
		{"console reads a project", "console", readSealedKey, true},
		{"console lists the projects", "console", watchProjects, true},
		{"console records a sign-in", "console", recordSignIn, true},
		{"console records an API token made", "console", recordTokenMade, true},
		{"console checks the streams exist", "console", checkStreams, true},
		{"console cannot send commands as the CLI", "console", rotateKey, false},
		{"console cannot forge a project's admin event", "console", forgeAdminEvent, false},
		{"console cannot write a project directly", "console", writeProject, false},
		{"console cannot publish attempts", "console", publishAttempt, false},
		{"console cannot forge a decision", "console", publishDecision, false},
		{"console cannot forge a reply", "console", reply, false},
		{"console cannot invalidate", "console", invalidate, false},
		{"console cannot take attempts", "console", consumeAttempts, false},
		{"console cannot consume the auditor's decisions", "console", auditDecisions, false},
		{"console cannot follow decisions", "console", tailDecisions, false},
		{"console cannot read the CLI's answers", "console", readAdminAnswers, false},
		{"console cannot change the streams", "console", changeStreams, false},
		{"admin cannot record a sign-in", "admin", recordSignIn, false},
		{"admin cannot read the console's answers", "admin", readConsoleAnswer, false},
		{"rotator answers the console", "rotator", publish(events.InboxPrefix(events.SourceConsole) + ".x.y"), true},
		{"ingress cannot send commands at all", "ingress", commandAs("ingress"), false},
		{"verifier cannot send commands at all", "verifier", commandAs("verifier"), false},
		{"audit cannot send commands at all", "audit", commandAs("audit"), false},

		{"setup creates and updates the streams", "setup", changeStreams, true},
		{"setup checks the streams exist", "setup", checkStreams, true},
		{"setup makes the auditor's consumer", "setup", makeAuditConsumer, true},
		{"setup sees the auditor's consumer", "setup", seeAuditConsumer, true},
		{"setup makes the auditor's consumer of throttled counts", "setup", makeThrottledCons, true},
		{"setup sees the auditor's consumer of throttled counts", "setup", seeThrottledCons, true},
		{"setup cannot take the auditor's decisions", "setup", takeAuditDecision, false},
		{"setup cannot remove decisions", "setup", purgeStored, false},
		{"setup cannot read a sealed key", "setup", readSealedKey, false},
		{"setup cannot write a project", "setup", writeProject, false},
		{"setup cannot publish attempts", "setup", publishAttempt, false},
		{"setup cannot rotate a key", "setup", rotateKey, false},
		{"setup cannot watch the projects", "setup", watchProjects, false},

		// Inboxes carry JetStream answers and deliveries (the verifier's KV
		// watch: sealed keys) and the rotator's answers to the admin (new
		// secret keys): a user reads its own only, and answers no one else's.
		{"ingress cannot read every role's inbox", "ingress", subscribe("_HISSUNO_*_INBOX.>"), false},
		{"auditor cannot read every inbox", "auditor", subscribe("*.>"), false},
		{"ingress cannot forge an answer to the verifier", "ingress", publish(events.InboxPrefix("verifier") + ".x.y"), false},
		{"verifier cannot forge an answer to the admin", "verifier", publish(events.AdminInboxPrefix + ".x.y"), false},
		{"auditor cannot forge an answer to the rotator", "auditor", publish(events.InboxPrefix("rotator") + ".x.y"), false},
		{"admin cannot forge an answer to setup", "admin", publish(inboxOf("setup") + ".x.y"), false},
	}
	// Every stream has its writers; no other user may publish to it (a
	// forged decision, admin event or attempt would reach the audit).
	for _, w := range streamWriters {
		for _, user := range deploy.NATSUsers {
			allowed := slices.Contains(w.users, user)
			verb := map[bool]string{true: "publishes", false: "cannot publish"}[allowed]
			cases = append(cases, roleCase{fmt.Sprintf("%s %s to %s (%s)", user, verb, w.stream, w.subject), user, jsPublish(w.subject), allowed})
		}
	}
	// The console's buckets hold password hashes, sessions and API tokens:
	// no other user may read or list them.
	for _, bucket := range events.ConsoleBuckets {
		for _, user := range deploy.NATSUsers {
			allowed := user == "console"
			verb := map[bool]string{true: "reads", false: "cannot read"}[allowed]
			cases = append(cases, roleCase{fmt.Sprintf("%s %s the bucket %s", user, verb, bucket), user, kvGetIn(bucket, "missing"), allowed})
		}
	}
	for _, user := range deploy.NATSUsers {
		for _, other := range deploy.NATSUsers {
			inbox := subscribe(inboxOf(other) + ".>")
			switch {
			case other == user:
				cases = append(cases, roleCase{user + " reads its own inbox " + inbox.subject, user, inbox, true})
			default:
				cases = append(cases, roleCase{user + " cannot read " + other + "'s inbox " + inbox.subject, user, inbox, false})
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nc := s.connect(t, tc.user)
			// A refused JetStream request gets no answer, only the violation
			// the server reports: it ends the request.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrPermissionViolation) {
					cancel()
				}
			})
			err := tc.do.do(ctx, nc)
			denied := violation(nc)
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("%s could not: %v", tc.user, err)
			case tc.allowed && denied != nil:
				t.Fatalf("%s met a permissions violation: %v", tc.user, denied)
			case !tc.allowed && denied == nil:
				t.Fatalf("%s was allowed (error: %v)", tc.user, err)
			case !tc.allowed && err == nil:
				t.Fatalf("%s was refused (%v) but the action reported success", tc.user, denied)
			case !tc.allowed && !strings.Contains(denied.Error(), `to "`+tc.do.subject):
				t.Fatalf("%s was refused something else than %s: %v", tc.user, tc.do.subject, denied)
			}
		})
	}
}

// streamWriters names, for one subject of each stream, the users that may
// publish to it.
var streamWriters = []struct {
	stream, subject string
	users           []string
}{
	{events.StreamAttempts, events.AttemptSubject("ingress.ingress-1"), []string{"ingress"}},
	{events.StreamAttempts, events.AttemptSubject("admin.ingress-1"), nil},
	{events.StreamDecisions, events.SubjectDecisions, []string{"verifier"}},
	{events.StreamAdmin, events.CommandRotateKey.SubjectFrom(events.SourceAdmin), []string{"admin"}},
	{events.StreamAdmin, events.CommandRotateKey.SubjectFrom("rotator"), nil},
	{events.StreamAdmin, events.AdminKeyRotated.Subject(), []string{"rotator"}},
	{events.StreamAdmin, events.CommandRotateKey.SubjectFrom(events.SourceConsole), []string{"console"}},
	{events.StreamAdmin, events.AdminSignedIn.Subject(), []string{"rotator", "console"}},
	{events.StreamAdmin, events.AdminTokenRevoked.Subject(), []string{"rotator", "console"}},
	{"KV_" + events.BucketConsoleAccounts, "$KV." + events.BucketConsoleAccounts + ".acc_x", []string{"console"}},
	{"KV_" + events.BucketConsoleSessions, "$KV." + events.BucketConsoleSessions + ".ses_x", []string{"console"}},
	{"KV_" + events.BucketConsoleTokens, "$KV." + events.BucketConsoleTokens + ".tok_x", []string{"console"}},
	{events.StreamThrottled, events.ThrottledSubject("ingress.ingress-1"), []string{"ingress"}},
	{events.StreamThrottled, events.ThrottledSubject("admin.ingress-1"), nil},
	{events.StreamDeadLetter, events.SubjectDeadLetterPrefix + events.StreamAttempts, []string{"verifier"}},
	{events.StreamDeadLetter, events.SubjectDeadLetterPrefix + events.StreamDecisions, []string{"auditor"}},
	{events.StreamDeadLetter, events.SubjectDeadLetterPrefix + events.StreamAdmin, []string{"rotator", "auditor"}},
	{events.StreamDeadLetter, events.SubjectDeadLetterPrefix + events.StreamThrottled, []string{"auditor"}},
	{"KV_" + events.BucketProjects, "$KV." + events.BucketProjects + ".proj_x", []string{"rotator"}},
}

// inboxOf is the inbox prefix a user connects with.
func inboxOf(user string) string { return events.InboxPrefix(user) }

// TestUnknownUsersAreRefused checks that nats.conf lets no one in without
// a user and its password.
func TestUnknownUsersAreRefused(t *testing.T) {
	s := startNATS(t)
	cases := []struct {
		name     string
		user     string
		password string
	}{
		{"no credentials", "", ""},
		{"wrong password", "verifier", "pw-wrong"},
		{"another user's password", "rotator", s.passwords["ingress"]},
		{"unknown user", "mallory", s.passwords["admin"]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nc, err := bus.Connect(bus.ConnConfig{URL: s.url, User: tc.user, Password: tc.password, ConnectTimeout: 2 * time.Second}, stacktest.Logger(t))
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("refused for another reason: %v", err)
			}
		})
	}
}

// seedProject stores one project, with its sealed key, as the rotator.
func seedProject(t *testing.T, s *natsServer) string {
	t.Helper()
	_, sealer := masterKey(t)
	nc := s.connect(t, "rotator")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, events.BucketProjects)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := project.New(sealer, "proj_seed", "Seed", true, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := project.NewStore(kv).Create(ctx, &rec); err != nil {
		t.Fatalf("rotator: create project: %v", err)
	}
	return rec.ID
}

// jsPublish publishes to a JetStream subject and waits for the stream's ack.
func jsPublish(subject string) action {
	return action{subject: subject, do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		m := nats.NewMsg(subject)
		m.Data = []byte(`{}`)
		m.Header.Set(events.HeaderMsgID, "deploy-test-"+nuid.Next())
		_, err = js.PublishMsg(ctx, m)
		return err
	}}
}

// publish publishes on core NATS.
func publish(subject string) action {
	return action{subject: subject, do: func(_ context.Context, nc *nats.Conn) error {
		if err := nc.Publish(subject, []byte(`{}`)); err != nil {
			return err
		}
		return violation(nc)
	}}
}

// subscribe subscribes on core NATS.
func subscribe(subject string) action {
	return action{subject: subject, do: func(_ context.Context, nc *nats.Conn) error {
		if _, err := nc.SubscribeSync(subject); err != nil {
			return err
		}
		return violation(nc)
	}}
}

func projects(ctx context.Context, nc *nats.Conn) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return js.KeyValue(ctx, events.BucketProjects)
}

// kvGet reads a project's entry, sealed key included.
func kvGet(key string) action {
	return action{subject: "$JS.API.DIRECT.GET.KV_" + events.BucketProjects + ".", do: func(ctx context.Context, nc *nats.Conn) error {
		kv, err := projects(ctx, nc)
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, key)
		return err
	}}
}

// kvGetIn reads an entry of a bucket; the entry need not exist (a read of a
// missing one is a read the user was allowed).
func kvGetIn(bucket, key string) action {
	return action{subject: "$JS.API.", do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			return err
		}
		if _, err = kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	}}
}

// kvPut writes a project's entry without reading it first.
func kvPut(key string) action {
	return action{subject: "$KV." + events.BucketProjects + ".", do: func(ctx context.Context, nc *nats.Conn) error {
		kv, err := projects(ctx, nc)
		if err != nil {
			return err
		}
		_, err = kv.Put(ctx, key, []byte(`{}`))
		return err
	}}
}

// kvWatch watches every project, as a verifier does, until the initial
// values are in.
func kvWatch() action {
	return action{subject: "$JS.API.CONSUMER.CREATE.KV_" + events.BucketProjects, do: watch}
}

func watch(ctx context.Context, nc *nats.Conn) error {
	kv, err := projects(ctx, nc)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("watch: no initial values: %w", ctx.Err())
		}
	}
}

// consume creates or updates a durable consumer and fetches from it
// without acknowledging anything.
func consume(stream string, cfg jetstream.ConsumerConfig) action {
	return action{subject: "$JS.API.CONSUMER.CREATE." + stream + "." + cfg.Durable, do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
		if err != nil {
			return err
		}
		if _, err := cons.Info(ctx); err != nil {
			return err
		}
		res, err := cons.FetchNoWait(1)
		if err != nil {
			return err
		}
		for m := range res.Messages() {
			_ = m.Nak()
		}
		return res.Error()
	}}
}

// createConsumer creates a durable consumer with cfg, as bus.Ensure does
// when it is missing (with the same configuration an existing one is
// answered as created).
func createConsumer(stream string, cfg jetstream.ConsumerConfig) action {
	return action{subject: "$JS.API.CONSUMER.CREATE." + stream + "." + cfg.Durable, do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.CreateConsumer(ctx, stream, cfg)
		return err
	}}
}

// consumerInfo reads a durable consumer's state, as bus.Check and the
// decisions stream's readiness check do.
func consumerInfo(stream, durable string) action {
	return action{subject: "$JS.API.CONSUMER.INFO." + stream + "." + durable, do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.Consumer(ctx, stream, durable)
		return err
	}}
}

// fetch takes a message from an existing durable consumer (whose info the
// user may read), without creating it and without acknowledging anything.
func fetch(stream, durable string) action {
	return action{subject: "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable, do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		cons, err := js.Consumer(ctx, stream, durable)
		if err != nil {
			return err
		}
		// A refused pull gets no answer, only the violation, which ends ctx;
		// an allowed one ends with a message or its own short expiry.
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		res, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			return err
		}
		for m := range res.Messages() {
			_ = m.Nak()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fetch: %w", ctx.Err())
		}
		return nil
	}}
}

// purgeBelow purges a stream's messages below seq, as the auditor removes
// decisions it stored long ago (seq 1: nothing is removed).
func purgeBelow(stream string, seq uint64) action {
	return action{subject: "$JS.API.STREAM.PURGE." + stream, do: func(ctx context.Context, nc *nats.Conn) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		return s.Purge(ctx, jetstream.WithPurgeSequence(seq))
	}}
}

// followDecisions follows new decisions with an ephemeral consumer, as
// `hissuno audit tail` does, and deletes it.
func followDecisions() action {
	return action{subject: "$JS.API.CONSUMER.CREATE." + events.StreamDecisions + ".", do: follow}
}

func follow(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateConsumer(ctx, events.StreamDecisions, bus.FollowDecisions(jetstream.DeliverNewPolicy))
	if err != nil {
		return err
	}
	res, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return err
	}
	for range res.Messages() {
	}
	if err := res.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		return err
	}
	return js.DeleteConsumer(ctx, events.StreamDecisions, cons.CachedInfo().Name)
}

// ensureTopology creates or updates the streams and the bucket.
func ensureTopology() action {
	return action{subject: "$JS.API.STREAM.UPDATE.", do: ensure}
}

func ensure(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return bus.Ensure(ctx, js, bus.Topology{})
}

// checkTopology checks the streams and the bucket exist (readiness).
func checkTopology() action {
	return action{subject: "$JS.API.STREAM.INFO.", do: check}
}

func check(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return bus.Check(ctx, js)
}

package schemas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hissuno/widgetauth/events"
	"github.com/hissuno/widgetauth/internal/cli"
	"github.com/hissuno/widgetauth/internal/stack"
	"github.com/hissuno/widgetauth/internal/stack/stacktest"
	"github.com/hissuno/widgetauth/schemas"
)

// allNames is every schema the package must hold: one per event type.
var allNames = []string{
	schemas.AdminEvent,
	schemas.Attempt,
	schemas.Command,
	schemas.CommandResult,
	schemas.Decision,
	schemas.Heartbeat,
	schemas.Invalidation,
	schemas.SyncReply,
	schemas.SyncRequest,
	schemas.Throttled,
}

// notLive are the schemas TestLiveMessagesMatchSchemas may not see: an
// ingress publishes its counts of throttled requests once a minute is over,
// and the ingress's tests validate every one they publish.
var notLive = []string{schemas.Throttled}

func TestEverySchemaCompiles(t *testing.T) {
	t.Parallel()
	if got := schemas.Names(); !slices.Equal(got, allNames) {
		t.Fatalf("Names() = %v, want %v", got, allNames)
	}
	for _, name := range allNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := schemas.Compile(name); err != nil {
				t.Fatalf("compile: %v", err)
			}
			src, err := schemas.Source(name)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(src, &doc); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if got, want := doc["$schema"], "https://json-schema.org/draft/2020-12/schema"; got != want {
				t.Errorf("$schema = %v, want %s", got, want)
			}
			if got, want := doc["$id"], "https://hissuno.dev/schemas/"+name+".schema.json"; got != want || schemas.ID(name) != want {
				t.Errorf("$id = %v, ID() = %s, want %s", got, schemas.ID(name), want)
			}
			for _, key := range []string{"title", "description"} {
				if s, _ := doc[key].(string); s == "" {
					t.Errorf("no %s", key)
				}
			}
			checkObjects(t, name, doc)
		})
	}
	if _, err := schemas.Compile("nope"); err == nil {
		t.Error("Compile(nope) succeeded")
	}
}

// checkObjects checks every object schema of doc (the root and each of
// $defs): closed, and a description on every property.
func checkObjects(t *testing.T, where string, obj map[string]any) {
	t.Helper()
	if obj["type"] == "object" {
		if obj["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties is not false", where)
		}
		props, _ := obj["properties"].(map[string]any)
		if len(props) == 0 {
			t.Errorf("%s: no properties", where)
		}
		for p, v := range props {
			ps, _ := v.(map[string]any)
			if d, _ := ps["description"].(string); d == "" {
				t.Errorf("%s: property %s has no description", where, p)
			}
		}
	}
	defs, _ := obj["$defs"].(map[string]any)
	for name, d := range defs {
		if ds, ok := d.(map[string]any); ok {
			checkObjects(t, where+"#/$defs/"+name, ds)
		}
	}
}

// TestEnumsMatchEvents keeps the schemas' enums equal to the constants of
// package events.
func TestEnumsMatchEvents(t *testing.T) {
	t.Parallel()
	reasons := []string{""}
	for _, r := range events.Reasons {
		reasons = append(reasons, string(r))
	}
	var codes []string
	for _, c := range events.ErrorCodes {
		codes = append(codes, string(c))
	}
	tests := []struct {
		name   string
		schema string
		prop   string
		want   []string
	}{
		{"decision", schemas.Decision, "decision", []string{string(events.OutcomeAccept), string(events.OutcomeUnauthorized), string(events.OutcomeOriginBlocked)}},
		{"reason", schemas.Decision, "reason", reasons},
		{"session", schemas.Decision, "session", []string{"", string(events.SessionAuthenticated), string(events.SessionAnonymous)}},
		{"command kind", schemas.Command, "kind", strs(events.CommandKinds)},
		{"admin event kind", schemas.AdminEvent, "kind", strs(events.AdminEventKinds)},
		{"command result code", schemas.CommandResult, "code", codes},
		{"throttle reason", schemas.Throttled, "reason", strs(events.Throttles)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, err := schemas.Source(tt.schema)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(src, &doc); err != nil {
				t.Fatal(err)
			}
			if got := doc.Properties[tt.prop].Enum; !slices.Equal(got, tt.want) {
				t.Errorf("%s enum of %s = %q, want %q", tt.prop, tt.schema, got, tt.want)
			}
		})
	}
}

// strs is a list of names as strings.
func strs[T ~string](l []T) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = string(v)
	}
	return out
}

// TestReasonsBelongToTheirOutcome checks that the decision schema accepts
// each refusal reason exactly with the outcome events.Reason.Outcome gives.
func TestReasonsBelongToTheirOutcome(t *testing.T) {
	t.Parallel()
	for _, r := range events.Reasons {
		t.Run(string(r), func(t *testing.T) {
			t.Parallel()
			fingerprint := "0123456789abcdef"
			if r == events.ReasonTokenRequired {
				fingerprint = ""
			}
			set := map[string]any{"reason": string(r), "tokenFingerprint": fingerprint}
			if r == events.ReasonTokenExpired || r == events.ReasonTokenNotYetValid {
				set["skewSeconds"], set["leewaySeconds"] = 75, 60
			}
			for _, o := range []events.Outcome{events.OutcomeUnauthorized, events.OutcomeOriginBlocked} {
				set["decision"] = string(o)
				err := schemas.Validate(schemas.Decision, []byte(edit(t, decisionRefused, set)))
				if o == r.Outcome() && err != nil {
					t.Errorf("%s with %s refused: %v", r, o, err)
				}
				if o != r.Outcome() && err == nil {
					t.Errorf("%s with %s accepted", r, o)
				}
			}
		})
	}
}

// Hand-written documents the tables start from.
const (
	attemptMinimal = `{"schemaVersion":1,"attemptId":"att_19c88df7a80EdgeGw7f3aEdgeGw7f3a","projectId":"proj_abc","receivedAt":"2026-03-01T10:00:00Z","deadline":"2026-03-01T10:00:03+01:00","ingress":"edge.gw-1"}`
	attemptFull    = `{"schemaVersion":1,"attemptId":"att_19c88df7afbX9YzAbCdEfGhIjKlMnOpQr","projectId":"proj_abc","origin":"https://app.example.com",
		"widgetToken":"eyJhbGciOiJIUzI1NiJ9.e30.sig","userId":"u-1","userMetadata":{"plan":"pro"},
		"receivedAt":"2026-03-01T10:00:00.123Z","deadline":"2026-03-01T10:00:03.123456789Z",
		"replyTo":"hissuno.reply.ingress.ingress-h-1a2b3c.att_19c88df7afbX9YzAbCdEfGhIjKlMnOpQr","ingress":"ingress.ingress-h-1a2b3c","clientIp":"203.0.113.9","userAgent":"Mozilla/5.0"}`

	decisionAuthenticated = `{"schemaVersion":1,"decisionId":"dec_att_X9Yz","attemptId":"att_X9Yz","time":"2026-03-01T10:00:00.2Z",
		"receivedAt":"2026-03-01T10:00:00.1Z","projectId":"proj_abc","decision":"accept","reason":"","session":"authenticated",
		"userId":"u-1","userVerified":true,"userMetadata":{"plan":"pro"},"claimedUserId":"u-2","origin":"https://app.example.com",
		"tokenFingerprint":"0123456789abcdef","keyVersion":2,"verifier":"verifier-h-9f8e7d","ingress":"ingress-h-1a2b3c",
		"latencyMicros":1200,"clientIp":"203.0.113.9","userAgent":"Mozilla/5.0"}`
	decisionAnonymous = `{"schemaVersion":1,"decisionId":"dec_edge-1","attemptId":"edge-1","time":"2026-03-01T10:00:00Z",
		"receivedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","decision":"accept","reason":"","session":"anonymous",
		"userId":"visitor","userVerified":false,"claimedUserId":"","origin":"","tokenFingerprint":"","keyVersion":0,
		"verifier":"v1","latencyMicros":0}`
	decisionRefused = `{"schemaVersion":1,"decisionId":"dec_att_1","attemptId":"att_1","time":"2026-03-01T10:00:00Z",
		"receivedAt":"2026-03-01T10:00:00Z","projectId":"nope","decision":"unauthorized","reason":"unknown_project",
		"message":"no project has this projectId","session":"","userId":"","userVerified":false,"claimedUserId":"",
		"origin":"https://app.example.com","tokenFingerprint":"","keyVersion":0,"verifier":"v1","latencyMicros":15}`
	decisionExpired = `{"schemaVersion":1,"decisionId":"dec_att_2","attemptId":"att_2","time":"2026-03-01T10:00:00Z",
		"receivedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","decision":"unauthorized","reason":"token_expired",
		"message":"the token expired","session":"","userId":"","userVerified":false,"claimedUserId":"","origin":"",
		"tokenFingerprint":"fedcba9876543210","keyVersion":0,"skewSeconds":3600,"leewaySeconds":60,"verifier":"v1","latencyMicros":15}`
	decisionOriginBlocked = `{"schemaVersion":1,"decisionId":"dec_att_3","attemptId":"att_3","time":"2026-03-01T10:00:00Z",
		"receivedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","decision":"origin_blocked","reason":"origin_missing",
		"message":"the request has no Origin","session":"","userId":"","userVerified":false,"claimedUserId":"","origin":"",
		"tokenFingerprint":"","keyVersion":0,"verifier":"v1","latencyMicros":15}`

	commandCreate = `{"schemaVersion":1,"commandId":"cmd_AbC123","kind":"project.create","actor":"ada@laptop",
		"issuedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","name":"Shop","requireToken":false,
		"replyKey":"XB7CMVJGNYNLIRJLUUSJH5O6BAZZM364Q6S5K3S3ZC3CHPZPYCTCDMBO",
		"origins":["https://app.example.com","https://*.example.org","http://localhost:3000","https://[::1]:8443"]}`
	commandUpdate = `{"schemaVersion":1,"commandId":"cmd_AbC124","kind":"project.update","actor":"ada@laptop",
		"issuedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","requireToken":true,"clearOrigins":true}`
	commandRotate = `{"schemaVersion":1,"commandId":"cmd_AbC125","kind":"project.rotate","actor":"ada@laptop",
		"issuedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","graceSeconds":600,
		"replyKey":"XB7CMVJGNYNLIRJLUUSJH5O6BAZZM364Q6S5K3S3ZC3CHPZPYCTCDMBO"}`
	commandRevoke = `{"schemaVersion":1,"commandId":"cmd_AbC126","kind":"project.revoke_user","actor":"",
		"issuedAt":"2026-03-01T10:00:00Z","projectId":"proj_abc","userId":"u-1"}`

	resultCreated = `{"commandId":"cmd_AbC123","sealedSecretKey":"eGtleQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		"sealedBy":"XB4PXRFMLFVHLBCM4TRWH66NIYPEZJYHOYKVCPIPVA7LH3K2MAFFP2H3",
		"project":{"projectId":"proj_abc","name":"Shop","requireToken":false,"origins":[],"keyVersion":2,
			"keys":[{"version":2,"fingerprint":"0123456789abcdef","createdAt":"2026-03-01T10:00:00Z"},
				{"version":1,"fingerprint":"fedcba9876543210","createdAt":"2026-02-01T10:00:00Z","validUntil":"2026-03-01T10:10:00Z"}],
			"revokedUsers":0,"createdAt":"2026-02-01T10:00:00Z","updatedAt":"2026-03-01T10:00:00Z","revision":7},
		"confirmed":["verifier-a","verifier-b"],"unconfirmed":["verifier-c"]}`
	resultFailed = `{"commandId":"","error":"unsupported command: no commandId or unknown schemaVersion","code":"unsupported"}`

	adminCreated = `{"schemaVersion":1,"eventId":"adm_cmd_AbC123","commandId":"cmd_AbC123","kind":"project.created","actor":"nats:admin",
		"time":"2026-03-01T10:00:00Z","projectId":"proj_abc","name":"Shop","requireToken":false,"origins":["https://app.example.com"],
		"keyVersion":1,"keyFingerprint":"0123456789abcdef","revision":1}`
	adminRotated = `{"schemaVersion":1,"eventId":"adm_cmd_AbC125","commandId":"cmd_AbC125","kind":"key.rotated","actor":"nats:admin",
		"time":"2026-03-01T10:00:00Z","projectId":"proj_abc","keyVersion":3,"previousKeyVersion":2,"keyFingerprint":"0123456789abcdef",
		"graceSeconds":600,"graceUntil":"2026-03-01T10:10:00Z","revision":9}`
	adminRevoked = `{"schemaVersion":1,"eventId":"adm_cmd_AbC126","commandId":"cmd_AbC126","kind":"user.revoked","actor":"nats:admin",
		"time":"2026-03-01T10:00:00Z","projectId":"proj_abc","keyVersion":3,"userId":"u-1","revokedBefore":"2026-03-01T10:00:00Z","revision":10}`

	adminSignedIn = `{"schemaVersion":1,"eventId":"adm_evt_AbC127","kind":"account.signed_in","actor":"console:ada@example.com",
		"account":"ada@example.com","clientIp":"203.0.113.9","userAgent":"Mozilla/5.0","time":"2026-03-01T10:00:00Z"}`

	invalidation = `{"schemaVersion":1,"projectId":"proj_abc","revision":9,"keyVersion":3}`
	syncRequest  = `{"projectId":"proj_abc","revision":9}`
	syncReply    = `{"verifier":"verifier-h-9f8e7d","revision":9,"ok":true}`
	heartbeat    = `{"schemaVersion":1,"verifier":"verifier-h-9f8e7d","revision":9,"time":"2026-11-25T10:00:00.123Z"}`

	throttled = `{"schemaVersion":1,"id":"thr_AbC_0","ingress":"ingress.ingress-h-1a2b3c","minute":"2026-11-25T10:00:00Z",
		"projectId":"unknown","clientIp":"203.0.113.9","reason":"unseen_project_rate","count":412}`
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		schema string
		doc    string
		valid  bool
	}{
		// attempt
		{"attempt: what a third-party ingress must send", schemas.Attempt, attemptMinimal, true},
		{"attempt: everything Hissuno's ingress sends", schemas.Attempt, attemptFull, true},
		{"attempt: no deadline", schemas.Attempt, edit(t, attemptMinimal, nil, "deadline"), false},
		{"attempt: no attemptId", schemas.Attempt, edit(t, attemptMinimal, nil, "attemptId"), false},
		{"attempt: empty projectId", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"projectId": ""}), false},
		{"attempt: schemaVersion 2", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"schemaVersion": 2}), false},
		{"attempt: schemaVersion as a string", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"schemaVersion": "1"}), false},
		{"attempt: receivedAt not a date-time", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"receivedAt": "yesterday"}), false},
		{"attempt: receivedAt as unix seconds", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"receivedAt": 1772359200}), false},
		{"attempt: userMetadata value not a string", schemas.Attempt, edit(t, attemptFull, map[string]any{"userMetadata": map[string]any{"age": 42}}), false},
		{"attempt: replyTo with a wildcard", schemas.Attempt, edit(t, attemptFull, map[string]any{"replyTo": "hissuno.reply.*"}), false},
		{"attempt: replyTo another subject", schemas.Attempt, edit(t, attemptFull, map[string]any{"replyTo": "_INBOX.abc"}), false},
		{"attempt: no ingress", schemas.Attempt, edit(t, attemptMinimal, nil, "ingress"), false},
		{"attempt: ingress of one token", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"ingress": "gw-1"}), false},
		{"attempt: attemptId without its time", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"attemptId": "att_X9YzAbCdEfGhIjKlMnOpQr"}), false},
		{"attempt: extra property", schemas.Attempt, edit(t, attemptMinimal, map[string]any{"tokenFingerprint": "0123456789abcdef"}), false},
		{"attempt: trailing data", schemas.Attempt, attemptMinimal + `{}`, false},
		{"attempt: not JSON", schemas.Attempt, `{"schemaVersion":1,`, false},

		// decision
		{"decision: accept, authenticated", schemas.Decision, decisionAuthenticated, true},
		{"decision: accept, anonymous", schemas.Decision, decisionAnonymous, true},
		{"decision: 401 unknown_project", schemas.Decision, decisionRefused, true},
		{"decision: 401 token_expired with skew", schemas.Decision, decisionExpired, true},
		{"decision: 403 origin_missing", schemas.Decision, decisionOriginBlocked, true},
		{"decision: unknown decision value", schemas.Decision, edit(t, decisionRefused, map[string]any{"decision": "maybe"}), false},
		{"decision: unknown reason", schemas.Decision, edit(t, decisionRefused, map[string]any{"reason": "token_stolen"}), false},
		{"decision: unknown session", schemas.Decision, edit(t, decisionAnonymous, map[string]any{"session": "guest"}), false},
		{"decision: no reason field on an accept", schemas.Decision, edit(t, decisionAnonymous, nil, "reason"), false},
		{"decision: no session field on a refusal", schemas.Decision, edit(t, decisionRefused, nil, "session"), false},
		{"decision: no verifier", schemas.Decision, edit(t, decisionRefused, nil, "verifier"), false},
		{"decision: keyVersion as a string", schemas.Decision, edit(t, decisionAuthenticated, map[string]any{"keyVersion": "2"}), false},
		{"decision: userVerified as a string", schemas.Decision, edit(t, decisionAuthenticated, map[string]any{"userVerified": "true"}), false},
		{"decision: extra property", schemas.Decision, edit(t, decisionRefused, map[string]any{"widgetToken": "eyJ"}), false},
		{"decision: decisionId not from the attempt", schemas.Decision, edit(t, decisionRefused, map[string]any{"decisionId": "att_1"}), false},
		{"decision: fingerprint not hex", schemas.Decision, edit(t, decisionAuthenticated, map[string]any{"tokenFingerprint": "0123456789ABCDEF"}), false},
		{"decision: accept with a reason", schemas.Decision, edit(t, decisionAnonymous, map[string]any{"reason": "token_required"}), false},
		{"decision: accept without a session", schemas.Decision, edit(t, decisionAnonymous, map[string]any{"session": ""}), false},
		{"decision: accept with a message", schemas.Decision, edit(t, decisionAnonymous, map[string]any{"message": "ok"}), false},
		{"decision: refusal without a reason", schemas.Decision, edit(t, decisionRefused, map[string]any{"reason": ""}), false},
		{"decision: refusal without a message", schemas.Decision, edit(t, decisionRefused, nil, "message"), false},
		{"decision: refusal with a session", schemas.Decision, edit(t, decisionRefused, map[string]any{"session": "anonymous"}), false},
		{"decision: refusal with a user", schemas.Decision, edit(t, decisionOriginBlocked, map[string]any{"userId": "u-1"}), false},
		{"decision: origin reason on a 401", schemas.Decision, edit(t, decisionOriginBlocked, map[string]any{"decision": "unauthorized"}), false},
		{"decision: token reason on a 403", schemas.Decision, edit(t, decisionExpired, map[string]any{"decision": "origin_blocked"}), false},
		{"decision: authenticated but not verified", schemas.Decision, edit(t, decisionAuthenticated, map[string]any{"userVerified": false}), false},
		{"decision: authenticated without a key version", schemas.Decision, edit(t, decisionAuthenticated, map[string]any{"keyVersion": 0}), false},
		{"decision: anonymous with a token", schemas.Decision, edit(t, decisionAnonymous, map[string]any{"tokenFingerprint": "0123456789abcdef"}), false},
		{"decision: token_expired without leeway", schemas.Decision, edit(t, decisionExpired, nil, "leewaySeconds"), false},
		{"decision: skew on another reason", schemas.Decision, edit(t, decisionRefused, map[string]any{"skewSeconds": 5}), false},
		{"decision: token refusal without fingerprint", schemas.Decision, edit(t, decisionExpired, map[string]any{"tokenFingerprint": ""}), false},

		// command
		{"command: create", schemas.Command, commandCreate, true},
		{"command: update", schemas.Command, commandUpdate, true},
		{"command: rotate", schemas.Command, commandRotate, true},
		{"command: rotate without grace", schemas.Command, edit(t, commandRotate, nil, "graceSeconds"), true},
		{"command: revoke_user", schemas.Command, commandRevoke, true},
		{"command: no issuedAt", schemas.Command, edit(t, commandCreate, nil, "issuedAt"), false},
		{"command: no actor", schemas.Command, edit(t, commandRotate, nil, "actor"), false},
		{"command: unknown kind", schemas.Command, edit(t, commandRotate, map[string]any{"kind": "project.delete"}), false},
		{"command: graceSeconds as a duration string", schemas.Command, edit(t, commandRotate, map[string]any{"graceSeconds": "10m"}), false},
		{"command: negative grace", schemas.Command, edit(t, commandRotate, map[string]any{"graceSeconds": -1}), false},
		{"command: commandId without cmd_", schemas.Command, edit(t, commandRotate, map[string]any{"commandId": "42"}), false},
		{"command: projectId with a dot", schemas.Command, edit(t, commandRotate, map[string]any{"projectId": "proj.abc"}), false},
		{"command: extra property", schemas.Command, edit(t, commandRotate, map[string]any{"secretKey": "sk_live_x"}), false},
		{"command: create without a name", schemas.Command, edit(t, commandCreate, nil, "name"), false},
		{"command: create without a replyKey", schemas.Command, edit(t, commandCreate, nil, "replyKey"), false},
		{"command: rotate without a replyKey", schemas.Command, edit(t, commandRotate, nil, "replyKey"), false},
		{"command: replyKey not a curve key", schemas.Command, edit(t, commandRotate, map[string]any{"replyKey": "UAB7CMVJGNYNLIRJLUUSJH5O6BAZZM364Q6S5K3S3ZC3CHPZPYCTCDMB"}), false},
		{"command: create with a blank name", schemas.Command, edit(t, commandCreate, map[string]any{"name": "   "}), false},
		{"command: origin not canonical", schemas.Command, edit(t, commandCreate, map[string]any{"origins": []string{"App.Example.com"}}), false},
		{"command: duplicate origins", schemas.Command, edit(t, commandCreate, map[string]any{"origins": []string{"https://a.example", "https://a.example"}}), false},
		{"command: update with nothing to change", schemas.Command, edit(t, commandUpdate, nil, "requireToken", "clearOrigins"), false},
		{"command: update clearing and setting origins", schemas.Command, edit(t, commandUpdate, map[string]any{"origins": []string{"https://a.example"}}), false},
		{"command: rotate with a name", schemas.Command, edit(t, commandRotate, map[string]any{"name": "Shop"}), false},
		{"command: revoke_user without a user", schemas.Command, edit(t, commandRevoke, nil, "userId"), false},

		// command result
		{"command-result: created or rotated", schemas.CommandResult, resultCreated, true},
		{"command-result: refused", schemas.CommandResult, resultFailed, true},
		{"command-result: already applied", schemas.CommandResult, edit(t, resultCreated, map[string]any{"alreadyApplied": true}, "sealedSecretKey", "sealedBy"), true},
		{"command-result: no commandId", schemas.CommandResult, edit(t, resultFailed, nil, "commandId"), false},
		{"command-result: error without a code", schemas.CommandResult, edit(t, resultFailed, nil, "code"), false},
		{"command-result: unknown code", schemas.CommandResult, edit(t, resultFailed, map[string]any{"code": "oops"}), false},
		{"command-result: a code on success", schemas.CommandResult, edit(t, resultCreated, map[string]any{"code": "invalid"}), false},
		{"command-result: neither error nor project", schemas.CommandResult, `{"commandId":"cmd_AbC123"}`, false},
		{"command-result: error with a project", schemas.CommandResult, edit(t, resultCreated, map[string]any{"error": "boom"}), false},
		{"command-result: already applied with a key", schemas.CommandResult, edit(t, resultCreated, map[string]any{"alreadyApplied": true}), false},
		{"command-result: a secret key in clear", schemas.CommandResult, edit(t, resultCreated, map[string]any{"secretKey": "sk_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}), false},
		{"command-result: sealed key without its sender", schemas.CommandResult, edit(t, resultCreated, nil, "sealedBy"), false},
		{"command-result: sealed key not base64", schemas.CommandResult, edit(t, resultCreated, map[string]any{"sealedSecretKey": "sk_live_x"}), false},
		{"command-result: confirmed not a list", schemas.CommandResult, edit(t, resultCreated, map[string]any{"confirmed": "verifier-a"}), false},
		{"command-result: project without keys", schemas.CommandResult, edit(t, resultCreated, nil, "project.keys"), false},
		{"command-result: project with no key", schemas.CommandResult, edit(t, resultCreated, map[string]any{"project.keys": []any{}}), false},
		{"command-result: origins null", schemas.CommandResult, edit(t, resultCreated, map[string]any{"project.origins": nil}), false},
		{"command-result: revision as a string", schemas.CommandResult, edit(t, resultCreated, map[string]any{"project.revision": "7"}), false},
		{"command-result: project leaks a sealed key", schemas.CommandResult, edit(t, resultCreated, map[string]any{"project.sealed": "AAAA"}), false},
		{"command-result: extra property", schemas.CommandResult, edit(t, resultFailed, map[string]any{"retry": true}), false},

		// admin event
		{"admin-event: project.created", schemas.AdminEvent, adminCreated, true},
		{"admin-event: project.updated, origins cleared", schemas.AdminEvent, edit(t, adminCreated, map[string]any{"kind": "project.updated"}, "origins", "keyFingerprint"), true},
		{"admin-event: key.rotated", schemas.AdminEvent, adminRotated, true},
		{"admin-event: key.rotated without grace", schemas.AdminEvent, edit(t, adminRotated, nil, "graceSeconds", "graceUntil"), true},
		{"admin-event: user.revoked", schemas.AdminEvent, adminRevoked, true},
		{"admin-event: no revision", schemas.AdminEvent, edit(t, adminCreated, nil, "revision"), false},
		{"admin-event: unknown kind", schemas.AdminEvent, edit(t, adminRevoked, map[string]any{"kind": "project.deleted"}), false},
		{"admin-event: requireToken as a string", schemas.AdminEvent, edit(t, adminCreated, map[string]any{"requireToken": "false"}), false},
		{"admin-event: eventId not from the command", schemas.AdminEvent, edit(t, adminCreated, map[string]any{"eventId": "evt_1"}), false},
		{"admin-event: an actor as a caller claimed it", schemas.AdminEvent, edit(t, adminRotated, map[string]any{"actor": "ada@laptop"}), false},
		{"admin-event: a console account's sign-in", schemas.AdminEvent, adminSignedIn, true},
		{"admin-event: a failed sign-in, by nobody known", schemas.AdminEvent, edit(t, adminSignedIn, map[string]any{"kind": "account.sign_in_failed", "actor": "anonymous"}), true},
		{"admin-event: a console event without its account", schemas.AdminEvent, edit(t, adminSignedIn, nil, "account"), false},
		{"admin-event: a console event with a command id", schemas.AdminEvent, edit(t, adminSignedIn, map[string]any{"commandId": "cmd_AbC123"}), false},
		{"admin-event: a project event without its revision", schemas.AdminEvent, edit(t, adminRotated, nil, "revision"), false},
		{"admin-event: a revocation lifted", schemas.AdminEvent, edit(t, adminRevoked, map[string]any{"kind": "user.unrevoked"}, "revokedBefore"), true},
		{"command: unrevoke_user", schemas.Command, edit(t, commandRevoke, map[string]any{"kind": "project.unrevoke_user", "reason": "mistaken"}), true},
		{"command: unrevoke_user without a user", schemas.Command, edit(t, commandRevoke, map[string]any{"kind": "project.unrevoke_user"}, "userId"), false},
		{"admin-event: extra property", schemas.AdminEvent, edit(t, adminRotated, map[string]any{"secretKey": "sk_live_x"}), false},
		{"admin-event: created without fingerprint", schemas.AdminEvent, edit(t, adminCreated, nil, "keyFingerprint"), false},
		{"admin-event: rotated without previous version", schemas.AdminEvent, edit(t, adminRotated, nil, "previousKeyVersion"), false},
		{"admin-event: graceUntil without graceSeconds", schemas.AdminEvent, edit(t, adminRotated, nil, "graceSeconds"), false},
		{"admin-event: revoked without the user", schemas.AdminEvent, edit(t, adminRevoked, nil, "userId"), false},
		{"admin-event: revoked with settings", schemas.AdminEvent, edit(t, adminRevoked, map[string]any{"name": "Shop"}), false},

		// invalidation
		{"invalidation", schemas.Invalidation, invalidation, true},
		{"invalidation: no revision", schemas.Invalidation, edit(t, invalidation, nil, "revision"), false},
		{"invalidation: no schemaVersion", schemas.Invalidation, edit(t, invalidation, nil, "schemaVersion"), false},
		{"invalidation: revision as a string", schemas.Invalidation, edit(t, invalidation, map[string]any{"revision": "9"}), false},
		{"invalidation: revision 0", schemas.Invalidation, edit(t, invalidation, map[string]any{"revision": 0}), false},
		{"invalidation: extra property", schemas.Invalidation, edit(t, invalidation, map[string]any{"keys": []string{}}), false},

		// sync request and reply
		{"sync-request", schemas.SyncRequest, syncRequest, true},
		{"sync-request: no projectId", schemas.SyncRequest, edit(t, syncRequest, nil, "projectId"), false},
		{"sync-request: revision fractional", schemas.SyncRequest, edit(t, syncRequest, map[string]any{"revision": 9.5}), false},
		{"sync-request: extra property", schemas.SyncRequest, edit(t, syncRequest, map[string]any{"schemaVersion": 1}), false},
		{"heartbeat", schemas.Heartbeat, heartbeat, true},
		{"heartbeat: leaving", schemas.Heartbeat, edit(t, heartbeat, map[string]any{"leaving": true}), true},
		{"heartbeat: no verifier", schemas.Heartbeat, edit(t, heartbeat, nil, "verifier"), false},
		{"heartbeat: verifier with a dot", schemas.Heartbeat, edit(t, heartbeat, map[string]any{"verifier": "a.b"}), false},
		{"heartbeat: time not a date", schemas.Heartbeat, edit(t, heartbeat, map[string]any{"time": "yesterday"}), false},
		{"heartbeat: extra property", schemas.Heartbeat, edit(t, heartbeat, map[string]any{"projects": 3}), false},
		{"throttled", schemas.Throttled, throttled, true},
		{"throttled: a project", schemas.Throttled, edit(t, throttled, map[string]any{"projectId": "proj_abc", "reason": "project_rate"}), true},
		{"throttled: overflow", schemas.Throttled, edit(t, throttled, map[string]any{"projectId": "", "clientIp": "", "overflow": true}), true},
		{"throttled: an IPv6 /64", schemas.Throttled, edit(t, throttled, map[string]any{"clientIp": "2001:db8:1:2::/64", "reason": "ip_rate"}), true},
		{"throttled: no count", schemas.Throttled, edit(t, throttled, nil, "count"), false},
		{"throttled: count 0", schemas.Throttled, edit(t, throttled, map[string]any{"count": 0}), false},
		{"throttled: unknown reason", schemas.Throttled, edit(t, throttled, map[string]any{"reason": "token_expired"}), false},
		{"throttled: ingress of one token", schemas.Throttled, edit(t, throttled, map[string]any{"ingress": "ingress"}), false},
		{"throttled: minute not a date", schemas.Throttled, edit(t, throttled, map[string]any{"minute": "10:00"}), false},
		{"throttled: extra property", schemas.Throttled, edit(t, throttled, map[string]any{"userId": "u-1"}), false},
		{"sync-reply", schemas.SyncReply, syncReply, true},
		{"sync-reply: project gone", schemas.SyncReply, edit(t, syncReply, map[string]any{"revision": 0, "ok": false}), true},
		{"sync-reply: no ok", schemas.SyncReply, edit(t, syncReply, nil, "ok"), false},
		{"sync-reply: ok as a string", schemas.SyncReply, edit(t, syncReply, map[string]any{"ok": "yes"}), false},
		{"sync-reply: extra property", schemas.SyncReply, edit(t, syncReply, map[string]any{"projectId": "proj_abc"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := schemas.Validate(tt.schema, []byte(tt.doc))
			switch {
			case tt.valid && err != nil:
				t.Errorf("valid document refused: %v\n%s", err, tt.doc)
			case !tt.valid && err == nil:
				t.Errorf("invalid document accepted:\n%s", tt.doc)
			}
		})
	}
	t.Run("errors name the schema and wrap a ValidationError", func(t *testing.T) {
		t.Parallel()
		err := schemas.Validate(schemas.Decision, []byte(edit(t, decisionRefused, map[string]any{"decision": "maybe"})))
		var verr *jsonschema.ValidationError
		if !errors.As(err, &verr) || !strings.Contains(err.Error(), schemas.Decision) {
			t.Errorf("error %v: want a *jsonschema.ValidationError naming %q", err, schemas.Decision)
		}
		if err := schemas.Validate("nope", []byte(`{}`)); err == nil {
			t.Error("Validate against an unknown schema succeeded")
		}
	})
}

// edit returns the JSON document doc with the fields of set replaced or
// added and the fields of del removed. A field may be a dotted path into
// nested objects ("project.keys").
func edit(t *testing.T, doc string, set map[string]any, del ...string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("edit: base document is not JSON: %v", err)
	}
	parent := func(path string) (map[string]any, string) {
		keys := strings.Split(path, ".")
		obj := m
		for _, k := range keys[:len(keys)-1] {
			next, ok := obj[k].(map[string]any)
			if !ok {
				t.Fatalf("edit: %s: %s is not an object", path, k)
			}
			obj = next
		}
		return obj, keys[len(keys)-1]
	}
	for path, v := range set {
		obj, k := parent(path)
		obj[k] = v
	}
	for _, path := range del {
		obj, k := parent(path)
		if _, ok := obj[k]; !ok {
			t.Fatalf("edit: no field %s to delete", path)
		}
		delete(obj, k)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("edit: %v", err)
	}
	return string(b)
}

// TestLiveMessagesMatchSchemas runs a whole stack, drives it as users do
// (the CLI for admin commands, HTTP for widgets) and validates every
// message that crossed NATS against the schema of its subject.
func TestLiveMessagesMatchSchemas(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stack.Config{})
	rec := record(t, stacktest.ConnectAs(t, st, stacktest.Superuser), "hissuno.>", events.InboxPrefix("rotator")+".>", events.AdminInboxPrefix+".>")
	u := &user{t: t, natsArgs: stacktest.NATSArgs(t, st, events.SourceAdmin), connectURL: "http://" + st.HTTPAddr + "/v1/widget/connect"}

	// An admin creates a project limited to one origin.
	created := u.keyAnswer("project", "create", "--name", "Schema test", "--origin", "https://app.example.com", "--json")
	id, key1 := created.ProjectID, created.SecretKey
	// ... then widens it to a wildcard, still anonymous-friendly.
	u.hissuno("project", "update", id, "--origin", "https://app.example.com", "--origin", "*.example.org", "--require-token=false")

	now := time.Now()
	good := mint(t, key1, jwt.MapClaims{"userId": "user-1", "userMetadata": map[string]string{"plan": "pro"}, "iat": now.Add(-10 * time.Second).Unix(), "exp": now.Add(time.Hour).Unix()})
	u.connect(connectCase{name: "accept, authenticated, another user claimed", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": good, "userId": "someone-else"}, status: 200, decision: "accept", session: "authenticated"})
	u.connect(connectCase{name: "accept, authenticated, Bearer header", origin: "https://a.b.example.org", bearer: good,
		body: map[string]any{"projectId": id}, status: 200, decision: "accept", session: "authenticated"})
	u.connect(connectCase{name: "accept, anonymous", origin: "https://shop.example.org",
		body: map[string]any{"projectId": id, "userId": "visitor-1", "userMetadata": map[string]string{"lang": "fr"}}, status: 200, decision: "accept", session: "anonymous"})
	u.connect(connectCase{name: "401 unknown project", origin: "https://app.example.com",
		body: map[string]any{"projectId": "proj_doesnotexist"}, status: 401, decision: "unauthorized", reason: "unknown_project"})
	expired := mint(t, key1, jwt.MapClaims{"userId": "user-1", "iat": now.Add(-3 * time.Hour).Unix(), "exp": now.Add(-2 * time.Hour).Unix()})
	u.connect(connectCase{name: "401 token expired", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": expired}, status: 401, decision: "unauthorized", reason: "token_expired"})
	u.connect(connectCase{name: "401 malformed token", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": "not-a-jwt"}, status: 401, decision: "unauthorized", reason: "token_malformed"})
	u.connect(connectCase{name: "403 origin not allowed", origin: "https://evil.example.net",
		body: map[string]any{"projectId": id, "widgetToken": good}, status: 403, decision: "origin_blocked", reason: "origin_not_allowed"})
	u.connect(connectCase{name: "403 origin missing",
		body: map[string]any{"projectId": id}, status: 403, decision: "origin_blocked", reason: "origin_missing"})

	// The admin rotates the key at once: tokens of the old key stop working.
	key2 := u.keyAnswer("project", "rotate", id, "--json").SecretKey
	u.connect(connectCase{name: "401 old key after rotation", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": good}, status: 401, decision: "unauthorized", reason: "token_bad_signature"})
	withKey2 := mint(t, key2, jwt.MapClaims{"userId": "user-2", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	u.connect(connectCase{name: "accept with the new key", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": withKey2}, status: 200, decision: "accept", session: "authenticated"})

	// ... then with a grace period: the previous key keeps working.
	key3 := u.keyAnswer("project", "rotate", id, "--grace", "10m", "--json").SecretKey
	u.connect(connectCase{name: "accept with the previous key in grace", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": withKey2}, status: 200, decision: "accept", session: "authenticated"})

	// The admin revokes user-1: its tokens issued before now are refused.
	revoked := mint(t, key3, jwt.MapClaims{"userId": "user-1", "iat": time.Now().Add(-30 * time.Second).Unix(), "exp": now.Add(time.Hour).Unix()})
	u.hissuno("project", "revoke-user", id, "--user", "user-1")
	u.connect(connectCase{name: "401 revoked user", origin: "https://app.example.com",
		body: map[string]any{"projectId": id, "widgetToken": revoked}, status: 401, decision: "unauthorized", reason: "token_revoked"})

	// The admin requires a token and opens every origin.
	u.hissuno("project", "update", id, "--require-token=true", "--clear-origins", "--json")
	u.connect(connectCase{name: "401 token required", origin: "https://anywhere.example.com",
		body: map[string]any{"projectId": id, "userId": "visitor-2"}, status: 401, decision: "unauthorized", reason: "token_required"})

	// A command the rotator refuses.
	u.hissunoFails("project", "rotate", "proj_doesnotexist")

	// Every message reaches the recorder; the CLI and the widgets got their
	// answers, so everything they depend on was published already.
	stacktest.Eventually(t, 10*time.Second, "every message recorded", func() error {
		c := classify(rec.snapshot())
		var off []string
		equal := func(key string, want int) {
			if got := c.count[key]; got != want {
				off = append(off, fmt.Sprintf("%d %s, want %d", got, key, want))
			}
		}
		equal(schemas.Decision+"@"+events.SubjectDecisions, u.connects)
		equal(schemas.Decision+"@reply", u.connects)
		equal(schemas.Attempt, u.connects)
		equal(schemas.Command, u.commands)
		equal(schemas.CommandResult, u.commands)
		equal(schemas.AdminEvent, u.commands-1)
		equal(schemas.Invalidation, u.commands-1)
		if got := c.count[schemas.SyncRequest]; got < u.commands-1 {
			off = append(off, fmt.Sprintf("%d %s, want at least %d", got, schemas.SyncRequest, u.commands-1))
		}
		equal(schemas.SyncReply, c.count[schemas.SyncRequest])
		if len(off) > 0 {
			return fmt.Errorf("recorded %s", strings.Join(off, "; "))
		}
		return nil
	})

	// Heartbeats go out every second: wait for one.
	stacktest.Eventually(t, 5*time.Second, "a verifier heartbeat recorded", func() error {
		msgs := rec.snapshot()
		if classify(msgs).count[schemas.Heartbeat] == 0 {
			return fmt.Errorf("none of the %d messages recorded is a %s", len(msgs), schemas.Heartbeat)
		}
		return nil
	})
	c := classify(rec.snapshot())
	for _, m := range c.unexpected {
		t.Errorf("message on a subject no schema covers: %s %s", m.subject, m.data)
	}
	for _, name := range allNames {
		if len(c.byName[name]) == 0 && !slices.Contains(notLive, name) {
			t.Errorf("no %s message seen: the test would pass vacuously", name)
		}
	}
	for _, variant := range []string{
		"decision accept authenticated", "decision accept anonymous", "decision unauthorized", "decision origin_blocked",
		"command project.create", "command project.update", "command project.rotate", "command project.revoke_user",
		"admin-event project.created", "admin-event project.updated", "admin-event key.rotated", "admin-event user.revoked",
		"command-result ok", "command-result error", "command-result sealedSecretKey",
	} {
		if !c.variants[variant] {
			t.Errorf("no %s seen", variant)
		}
	}
	validated := 0
	for _, name := range allNames {
		for _, m := range c.byName[name] {
			validated++
			if err := schemas.Validate(name, m.data); err != nil {
				t.Errorf("%s message on %s does not match %s.schema.json:\n%v\nmessage: %s", name, m.subject, name, err, redactKeys(m.data))
			}
		}
	}
	t.Logf("validated %d messages: %v", validated, c.count)
}

// message is one recorded NATS message.
type message struct {
	via     string // the subscription that got it
	subject string
	reply   string
	header  nats.Header
	data    []byte
}

// recorder keeps every message its subscriptions get.
type recorder struct {
	mu   sync.Mutex
	msgs []message
}

// record subscribes nc to subjects and records what arrives until the test
// ends.
func record(t *testing.T, nc *nats.Conn, subjects ...string) *recorder {
	t.Helper()
	r := &recorder{}
	for _, subj := range subjects {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.msgs = append(r.msgs, message{via: subj, subject: m.Subject, reply: m.Reply, header: m.Header, data: slices.Clone(m.Data)})
		})
		if err != nil {
			t.Fatalf("subscribe %s: %v", subj, err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return r
}

func (r *recorder) snapshot() []message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// classified is what the recorded messages are, by schema.
type classified struct {
	byName     map[string][]message
	count      map[string]int  // by schema name, decisions also by where they went
	variants   map[string]bool // e.g. "decision accept anonymous"
	unexpected []message
}

var syncSubject = regexp.MustCompile(`^hissuno\.verifier\.[^.]+\.sync$`)

// classify gives each message its schema by subject. Inboxes are known by
// the requests that named them: the Hissuno-Reply-To of a command, the reply
// subject of a sync request. Other inbox traffic (JetStream acks and API
// answers, micro-service discovery) and the $JS/$KV/$SRV subjects belong to
// NATS itself.
func classify(msgs []message) classified {
	c := classified{byName: map[string][]message{}, count: map[string]int{}, variants: map[string]bool{}}
	commandInboxes, syncInboxes := map[string]bool{}, map[string]bool{}
	for _, m := range msgs {
		switch {
		case strings.HasPrefix(m.subject, events.SubjectCommandPrefix):
			if in := m.header.Get(events.HeaderReplyTo); in != "" {
				commandInboxes[in] = true
			}
		case syncSubject.MatchString(m.subject) && m.reply != "":
			syncInboxes[m.reply] = true
		}
	}
	for _, m := range msgs {
		if m.via != "hissuno.>" && !strings.HasPrefix(m.subject, events.InboxPrefix("rotator")+".") && !strings.HasPrefix(m.subject, events.AdminInboxPrefix+".") {
			// A JetStream delivery to a consumer's inbox: a copy of a
			// message the hissuno.> subscription got when it was published.
			continue
		}
		var name, where string
		switch s := m.subject; {
		case strings.HasPrefix(s, "$"):
			continue
		case strings.HasPrefix(s, events.SubjectAttempts+"."):
			name = schemas.Attempt
		case s == events.SubjectDecisions:
			name, where = schemas.Decision, events.SubjectDecisions
		case strings.HasPrefix(s, events.SubjectReplyPrefix):
			name, where = schemas.Decision, "reply"
		case strings.HasPrefix(s, events.SubjectCommandPrefix):
			name = schemas.Command
		case strings.HasPrefix(s, events.SubjectAdminEventPrefix):
			name = schemas.AdminEvent
		case s == events.SubjectInvalidate:
			name = schemas.Invalidation
		case s == events.SubjectHeartbeat:
			name = schemas.Heartbeat
		case syncSubject.MatchString(s):
			name = schemas.SyncRequest
		case strings.HasPrefix(s, events.SubjectThrottledPrefix):
			name = schemas.Throttled
		case commandInboxes[s]:
			name = schemas.CommandResult
		case syncInboxes[s]:
			name = schemas.SyncReply
		case strings.HasPrefix(s, events.InboxPrefix("rotator")+"."), strings.HasPrefix(s, events.AdminInboxPrefix+"."):
			// JetStream acks and other replies no schema describes.
			continue
		default:
			c.unexpected = append(c.unexpected, m)
			continue
		}
		c.byName[name] = append(c.byName[name], m)
		c.count[name]++
		if where != "" {
			c.count[name+"@"+where]++
		}
		c.variants[variantOf(name, m.data)] = true
	}
	return c
}

// variantOf labels a message by what it says, so the test can check that
// every kind of each event was seen.
func variantOf(name string, data []byte) string {
	var f struct {
		Decision  string `json:"decision"`
		Session   string `json:"session"`
		Kind      string `json:"kind"`
		Error     string `json:"error"`
		SecretKey string `json:"sealedSecretKey"`
	}
	_ = json.Unmarshal(data, &f)
	switch name {
	case schemas.Decision:
		return strings.TrimSpace(name + " " + f.Decision + " " + f.Session)
	case schemas.Command, schemas.AdminEvent:
		return name + " " + f.Kind
	case schemas.CommandResult:
		switch {
		case f.Error != "":
			return name + " error"
		case f.SecretKey != "":
			return name + " sealedSecretKey"
		}
		return name + " ok"
	}
	return name
}

var (
	keyRE   = regexp.MustCompile(`sk_live_[A-Za-z0-9_-]+`)
	tokenRE = regexp.MustCompile(`("widgetToken":")[^"]*`)
)

// redactKeys hides secret keys and widget tokens in a message quoted by a
// failure.
func redactKeys(b []byte) string {
	s := keyRE.ReplaceAllString(string(b), "sk_live_[redacted]")
	return tokenRE.ReplaceAllString(s, "${1}[redacted]")
}

// user drives the stack as people do: admins through the CLI, widgets
// through HTTP. It counts what it did.
type user struct {
	t          *testing.T
	natsArgs   []string
	connectURL string
	commands   int // admin commands sent (each answered by the rotator)
	connects   int // connect requests decided by a verifier
}

// hissuno runs the CLI with --nats and returns its stdout; it must succeed.
func (u *user) hissuno(args ...string) string {
	u.t.Helper()
	out, errOut, code := u.run(args)
	if code != 0 {
		u.t.Fatalf("hissuno %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// hissunoFails runs the CLI, which must exit non-zero.
func (u *user) hissunoFails(args ...string) {
	u.t.Helper()
	out, _, code := u.run(args)
	if code == 0 {
		u.t.Fatalf("hissuno %s succeeded: %s", strings.Join(args, " "), out)
	}
}

func (u *user) run(args []string) (stdout, stderr string, code int) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = cli.Run(cli.Env{Ctx: ctx, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}, append(args, u.natsArgs...))
	if len(args) > 1 && args[0] == "project" && args[1] != "get" {
		u.commands++
	}
	return out.String(), errOut.String(), code
}

// keyAnswer runs `project create|rotate … --json` and returns its answer.
func (u *user) keyAnswer(args ...string) (a struct {
	ProjectID string `json:"projectId"`
	SecretKey string `json:"secretKey"`
}) {
	u.t.Helper()
	out := u.hissuno(args...)
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.ProjectID == "" || !strings.HasPrefix(a.SecretKey, "sk_live_") {
		u.t.Fatalf("hissuno %s --json: no projectId and secretKey (%v)", strings.Join(args, " "), err)
	}
	return a
}

// connectCase is one widget request and the answer DESIGN.md promises.
type connectCase struct {
	name     string
	origin   string // the Origin header; none when empty
	bearer   string // a token sent as Authorization: Bearer
	body     map[string]any
	status   int
	decision string
	session  string
	reason   string
}

// connect posts a widget request and checks the answer.
func (u *user) connect(c connectCase) {
	u.t.Helper()
	body, err := json.Marshal(c.body)
	if err != nil {
		u.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.connectURL, bytes.NewReader(body))
	if err != nil {
		u.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		u.t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		u.t.Fatalf("%s: read: %v", c.name, err)
	}
	u.connects++
	var got struct {
		Decision string `json:"decision"`
		Session  string `json:"session"`
		Reason   string `json:"reason"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != c.status || got.Decision != c.decision || got.Session != c.session || got.Reason != c.reason {
		u.t.Fatalf("%s: got %d %s, want %d decision=%s session=%s reason=%s", c.name, resp.StatusCode, raw, c.status, c.decision, c.session, c.reason)
	}
}

// mint signs a widget token as a customer's backend does: HS256 with the
// secret key as the raw HMAC key.
func mint(t *testing.T, secretKey string, claims jwt.MapClaims) string {
	t.Helper()
	return stacktest.MintMap(t, secretKey, claims)
}

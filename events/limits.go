package events

import "time"

// Limits of what a widget sends (DESIGN.md "Decision rules", "Public
// contract"). The ingress refuses a request over them with 400 before
// anything is published; the verifier refuses a token or claims over them.
const (
	// MaxProjectIDBytes bounds a projectId: project ids are 1 to 64
	// letters, digits, '-' or '_'.
	MaxProjectIDBytes = 64
	// MaxTokenBytes is the largest widget token verified; a larger one is
	// refused with token_too_large before any parsing.
	MaxTokenBytes = 8 << 10
	// MaxUserIDBytes bounds a userId, the token's and the client's.
	MaxUserIDBytes = 256
	// MaxMetadataKeys bounds the number of userMetadata entries.
	MaxMetadataKeys = 32
	// MaxMetadataKeyBytes bounds a userMetadata key.
	MaxMetadataKeyBytes = 64
	// MaxMetadataValueBytes bounds a userMetadata value.
	MaxMetadataValueBytes = 1 << 10
)

// Limits of what an admin command carries; the rotator refuses a command
// over them.
const (
	// MaxReasonBytes bounds the free-text reason of a change.
	MaxReasonBytes = 1000
	// MaxUserAgentBytes bounds the User-Agent the console records (it
	// cuts a longer one).
	MaxUserAgentBytes = 512
)

// Periods the verifiers and the rotator agree on: a verifier decides only
// while it holds a freshness lease (the proof, at most FreshnessLease old,
// that its view held every revision the projects bucket had), and says it
// is alive every HeartbeatEvery; the rotator waits longer than the lease
// for a verifier it heard from before it names it unconfirmed.
const (
	FreshnessLease = time.Second
	HeartbeatEvery = time.Second
)

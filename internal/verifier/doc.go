// Package verifier decides whether an embedded Hissuno widget may connect:
// given a project's settings and keys, one connection attempt and the current
// time, Decide answers accept, 401 or 403 with a stable reason code
// (DESIGN.md "Decision rules").
//
// The decision is pure: no I/O, no clock of its own (now is passed in), no
// NATS. The verifier worker that wraps it lives in the same package
// (worker.go) and is a thin shell around Decide.
//
// It must never accept a token signed with anything but HS256 and a key that
// is usable now by server time, never downgrade an invalid token to an
// anonymous session, and never put a token or a key into an error message.
package verifier

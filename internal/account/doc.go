// Package account is the console's storage and security core: console
// accounts (an email, a role, the projects they may see, an argon2id password
// hash), their sessions, API tokens for automation, and the sign-in throttle,
// each in one of the console's JetStream KV buckets (events.ConsoleBuckets),
// shared by every console instance and written with compare-and-set.
//
// It must never store, log or return in an error a password, a session
// secret or a token secret: the buckets hold argon2id hashes of passwords
// and SHA-256 digests of the high-entropy secrets, and a secret leaves the
// package only once, in the answer of the call that made it. Failed sign-ins
// and token checks give one error whatever the cause, so that no caller can
// learn from it (or from its timing) whether an account exists.
package account

// Package project is a project as it is stored: settings, key versions and
// per-user revocations in one JetStream KV entry per project, with every
// secret key sealed with AES-256-GCM under the master key.
//
// It must never store or return a key in clear outside Open and the key a
// command has just made; ProjectView and every log line show fingerprints.
package project

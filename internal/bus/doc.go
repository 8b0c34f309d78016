// Package bus is the NATS plumbing every role shares: connecting with
// credentials and TLS, running an embedded JetStream server (hissuno dev and
// tests), and declaring the streams and the KV bucket of events/.
//
// It knows the topology, never the messages' meaning.
package bus

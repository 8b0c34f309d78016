// Package events names every message that crosses NATS in Hissuno widget
// authentication: the attempt an ingress publishes, the decision a verifier
// records, the admin events the rotator handles, and the subjects, streams,
// consumers and KV buckets they travel through.
//
// It holds types and names only, and Unmarshal, which reads the public
// messages by their schemas' exact key names. It never talks to NATS and
// never carries a secret key; a widget token appears only in an Attempt,
// which lives in the work-queue stream until a verifier has decided it.
package events

// Package deploy is how Hissuno runs in production outside the binary: the
// NATS server configuration with one least-privilege user per role
// (nats/nats.conf), beside the Dockerfile and docker-compose.yml at the
// repository root.
//
// It holds no code. Its tests prove the NATS configuration on an embedded
// server started from that file (each role does its job as its own user,
// reads only its own inbox, and cannot do the others'; only `hissuno setup`
// as the setup user changes the streams), and check docker-compose.yml and the Dockerfile
// against the binary's commands, flags and environment variables. Nothing
// here may ever hold a secret: passwords and the master key come from the
// environment (.env.example lists them).
package deploy

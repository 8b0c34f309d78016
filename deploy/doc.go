// Package deploy is how Hissuno runs outside the binary's code: the NATS
// server configuration with one least-privilege user per role
// (nats/nats.conf), beside the Dockerfile and docker-compose.yml at the
// repository root. The binary embeds nats.conf too: `hissuno dev` runs its
// embedded NATS server with exactly these users and permissions
// (NATSConfig), each role connecting as its own user.
//
// Its tests prove the NATS configuration on an embedded server started
// from that file (each role does its job as its own user, reads only its
// own inbox, and cannot do the others'; only `hissuno setup` as the setup
// user changes the streams), and check docker-compose.yml and the
// Dockerfile against the binary's commands, flags and environment
// variables. Nothing here may ever hold a secret: passwords and the master
// key come from the environment (.env.example lists them) or, for
// `hissuno dev`, from files it makes in its data directory.
package deploy

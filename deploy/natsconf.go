package deploy

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// natsConf is nats/nats.conf, as docker-compose.yml mounts it.
//
//go:embed nats/nats.conf
var natsConf string

// NATSUsers are the users nats.conf defines, one per role or tool.
var NATSUsers = []string{"setup", "ingress", "verifier", "rotator", "auditor", "admin", "audit", "console"}

// PasswordVar is the environment variable nats.conf reads a user's
// password from.
func PasswordVar(user string) string {
	return "HISSUNO_NATS_" + strings.ToUpper(user) + "_PASSWORD"
}

// NATSConfig returns nats.conf with every user's password written in from
// passwords (user → password), ready for the embedded server of `hissuno
// dev`; it fails when a user has no password.
func NATSConfig(passwords map[string]string) (string, error) {
	conf := natsConf
	for _, u := range NATSUsers {
		pw, ok := passwords[u]
		if !ok || pw == "" {
			return "", fmt.Errorf("nats.conf: no password for user %s", u)
		}
		ref := "$" + PasswordVar(u)
		if !strings.Contains(conf, ref) {
			return "", fmt.Errorf("nats.conf: user %s's password is not read from %s", u, ref)
		}
		conf = strings.ReplaceAll(conf, ref, strconv.Quote(pw))
	}
	return conf, nil
}

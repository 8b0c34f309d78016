package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hissuno/widgetauth/internal/redact"
	"github.com/hissuno/widgetauth/internal/widgettoken"
)

func runToken(env Env, args []string) error {
	const usage = "usage: hissuno token mint --secret KEY --user USER_ID [--meta key=value]... [--ttl 24h]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(env.Stdout, usage)
		return nil
	}
	if len(args) == 0 || args[0] != "mint" {
		fmt.Fprintln(env.Stderr, usage)
		return errUsage
	}
	fs := newFlags("token mint", "hissuno token mint --secret KEY --user USER_ID [--meta key=value]... [--ttl 24h]", env.Stderr)
	secret := fs.String("secret", "", "the project's secret key sk_live_…; prefer the environment variable [HISSUNO_SECRET_KEY]")
	userID := fs.String("user", "", "the userId claim (required)")
	var metaFlags stringList
	fs.Var(&metaFlags, "meta", "a userMetadata entry key=value (repeatable)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid (exp = now + ttl)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	if *secret == "" {
		*secret = os.Getenv("HISSUNO_SECRET_KEY")
	}
	if !strings.HasPrefix(*secret, redact.KeyPrefix) {
		return errors.New("give the project's secret key with --secret or HISSUNO_SECRET_KEY (it starts with sk_live_)")
	}
	if *userID == "" {
		return errors.New("a token needs a user: add --user USER_ID")
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be positive, e.g. 24h")
	}
	var meta map[string]string
	if len(metaFlags) > 0 {
		meta = map[string]string{}
		for _, kv := range metaFlags {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--meta %q: write key=value", kv)
			}
			meta[k] = v
		}
	}
	tok, err := widgettoken.Mint(*secret, widgettoken.For(*userID, meta, time.Now(), *ttl))
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, tok)
	return nil
}

package bus

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/events"
)

// DefaultListen is where `hissuno dev` listens for NATS by default, and
// DefaultURL its URL.
const (
	DefaultListen = "127.0.0.1:4222"
	DefaultURL    = "nats://" + DefaultListen
)

// ConnConfig says how to reach NATS. Every command and role takes the same
// fields, as flags and environment variables of the same names.
type ConnConfig struct {
	// URL is one NATS server URL, or several separated by commas.
	URL string
	// Name is the connection name the server shows (role and instance).
	Name string
	// User and Password authenticate with a user and password.
	User     string
	Password string
	// Token authenticates with a token.
	Token string
	// CredsFile authenticates with a NATS credentials file (JWT and nkey).
	CredsFile string
	// CAFile verifies the server's TLS certificate.
	CAFile string
	// CertFile and KeyFile are the client's TLS certificate and key.
	CertFile string
	KeyFile  string
	// ConnectTimeout bounds the first connection; zero means 5 s.
	ConnectTimeout time.Duration
	// InProcess, when set, connects to a server of this process without a
	// socket (hissuno dev, tests); URL is then only for messages.
	InProcess nats.InProcessConnProvider
	// InboxPrefix replaces "_INBOX" for this connection's reply inboxes, so
	// that permissions can keep others from reading its replies.
	InboxPrefix string
}

// ErrConnect means NATS could not be reached; the message says where.
var ErrConnect = errors.New("cannot connect to NATS")

// Validate checks that the settings can make a connection.
func (c ConnConfig) Validate() error {
	if c.URL == "" {
		return errors.New("no NATS URL: give --nats URL or HISSUNO_NATS_URL")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("a TLS client certificate needs both --nats-tls-cert and --nats-tls-key")
	}
	n := 0
	for _, set := range []bool{c.User != "", c.Token != "", c.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("give one NATS credential: a user and password, a token, or a creds file")
	}
	if c.Password != "" && c.User == "" {
		return errors.New("a NATS password needs --nats-user")
	}
	return nil
}

// Connect opens a connection that reconnects forever and logs its state.
func Connect(c ConnConfig, log zerolog.Logger) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	timeout := c.ConnectTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("NATS disconnected; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS error")
		}),
	}
	if c.InProcess != nil {
		opts = append(opts, nats.InProcessServer(c.InProcess))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w (is `hissuno dev` or your NATS server running? check --nats and the credentials)", ErrConnect, RedactURL(c.URL), err)
	}
	return nc, nil
}

// RedactURL hides the password or token in a NATS URL list, for messages.
func RedactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		// nats.go accepts "user:pass@host:4222" without a scheme.
		schemeless := !strings.Contains(p, "://")
		if schemeless {
			p = "nats://" + p
		}
		u, err := url.Parse(p)
		if err != nil {
			if strings.Contains(p, "@") {
				parts[i] = "(unparsable URL with credentials)"
			}
			continue
		}
		if u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		} else {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
		if schemeless {
			parts[i] = strings.TrimPrefix(parts[i], "nats://")
		}
	}
	return strings.Join(parts, ",")
}

// InstanceName names one instance of a role: role, host name and a random
// suffix, e.g. "verifier-web1-3fa9c2". Safe as a NATS subject token.
func InstanceName(role string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%x", role, host, b)
}

// Service describes one role instance as a NATS micro service: found by
// discovery (`nats micro ls`), with a status endpoint of its own on
// events.StatusSubject(role, instance).
type Service struct {
	// Name is the micro service's name (events.Service…).
	Name string
	// Role names the role in the status subject ("ingress", "verifier",
	// "rotator").
	Role string
	// Instance names the instance; it is also the service's metadata.
	Instance string
	// Description says what the role does.
	Description string
	// Metadata is added to the instance's.
	Metadata map[string]string
	// Status answers the status endpoint; it must be safe to call at any
	// time.
	Status func() any
}

// AddService registers a role instance as a micro service with its status
// endpoint; the caller adds its other endpoints and stops it.
func AddService(nc *nats.Conn, s Service) (micro.Service, error) {
	md := map[string]string{"instance": s.Instance}
	maps.Copy(md, s.Metadata)
	svc, err := micro.AddService(nc, micro.Config{Name: s.Name, Version: "1.0.0", Description: s.Description, Metadata: md})
	if err != nil {
		return nil, fmt.Errorf("%s: micro service: %w", s.Role, err)
	}
	err = svc.AddEndpoint("status", micro.HandlerFunc(func(r micro.Request) { _ = r.RespondJSON(s.Status()) }),
		micro.WithEndpointSubject(events.StatusSubject(s.Role, s.Instance)))
	if err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("%s: micro status endpoint: %w", s.Role, err)
	}
	return svc, nil
}

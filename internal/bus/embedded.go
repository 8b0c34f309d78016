package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// EmbeddedConfig configures a NATS server with JetStream inside this
// process, for `hissuno dev` and tests.
type EmbeddedConfig struct {
	// Listen is host:port for clients; port 0 picks a free one.
	Listen string
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// ServerName names the server (and its JetStream node).
	ServerName string
	// ConfigFile, when set, is a nats-server configuration file; Listen and
	// StoreDir still override its address and store.
	ConfigFile string
	// Config, when set, is a nats-server configuration's text, used as
	// ConfigFile is; its monitoring port, if any, is not opened.
	Config string
	// Users are added to the configuration's users, each with the
	// permissions it carries (nil: every permission). Tests and benchmarks
	// use it for a user that may watch everything; `hissuno dev` never does.
	Users []*server.User
}

// RunEmbedded starts a NATS server with JetStream and waits until it takes
// connections. The caller shuts it down with Shutdown.
func RunEmbedded(c EmbeddedConfig, log zerolog.Logger) (*server.Server, error) {
	opts := &server.Options{}
	switch {
	case c.ConfigFile != "" && c.Config != "":
		return nil, errors.New("nats config: give a file or a text, not both")
	case c.ConfigFile != "":
		var err error
		if opts, err = server.ProcessConfigFile(c.ConfigFile); err != nil {
			return nil, fmt.Errorf("nats config %s: %w", c.ConfigFile, err)
		}
	case c.Config != "":
		if err := opts.ProcessConfigString(c.Config); err != nil {
			return nil, fmt.Errorf("nats config: %w", err)
		}
		opts.HTTPHost, opts.HTTPPort = "", 0
	}
	opts.Users = append(opts.Users, c.Users...)
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w (use host:port, e.g. 127.0.0.1:4222)", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Host, opts.Port = host, port
	opts.JetStream = true
	opts.StoreDir = c.StoreDir
	opts.NoSigs = true
	opts.NoLog = true
	if c.ServerName != "" {
		opts.ServerName = c.ServerName
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	ns.SetLoggerV2(ServerLogger(log.With().Str("component", "nats-server").Logger()), false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("start nats on %s: not ready after 10 s (is the port taken?)", c.Listen)
	}
	return ns, nil
}

// ServerLogger sends an embedded nats-server's log to log (its notices at
// debug level).
func ServerLogger(log zerolog.Logger) server.Logger { return serverLogger{log} }

type serverLogger struct{ log zerolog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

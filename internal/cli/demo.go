package cli

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/hissuno/widgetauth/internal/devtools/demosite"
	"github.com/hissuno/widgetauth/internal/stack"
)

// startDemoSite serves the demo customer site of `hissuno dev` on listen
// ("" disables it): a page embedding the widget for the demo project and a
// token endpoint minting with the key in the data directory, read for every
// token so that replacing the file after a rotation works at once. It
// returns the site's URL once it listens, and a stop function.
func startDemoSite(ctx context.Context, listen string, st *stack.Stack, data string, log zerolog.Logger) (string, func(), error) {
	if listen == "" {
		return "", func() {}, nil
	}
	site, err := demosite.New(demosite.Config{
		Listen:     listen,
		IngressURL: "http://" + browserAddr(st.HTTPAddr),
		ProjectID:  DemoProjectID,
		SecretKey:  demosite.KeyFile(filepath.Join(data, demoKeyFile)),
	}, log)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- site.Run(ctx) }()
	select {
	case <-site.Listening():
	case err := <-done:
		cancel()
		return "", nil, fmt.Errorf("%w (or give --demo-listen '' to run without the demo site)", err)
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			log.Warn().Err(err).Msg("demo site stopped with an error")
		}
	}
	return site.URL(), stop, nil
}

// browserAddr is addr with an unspecified host (0.0.0.0, ::) replaced by
// 127.0.0.1, which a browser on this machine can open.
func browserAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// floorBody is an answer the size of a typical accept.
var floorBody = []byte(`{"decision":"accept","session":"authenticated","userId":"user_0042","userVerified":true,"userMetadata":{"plan":"pro","name":"Ada"},"keyVersion":1,"decisionId":"dec_00000000000000000000000000000000"}` + "\n")

// httpFloor measures the HTTP exchange alone: the same clients and request
// pool against a net/http server in this process, configured as the
// ingress's, whose handler reads the body and answers at once. It is the
// part of the e2e cost that no change behind the ingress can remove.
func httpFloor(ctx context.Context, reqs []request, c int, d time.Duration) (Load, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Load{}, fmt.Errorf("http floor: listen: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(floorBody)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      13 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	load, err := httpLoad(ctx, ln.Addr().String(), reqs, c, d)
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("http floor: serve: %w", serr)
	}
	// Every answer is a 200 here; the mix's statuses do not apply.
	load.Unexpected, load.ids = 0, nil
	return load, err
}

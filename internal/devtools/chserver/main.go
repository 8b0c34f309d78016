// Command chserver runs a private ClickHouse for the tests: it starts
// clickhouse-server from PATH with its data under -dir on free ports, prints
// its DSN on one line of stdout once it answers, and stops it on SIGINT or
// SIGTERM. scripts/test uses it; it is not part of the product.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hissuno/widgetauth/internal/devtools/localclickhouse"
)

func main() {
	dir := flag.String("dir", "", "directory for ClickHouse's files (required)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "chserver: give -dir DIR")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := localclickhouse.Start(ctx, *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chserver:", err)
		os.Exit(1)
	}
	fmt.Println(srv.DSN)
	<-ctx.Done()
	srv.Stop()
}

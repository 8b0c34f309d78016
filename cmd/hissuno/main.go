// Command hissuno is the one binary of Hissuno widget authentication: every
// role, the admin commands and the audit queries. See `hissuno help`.
package main

import (
	"os"

	"github.com/hissuno/widgetauth/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }

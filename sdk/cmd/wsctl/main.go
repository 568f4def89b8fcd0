// Command wsctl operates a wsfleet control plane: read, change, validate,
// diff and roll back pool policies. Everything but process wiring lives in
// sdk/internal/wsctl.
package main

import (
	"os"

	"github.com/wsfleet/wsfleet/sdk/internal/wsctl"
)

func main() {
	os.Exit(wsctl.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

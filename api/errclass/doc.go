// Package errclass is the one error-class table of DESIGN.md as data: for
// every wsfleetv1.ErrorClass, its short name, the wire signal a client sees
// (HTTP status or WebSocket close code), the typical cause and what to do.
//
// The data-plane node answers handshakes and closes connections with the
// statuses and codes here, the control plane groups events by the names,
// and wsctl prints the causes and actions. Keeping one table means a class
// never reads differently in a log line, a JSON body and the CLI.
//
// Everything here is immutable and safe for concurrent use.
package errclass

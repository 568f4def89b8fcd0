// Package errclass is the one error-class table of DESIGN.md as data: for
// every wsfleetv1.ErrorClass, its short name, the wire signal a client sees
// (HTTP status and whether Retry-After comes with it, or WebSocket close
// code), the typical cause and what to do.
//
// It is the only place a class's wire signal is decided. The data-plane
// node answers rejected handshakes with HTTPStatus (and Retry-After when
// RetryAfter is set), closes connections with SentCloseCode, and explains a
// close frame it received with FromCloseCode; its metric labels are the
// names; the control plane groups events by the names; wsctl prints the
// signals, causes and actions. Keeping one table means a class never reads
// differently on the wire, in a log line, a JSON body and the CLI.
//
// Everything here is immutable and safe for concurrent use.
package errclass

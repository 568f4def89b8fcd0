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
// signals, causes and actions. A pool whose policy says
// handshake.reject_with: close gets its rejected handshakes closed with
// RejectCloseCode and RejectReason instead of the HTTP status; client SDKs
// read such a close back with FromRejectCloseCode and ParseRejectReason,
// stop retrying on a class that is not Retryable, and show UserMessage to
// the end user. The client_* classes are failures only a client saw, which
// it reports to a node (EVENT_KIND_CLIENT_REPORT). Keeping one table
// means a class never reads differently on the wire, in a log line, a JSON
// body and the CLI.
//
// Everything here is immutable and safe for concurrent use.
package errclass

package admission

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// TraceHeader is the trace id header as it is spelled on the wire, in every
// response (rejections here, the 101 the node writes) and in the request to
// the connect-authorization endpoint (DESIGN.md's spelling). net/http would
// canonicalise it to X-Trace-Id through Header.Set, so it is set by key.
// Reading it from a request needs no care: HTTP headers are
// case-insensitive and net/http canonicalises what it parses.
const TraceHeader = "X-Trace-ID"

// Rejection is a refused handshake. Build it with NewRejection.
type Rejection struct {
	Class wsfleetv1.ErrorClass
	// Status is the HTTP status the rejection is answered with: the class's
	// status from api/errclass, or the class's alternative (426 for a wrong
	// Sec-WebSocket-Version). HTTPStatus says what is actually sent.
	Status int
	// RetryAfter is what Retry-After says when the class carries one (see
	// errclass.Info.RetryAfter), in whole seconds rounded up, at least 1;
	// ignored for the other classes.
	RetryAfter time.Duration
	Reason     string // human text for logs/events, e.g. `origin "https://evil.example" is not in the allowlist`
	// Err is the underlying cause when there is one (a failed connect
	// authorization wraps ErrAuthStatus, ErrAuthTimeout, ErrAuthUnavailable
	// or ErrClientGone); nil otherwise. Unwrap returns it.
	Err error
}

var _ error = (*Rejection)(nil)

// Error reads `admission: origin_rejected (403): origin "..." is not in the allowlist`.
func (r *Rejection) Error() string {
	return fmt.Sprintf("admission: %s (%d): %s", errclass.Name(r.Class), r.HTTPStatus(), r.Reason)
}

// HTTPStatus is the status the rejection is answered with, decided by the
// error-class table: the class's status, or its alternative when Status
// asks for it; 500 for a class that has no status (a close class is not a
// handshake rejection: a bug, answered as one).
func (r *Rejection) HTTPStatus() int {
	info := errclass.Lookup(r.Class)
	switch {
	case info.AltHTTPStatus != 0 && r.Status == info.AltHTTPStatus:
		return info.AltHTTPStatus
	case info.HTTPStatus != 0:
		return info.HTTPStatus
	}
	return http.StatusInternalServerError
}

// Unwrap returns the underlying cause, if any.
func (r *Rejection) Unwrap() error { return r.Err }

// NewRejection builds a Rejection with the class's status from the one
// error-class table, so a status never drifts from what DESIGN.md documents.
func NewRejection(class wsfleetv1.ErrorClass, reason string) *Rejection {
	return &Rejection{Class: class, Status: errclass.Lookup(class).HTTPStatus, Reason: reason}
}

// retryAfterSeconds is d in whole seconds rounded up, at least 1: a
// Retry-After of 0 would invite an immediate retry storm.
func retryAfterSeconds(d time.Duration) int64 {
	// A Retry-After beyond a day is a bug upstream, not advice; clamping
	// also keeps the rounding below from overflowing.
	const maxRetryAfter = 24 * time.Hour
	d = min(d, maxRetryAfter)
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// roundRetryAfter is d as the whole seconds the client will be told, so the
// Rejection (and the event built from it) says what the header says.
func roundRetryAfter(d time.Duration) time.Duration {
	return time.Duration(retryAfterSeconds(d)) * time.Second
}

// WriteRejection answers a rejected handshake: the status (HTTPStatus),
// X-Trace-ID spelled as TraceHeader, Retry-After in whole seconds rounded up
// (min 1) when the class carries one, Content-Type application/json,
// Cache-Control no-store, Connection close, and the body
// {"error":"<class name from errclass>","trace_id":"<id>"}. For 426 also
// "Sec-WebSocket-Version: 13".
//
// The body is exactly that JSON object, without a trailing newline. X-Trace-ID
// is left out when traceID is empty. rej must not be nil.
func WriteRejection(w http.ResponseWriter, traceID string, rej *Rejection) {
	status := rej.HTTPStatus()
	body := make([]byte, 0, 64+len(traceID))
	body = append(body, `{"error":`...)
	body = appendJSONString(body, errclass.Name(rej.Class))
	body = append(body, `,"trace_id":`...)
	body = appendJSONString(body, traceID)
	body = append(body, '}')

	h := w.Header()
	if traceID != "" {
		h[TraceHeader] = []string{traceID}
	}
	if errclass.Lookup(rej.Class).RetryAfter {
		h.Set("Retry-After", strconv.FormatInt(retryAfterSeconds(rej.RetryAfter), 10))
	}
	if status == http.StatusUpgradeRequired {
		h.Set("Sec-Websocket-Version", websocketVersion)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	// The client is not going to send a second request on a connection
	// whose upgrade failed; closing frees the socket now.
	h.Set("Connection", "close")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// appendJSONString appends s as a JSON string. Ids from TraceID and class
// names need no escaping; anything else goes through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	if plainJSON(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// maxQuoted bounds client-controlled text quoted in a Reason, so a 1 MiB
// header does not become a 1 MiB log line.
const maxQuoted = 256

// clipQuoted cuts client-controlled text to maxQuoted bytes on a rune
// boundary, marked as cut: a cut inside a multi-byte character would show
// as \x escapes in the quoted Reason.
func clipQuoted(s string) string { return clip.Marked(s, maxQuoted) }

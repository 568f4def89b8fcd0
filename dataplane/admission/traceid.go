package admission

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
)

// MaxTraceIDLength bounds a client-supplied trace id. Longer values are
// skipped, never truncated: a truncated id would no longer match what the
// client logged.
const MaxTraceIDLength = 128

// Canonical header keys, indexed directly to skip canonicalization on the
// per-handshake path.
const (
	headerTraceID     = "X-Trace-Id"
	headerTraceparent = "Traceparent"
	queryTraceID      = "trace_id"
)

// traceparentLen is the length of a version-00 W3C traceparent:
// "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
const traceparentLen = 55

// TraceID returns the request's trace id: the X-Trace-ID header, else the
// trace_id query parameter (browsers cannot set headers on a WebSocket), else
// the trace-id field of a W3C traceparent header ("00-<32 hex>-<16 hex>-<2 hex>";
// all-zero trace id is invalid), else a new random id (32 lowercase hex, W3C
// compatible). A client-supplied id is used only if it is 1..128 chars of
// [A-Za-z0-9._:-]; otherwise the next source is tried (a bad value is never echoed).
//
// generated reports that no client-supplied id was usable. Only the first
// X-Trace-ID header and the first trace_id parameter are looked at, the way
// Header.Get and Values.Get read them.
func TraceID(r *http.Request) (id string, generated bool) {
	if vs := r.Header[headerTraceID]; len(vs) > 0 && validTraceID(vs[0]) {
		return vs[0], false
	}
	if r.URL != nil {
		if v, ok := traceIDFromQuery(r.URL.RawQuery); ok {
			return v, false
		}
	}
	// W3C: more than one traceparent header is not a valid trace context.
	if vs := r.Header[headerTraceparent]; len(vs) == 1 {
		if v, ok := traceIDFromTraceparent(vs[0]); ok {
			return v, false
		}
	}
	return NewTraceID(), true
}

// NewTraceID returns a random trace id: 32 lowercase hex digits, never all
// zero, usable as a W3C trace-id. It needs uniqueness, not secrecy, so it
// draws from math/rand/v2, which is per-thread and does not lock.
func NewTraceID() string {
	hi, lo := rand.Uint64(), rand.Uint64()
	if hi|lo == 0 {
		lo = 1
	}
	var b [32]byte
	putHex(b[:16], hi)
	putHex(b[16:], lo)
	return string(b[:])
}

const hexDigits = "0123456789abcdef"

func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

// ValidTraceID reports whether s is a trace id a node could have taken
// from a client or made itself: 1..MaxTraceIDLength characters of
// [A-Za-z0-9._:-]. Whatever else a client asks about was never recorded.
func ValidTraceID(s string) bool { return validTraceID(s) }

// validTraceID reports whether a client-supplied id may be used and echoed:
// the character set keeps it safe in a header, a JSON body and a log line
// without escaping.
func validTraceID(s string) bool {
	if len(s) == 0 || len(s) > MaxTraceIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// traceIDFromQuery finds the first trace_id parameter in a raw query
// without building url.Values (which allocates a map per handshake). Like
// url.ParseQuery it splits on "&" only and unescapes keys and values; an
// invalid first value is not followed by a look at later ones, matching
// Values.Get.
func traceIDFromQuery(raw string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != queryTraceID {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			uk, err := url.QueryUnescape(k)
			if err != nil || uk != queryTraceID {
				continue
			}
		}
		if strings.ContainsAny(v, "%+") {
			uv, err := url.QueryUnescape(v)
			if err != nil {
				return "", false
			}
			v = uv
		}
		if !validTraceID(v) {
			return "", false
		}
		// v may be a slice of the request URI (up to MaxHeaderBytes): the
		// id outlives the request in the connection and its events, and
		// must not keep the whole URI alive.
		return strings.Clone(v), true
	}
	return "", false
}

// traceIDFromTraceparent returns the trace-id field of a W3C traceparent
// (https://www.w3.org/TR/trace-context/#traceparent-header). Version 00 must
// be exactly 55 characters; a later version may append fields after a "-";
// version ff is invalid. All-zero trace and parent ids are invalid.
func traceIDFromTraceparent(v string) (string, bool) {
	if len(v) < traceparentLen {
		return "", false
	}
	if !isLowerHex(v[0:2]) || v[0:2] == "ff" {
		return "", false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	if len(v) > traceparentLen && (v[0:2] == "00" || v[traceparentLen] != '-') {
		return "", false
	}
	traceID, parentID, flags := v[3:35], v[36:52], v[53:55]
	if !isLowerHex(traceID) || !isLowerHex(parentID) || !isLowerHex(flags) {
		return "", false
	}
	if allZero(traceID) || allZero(parentID) {
		return "", false
	}
	// A later version may carry more fields: do not keep the whole header
	// alive through the 32 bytes used.
	return strings.Clone(traceID), true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

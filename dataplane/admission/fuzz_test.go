package admission

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzTraceID: whatever a client sends, the id is either one it sent that
// passes validTraceID, a traceparent trace-id, or a generated one — never
// an unsafe string echoed back.
func FuzzTraceID(f *testing.F) {
	f.Add("abc", "trace_id=q", validTraceparent)
	f.Add("", "trace_id=%41%3a", "")
	f.Add("bad id", "trace%5Fid=x&trace_id=y", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-zz")
	f.Add("", "trace_id=%zz", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	f.Fuzz(func(t *testing.T, header, query, traceparent string) {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.URL.RawQuery = query
		if header != "" {
			r.Header["X-Trace-Id"] = []string{header}
		}
		if traceparent != "" {
			r.Header["Traceparent"] = []string{traceparent}
		}
		id, generated := TraceID(r)
		if !validTraceID(id) {
			t.Fatalf("TraceID returned %q, which is not a valid id", id)
		}
		if generated && !isGeneratedID(id) {
			t.Fatalf("generated id %q is not 32 lowercase hex", id)
		}
		if !generated && id != header && !isLowerHex(id) {
			// Not the header and not a traceparent id: it must come from
			// the query, where url.ParseQuery agrees on the first value.
			if got := r.URL.Query()["trace_id"]; len(got) == 0 || got[0] != id {
				t.Fatalf("id %q from nowhere (query %q)", id, query)
			}
		}
	})
}

// FuzzValidateUpgrade: arbitrary handshake headers never panic, and an
// accepted one really carries a 16-byte key and version 13.
func FuzzValidateUpgrade(f *testing.F) {
	f.Add("Upgrade", "websocket", "13", "dGhlIHNhbXBsZSBub25jZQ==")
	f.Add("keep-alive,,upgrade", "WebSocket, h2c", "13", "AAAAAAAAAAAAAAAAAAAAAA==")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, connection, upgrade, version, key string) {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header["Connection"] = []string{connection}
		r.Header["Upgrade"] = []string{upgrade}
		r.Header["Sec-Websocket-Version"] = []string{version}
		r.Header["Sec-Websocket-Key"] = []string{key}
		rej := ValidateUpgrade(r)
		if rej != nil {
			if rej.Class != classBad || (rej.Status != 400 && rej.Status != 426) {
				t.Fatalf("rejection %v %d", rej.Class, rej.Status)
			}
			return
		}
		b, err := base64.StdEncoding.DecodeString(key)
		if err != nil || len(b) != 16 {
			t.Fatalf("accepted key %q", key)
		}
		if strings.TrimSpace(version) != "13" {
			t.Fatalf("accepted version %q", version)
		}
	})
}

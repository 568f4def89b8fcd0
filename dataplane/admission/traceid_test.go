package admission

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"
)

const (
	validTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceparentID    = "4bf92f3577b34da6a3ce929d0e0e4736"
)

func TestTraceIDPrecedence(t *testing.T) {
	tests := []struct {
		name        string
		header      string
		query       string
		traceparent string
		want        string // "" means a generated id is expected
	}{
		{name: "the header wins over query and traceparent", header: "hdr-1", query: "trace_id=q-1", traceparent: validTraceparent, want: "hdr-1"},
		{name: "the query parameter wins over traceparent", query: "a=b&trace_id=q-1", traceparent: validTraceparent, want: "q-1"},
		{name: "traceparent is used when nothing else is set", traceparent: validTraceparent, want: traceparentID},
		{name: "a new id is generated when nothing is set"},
		{name: "an invalid header falls through to the query", header: "bad id with spaces", query: "trace_id=q-2", want: "q-2"},
		{name: "a header over 128 characters falls through", header: strings.Repeat("a", 129), traceparent: validTraceparent, want: traceparentID},
		{name: "a header of exactly 128 characters is used", header: strings.Repeat("a", 128), want: strings.Repeat("a", 128)},
		{name: "a header with every allowed character class is used", header: "Ab9._:-", want: "Ab9._:-"},
		{name: "a header with a quote is never echoed", header: `x"y`, want: ""},
		{name: "a header with non-ASCII is never echoed", header: "trace-é", want: ""},
		{name: "an invalid query value falls through to traceparent", query: "trace_id=%3Cscript%3E", traceparent: validTraceparent, want: traceparentID},
		{name: "an empty query value falls through", query: "trace_id=", traceparent: validTraceparent, want: traceparentID},
		{name: "a percent-encoded query value is decoded", query: "trace_id=a%3Ab", want: "a:b"},
		{name: "a percent-encoded key is recognized", query: "trace%5Fid=q-3", want: "q-3"},
		{name: "the first trace_id parameter is the one used", query: "trace_id=first&trace_id=second", want: "first"},
		{name: "a key that only starts like trace_id is ignored", query: "trace_idx=zzz", want: ""},
		{name: "a bad escape in the query falls through", query: "trace_id=%zz", want: ""},
		{name: "an all-zero traceparent trace id is invalid", traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01", want: ""},
		{name: "an all-zero traceparent parent id is invalid", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", want: ""},
		{name: "an upper-case traceparent is invalid", traceparent: strings.ToUpper(validTraceparent), want: ""},
		{name: "version ff of traceparent is invalid", traceparent: "ff" + validTraceparent[2:], want: ""},
		{name: "version 00 with extra fields is invalid", traceparent: validTraceparent + "-extra", want: ""},
		{name: "a later version with extra fields is accepted", traceparent: "01" + validTraceparent[2:] + "-extra", want: traceparentID},
		{name: "a later version glued to more text is invalid", traceparent: "01" + validTraceparent[2:] + "x", want: ""},
		{name: "a short traceparent is invalid", traceparent: validTraceparent[:54], want: ""},
		{name: "a traceparent with wrong separators is invalid", traceparent: strings.ReplaceAll(validTraceparent, "-", "_"), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.URL.RawQuery = tt.query
			if tt.header != "" {
				r.Header.Set("X-Trace-ID", tt.header)
			}
			if tt.traceparent != "" {
				r.Header.Set("traceparent", tt.traceparent)
			}
			got, generated := TraceID(r)
			if tt.want == "" {
				if !generated || !isGeneratedID(got) {
					t.Fatalf("TraceID = %q (generated %v), want a generated id", got, generated)
				}
				return
			}
			if generated || got != tt.want {
				t.Fatalf("TraceID = %q (generated %v), want %q", got, generated, tt.want)
			}
		})
	}
}

func TestTraceIDTwoTraceparentHeadersAreIgnored(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Add("Traceparent", validTraceparent)
	r.Header.Add("Traceparent", validTraceparent)
	if _, generated := TraceID(r); !generated {
		t.Fatal("two traceparent headers were used; W3C calls that invalid")
	}
}

func TestNewTraceIDIsW3CCompatibleAndDistinct(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewTraceID()
		if !isGeneratedID(id) {
			t.Fatalf("NewTraceID() = %q", id)
		}
		if _, ok := traceIDFromTraceparent("00-" + id + "-00f067aa0ba902b7-01"); !ok {
			t.Fatalf("%q is not a valid W3C trace-id", id)
		}
		if seen[id] {
			t.Fatalf("NewTraceID repeated %q", id)
		}
		seen[id] = true
	}
}

// isGeneratedID reports whether s looks like NewTraceID's output.
func isGeneratedID(s string) bool {
	return len(s) == 32 && isLowerHex(s) && !allZero(s)
}

// A trace id lives as long as its connection and its events; taken from a
// slice of a long request URI or header, it would keep all of it alive.
func TestATraceIDKeepsNoLongRequestTextAlive(t *testing.T) {
	padding := strings.Repeat("p", 8<<10)
	tests := []struct {
		name, query, traceparent string
		source                   func(r *http.Request) string
	}{
		{name: "an id from a long query", query: "pad=" + padding + "&trace_id=q-1",
			source: func(r *http.Request) string { return r.URL.RawQuery }},
		{name: "an id from a long traceparent of a later version", traceparent: "01" + validTraceparent[2:] + "-" + padding,
			source: func(r *http.Request) string { return r.Header.Get("Traceparent") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.URL.RawQuery = tt.query
			if tt.traceparent != "" {
				r.Header.Set("Traceparent", tt.traceparent)
			}
			id, generated := TraceID(r)
			if generated {
				t.Fatal("the client's id was not used")
			}
			src := tt.source(r)
			p, lo := uintptr(unsafe.Pointer(unsafe.StringData(id))), uintptr(unsafe.Pointer(unsafe.StringData(src)))
			if p >= lo && p < lo+uintptr(len(src)) {
				t.Fatalf("the %d-byte id points into the %d-byte request text, keeping it alive", len(id), len(src))
			}
		})
	}
}

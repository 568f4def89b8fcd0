package admission

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/errclass"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestWriteRejection(t *testing.T) {
	tests := []struct {
		name    string
		traceID string
		rej     *Rejection
		status  int
		headers map[string]string // "" value: header must be absent
		body    string
	}{
		{
			name:    "origin rejection answers 403 with the trace id and no Retry-After",
			traceID: "abc-123",
			rej:     NewRejection(classOrigin, "x"),
			status:  403,
			headers: map[string]string{
				"X-Trace-ID": "abc-123", "Retry-After": "", "Content-Type": "application/json",
				"Cache-Control": "no-store", "Connection": "close", "Sec-WebSocket-Version": "",
			},
			body: `{"error":"origin_rejected","trace_id":"abc-123"}`,
		},
		{
			name:    "capacity rejection carries Retry-After in seconds",
			traceID: "t",
			rej:     &Rejection{Class: classCapacity, Status: 503, RetryAfter: 5 * time.Second},
			status:  503,
			headers: map[string]string{"Retry-After": "5"},
			body:    `{"error":"capacity","trace_id":"t"}`,
		},
		{
			name:    "a fractional Retry-After is rounded up",
			traceID: "t",
			rej:     &Rejection{Class: classRate, Status: 429, RetryAfter: 1500 * time.Millisecond},
			status:  429,
			headers: map[string]string{"Retry-After": "2"},
			body:    `{"error":"rate_limited","trace_id":"t"}`,
		},
		{
			name:    "a sub-second Retry-After becomes 1",
			traceID: "t",
			rej:     &Rejection{Class: classBreaker, Status: 503, RetryAfter: time.Nanosecond},
			status:  503,
			headers: map[string]string{"Retry-After": "1"},
			body:    `{"error":"breaker_open","trace_id":"t"}`,
		},
		{
			name:    "a wrong version answers 426 naming version 13",
			traceID: "t",
			rej:     &Rejection{Class: classBad, Status: http.StatusUpgradeRequired},
			status:  426,
			headers: map[string]string{"Sec-WebSocket-Version": "13", "Connection": "close"},
			body:    `{"error":"bad_handshake","trace_id":"t"}`,
		},
		{
			name:    "a class whose table entry has no Retry-After never carries one",
			traceID: "t",
			rej:     &Rejection{Class: classOrigin, Status: 403, RetryAfter: 5 * time.Second},
			status:  403,
			headers: map[string]string{"Retry-After": ""},
			body:    `{"error":"origin_rejected","trace_id":"t"}`,
		},
		{
			name:    "a class whose table entry has Retry-After carries one even without a duration",
			traceID: "t",
			rej:     NewRejection(classCapacity, "x"),
			status:  503,
			headers: map[string]string{"Retry-After": "1"},
			body:    `{"error":"capacity","trace_id":"t"}`,
		},
		{
			name:    "a draining node answers 503 with Retry-After",
			traceID: "t",
			rej:     &Rejection{Class: wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, RetryAfter: 5 * time.Second},
			status:  503,
			headers: map[string]string{"Retry-After": "5"},
			body:    `{"error":"node_draining","trace_id":"t"}`,
		},
		{
			name:    "a status the class does not have gives way to the table's",
			traceID: "t",
			rej:     &Rejection{Class: classOrigin, Status: http.StatusTeapot},
			status:  403,
			body:    `{"error":"origin_rejected","trace_id":"t"}`,
		},
		{
			name:    "a missing status is taken from the class table",
			traceID: "t",
			rej:     &Rejection{Class: classUnauth},
			status:  401,
			body:    `{"error":"unauthorized","trace_id":"t"}`,
		},
		{
			name:    "an empty trace id leaves the header out",
			rej:     NewRejection(classBad, "x"),
			status:  400,
			headers: map[string]string{"X-Trace-ID": ""},
			body:    `{"error":"bad_handshake","trace_id":""}`,
		},
		{
			name:    "a trace id that needs escaping is valid JSON",
			traceID: "a\"b<c>\\",
			rej:     NewRejection(classBad, "x"),
			status:  400,
			body:    `{"error":"bad_handshake","trace_id":"a\"b\u003cc\u003e\\"}`,
		},
		{
			name:    "a class without a status answers 500",
			traceID: "t",
			rej:     &Rejection{Class: wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL},
			status:  500,
			body:    `{"error":"normal","trace_id":"t"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteRejection(rec, tt.traceID, tt.rej)
			res := rec.Result()
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			for k, want := range tt.headers {
				got := res.Header.Get(k)
				if k == TraceHeader {
					// Set by key, in DESIGN's spelling: Get would
					// canonicalise the name and miss it.
					got = strings.Join(res.Header[TraceHeader], ",")
				}
				if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := rec.Body.String(); got != tt.body {
				t.Fatalf("body %s, want %s", got, tt.body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("body is not JSON: %s", rec.Body.String())
			}
			if res.ContentLength != int64(rec.Body.Len()) {
				t.Fatalf("Content-Length %d, body %d bytes", res.ContentLength, rec.Body.Len())
			}
		})
	}
}

func TestWriteRejectionOverRealHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := TraceID(r)
		WriteRejection(w, id, &Rejection{Class: classCapacity, Status: 503, RetryAfter: 3 * time.Second})
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ws", nil)
	req.Header.Set("X-Trace-ID", "client-trace")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Error   string `json:"error"`
		TraceID string `json:"trace_id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "3" || res.Header.Get("X-Trace-ID") != "client-trace" {
		t.Fatalf("status %d, Retry-After %q, X-Trace-ID %q", res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("X-Trace-ID"))
	}
	if body.Error != "capacity" || body.TraceID != "client-trace" {
		t.Fatalf("body %+v", body)
	}
	if !res.Close {
		t.Fatal("the server kept the connection open after a rejection")
	}
}

// TestRejectionSpellsTheTraceHeaderOnTheWire reads the response bytes off
// a raw TCP connection: a client library would canonicalise the name and
// hide the spelling.
func TestRejectionSpellsTheTraceHeaderOnTheWire(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteRejection(w, "raw-trace-1", NewRejection(classOrigin, "x"))
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(conn) // Connection: close ends the response
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.Contains(head, "\r\nX-Trace-ID: raw-trace-1\r\n") {
		t.Fatalf("response head does not spell X-Trace-ID:\n%s", head)
	}
	if res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil); err != nil || res.StatusCode != 403 {
		t.Fatalf("response %v, %v", res, err)
	}
}

// TestEveryHandshakeClassIsAnsweredAsTheTableSays: status and Retry-After
// of every handshake class come from api/errclass.
func TestEveryHandshakeClassIsAnsweredAsTheTableSays(t *testing.T) {
	for _, info := range errclass.All() {
		if info.Kind != wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
			continue
		}
		t.Run(info.Name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rej := NewRejection(info.Class, "x")
			rej.RetryAfter = 2 * time.Second
			WriteRejection(rec, "t", rej)
			res := rec.Result()
			defer res.Body.Close()
			if res.StatusCode != info.HTTPStatus {
				t.Errorf("status %d, want %d", res.StatusCode, info.HTTPStatus)
			}
			if got := res.Header.Get("Retry-After") != ""; got != info.RetryAfter {
				t.Errorf("Retry-After sent %t, the table says %t", got, info.RetryAfter)
			}
		})
	}
}

func TestRejectionError(t *testing.T) {
	cause := errors.New("boom")
	rej := &Rejection{Class: classBreaker, Status: 503, Reason: "connect authorization failed: boom", Err: cause}
	if got, want := rej.Error(), "admission: breaker_open (503): connect authorization failed: boom"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(rej, cause) {
		t.Fatal("Rejection does not unwrap to its cause")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{name: "zero becomes one second", d: 0, want: 1},
		{name: "a whole second stays", d: time.Second, want: 1},
		{name: "just over a second rounds up", d: time.Second + time.Nanosecond, want: 2},
		{name: "an absurd duration is clamped to a day", d: time.Duration(1<<63 - 1), want: 86400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfterSeconds(tt.d); got != tt.want {
				t.Fatalf("retryAfterSeconds(%s) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

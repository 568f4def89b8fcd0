package dataplane

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lxzan/gws"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// What the node puts on the wire for each error class is what api/errclass
// says: these tests read it off raw connections and compare it with the
// table, not with numbers of their own.

// upgradeRequest is a browser's upgrade request for /ws?trace_id=<trace>;
// edit tweaks its header lines.
func upgradeRequest(trace, origin string, edit func(h map[string]string)) string {
	h := map[string]string{
		"Host":                  "x",
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version": "13",
		"Origin":                origin,
	}
	if edit != nil {
		edit(h)
	}
	req := "GET /ws?trace_id=" + trace + " HTTP/1.1\r\n"
	for k, v := range h {
		if v != "" {
			req += k + ": " + v + "\r\n"
		}
	}
	return req + "\r\n"
}

// rawHead sends req on a new connection and returns the response's status
// line and header lines exactly as they came off the wire (up to the blank
// line) and the status code. The connection is closed on return.
func rawHead(t *testing.T, addr, req string) (head string, status int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response head: %v (so far %q)", err, b.String())
		}
		if line == "\r\n" {
			break
		}
		b.WriteString(line)
	}
	head = b.String()
	fields := strings.Fields(head)
	if len(fields) < 2 {
		t.Fatalf("no status line in %q", head)
	}
	status, err = strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("status line %q", head)
	}
	return head, status
}

// headerLine returns the value of the header line spelled exactly name, and
// whether there is one.
func headerLine(head, name string) (string, bool) {
	for _, line := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v, true
		}
	}
	return "", false
}

func TestEveryHandshakeRejectionIsAnsweredAsTheTableSays(t *testing.T) {
	plain := startNode(t, testPolicy(), nil)

	rate := testPolicy()
	rate.Limits.HandshakesPerSecond = 1
	rate.Limits.HandshakeBurst = 1
	rateNode := startNode(t, rate, nil)

	capped := testPolicy()
	capped.Limits.MaxConnections = 1
	capNode := startNode(t, capped, nil)

	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer refuse.Close()
	authNode := startNode(t, testPolicy(), func(c *Config) { c.AuthURL = refuse.URL })

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer failing.Close()
	breakerNode := startNode(t, testPolicy(), func(c *Config) { c.AuthURL = failing.URL })

	tests := []struct {
		name  string
		class wsfleetv1.ErrorClass
		alt   bool // the class's alternative status
		node  *testNode
		req   func(trace string) string
		setup func(t *testing.T) (undo func())
	}{
		{
			name: "an origin not in the allowlist", class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, node: plain,
			req: func(trace string) string { return upgradeRequest(trace, "https://evil.example.net", nil) },
		},
		{
			name: "a refusal of the connect-authorization endpoint", class: wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED, node: authNode,
			req: func(trace string) string { return upgradeRequest(trace, testOrigin, nil) },
		},
		{
			name: "a request a proxy stripped of its Upgrade header", class: wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, node: plain,
			req: func(trace string) string {
				return upgradeRequest(trace, testOrigin, func(h map[string]string) { delete(h, "Upgrade") })
			},
		},
		{
			name: "a wrong WebSocket version", class: wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, alt: true, node: plain,
			req: func(trace string) string {
				return upgradeRequest(trace, testOrigin, func(h map[string]string) { h["Sec-WebSocket-Version"] = "8" })
			},
		},
		{
			name: "a handshake over the rate", class: wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, node: rateNode,
			req: func(trace string) string { return upgradeRequest(trace, testOrigin, nil) },
			setup: func(t *testing.T) func() {
				rawHandshake(t, rateNode.addr, testOrigin) // takes the one token
				return func() {}
			},
		},
		{
			name: "a handshake over the node's connection cap", class: wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, node: capNode,
			req: func(trace string) string { return upgradeRequest(trace, testOrigin, nil) },
			setup: func(t *testing.T) func() {
				rawHandshake(t, capNode.addr, testOrigin) // holds the one slot
				return func() {}
			},
		},
		{
			name: "a failing connect-authorization endpoint", class: wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN, node: breakerNode,
			req: func(trace string) string { return upgradeRequest(trace, testOrigin, nil) },
		},
		{
			name: "a handshake while the node drains", class: wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, node: plain,
			req: func(trace string) string { return upgradeRequest(trace, testOrigin, nil) },
			setup: func(*testing.T) func() {
				plain.draining.Store(true) // as Shutdown does first
				return func() { plain.draining.Store(false) }
			},
		},
	}
	covered := map[wsfleetv1.ErrorClass]bool{}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := errclass.Lookup(tt.class)
			covered[tt.class] = true
			if tt.setup != nil {
				defer tt.setup(t)()
			}
			var (
				trace, head string
				status      int
			)
			// A slow machine may let a handshake token refill between the
			// setup and the request: try again, a bounded number of times.
			for attempt := 0; attempt == 0 || (status == http.StatusSwitchingProtocols && attempt < 10); attempt++ {
				trace = "wire-" + strconv.Itoa(i) + "-" + strconv.Itoa(attempt)
				head, status = rawHead(t, tt.node.addr, tt.req(trace))
			}

			want := info.HTTPStatus
			if tt.alt {
				want = info.AltHTTPStatus
			}
			if status != want {
				t.Errorf("status %d, the table says %d for %s", status, want, info.Name)
			}
			if _, sent := headerLine(head, "Retry-After"); sent != info.RetryAfter {
				t.Errorf("Retry-After sent: %t, the table says %t for %s\n%s", sent, info.RetryAfter, info.Name, head)
			}
			if got, _ := headerLine(head, "X-Trace-ID"); got != trace {
				t.Errorf("X-Trace-ID line %q, want %q\n%s", got, trace, head)
			}
			ev := tt.node.sink.wait(t, 5*time.Second, info.Name, func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == trace })
			if ev.GetClass() != tt.class || ev.GetKind() != info.Kind || ev.GetHttpStatus() != int32(status) {
				t.Errorf("event %s/%s with status %d; want %s with the status sent, %d", ev.GetKind(), errclass.Name(ev.GetClass()), ev.GetHttpStatus(), info.Name, status)
			}
		})
	}
	for _, info := range errclass.All() {
		if info.Kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED && !covered[info.Class] {
			t.Errorf("handshake class %s is not exercised here", info.Name)
		}
	}
}

func TestTheTraceHeaderIsSpelledXTraceIDOnTheWire(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	t.Run("on a 101", func(t *testing.T) {
		head, status := rawHead(t, n.addr, upgradeRequest("spelled-101", testOrigin, nil))
		if got, _ := headerLine(head, "X-Trace-ID"); status != http.StatusSwitchingProtocols || got != "spelled-101" {
			t.Fatalf("status %d, X-Trace-ID line %q:\n%s", status, got, head)
		}
	})
	t.Run("on a rejection", func(t *testing.T) {
		head, status := rawHead(t, n.addr, upgradeRequest("spelled-403", "https://evil.example.net", nil))
		if got, _ := headerLine(head, "X-Trace-ID"); status != http.StatusForbidden || got != "spelled-403" {
			t.Fatalf("status %d, X-Trace-ID line %q:\n%s", status, got, head)
		}
	})
}

// sessionByTrace finds the node's side of the connection with trace id id.
func sessionByTrace(t *testing.T, n *testNode, id string) *session {
	t.Helper()
	var found *session
	deadline := time.Now().Add(5 * time.Second)
	for found == nil {
		n.sessions.each(func(s *session) {
			if s.traceID == id {
				found = s
			}
		})
		if found == nil && time.Now().After(deadline) {
			t.Fatalf("no session with trace id %s", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return found
}

// closeFrame waits for the client's connection to end and returns the close
// frame the node sent.
func (c *client) closeFrame(t *testing.T, within time.Duration) *gws.CloseError {
	t.Helper()
	select {
	case err := <-c.closed:
		var ce *gws.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the connection ended without a close frame: %v", err)
		}
		return ce
	case <-time.After(within):
		t.Fatalf("connection not closed within %s", within)
		return nil
	}
}

func TestEveryCloseTheNodeDecidesSendsTheTablesCode(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	var classes []errclass.Info
	for _, info := range errclass.All() {
		// protocol_error is gws's decision (TestInvalidUTF8Closes1007);
		// heartbeat_timeout sends no frame (the client sees 1006).
		if info.SentCloseCode != 0 && info.Class != wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR {
			classes = append(classes, info)
		}
	}
	if len(classes) != 5 {
		t.Fatalf("%d classes the node closes with a frame of its own, want 5 (message_too_big, policy_violation, slow_consumer, internal_error, server_shutdown)", len(classes))
	}
	for _, info := range classes {
		t.Run(info.Name+" closes "+strconv.Itoa(int(info.SentCloseCode)), func(t *testing.T) {
			trace := "close-" + info.Name
			c := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {trace}}})
			sessionByTrace(t, n, trace).closeWith(info.Class, "closed by the test")
			if ce := c.closeFrame(t, 5*time.Second); ce.Code != info.SentCloseCode {
				t.Errorf("the client got close %d, the table says %d", ce.Code, info.SentCloseCode)
			}
			ev := n.sink.wait(t, 5*time.Second, info.Name, func(ev *wsfleetv1.ErrorEvent) bool {
				return ev.GetTraceId() == trace && ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED
			})
			if ev.GetClass() != info.Class || ev.GetCloseCode() != int32(info.CloseCode) {
				t.Errorf("event %s close %d; want %s close %d", errclass.Name(ev.GetClass()), ev.GetCloseCode(), info.Name, info.CloseCode)
			}
		})
	}
}

func TestACloseReasonIsCutOnARuneBoundary(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	const trace = "long-reason"
	c := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {trace}}})
	// One ASCII byte, then 3-byte runes: a cut at a fixed byte offset lands
	// inside one.
	reason := "a" + strings.Repeat("€", 100)
	sessionByTrace(t, n, trace).closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION, reason)
	ce := c.closeFrame(t, 5*time.Second)
	if len(ce.Reason) > 123 || !utf8.Valid(ce.Reason) {
		t.Fatalf("close reason is %d bytes, valid UTF-8 %t: %q", len(ce.Reason), utf8.Valid(ce.Reason), ce.Reason)
	}
	if !strings.HasPrefix(reason, strings.TrimSuffix(string(ce.Reason), " ...(truncated)")) {
		t.Fatalf("close reason %q is not a marked prefix of the reason", ce.Reason)
	}
}

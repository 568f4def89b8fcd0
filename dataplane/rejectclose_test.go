package dataplane

import (
	"bufio"
	"crypto/sha1" //nolint:gosec // RFC 6455's accept key
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// closePolicy is testPolicy answering rejected handshakes with a close
// frame.
func closePolicy() *wsfleetv1.Policy {
	p := testPolicy()
	p.Handshake = &wsfleetv1.HandshakePolicy{RejectWith: wsfleetv1.RejectMode_REJECT_MODE_CLOSE}
	return p
}

// closeAnswer is what came off the wire for one handshake, read byte by
// byte from a raw socket.
type closeAnswer struct {
	head   string
	status int
	// frames are the frames after the head, up to EOF: opcode, payload.
	frames []rawFrame
	// eof: the node closed the connection (no error but EOF ended the read).
	eof bool
	err error
}

type rawFrame struct {
	opcode  byte
	masked  bool
	payload []byte
}

// rawAnswer sends req (and pipelined bytes behind it, which the node must
// never read) on a new connection and reads everything the node sends
// until it closes the connection or within passes.
func rawAnswer(t *testing.T, addr, req string, pipelined []byte, within time.Duration) closeAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(within))
	if _, err := conn.Write(append([]byte(req), pipelined...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var a closeAnswer
	var head []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response head: %v (so far %q)", err, head)
		}
		if line == "\r\n" {
			break
		}
		head = append(head, line...)
	}
	a.head = string(head)
	if f := strings.Fields(a.head); len(f) >= 2 {
		a.status, _ = strconv.Atoi(f[1])
	}
	if a.status != http.StatusSwitchingProtocols {
		return a
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			a.eof = errors.Is(err, io.EOF)
			if !a.eof {
				a.err = err
			}
			return a
		}
		f := rawFrame{opcode: h[0] & 0x0f, masked: h[1]&0x80 != 0}
		n := int(h[1] & 0x7f)
		if n >= 126 {
			a.err = errors.New("a frame longer than a control frame")
			return a
		}
		f.payload = make([]byte, n)
		if _, err := io.ReadFull(br, f.payload); err != nil {
			a.err = err
			return a
		}
		a.frames = append(a.frames, f)
	}
}

// TestEveryHandshakeRejectionIsAClosedUpgradeUnderRejectWithClose: with
// handshake.reject_with: close, each class the table gives a reject close
// code is answered with a 101 and then exactly one close frame carrying
// that code and the class's reason, then EOF — nothing the client sent
// after its request is read (a frame pipelined behind it gets no answer),
// and the event is the one the HTTP answer makes, with close_code set.
func TestEveryHandshakeRejectionIsAClosedUpgradeUnderRejectWithClose(t *testing.T) {
	plain := startNode(t, closePolicy(), nil)

	rate := closePolicy()
	rate.Limits.HandshakesPerSecond = 1
	rate.Limits.HandshakeBurst = 1
	rateNode := startNode(t, rate, nil)

	capped := closePolicy()
	capped.Limits.MaxConnections = 1
	capNode := startNode(t, capped, nil)

	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer refuse.Close()
	authNode := startNode(t, closePolicy(), func(c *Config) { c.AuthURL = refuse.URL })

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer failing.Close()
	breakerNode := startNode(t, closePolicy(), func(c *Config) { c.AuthURL = failing.URL })

	tests := []struct {
		name   string
		class  wsfleetv1.ErrorClass
		node   *testNode
		origin string
		setup  func(t *testing.T) (undo func())
	}{
		{name: "an origin not in the allowlist", class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, node: plain, origin: "https://evil.example.net"},
		{name: "a refusal of the connect-authorization endpoint", class: wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED, node: authNode, origin: testOrigin},
		{
			name: "a handshake over the rate", class: wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, node: rateNode, origin: testOrigin,
			setup: func(t *testing.T) func() {
				rawHandshake(t, rateNode.addr, testOrigin) // takes the one token
				return func() {}
			},
		},
		{
			name: "a handshake over the node's connection cap", class: wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, node: capNode, origin: testOrigin,
			setup: func(t *testing.T) func() {
				rawHandshake(t, capNode.addr, testOrigin) // holds the one slot
				return func() {}
			},
		},
		{name: "a failing connect-authorization endpoint", class: wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN, node: breakerNode, origin: testOrigin},
		{
			name: "a handshake while the node drains", class: wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, node: plain, origin: testOrigin,
			setup: func(*testing.T) func() {
				plain.draining.Store(true) // as Shutdown does first
				return func() { plain.draining.Store(false) }
			},
		},
	}
	covered := map[wsfleetv1.ErrorClass]bool{}
	// A ping frame pipelined behind the request: a node that read it would
	// answer a pong before the close frame, or leave the close for later.
	pipelined := maskedFrame(0x9, []byte("are you reading?"))
	for i, tt := range tests {
		t.Run(tt.name+" closes "+strconv.Itoa(int(errclass.Lookup(tt.class).RejectCloseCode)), func(t *testing.T) {
			info := errclass.Lookup(tt.class)
			covered[tt.class] = true
			if tt.setup != nil {
				defer tt.setup(t)()
			}
			var (
				trace string
				a     closeAnswer
			)
			// A slow machine may let a handshake token refill between the
			// setup and the request, and the node then upgrades for real
			// (no close frame within the wait): try again, a bounded number
			// of times.
			for attempt := 0; attempt < 10; attempt++ {
				trace = "close-" + strconv.Itoa(i) + "-" + strconv.Itoa(attempt)
				a = rawAnswer(t, tt.node.addr, upgradeRequest(trace, tt.origin, nil), pipelined, 5*time.Second)
				if len(a.frames) > 0 || a.eof {
					break
				}
			}
			if a.status != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101:\n%s", a.status, a.head)
			}
			sum := sha1.Sum([]byte("dGhlIHNhbXBsZSBub25jZQ==" + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) //nolint:gosec // RFC 6455
			if got, _ := headerLine(a.head, "Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Errorf("Sec-WebSocket-Accept %q is not RFC 6455's for the key sent\n%s", got, a.head)
			}
			if got, _ := headerLine(a.head, "X-Trace-ID"); got != trace {
				t.Errorf("X-Trace-ID line %q, want %q\n%s", got, trace, a.head)
			}
			if len(a.frames) != 1 || !a.eof || a.err != nil {
				t.Fatalf("after the 101: %d frames, EOF %t, error %v; want exactly one close frame, then EOF", len(a.frames), a.eof, a.err)
			}
			f := a.frames[0]
			if f.opcode != 0x8 || f.masked || len(f.payload) < 2 {
				t.Fatalf("frame opcode %#x masked %t payload %q; want an unmasked close frame with a code", f.opcode, f.masked, f.payload)
			}
			code, reason := binary.BigEndian.Uint16(f.payload), string(f.payload[2:])
			if code != info.RejectCloseCode {
				t.Errorf("close %d, the table says %d for %s", code, info.RejectCloseCode, info.Name)
			}
			gotClass, wait, ok := errclass.ParseRejectReason(reason)
			if !ok || gotClass != tt.class || (wait > 0) != info.RetryAfter {
				t.Errorf("reason %q reads as %v, wait %d, ok %t; want %s with a wait only when the class carries Retry-After", reason, gotClass, wait, ok, info.Name)
			}
			if info.RetryAfter && wait < 1 {
				t.Errorf("reason %q carries no wait of at least 1s", reason)
			}
			if byCode, _ := errclass.FromRejectCloseCode(code); byCode.Class != tt.class {
				t.Errorf("code %d reads back as %s", code, byCode.Name)
			}
			ev := tt.node.sink.wait(t, 5*time.Second, info.Name, func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == trace })
			if ev.GetClass() != tt.class || ev.GetKind() != wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED ||
				ev.GetCloseCode() != int32(info.RejectCloseCode) || ev.GetHttpStatus() != 0 {
				t.Errorf("event %s/%s with status %d close %d; want %s with close %d and no status",
					ev.GetKind(), errclass.Name(ev.GetClass()), ev.GetHttpStatus(), ev.GetCloseCode(), info.Name, info.RejectCloseCode)
			}
		})
	}
	for _, info := range errclass.All() {
		if info.RejectCloseCode != 0 && !covered[info.Class] {
			t.Errorf("class %s has a reject close code but is not exercised here", info.Name)
		}
	}
	for _, n := range []*testNode{plain, rateNode, capNode, authNode, breakerNode} {
		if got := testutil.ToFloat64(n.metrics.rejectedByMode[rejectModeHTTP]); got != 0 {
			t.Errorf("%v HTTP rejections counted on a node that answers with close frames", got)
		}
	}
	if got := testutil.ToFloat64(plain.metrics.rejectedByMode[rejectModeClose]); got != 2 {
		t.Errorf("%v close rejections counted on the plain node, want 2 (origin, draining)", got)
	}
}

// TestABadHandshakeStaysHTTPUnderRejectWithClose: a request that is not a
// valid upgrade cannot be answered with a 101, whatever the policy says.
func TestABadHandshakeStaysHTTPUnderRejectWithClose(t *testing.T) {
	n := startNode(t, closePolicy(), nil)
	cases := []struct {
		name   string
		req    string
		class  wsfleetv1.ErrorClass
		status int
	}{
		{"a request a proxy stripped of its Upgrade header", upgradeRequest("bad-1", testOrigin, func(h map[string]string) { delete(h, "Upgrade") }),
			wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, http.StatusBadRequest},
		{"a wrong WebSocket version", upgradeRequest("bad-2", testOrigin, func(h map[string]string) { h["Sec-WebSocket-Version"] = "8" }),
			wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, http.StatusUpgradeRequired},
		// The origin is refused first, but the request could not take a
		// 101 either: the refusal goes out as HTTP.
		{"a refused origin on a request that is no upgrade", upgradeRequest("bad-3", "https://evil.example.net", func(h map[string]string) { delete(h, "Sec-WebSocket-Key") }),
			wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head, status := rawHead(t, n.addr, tc.req)
			if status != tc.status {
				t.Fatalf("status %d, want %d\n%s", status, tc.status, head)
			}
			trace, _ := headerLine(head, "X-Trace-ID")
			ev := n.sink.wait(t, 5*time.Second, tc.name, func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == trace })
			if ev.GetClass() != tc.class || ev.GetHttpStatus() != int32(tc.status) || ev.GetCloseCode() != 0 {
				t.Errorf("event %s status %d close %d", errclass.Name(ev.GetClass()), ev.GetHttpStatus(), ev.GetCloseCode())
			}
		})
	}
}

// TestRejectWithChangesAtRuntimeWithoutTouchingOpenConnections: applying
// reject_with: close and back leaves open connections alone, and the next
// rejection answers the new way each time.
func TestRejectWithChangesAtRuntimeWithoutTouchingOpenConnections(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	live := mustDial(t, n.addr, dialOpts{})
	stillServed := func(t *testing.T, channel string) {
		t.Helper()
		live.send(t, `{"type":"subscribe","channel":"`+channel+`"}`)
		live.expect(t, `"channel":"`+channel+`"`)
	}
	evil := func(trace string) string { return upgradeRequest(trace, "https://evil.example.net", nil) }

	if _, status := rawHead(t, n.addr, evil("mode-http-1")); status != http.StatusForbidden {
		t.Fatalf("before the change: status %d, want 403", status)
	}

	apply := func(t *testing.T, rev int64, mode wsfleetv1.RejectMode) {
		t.Helper()
		p := testPolicy()
		p.Handshake = &wsfleetv1.HandshakePolicy{RejectWith: mode}
		if err := n.Apply(&wsfleetv1.PolicyRevision{Pool: "default", Revision: rev, Policy: p}); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, 2, wsfleetv1.RejectMode_REJECT_MODE_CLOSE)
	stillServed(t, "after-close")
	a := rawAnswer(t, n.addr, evil("mode-close"), nil, 5*time.Second)
	if a.status != http.StatusSwitchingProtocols || len(a.frames) != 1 || binary.BigEndian.Uint16(a.frames[0].payload) != 4403 {
		t.Fatalf("after reject_with: close: status %d, frames %v", a.status, a.frames)
	}

	apply(t, 3, wsfleetv1.RejectMode_REJECT_MODE_HTTP)
	stillServed(t, "after-http")
	if _, status := rawHead(t, n.addr, evil("mode-http-2")); status != http.StatusForbidden {
		t.Fatalf("after reject_with: http: status %d, want 403", status)
	}
	select {
	case err := <-live.closed:
		t.Fatalf("the open connection was closed by a policy change: %v", err)
	default:
	}
	if got := testutil.ToFloat64(n.metrics.rejectedByMode[rejectModeHTTP]); got != 2 {
		t.Errorf("%v HTTP rejections counted, want 2", got)
	}
	if got := testutil.ToFloat64(n.metrics.rejectedByMode[rejectModeClose]); got != 1 {
		t.Errorf("%v close rejections counted, want 1", got)
	}
}

package dataplane

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestHandshakeAdmission(t *testing.T) {
	n := startNode(t, testPolicy(), nil)

	t.Run("allowed origin gets 101 with the trace id echoed", func(t *testing.T) {
		c := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"trace-allowed-1"}}})
		if got := c.resp.Header.Get("X-Trace-ID"); got != "trace-allowed-1" {
			t.Fatalf("X-Trace-ID = %q", got)
		}
	})

	t.Run("a generated trace id is echoed when the client sends none", func(t *testing.T) {
		c := mustDial(t, n.addr, dialOpts{})
		if got := c.resp.Header.Get("X-Trace-ID"); len(got) != 32 {
			t.Fatalf("X-Trace-ID = %q", got)
		}
	})

	t.Run("disallowed origin gets 403 and the event carries the client's trace id", func(t *testing.T) {
		_, err := dial(t, n.addr, dialOpts{origin: "https://evil.example.net", query: "trace_id=abc-403"})
		resp := mustReject(t, err, n.addr, "https://evil.example.net", "trace_id=abc-403")
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", resp.StatusCode)
		}
		ev := n.sink.wait(t, 2*time.Second, "origin_rejected", func(ev *wsfleetv1.ErrorEvent) bool {
			return ev.GetTraceId() == "abc-403"
		})
		if ev.GetClass() != wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED || ev.GetHttpStatus() != 403 ||
			ev.GetOrigin() != "https://evil.example.net" || ev.GetNodeId() != "node-test" {
			t.Fatalf("event = %v", ev)
		}
	})

	t.Run("a wildcard origin is allowed", func(t *testing.T) {
		mustDial(t, n.addr, dialOpts{origin: "https://chat.example.org"})
	})

	t.Run("missing origin is refused when allow_missing is false", func(t *testing.T) {
		resp := rawGet(t, n.addr, "", nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("a plain GET without upgrade headers is a bad handshake", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.addr+"/ws", nil)
		req.Header.Set("Origin", testOrigin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var b struct {
			Error   string `json:"error"`
			TraceID string `json:"trace_id"`
		}
		if err := json.Unmarshal(body, &b); err != nil || b.Error != "bad_handshake" || b.TraceID == "" {
			t.Fatalf("body %s", body)
		}
	})
}

// mustReject re-issues a refused handshake as a raw request to read the
// response (gws's client does not expose the body).
func mustReject(t *testing.T, dialErr error, addr, origin, query string) *http.Response {
	t.Helper()
	if dialErr == nil {
		t.Fatal("handshake was accepted")
	}
	return rawGet(t, addr, origin, map[string]string{"query": query})
}

func rawGet(t *testing.T, addr, origin string, opts map[string]string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	path := "/ws"
	if q := opts["query"]; q != "" {
		path += "?" + q
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	req += "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	resp.Header.Set("X-Test-Body", string(body))
	return resp
}

func TestMissingOriginIsAdmittedWhenAllowMissing(t *testing.T) {
	p := testPolicy()
	p.Origins.AllowMissing = true
	n := startNode(t, p, nil)
	if s := rawGet(t, n.addr, "", nil).StatusCode; s != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", s)
	}
	if s := rawGet(t, n.addr, "https://evil.example.net", nil).StatusCode; s != http.StatusForbidden {
		t.Fatalf("a present but unlisted origin: status %d", s)
	}
}

func TestNodeCapAnswers503WithRetryAfter(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxConnections = 2
	n := startNode(t, p, nil)
	mustDial(t, n.addr, dialOpts{})
	mustDial(t, n.addr, dialOpts{})
	resp := rawGet(t, n.addr, testOrigin, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	n.sink.wait(t, 2*time.Second, "capacity", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY))
}

func TestHandshakeBurstAnswers429(t *testing.T) {
	p := testPolicy()
	p.Limits.HandshakesPerSecond = 1
	p.Limits.HandshakeBurst = 3
	n := startNode(t, p, nil)
	got := map[int]int{}
	for range 6 {
		got[rawGet(t, n.addr, testOrigin, nil).StatusCode]++
	}
	if got[http.StatusSwitchingProtocols] != 3 || got[http.StatusTooManyRequests] != 3 {
		t.Fatalf("statuses %v, want 3×101 and 3×429", got)
	}
	resp := rawGet(t, n.addr, testOrigin, nil)
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || ra < 1 {
		t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	n.sink.wait(t, 2*time.Second, "rate_limited", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED))
}

func TestBreakerOpensOnAFailingAuthEndpointAndClosesWhenHealthy(t *testing.T) {
	var calls, healthy atomic.Int32
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if healthy.Load() == 1 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer auth.Close()
	p := testPolicy()
	p.Breaker.MinSamples = 3
	p.Breaker.FailureRatio = 0.5
	p.Breaker.OpenDuration = durationpb.New(500 * time.Millisecond)
	p.Breaker.HalfOpenProbes = 1
	n := startNode(t, p, func(c *Config) { c.AuthURL = auth.URL })

	for range 3 {
		if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusServiceUnavailable {
			t.Fatalf("failing endpoint: status %d", s)
		}
	}
	before := calls.Load()
	resp := rawGet(t, n.addr, testOrigin, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("open breaker: status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if calls.Load() != before {
		t.Fatal("the endpoint was called while the breaker was open")
	}
	ev := n.sink.wait(t, 2*time.Second, "breaker_open", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN))
	if ev.GetHttpStatus() != 503 {
		t.Fatalf("event %v", ev)
	}

	healthy.Store(1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rawGet(t, n.addr, testOrigin, nil).StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker did not close after the endpoint recovered")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusSwitchingProtocols {
		t.Fatalf("after recovery: status %d", s)
	}
}

func TestAuthEndpointRefusalIsUnauthorized(t *testing.T) {
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	defer auth.Close()
	n := startNode(t, testPolicy(), func(c *Config) { c.AuthURL = auth.URL })
	if s := rawGet(t, n.addr, testOrigin, nil).StatusCode; s != http.StatusUnauthorized {
		t.Fatalf("status %d", s)
	}
	n.sink.wait(t, 2*time.Second, "unauthorized", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED))
}

func TestHeaderTricklingClientIsCut(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /ws HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	// One header byte every 100ms: each byte keeps a naive server waiting.
	var cut bool
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := conn.Write([]byte("X")); err != nil {
			cut = true
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [512]byte
		// Anything from the server (a 408, or EOF) means it gave up on us.
		if n, err := conn.Read(b[:]); n > 0 || (err != nil && !isTimeout(err)) {
			cut = true
			break
		}
	}
	if !cut {
		t.Fatal("header-trickling client was never cut")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("cut only after %s", el)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A client may send its first frames right behind the upgrade request,
// before it has read the 101: net/http has read them along with the
// request, and the node must still see them.
func TestFramesPipelinedAfterTheUpgradeRequestAreRead(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	conn, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /ws HTTP/1.1\r\nHost: " + n.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: " + testOrigin + "\r\n\r\n"
	frame := maskedFrame(0x1, []byte(`{"type":"subscribe","channel":"early"}`))
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The welcome first, although the subscribe was read before the node
	// could queue anything; then the answer to the pipelined subscribe.
	first, err := readServerFrame(br)
	if err != nil {
		t.Fatalf("no frame after the 101: %v", err)
	}
	if !strings.HasPrefix(string(first.payload), `{"type":"welcome",`) {
		t.Fatalf("first frame %q, want the welcome", first.payload)
	}
	second, err := readServerFrame(br)
	if err != nil {
		t.Fatalf("no frame after the welcome: %v", err)
	}
	if want := `{"type":"subscribed","channel":"early"}`; string(second.payload) != want {
		t.Fatalf("got %q, want %q", second.payload, want)
	}
}

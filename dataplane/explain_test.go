package dataplane

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// testClock is a settable Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// httpFrom is an HTTP client whose connections come from local (a loopback
// address: on Linux all of 127/8 is).
func httpFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type httpAnswer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, c *http.Client, url string) httpAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return httpAnswer{res.StatusCode, res.Header, string(b)}
}

func explainURL(n *testNode, trace string) string {
	return "http://" + n.addr + "/ws/explain?trace_id=" + trace
}

// explainBody decodes a found answer.
type explainBody struct {
	TraceID     string `json:"trace_id"`
	Class       string `json:"class"`
	Signal      string `json:"signal"`
	Retryable   bool   `json:"retryable"`
	RetryAfterS int    `json:"retry_after_s"`
	WhatToDo    string `json:"what_to_do"`
	Message     string `json:"message"`
	NodeID      string `json:"node_id"`
	Error       string `json:"error"`
}

func decodeExplain(t *testing.T, a httpAnswer) explainBody {
	t.Helper()
	var b explainBody
	if err := json.Unmarshal([]byte(a.body), &b); err != nil {
		t.Fatalf("body %q: %v", a.body, err)
	}
	return b
}

// wantExplained checks a 200 answer against the error-class table: every
// field comes from api/errclass, not from the test.
func wantExplained(t *testing.T, a httpAnswer, trace string, class wsfleetv1.ErrorClass, signal string) explainBody {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", a.status, a.body)
	}
	for k, v := range map[string]string{"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store", "Content-Type": "application/json"} {
		if got := a.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	info := errclass.Lookup(class)
	b := decodeExplain(t, a)
	want := explainBody{TraceID: trace, Class: info.Name, Signal: signal, Retryable: info.Retryable,
		RetryAfterS: b.RetryAfterS, WhatToDo: info.Action, Message: info.UserMessage, NodeID: "node-test"}
	if b != want {
		t.Errorf("answer %+v\nwant   %+v", b, want)
	}
	return b
}

func TestExplainAnswersTheClientThatMadeTheAttempt(t *testing.T) {
	clock := &testClock{t: time.Now()}
	rate := testPolicy()
	rate.Limits.HandshakesPerSecond, rate.Limits.HandshakeBurst = 1, 1
	n := startNode(t, testPolicy(), func(c *Config) { c.Now = clock.Now })
	rateNode := startNode(t, rate, func(c *Config) { c.Now = clock.Now })
	closeNode := startNode(t, closePolicy(), nil)
	local := httpFrom(t, "127.0.0.1")
	other := httpFrom(t, "127.0.0.2")

	if _, status := rawHead(t, n.addr, upgradeRequest("ex-origin", "https://evil.example.net", nil)); status != http.StatusForbidden {
		t.Fatalf("status %d", status)
	}

	t.Run("a rejected handshake is explained from errclass", func(t *testing.T) {
		wantExplained(t, get(t, local, explainURL(n, "ex-origin")), "ex-origin", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, "HTTP 403")
	})

	t.Run("another client address gets the 404 of an unknown id", func(t *testing.T) {
		a := get(t, other, explainURL(n, "ex-origin"))
		if a.status != http.StatusNotFound || a.body != `{"trace_id":"ex-origin","error":"unknown trace id"}` {
			t.Fatalf("status %d body %s", a.status, a.body)
		}
		if a.header.Get("Access-Control-Allow-Origin") != "*" || a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("headers %v", a.header)
		}
		unknown := get(t, local, explainURL(n, "never-seen"))
		if unknown.status != http.StatusNotFound || strings.ReplaceAll(unknown.body, "never-seen", "ex-origin") != a.body {
			t.Errorf("unknown id: status %d body %s; want the same answer", unknown.status, unknown.body)
		}
	})

	t.Run("a rate-limited handshake carries its wait", func(t *testing.T) {
		rawHandshake(t, rateNode.addr, testOrigin) // takes the one token
		var trace string
		for attempt := 0; attempt < 10; attempt++ {
			trace = "ex-rate-" + strconv.Itoa(attempt)
			if _, status := rawHead(t, rateNode.addr, upgradeRequest(trace, testOrigin, nil)); status == http.StatusTooManyRequests {
				break
			}
		}
		b := wantExplained(t, get(t, local, explainURL(rateNode, trace)), trace, wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, "HTTP 429 + Retry-After")
		if b.RetryAfterS < 1 {
			t.Errorf("retry_after_s %d, want the Retry-After sent", b.RetryAfterS)
		}
	})

	t.Run("a rejection answered with a close frame says so", func(t *testing.T) {
		if a := rawAnswer(t, closeNode.addr, upgradeRequest("ex-close", "https://evil.example.net", nil), nil, 5*time.Second); len(a.frames) != 1 {
			t.Fatalf("frames %v", a.frames)
		}
		wantExplained(t, get(t, local, explainURL(closeNode, "ex-close")), "ex-close", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, "close 4403")
	})

	t.Run("an open connection is unknown until it closes", func(t *testing.T) {
		mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"ex-open"}}})
		if a := get(t, local, explainURL(n, "ex-open")); a.status != http.StatusNotFound {
			t.Fatalf("open connection: status %d body %s", a.status, a.body)
		}
		sessionByTrace(t, n, "ex-open").closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG, "closed by the test")
		n.sink.wait(t, 5*time.Second, "close", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == "ex-open" })
		wantExplained(t, get(t, local, explainURL(n, "ex-open")), "ex-open", wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG, "close 1009")
	})

	t.Run("an expected close is not kept: nothing to explain", func(t *testing.T) {
		c := mustDial(t, n.addr, dialOpts{header: http.Header{"X-Trace-Id": {"ex-normal"}}})
		_ = c.conn.WriteClose(1000, nil)
		n.sink.wait(t, 5*time.Second, "close", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == "ex-normal" })
		if a := get(t, local, explainURL(n, "ex-normal")); a.status != http.StatusNotFound {
			t.Fatalf("normal close: status %d body %s; want 404", a.status, a.body)
		}
	})

	t.Run("after the window every id is unknown, with the same answer", func(t *testing.T) {
		before := get(t, other, explainURL(n, "ex-origin"))
		clock.advance(DefaultExplainWindow)
		a := get(t, local, explainURL(n, "ex-origin"))
		if a.status != http.StatusNotFound || a.body != before.body {
			t.Fatalf("expired: status %d body %s; want %s", a.status, a.body, before.body)
		}
	})

	if got := testutil.ToFloat64(n.metrics.explains[explainFound]); got < 2 {
		t.Errorf("found counted %v times", got)
	}
	if got := testutil.ToFloat64(n.metrics.explains[explainNotFound]); got < 3 {
		t.Errorf("not found counted %v times", got)
	}
}

func TestExplainKeepsTheNewestWithinItsBound(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ExplainMaxRecords = 2 })
	local := httpFrom(t, "127.0.0.1")
	for i := range 3 {
		rawHead(t, n.addr, upgradeRequest("bound-"+strconv.Itoa(i), "https://evil.example.net", nil))
	}
	for i, want := range []int{http.StatusNotFound, http.StatusOK, http.StatusOK} {
		if a := get(t, local, explainURL(n, "bound-"+strconv.Itoa(i))); a.status != want {
			t.Errorf("bound-%d: status %d, want %d (the oldest goes first)", i, a.status, want)
		}
	}
	if n.explains.Len() != 2 {
		t.Errorf("%d records kept, want 2", n.explains.Len())
	}
}

func TestExplainIsRateLimitedPerClient(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ExplainRate, c.ExplainBurst = 0.01, 2 })
	local := httpFrom(t, "127.0.0.1")
	for i := range 2 {
		if a := get(t, local, explainURL(n, "x")); a.status != http.StatusNotFound {
			t.Fatalf("request %d of the burst: status %d", i, a.status)
		}
	}
	a := get(t, local, explainURL(n, "x"))
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("over the burst: status %d", a.status)
	}
	if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
	}
	if a := get(t, httpFrom(t, "127.0.0.2"), explainURL(n, "x")); a.status != http.StatusNotFound {
		t.Errorf("another client is limited by the first one's requests: status %d", a.status)
	}
	if got := testutil.ToFloat64(n.metrics.explains[explainRateLimited]); got != 1 {
		t.Errorf("rate_limited counted %v times", got)
	}
}

// TestExplainRefusesTraceIDsNoNodeWouldKeep: an id over the bound or with
// other characters is refused (400; a megabyte one never gets past the
// server's header limit), and a handshake carrying one is recorded under
// the id the node made instead, never under the client's.
func TestExplainRefusesTraceIDsNoNodeWouldKeep(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	local := httpFrom(t, "127.0.0.1")
	for name, id := range map[string]string{
		"too long":         strings.Repeat("a", 10_000),
		"invalid chars":    "a%20b%3Cscript%3E",
		"empty":            "",
		"one over the max": strings.Repeat("a", 129),
	} {
		t.Run(name, func(t *testing.T) {
			if a := get(t, local, explainURL(n, id)); a.status != http.StatusBadRequest || strings.Contains(a.body, id) && id != "" {
				t.Errorf("status %d body %.100s", a.status, a.body)
			}
		})
	}
	t.Run("a megabyte id", func(t *testing.T) {
		a := get(t, local, explainURL(n, strings.Repeat("a", 1<<20)))
		if a.status < 400 || a.status >= 500 {
			t.Errorf("status %d", a.status)
		}
	})
	head, _ := rawHead(t, n.addr, upgradeRequest("bad%20id", "https://evil.example.net", nil))
	generated, _ := headerLine(head, "X-Trace-ID")
	if generated == "" || generated == "bad id" {
		t.Fatalf("trace id %q", generated)
	}
	wantExplained(t, get(t, local, explainURL(n, generated)), generated, wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, "HTTP 403")
	if n.explains.Len() != 1 {
		t.Errorf("%d records, want only the rejection's", n.explains.Len())
	}
}

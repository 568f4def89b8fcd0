package dataplane

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func do(t *testing.T, c *http.Client, method, url string, header http.Header, body io.Reader) httpAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return httpAnswer{res.StatusCode, res.Header, string(b)}
}

func reportURL(n *testNode) string { return "http://" + n.addr + "/ws/client-report" }

func report(trace, class string) string {
	return `{"trace_id":"` + trace + `","class":"` + class + `","url":"wss://edge.example.com/ws?trace_id=` + trace +
		`","time":"2026-03-04T05:06:07.5Z","detail":"WebSocket connection failed"}`
}

func postReports(t *testing.T, c *http.Client, n *testNode, origin, contentType, body string) httpAnswer {
	t.Helper()
	h := http.Header{"Content-Type": {contentType}}
	if origin != "" {
		h["Origin"] = []string{origin}
	}
	return do(t, c, http.MethodPost, reportURL(n), h, strings.NewReader(body))
}

func TestClientReportPreflight(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	c := httpFrom(t, "127.0.0.1")
	t.Run("an allowed origin is echoed with the methods, headers and max age", func(t *testing.T) {
		a := do(t, c, http.MethodOptions, reportURL(n), http.Header{"Origin": {testOrigin}, "Access-Control-Request-Method": {"POST"}}, nil)
		if a.status != http.StatusNoContent {
			t.Fatalf("status %d", a.status)
		}
		for k, v := range map[string]string{"Access-Control-Allow-Origin": testOrigin, "Access-Control-Allow-Methods": "POST",
			"Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600", "Vary": "Origin"} {
			if got := a.header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
	})
	t.Run("a wildcard-matched origin is echoed too", func(t *testing.T) {
		a := do(t, c, http.MethodOptions, reportURL(n), http.Header{"Origin": {"https://a.example.org"}}, nil)
		if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != "https://a.example.org" {
			t.Fatalf("status %d, %v", a.status, a.header)
		}
	})
	t.Run("a disallowed origin is refused without CORS headers", func(t *testing.T) {
		a := do(t, c, http.MethodOptions, reportURL(n), http.Header{"Origin": {"https://evil.example.net"}}, nil)
		if a.status != http.StatusForbidden || a.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("status %d, %v", a.status, a.header)
		}
	})
}

func TestClientReportsBecomeEvents(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ClientReportRate, c.ClientReportBurst = 1000, 1000 })
	c := httpFrom(t, "127.0.0.1")
	for _, ct := range []string{"application/json", "text/plain;charset=UTF-8"} {
		t.Run("taken as "+ct, func(t *testing.T) {
			trace := "rep-" + strconv.Itoa(len(ct))
			body := `{"reports":[` + report(trace, "client_unreachable") + `,` +
				strings.Replace(report(trace+"b", "client_handshake_timeout"), `"2026-03-04T05:06:07.5Z"`, "1772600767500", 1) + `]}`
			a := postReports(t, c, n, testOrigin, ct, body)
			if a.status != http.StatusAccepted || a.body != `{"accepted":2}` {
				t.Fatalf("status %d body %s", a.status, a.body)
			}
			if a.header.Get("Access-Control-Allow-Origin") != testOrigin {
				t.Errorf("Access-Control-Allow-Origin %q", a.header.Get("Access-Control-Allow-Origin"))
			}
			ev := n.sink.wait(t, 5*time.Second, "report", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == trace })
			want := &wsfleetv1.ErrorEvent{
				Kind: wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT, Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_UNREACHABLE,
				TraceId: trace, NodeId: "node-test", Pool: "default", Origin: testOrigin, UserAgent: "Go-http-client/1.1",
				ClientUrl: "wss://edge.example.com/ws?trace_id=" + trace, ClientDetail: "WebSocket connection failed", PolicyRevision: 1,
			}
			if ev.GetKind() != want.Kind || ev.GetClass() != want.Class || ev.GetNodeId() != want.NodeId || ev.GetPool() != want.Pool ||
				ev.GetOrigin() != want.Origin || ev.GetUserAgent() != want.UserAgent || ev.GetClientUrl() != want.ClientUrl ||
				ev.GetClientDetail() != want.ClientDetail || ev.GetPolicyRevision() != 1 ||
				!strings.HasPrefix(ev.GetRemoteAddr(), "127.0.0.1:") || ev.GetTime() == nil {
				t.Errorf("event %v\nwant   %v", ev, want)
			}
			if got := ev.GetClientTime().AsTime(); !got.Equal(time.Date(2026, 3, 4, 5, 6, 7, 500e6, time.UTC)) {
				t.Errorf("client_time %v", got)
			}
			ms := n.sink.wait(t, 5*time.Second, "report", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == trace+"b" })
			if got := ms.GetClientTime().AsTime(); !got.Equal(time.UnixMilli(1772600767500)) || ms.GetClass() != wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_TIMEOUT {
				t.Errorf("a time in milliseconds read as %v, class %v", got, ms.GetClass())
			}
		})
	}
	if got := testutil.ToFloat64(n.metrics.reportsAccepted); got != 4 {
		t.Errorf("accepted counted %v, want 4", got)
	}
}

func TestClientReportsAreRefused(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ClientReportRate, c.ClientReportBurst = 1000, 1000 })
	c := httpFrom(t, "127.0.0.1")
	many := make([]string, 1000)
	for i := range many {
		many[i] = `{}`
	}
	tests := []struct {
		name, origin, ct, body string
		status                 int
		reason, mention        string
	}{
		{"a disallowed origin", "https://evil.example.net", "application/json", `{"reports":[` + report("r1", "client_unreachable") + `]}`, 403, refusedOrigin, ""},
		{"no origin where the policy wants one", "", "application/json", `{"reports":[` + report("r2", "client_unreachable") + `]}`, 403, refusedOrigin, ""},
		{"another content type", testOrigin, "application/x-www-form-urlencoded", `{"reports":[]}`, 415, refusedContentType, ""},
		{"a body that is not the document", testOrigin, "application/json", `[1,2`, 400, refusedBadJSON, ""},
		{"a thousand reports (over the bound of 32: refused whole)", testOrigin, "application/json", `{"reports":[` + strings.Join(many, ",") + `]}`, 400, refusedTooMany, "at most 32"},
		{"a class the node decides", testOrigin, "application/json", `{"reports":[` + report("r3", "client_unreachable") + `,` + report("r4", "origin_rejected") + `]}`, 400, refusedBadReport, "reports[1].class"},
		{"an unknown class", testOrigin, "application/json", `{"reports":[` + report("r5", "nonsense") + `]}`, 400, refusedBadReport, "reports[0].class"},
		{"a bad trace id", testOrigin, "application/json", `{"reports":[` + report("r 6", "client_unreachable") + `]}`, 400, refusedBadReport, "reports[0].trace_id"},
		{"an unreadable time", testOrigin, "application/json", `{"reports":[` + strings.Replace(report("r7", "client_unreachable"), "2026-03-04T05:06:07.5Z", "yesterday", 1) + `]}`, 400, refusedBadReport, "reports[0].time"},
		{"a 1 MB body", testOrigin, "application/json", `{"reports":[` + report("r8", "client_unreachable") + `],"pad":"` + strings.Repeat("x", 1<<20) + `"}`, 413, refusedTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(n.metrics.reportsRefused.WithLabelValues(tt.reason))
			a := postReports(t, c, n, tt.origin, tt.ct, tt.body)
			if a.status != tt.status || !strings.Contains(a.body, tt.mention) {
				t.Errorf("status %d body %.200s; want %d naming %q", a.status, a.body, tt.status, tt.mention)
			}
			if got := testutil.ToFloat64(n.metrics.reportsRefused.WithLabelValues(tt.reason)); got != before+1 {
				t.Errorf("refused{%s} went from %v to %v", tt.reason, before, got)
			}
		})
	}
	if got := testutil.ToFloat64(n.metrics.reportsAccepted); got != 0 {
		t.Errorf("%v reports accepted from refused requests", got)
	}
	for _, ev := range n.sink.all() {
		if strings.Contains(ev, "CLIENT_REPORT") {
			t.Errorf("a refused request left an event: %s", ev)
		}
	}
}

// TestA1MBBodyIsRefusedWithoutReadingIt: a declared length over the bound
// is answered before the body is sent at all.
func TestA1MBBodyIsRefusedWithoutReadingIt(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	body := &countingReader{r: bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20))}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, reportURL(n), body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 20
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", testOrigin)
	req.Header.Set("Expect", "100-continue")
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", res.StatusCode)
	}
	if body.n > 64<<10 {
		t.Errorf("the client sent %d bytes of a body the node refused unread", body.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestClientReportFieldsAreClipped: url and detail of a megabyte are
// clipped with api/clip (never refused), as are the origin and user agent
// the request carries.
func TestClientReportFieldsAreClipped(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ClientReportMaxBodyBytes = 4 << 20 })
	c := httpFrom(t, "127.0.0.1")
	huge := strings.Repeat("é", 1<<19) // 1 MB of two-byte runes
	body := `{"reports":[{"trace_id":"clip-1","class":"client_connection_lost","url":"wss://x/` + huge + `","time":1,"detail":"` + huge + `"}]}`
	// The user agent within the server's header limit (16 KiB), over the cap.
	h := http.Header{"Content-Type": {"application/json"}, "Origin": {testOrigin}, "User-Agent": {huge[:10_000]}}
	a := do(t, c, http.MethodPost, reportURL(n), h, strings.NewReader(body))
	if a.status != http.StatusAccepted {
		t.Fatalf("status %d body %.200s", a.status, a.body)
	}
	ev := n.sink.wait(t, 5*time.Second, "report", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == "clip-1" })
	for name, v := range map[string]struct {
		got   string
		limit int
	}{
		"url":        {ev.GetClientUrl(), DefaultClientReportMaxURLBytes},
		"detail":     {ev.GetClientDetail(), DefaultClientReportMaxDetailBytes},
		"user_agent": {ev.GetUserAgent(), DefaultMaxUserAgentBytes},
	} {
		if len(v.got) > v.limit || !strings.HasSuffix(v.got, clip.Mark) {
			t.Errorf("%s: %d bytes, marked %t; want at most %d, marked", name, len(v.got), strings.HasSuffix(v.got, clip.Mark), v.limit)
		}
	}
}

func TestClientReportsAreRateLimitedPerClient(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) { c.ClientReportRate, c.ClientReportBurst = 0.01, 1 })
	c := httpFrom(t, "127.0.0.1")
	body := `{"reports":[` + report("rl-1", "client_unreachable") + `]}`
	if a := postReports(t, c, n, testOrigin, "text/plain", body); a.status != http.StatusAccepted {
		t.Fatalf("first: status %d", a.status)
	}
	a := postReports(t, c, n, testOrigin, "text/plain", body)
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("second: status %d, Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	if a := postReports(t, httpFrom(t, "127.0.0.2"), n, testOrigin, "text/plain", body); a.status != http.StatusAccepted {
		t.Errorf("another client: status %d", a.status)
	}
}

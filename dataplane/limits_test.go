package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

// counterValue reads the node's counter name with label=value; label ""
// for a counter without labels of its own.
func counterValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no counter %s{%s=%q}", name, label, value)
	return 0
}

// logBuffer collects a node's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the log lines whose msg is msg, decoded.
func (l *logBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			m["_bytes"] = len(line)
			out = append(out, m)
		}
	}
	return out
}

func jsonLogger(w *logBuffer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(w)
	log.SetFormatter(&logrus.JSONFormatter{})
	return log
}

// Every string a client supplies is capped, valid UTF-8 and marked when
// cut, in the event, its log line and an open connection; each cut and
// repair is counted.
func TestClientStringsAreCappedInEventsAndLogLines(t *testing.T) {
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	n := startNode(t, testPolicy(), func(c *Config) { c.Log, c.Registry = jsonLogger(logs), reg })
	huge := func(prefix string) string { return prefix + strings.Repeat("€", 7<<10/3) } // 7 KiB, 3-byte runes

	tests := []struct {
		name, trace, origin, userAgent string
		truncated, invalid             []field
	}{
		{name: "a 7 KiB Origin and User-Agent", trace: "cap-huge", origin: huge("https://"), userAgent: huge("Mozilla/5.0 "),
			truncated: []field{fieldOrigin, fieldUserAgent}},
		{name: "an Origin and a User-Agent of invalid UTF-8", trace: "cap-invalid", origin: "https://a\xff\xfe.example", userAgent: "agent \xc3",
			invalid: []field{fieldOrigin, fieldUserAgent}},
		{name: "7 KiB of invalid UTF-8", trace: "cap-both", origin: "https://" + strings.Repeat("\xff", 7<<10), userAgent: strings.Repeat("\x80", 7<<10),
			truncated: []field{fieldOrigin, fieldUserAgent}, invalid: []field{fieldOrigin, fieldUserAgent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[string]float64{}
			for f := range numFields {
				before["t"+f.String()] = counterValue(t, reg, "wsfleet_node_event_fields_truncated_total", "field", f.String())
				before["i"+f.String()] = counterValue(t, reg, "wsfleet_node_event_fields_invalid_utf8_total", "field", f.String())
			}
			req := upgradeRequest(tt.trace, tt.origin, func(h map[string]string) { h["User-Agent"] = tt.userAgent })
			if _, status := rawHead(t, n.addr, req); status != 403 {
				t.Fatalf("status %d; want 403", status)
			}
			ev := n.sink.wait(t, 5*time.Second, "origin_rejected", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == tt.trace })
			for _, c := range []struct {
				f         field
				got, sent string
				limit     int
			}{
				{fieldOrigin, ev.GetOrigin(), tt.origin, DefaultMaxOriginBytes},
				{fieldUserAgent, ev.GetUserAgent(), tt.userAgent, DefaultMaxUserAgentBytes},
				{fieldError, ev.GetError(), "", DefaultMaxErrorBytes},
			} {
				if len(c.got) > c.limit || !utf8.ValidString(c.got) {
					t.Errorf("%s is %d bytes (cap %d), valid UTF-8 %t", c.f, len(c.got), c.limit, utf8.ValidString(c.got))
				}
				if cut := len(c.sent) > c.limit; cut && !strings.HasSuffix(c.got, clip.Mark) {
					t.Errorf("%s was cut without the mark: %q", c.f, c.got[max(0, len(c.got)-40):])
				}
			}
			if _, err := proto.Marshal(ev); err != nil {
				t.Errorf("the event does not marshal: %v", err)
			}
			for _, f := range tt.truncated {
				if got := counterValue(t, reg, "wsfleet_node_event_fields_truncated_total", "field", f.String()); got <= before["t"+f.String()] {
					t.Errorf("truncated{%s} did not move", f)
				}
			}
			for _, f := range tt.invalid {
				if got := counterValue(t, reg, "wsfleet_node_event_fields_invalid_utf8_total", "field", f.String()); got <= before["i"+f.String()] {
					t.Errorf("invalid_utf8{%s} did not move", f)
				}
			}
			var line map[string]any
			for _, l := range logs.lines(t, "handshake rejected") {
				if l["trace_id"] == tt.trace {
					line = l
				}
			}
			if line == nil {
				t.Fatal("no log line")
			}
			if b := line["_bytes"].(int); b > 4<<10 {
				t.Errorf("the log line is %d bytes; want it bounded by the caps", b)
			}
			if line["origin"] != ev.GetOrigin() || line["user_agent"] != ev.GetUserAgent() {
				t.Errorf("the log line's origin/user agent differ from the event's")
			}
		})
	}

	t.Run("an error text over its cap is cut", func(t *testing.T) {
		// The node's own reasons quote at most 256 bytes of client text
		// (package admission), within the default cap: a smaller cap shows
		// the cut.
		reg := prometheus.NewRegistry()
		small := startNode(t, testPolicy(), func(c *Config) { c.MaxErrorBytes, c.Registry = 64, reg })
		if _, status := rawHead(t, small.addr, upgradeRequest("cap-error", huge("https://"), nil)); status != 403 {
			t.Fatalf("status %d; want 403", status)
		}
		ev := small.sink.wait(t, 5*time.Second, "origin_rejected", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED))
		if e := ev.GetError(); len(e) > 64 || !utf8.ValidString(e) || !strings.HasSuffix(e, clip.Mark) {
			t.Fatalf("error text %q (%d bytes); want at most 64, marked", e, len(e))
		}
		if got := counterValue(t, reg, "wsfleet_node_event_fields_truncated_total", "field", "error"); got != 1 {
			t.Fatalf("truncated{error} = %v; want 1", got)
		}
	})

	t.Run("an open connection keeps its user agent capped", func(t *testing.T) {
		const trace = "cap-open"
		ua := huge("Mozilla/5.0 ")
		c := mustDial(t, n.addr, dialOpts{header: map[string][]string{"X-Trace-Id": {trace}, "User-Agent": {ua}}})
		s := sessionByTrace(t, n, trace)
		if len(s.userAgent) > DefaultMaxUserAgentBytes || !strings.HasSuffix(s.userAgent, clip.Mark) {
			t.Fatalf("the connection holds a %d-byte user agent", len(s.userAgent))
		}
		_ = c.conn.WriteClose(1000, nil)
		ev := n.sink.wait(t, 5*time.Second, "connection closed", func(ev *wsfleetv1.ErrorEvent) bool {
			return ev.GetTraceId() == trace && ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED
		})
		if ev.GetUserAgent() != s.userAgent {
			t.Fatalf("close event user agent is %d bytes", len(ev.GetUserAgent()))
		}
	})
}

// A raw header may hold any byte; protobuf refuses to marshal a string
// field that is not valid UTF-8. One such Origin must not stop every later
// event from reaching the control plane.
func TestAnInvalidUTF8OriginDoesNotStopTheNodesTelemetry(t *testing.T) {
	f := startFakeTelemetry(t)
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	reporter, err := telemetry.New(telemetry.Config{Conn: conn, NodeID: "node-test", FlushInterval: 20 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = reporter.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	n := startNode(t, testPolicy(), func(c *Config) { c.Sink = reporter })
	for _, tc := range []struct{ trace, origin string }{{"bad-utf8", "https://\xff.example"}, {"after-it", "https://evil.example"}} {
		if _, status := rawHead(t, n.addr, upgradeRequest(tc.trace, tc.origin, nil)); status != 403 {
			t.Fatalf("status %d; want 403", status)
		}
	}
	eventually(t, 10*time.Second, "both events at the control plane", func() bool { return len(f.received()) == 2 })
	got := f.received()
	if got[0].GetTraceId() != "bad-utf8" || got[0].GetOrigin() != "https://\uFFFD.example" || got[1].GetTraceId() != "after-it" {
		t.Fatalf("control plane got %v", got)
	}
	if s := reporter.Stats(); s.LastError != "" {
		t.Fatalf("the telemetry stream failed: %s", s.LastError)
	}
}

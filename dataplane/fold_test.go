package dataplane

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// foldNode is a node that is not listening: requests go straight to
// ServeHTTP, from any remote address.
type foldNode struct {
	*Node
	sink *sink
	reg  *prometheus.Registry
	logs *logBuffer
}

func newFoldNode(t *testing.T, mutate func(*Config)) *foldNode {
	t.Helper()
	fn := &foldNode{sink: newSink(), reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	cfg := Config{
		NodeID: "fold-test", MetricsAddr: "-", Log: jsonLogger(fn.logs), Registry: fn.reg, Sink: fn.sink,
		Policy:     &wsfleetv1.PolicyRevision{Pool: "default", Revision: 1, Policy: testPolicy()},
		FoldWindow: time.Minute, // longer than any test: folds end at Shutdown unless a test says otherwise
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fn.Node = n
	t.Cleanup(func() { fn.shutdown(t) })
	return fn
}

func (fn *foldNode) shutdown(t *testing.T) {
	t.Helper()
	if err := fn.Shutdown(context.Background()); err != nil && err != ErrDraining {
		t.Errorf("Shutdown: %v", err)
	}
}

// reject sends one handshake from origin and remote that the node answers
// 403 (origin not allowed), or 503 once it drains.
func (fn *foldNode) reject(t *testing.T, trace, origin, remote string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Origin", origin)
	r.Header.Set("X-Trace-Id", trace)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	fn.ServeHTTP(w, r)
	want := http.StatusForbidden
	if fn.draining.Load() {
		want = http.StatusServiceUnavailable // node_draining
	}
	// Set by key, spelled as on the wire (admission.TraceHeader).
	if got := w.Header()["X-Trace-ID"]; w.Code != want || len(got) != 1 || got[0] != trace {
		t.Fatalf("answer %d with X-Trace-ID %q; want %d with %q: folding must not change what a client gets", w.Code, got, want, trace)
	}
}

// rejections returns the rejection events recorded and how many
// rejections they stand for.
func (s *sink) rejections() (evs []*wsfleetv1.ErrorEvent, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
			evs = append(evs, ev)
			total += max(1, int(ev.GetRepeat()))
		}
	}
	return evs, total
}

func TestRepeatedRejectionsFoldIntoOneEventWithACount(t *testing.T) {
	fn := newFoldNode(t, nil)
	const rejected = 3000
	fn.reject(t, "flood-0", "https://evil.example", "203.0.113.7:40000")
	// The first is recorded at once — event, log line, metric — so a
	// trace of it works while the window is still open.
	if evs, _ := fn.sink.rejections(); len(evs) != 1 || evs[0].GetTraceId() != "flood-0" || evs[0].GetRepeat() != 0 {
		t.Fatalf("after the first rejection: %v; want its own event at once", evs)
	}
	if lines := fn.logs.lines(t, "handshake rejected"); len(lines) != 1 || lines[0]["trace_id"] != "flood-0" {
		t.Fatalf("log lines %v; want the first rejection's", lines)
	}
	for i := 1; i < rejected; i++ {
		// One client network: the port and the last octet vary.
		fn.reject(t, fmt.Sprint("flood-", i), "https://evil.example", fmt.Sprintf("203.0.113.%d:%d", i%250, 40000+i))
	}
	if evs, _ := fn.sink.rejections(); len(evs) != 1 {
		t.Fatalf("%d events while the window is open; want only the first", len(evs))
	}
	if got := counterValue(t, fn.reg, "wsfleet_node_handshakes_total", "result", "origin_rejected"); got != rejected {
		t.Fatalf("wsfleet_node_handshakes_total{origin_rejected} = %v; want %d: the metric counts every rejection", got, rejected)
	}
	if got := counterValue(t, fn.reg, "wsfleet_node_handshake_rejections_folded_total", "class", "origin_rejected"); got != rejected-1 {
		t.Fatalf("folded = %v; want %d", got, rejected-1)
	}

	fn.shutdown(t) // ends the window
	evs, total := fn.sink.rejections()
	if len(evs) != 2 || total != rejected {
		t.Fatalf("%d events standing for %d rejections; want 2 for exactly %d", len(evs), total, rejected)
	}
	folded := evs[1]
	if folded.GetRepeat() != rejected-1 || folded.GetTraceId() != "flood-1" || folded.GetOrigin() != "https://evil.example" ||
		folded.GetFirstTime() == nil || folded.GetTime().AsTime().Before(folded.GetFirstTime().AsTime()) {
		t.Fatalf("folded event %v; want repeat %d, the first counted one's trace id, first_time ≤ time", folded, rejected-1)
	}
	lines := fn.logs.lines(t, "handshake rejections folded")
	if len(lines) != 1 || lines[0]["repeat"] != float64(rejected-1) || lines[0]["trace_id"] != "flood-1" {
		t.Fatalf("folded log lines %v; want one saying %d", lines, rejected-1)
	}
	if all := fn.logs.lines(t, "handshake rejected"); len(all) != 1 {
		t.Fatalf("%d per-rejection log lines; want 1", len(all))
	}
}

func TestRejectionsAreFoldedOnlyWithinOneOriginAndNetwork(t *testing.T) {
	tests := []struct {
		name          string
		first, second [2]string // origin, remote
		wantOwnEvent  bool
	}{
		{"the same origin from one /24 folds", [2]string{"https://a.example", "203.0.113.7:1"}, [2]string{"https://a.example", "203.0.113.99:2"}, false},
		{"another origin from the same network does not fold", [2]string{"https://a.example", "203.0.113.7:1"}, [2]string{"https://b.example", "203.0.113.7:1"}, true},
		{"the same origin from another IPv4 /24 does not fold", [2]string{"https://a.example", "203.0.113.7:1"}, [2]string{"https://a.example", "198.51.100.7:1"}, true},
		{"the same origin from one IPv6 /64 folds", [2]string{"https://a.example", "[2001:db8:0:1::1]:1"}, [2]string{"https://a.example", "[2001:db8:0:1::2]:1"}, false},
		{"the same origin from another IPv6 /64 does not fold", [2]string{"https://a.example", "[2001:db8:0:1::1]:1"}, [2]string{"https://a.example", "[2001:db8:0:2::1]:1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := newFoldNode(t, nil)
			fn.reject(t, "one", tt.first[0], tt.first[1])
			fn.reject(t, "two", tt.second[0], tt.second[1])
			evs, _ := fn.sink.rejections()
			if own := len(evs) == 2; own != tt.wantOwnEvent {
				t.Fatalf("the second rejection got its own event: %t, want %t (%d events)", own, tt.wantOwnEvent, len(evs))
			}
			fn.shutdown(t)
			if _, total := fn.sink.rejections(); total != 2 {
				t.Fatalf("events stand for %d rejections; want 2", total)
			}
		})
	}
}

func TestAFoldIsRecordedWhenItsWindowEnds(t *testing.T) {
	const window = 200 * time.Millisecond
	fn := newFoldNode(t, func(c *Config) { c.FoldWindow = window })
	for i := range 10 {
		fn.reject(t, fmt.Sprint("w-", i), "https://evil.example", "203.0.113.7:1")
	}
	// The sweeper, not Shutdown: the node keeps running.
	ev := fn.sink.wait(t, 10*time.Second, "the fold", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetRepeat() > 0 })
	if ev.GetRepeat() != 9 || ev.GetTraceId() != "w-1" {
		t.Fatalf("fold %v; want repeat 9 from w-1", ev)
	}
	// The key's next rejection opens a new window, recorded at once.
	fn.reject(t, "w-next", "https://evil.example", "203.0.113.7:1")
	fn.sink.wait(t, 5*time.Second, "the new window's first", func(ev *wsfleetv1.ErrorEvent) bool { return ev.GetTraceId() == "w-next" })
}

func TestAFoldInProgressAtShutdownIsFlushedToTheSink(t *testing.T) {
	fn := newFoldNode(t, nil)
	for i := range 5 {
		fn.reject(t, fmt.Sprint("s-", i), "https://evil.example", "203.0.113.7:1")
	}
	fn.shutdown(t)
	evs, total := fn.sink.rejections()
	if len(evs) != 2 || evs[1].GetRepeat() != 4 || total != 5 {
		t.Fatalf("after Shutdown: %d events standing for %d rejections; want the first and a fold of 4", len(evs), total)
	}
	// After Shutdown, nothing folds: a rejection (a node mounted on
	// another server still answers) is recorded on its own.
	fn.reject(t, "s-after", "https://evil.example", "203.0.113.7:1")
	if evs, total := fn.sink.rejections(); len(evs) != 3 || total != 6 {
		t.Fatalf("a rejection after Shutdown: %d events for %d rejections; want its own event", len(evs), total)
	}
}

func TestAFullFoldTableFoldsNewKeysIntoTheOverflowKey(t *testing.T) {
	fn := newFoldNode(t, func(c *Config) { c.FoldMaxKeys = 4 })
	const rejected = 500
	for i := range rejected {
		// A scanner varying its Origin with every request.
		fn.reject(t, fmt.Sprint("o-", i), fmt.Sprintf("https://o%d.example", i), "203.0.113.7:1")
	}
	if evs, _ := fn.sink.rejections(); len(evs) != 5 {
		t.Fatalf("%d events while the window is open; want 5: four keys and the overflow key's first", len(evs))
	}
	if got := counterValue(t, fn.reg, "wsfleet_node_handshake_rejections_fold_overflow_total", "", ""); got != rejected-4 {
		t.Fatalf("overflow = %v; want %d", got, rejected-4)
	}
	fn.shutdown(t)
	evs, total := fn.sink.rejections()
	if total != rejected || len(evs) != 6 || evs[5].GetOrigin() != "(other)" || evs[5].GetRepeat() != rejected-5 {
		t.Fatalf("%d events standing for %d rejections, last %v; want 6 for %d, the overflow fold with origin (other)", len(evs), total, evs[len(evs)-1], rejected)
	}
}

func TestANegativeFoldWindowRecordsEveryRejection(t *testing.T) {
	fn := newFoldNode(t, func(c *Config) { c.FoldWindow = -1 })
	for i := range 5 {
		fn.reject(t, fmt.Sprint("n-", i), "https://evil.example", "203.0.113.7:1")
	}
	if evs, _ := fn.sink.rejections(); len(evs) != 5 {
		t.Fatalf("%d events; want one per rejection", len(evs))
	}
}

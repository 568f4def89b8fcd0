package wsctl

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestTrace(t *testing.T) {
	fx := newFleetFixture(t)

	t.Run("every event of the trace is explained, oldest first, across nodes", func(t *testing.T) {
		before := time.Now()
		r := fx.run("trace", "abc")
		after := time.Now()
		r.want(t, 0)
		rejected := localTime(fx.ev["rejected"].GetTime()) + `  origin_rejected (handshake rejected)
  signal:      HTTP 403
  cause:       the page's origin is not in the allowlist
  what to do:  fix the allowlist or the page's domain
  status:      HTTP 403
  node:        node-a
  pool:        default
  policy:      revision 6
  origin:      https://evil.example
  remote:      10.0.0.7:5001
  user agent:  Mozilla/5.0 (X11)
  error:       origin "https://evil.example" is not allowed
`
		timeout := localTime(fx.ev["timeout"].GetTime()) + `  heartbeat_timeout (connection closed)
  signal:      close 1006 seen by client
  cause:       the peer was silent past the heartbeat timeout (NAT dropped it, device asleep)
  what to do:  tune heartbeat.interval and heartbeat.timeout
  status:      close 1006
  node:        node-b
  pool:        edge
  origin:      https://app.example
  remote:      10.0.0.7:5010
  user agent:  Mozilla/5.0 (X11)
  connection:  c-17
  duration:    1m2.5s (opened ` + localTime(fx.ev["timeout"].GetOpenTime()) + `)
  messages:    12 in, 30 out
  bytes:       1024 in, 4096 out
  error:       read deadline exceeded after 60s
`
		normal := localTime(fx.ev["normal"].GetTime()) + `  normal (connection closed)
  signal:      close 1000
  cause:       the client or the node closed normally
  what to do:  none
  status:      close 1000
  node:        node-a
  pool:        default
  origin:      (no Origin header)
  remote:      10.0.0.7:5011
  user agent:  -
  connection:  c-18
  duration:    1s
  messages:    0 in, 0 out
  bytes:       0 in, 0 out
  error:       -
`
		want := "trace abc: 3 events on 2 nodes\n\n" + rejected + "\n" + timeout + "\n" + normal
		assertEqual(t, "stdout", r.stdout, want)

		req := fx.fleet.lastQuery()
		f := req.GetFilter()
		if f.GetTraceId() != "abc" || f.GetErrorsOnly() || len(f.GetClasses()) != 0 || req.GetLimit() != traceLimit {
			t.Errorf("sent %v", req)
		}
		within(t, "start time", f.GetStartTime(), 24*time.Hour, before, after)
	})
	t.Run("an event older than since is not found", func(t *testing.T) {
		r := fx.run("trace", "old", "--since", "1h")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: no events for trace old in the last 1h (check the trace id, or look further back with --since; the control plane keeps a bounded number of recent events)\n")
		assertEqual(t, "stdout", r.stdout, "")
	})
	t.Run("the default since of 24h finds it", func(t *testing.T) {
		r := fx.run("trace", "old")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "trace old: 1 event on 1 node\n", "rate_limited (handshake rejected)", "HTTP 429 + Retry-After")
	})
	t.Run("an unknown trace exits 1 and says where to look", func(t *testing.T) {
		r := fx.run("trace", "nope")
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "error: no events for trace nope in the last 24h (check the trace id")
	})
	t.Run("an unknown trace in a truncated range says the trace may be older", func(t *testing.T) {
		fx.fleet.mu.Lock()
		fx.fleet.truncated = true
		fx.fleet.mu.Unlock()
		defer func() {
			fx.fleet.mu.Lock()
			fx.fleet.truncated = false
			fx.fleet.mu.Unlock()
		}()
		r := fx.run("trace", "nope")
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "no longer holds all of the last 24h; the trace may be older")
	})
	t.Run("json parses back, newest first as the API answers", func(t *testing.T) {
		r := fx.run("trace", "abc", "-o", "json")
		r.want(t, 0)
		var resp wsfleetv1.QueryEventsResponse
		parseJSON(t, r.stdout, &resp)
		if len(resp.GetEvents()) != 3 || resp.GetEvents()[0].GetClass() != wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL {
			t.Errorf("got %v", &resp)
		}
	})
	t.Run("yaml parses back", func(t *testing.T) {
		r := fx.run("trace", "abc", "-o", "yaml")
		r.want(t, 0)
		var resp wsfleetv1.QueryEventsResponse
		parseYAML(t, r.stdout, &resp)
		if len(resp.GetEvents()) != 3 || resp.GetEvents()[1].GetDuration().AsDuration() != 62500*time.Millisecond {
			t.Errorf("got %v", &resp)
		}
	})
	t.Run("an unknown trace in yaml still exits 1 with nothing on stdout", func(t *testing.T) {
		r := fx.run("trace", "nope", "-o", "yaml")
		r.want(t, 1)
		assertEqual(t, "stdout", r.stdout, "")
	})
}

func TestTraceAgainstAnUnreachableControlPlane(t *testing.T) {
	addr := closedAddr(t)
	h := &harness{t: t, env: map[string]string{envAddr: addr}}
	r := h.run("trace", "abc")
	r.want(t, exitUnreachable)
	assertContains(t, "stderr", r.stderr, "is unreachable")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("want one line:\n%s", r.stderr)
	}
}

func TestAFoldedEventSaysHowManyRejectionsItStandsFor(t *testing.T) {
	first := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	ev := &wsfleetv1.ErrorEvent{
		Kind:       wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED,
		Class:      wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
		HttpStatus: 403,
		TraceId:    "flood-1",
		NodeId:     "node-a",
		Origin:     "https://evil.example",
		Repeat:     2999,
		FirstTime:  timestamppb.New(first),
		Time:       timestamppb.New(first.Add(9 * time.Second)),
	}
	var b strings.Builder
	writeEventBlock(&b, ev)
	want := "  repeated:    2999 rejections like this one from " + localTime(ev.GetFirstTime()) + " to " + localTime(ev.GetTime()) + "\n"
	assertContains(t, "trace block", b.String(), want)
	assertContains(t, "tail line", eventLine(ev), " repeat=2999")

	ev.Repeat = 0
	b.Reset()
	writeEventBlock(&b, ev)
	if strings.Contains(b.String(), "repeated:") || strings.Contains(eventLine(ev), "repeat=") {
		t.Errorf("a single rejection mentions repeats:\n%s\n%s", b.String(), eventLine(ev))
	}
}

// TestTraceShowsTheClientsViewNextToTheNodes: a failure the client
// reported (it reached no node at first) and the node's rejection of its
// retry, in the order they happened — the report by the client's clock,
// although the node received it last.
func TestTraceShowsTheClientsViewNextToTheNodes(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	at := func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-ago)) }
	report := &wsfleetv1.ErrorEvent{
		Kind: wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT, Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_UNREACHABLE,
		TraceId: "cv", NodeId: "node-a", Pool: "default", Origin: "https://app.example",
		RemoteAddr: "10.0.0.7:6001", UserAgent: "Mozilla/5.0 (X11)",
		Time: at(time.Minute), ClientTime: at(5 * time.Minute),
		ClientUrl: "wss://edge.example/ws?trace_id=cv", ClientDetail: "WebSocket connection\nfailed",
	}
	rejected := &wsfleetv1.ErrorEvent{
		Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
		CloseCode: 4403, TraceId: "cv", NodeId: "node-b", Pool: "default", Origin: "https://app.example",
		RemoteAddr: "10.0.0.7:6002", Time: at(3 * time.Minute),
	}
	h.fleet.setEvents(report, rejected)

	r := h.run("trace", "cv")
	r.want(t, 0)
	want := "trace cv: 2 events on 2 nodes\n\n" +
		localTime(report.GetClientTime()) + "  client saw: client_unreachable at " + localTime(report.GetClientTime()) +
		" url=wss://edge.example/ws?trace_id=cv detail=WebSocket connection failed\n" +
		`  signal:      no connection (reported by the client)
  cause:       the client reached no node: DNS, TCP refused, TLS or the network is down
  what to do:  check DNS, TLS certificates and that nodes listen where clients connect; the client's network
  reported:    ` + localTime(report.GetTime()) + ` to node-a (pool default)
  origin:      https://app.example
  remote:      10.0.0.7:6001
  user agent:  Mozilla/5.0 (X11)

` + localTime(rejected.GetTime()) + `  origin_rejected (handshake rejected)
  signal:      HTTP 403
  cause:       the page's origin is not in the allowlist
  what to do:  fix the allowlist or the page's domain
  status:      close 4403
  node:        node-b
  pool:        default
  origin:      https://app.example
  remote:      10.0.0.7:6002
  user agent:  -
  error:       -
`
	assertEqual(t, "stdout", r.stdout, want)

	for _, format := range []string{"json", "yaml"} {
		t.Run("-o "+format+" carries the client's fields", func(t *testing.T) {
			r := h.run("trace", "cv", "-o", format)
			r.want(t, 0)
			var resp wsfleetv1.QueryEventsResponse
			if format == "json" {
				parseJSON(t, r.stdout, &resp)
			} else {
				parseYAML(t, r.stdout, &resp)
			}
			var got *wsfleetv1.ErrorEvent
			for _, ev := range resp.GetEvents() {
				if ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT {
					got = ev
				}
			}
			if got == nil || got.GetClientUrl() != report.GetClientUrl() || got.GetClientDetail() != report.GetClientDetail() ||
				!got.GetClientTime().AsTime().Equal(report.GetClientTime().AsTime()) || got.GetClass() != report.GetClass() {
				t.Errorf("got %v\n%s", got, r.stdout)
			}
			if !strings.Contains(r.stdout, "client_unreachable") {
				t.Errorf("the class is not written by its name:\n%s", r.stdout)
			}
		})
	}
}

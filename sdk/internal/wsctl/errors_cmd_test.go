package wsctl

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestErrorsTop(t *testing.T) {
	fx := newFleetFixture(t)

	t.Run("by class lists counts, shares, signals and what to do, with a footer", func(t *testing.T) {
		before := time.Now()
		r := fx.run("errors", "top")
		after := time.Now()
		r.want(t, 0)
		ls := lines(r.stdout)
		if len(ls) != 5 {
			t.Fatalf("want a header, two classes, a blank line and a footer:\n%s", r.stdout)
		}
		assertEqual(t, "header", strings.Join(strings.Fields(ls[0]), " "), "CLASS COUNT SHARE SIGNAL WHAT TO DO")
		assertEqual(t, "first row", strings.Join(strings.Fields(ls[1]), " "),
			"origin_rejected 3 75.0% HTTP 403 fix the allowlist or the page's domain")
		assertEqual(t, "second row", strings.Join(strings.Fields(ls[2]), " "),
			"heartbeat_timeout 1 25.0% close 1006 seen by client tune heartbeat.interval and heartbeat.timeout")
		if !strings.HasPrefix(ls[4], "4 errors in the last 15m (") {
			t.Errorf("footer %q", ls[4])
		}

		req := fx.fleet.lastTop()
		if req.GetGroupBy() != wsfleetv1.TopErrorsRequest_GROUP_BY_CLASS || req.GetLimit() != 20 || !req.GetFilter().GetErrorsOnly() {
			t.Errorf("sent %v", req)
		}
		within(t, "start time", req.GetFilter().GetStartTime(), 15*time.Minute, before, after)
	})

	groupings := []struct {
		by     string
		header string
		group  wsfleetv1.TopErrorsRequest_GroupBy
		rows   []string
	}{
		{"origin", "ORIGIN COUNT SHARE TOP CLASS WHAT TO DO", wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN, []string{
			"https://evil.example 2 50.0% origin_rejected fix the allowlist or the page's domain",
			"https://app.example 1 25.0% heartbeat_timeout tune heartbeat.interval and heartbeat.timeout",
			"https://other.example 1 25.0% origin_rejected fix the allowlist or the page's domain",
		}},
		{"node", "NODE COUNT SHARE TOP CLASS WHAT TO DO", wsfleetv1.TopErrorsRequest_GROUP_BY_NODE, []string{
			"node-b 3 75.0% origin_rejected fix the allowlist or the page's domain",
			"node-a 1 25.0% origin_rejected fix the allowlist or the page's domain",
		}},
		{"pool", "POOL COUNT SHARE TOP CLASS WHAT TO DO", wsfleetv1.TopErrorsRequest_GROUP_BY_POOL, []string{
			"edge 3 75.0% origin_rejected fix the allowlist or the page's domain",
			"default 1 25.0% origin_rejected fix the allowlist or the page's domain",
		}},
	}
	for _, g := range groupings {
		t.Run("by "+g.by+" shows each group's top class and what to do", func(t *testing.T) {
			r := fx.run("errors", "top", "--by", g.by)
			r.want(t, 0)
			ls := lines(r.stdout)
			if len(ls) != len(g.rows)+3 {
				t.Fatalf("want a header, %d rows, a blank line and a footer:\n%s", len(g.rows), r.stdout)
			}
			assertEqual(t, "header", strings.Join(strings.Fields(ls[0]), " "), g.header)
			for i, want := range g.rows {
				assertEqual(t, "row", strings.Join(strings.Fields(ls[i+1]), " "), want)
			}
			if got := fx.fleet.lastTop().GetGroupBy(); got != g.group {
				t.Errorf("sent group by %v, want %v", got, g.group)
			}
		})
	}

	t.Run("all includes normal closes and counts events", func(t *testing.T) {
		r := fx.run("errors", "top", "--all")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "\nnormal ", "close 1000", "\n5 events in the last 15m (")
		if fx.fleet.lastTop().GetFilter().GetErrorsOnly() {
			t.Error("sent errors_only with --all")
		}
	})
	t.Run("a longer since reaches older events", func(t *testing.T) {
		r := fx.run("errors", "top", "--since", "3h")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "rate_limited ", "HTTP 429 + Retry-After", "make clients back off", "\n5 errors in the last 3h (")
	})
	t.Run("groups over the limit are counted in the footer", func(t *testing.T) {
		r := fx.run("errors", "top", "--by", "origin", "--limit", "1")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "4 errors in the last 15m (", "; 2 in groups not listed (raise --limit)")
		if got := fx.fleet.lastTop().GetLimit(); got != 1 {
			t.Errorf("sent limit %d, want 1", got)
		}
	})
	t.Run("filters are sent, classes in any spelling", func(t *testing.T) {
		r := fx.run("errors", "top", "--class", "HEARTBEAT_TIMEOUT,error_class_origin_rejected", "--class", "heartbeat_timeout",
			"--node", "node-b", "--pool", "edge", "--origin", "https://app.example")
		r.want(t, 0)
		f := fx.fleet.lastTop().GetFilter()
		want := []wsfleetv1.ErrorClass{wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED}
		if !slices.Equal(f.GetClasses(), want) || f.GetNodeId() != "node-b" || f.GetPool() != "edge" || f.GetOrigin() != "https://app.example" {
			t.Errorf("sent filter %v", f)
		}
		assertContains(t, "stdout", r.stdout, "heartbeat_timeout ", "\n1 error in the last 15m (")
	})
	t.Run("nothing found is a friendly line and success", func(t *testing.T) {
		r := fx.run("errors", "top", "--node", "node-z")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "no errors in the last 15m matching the filters\n")
	})
	t.Run("json parses back", func(t *testing.T) {
		r := fx.run("errors", "top", "-o", "json")
		r.want(t, 0)
		var resp wsfleetv1.TopErrorsResponse
		parseJSON(t, r.stdout, &resp)
		if resp.GetTotal() != 4 || len(resp.GetGroups()) != 2 || resp.GetGroups()[0].GetTopClass() != wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED {
			t.Errorf("got %v", &resp)
		}
	})
	t.Run("yaml parses back", func(t *testing.T) {
		r := fx.run("errors", "top", "--by", "node", "-o", "yaml")
		r.want(t, 0)
		var resp wsfleetv1.TopErrorsResponse
		parseYAML(t, r.stdout, &resp)
		if resp.GetTotal() != 4 || resp.GetGroups()[0].GetKey() != "node-b" || resp.GetGroups()[0].GetCount() != 3 {
			t.Errorf("got %v", &resp)
		}
	})
}

func TestErrorsTopWithoutEvents(t *testing.T) {
	h := newHarness(t)
	for _, tt := range []struct{ args, want string }{
		{"", "no errors in the last 15m\n"},
		{"--since 2h --all", "no events in the last 2h\n"},
	} {
		t.Run("says "+strings.TrimSpace(tt.want), func(t *testing.T) {
			r := h.run(append([]string{"errors", "top"}, strings.Fields(tt.args)...)...)
			r.want(t, 0)
			assertEqual(t, "stdout", r.stdout, tt.want)
		})
	}
}

func TestErrorsTail(t *testing.T) {
	fx := newFleetFixture(t)
	rejected := fx.ev["rejected"]
	rejectedLine := localTime(rejected.GetTime()) +
		`  origin_rejected    HTTP 403    node=node-a origin=https://evil.example remote=10.0.0.7:5001 trace=abc  origin "https://evil.example" is not allowed`
	timeoutLine := localTime(fx.ev["timeout"].GetTime()) +
		`  heartbeat_timeout  close 1006  node=node-b origin=https://app.example remote=10.0.0.7:5010 trace=abc  read deadline exceeded after 60s`

	t.Run("prints the range oldest first, one line per event", func(t *testing.T) {
		before := time.Now()
		r := fx.run("errors", "tail")
		after := time.Now()
		r.want(t, 0)
		ls := lines(r.stdout)
		if len(ls) != 4 {
			t.Fatalf("want the 4 errors of the last 15m:\n%s", r.stdout)
		}
		assertEqual(t, "first line", ls[0], rejectedLine)
		assertEqual(t, "last line", ls[3], timeoutLine)
		assertContains(t, "second line", ls[1], "  origin_rejected    HTTP 403    node=node-b origin=https://evil.example remote=10.0.0.8:5002 trace=t2")
		if strings.HasSuffix(ls[1], " ") {
			t.Errorf("an event without error text leaves trailing space: %q", ls[1])
		}
		assertEqual(t, "stderr", r.stderr, "")
		req := fx.fleet.lastQuery()
		if req.GetLimit() != 50 || !req.GetFilter().GetErrorsOnly() {
			t.Errorf("sent %v", req)
		}
		within(t, "start time", req.GetFilter().GetStartTime(), 15*time.Minute, before, after)
	})
	t.Run("a limit keeps the newest and says so", func(t *testing.T) {
		r := fx.run("errors", "tail", "--limit", "2")
		r.want(t, 0)
		ls := lines(r.stdout)
		if len(ls) != 2 || !strings.Contains(ls[0], "trace=t3") || ls[1] != timeoutLine {
			t.Errorf("want the two newest, oldest first:\n%s", r.stdout)
		}
		assertEqual(t, "stderr", r.stderr, "note: showing the newest 2; raise --limit for more\n")
	})
	t.Run("filters are sent and all includes normal closes", func(t *testing.T) {
		r := fx.run("errors", "tail", "--trace", "abc", "--all", "--node", "node-a", "--origin", "", "--class", "normal,origin_rejected")
		r.want(t, 0)
		ls := lines(r.stdout)
		if len(ls) != 2 || ls[0] != rejectedLine || !strings.Contains(ls[1], "  normal             close 1000  node=node-a origin=- remote=10.0.0.7:5011 trace=abc") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		f := fx.fleet.lastQuery().GetFilter()
		if f.GetTraceId() != "abc" || f.GetErrorsOnly() || f.GetNodeId() != "node-a" || len(f.GetClasses()) != 2 {
			t.Errorf("sent filter %v", f)
		}
	})
	t.Run("a truncated range is noted", func(t *testing.T) {
		fx.fleet.mu.Lock()
		fx.fleet.truncated = true
		fx.fleet.mu.Unlock()
		defer func() {
			fx.fleet.mu.Lock()
			fx.fleet.truncated = false
			fx.fleet.mu.Unlock()
		}()
		r := fx.run("errors", "tail")
		r.want(t, 0)
		assertContains(t, "stderr", r.stderr, "note: the control plane no longer holds every event of the last 15m")
	})
	t.Run("nothing found is a friendly line and success", func(t *testing.T) {
		r := fx.run("errors", "tail", "--origin", "https://nowhere.example")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "no errors in the last 15m matching the filters\n")
	})
	t.Run("json is the response, newest first, and parses back", func(t *testing.T) {
		r := fx.run("errors", "tail", "-o", "json")
		r.want(t, 0)
		var resp wsfleetv1.QueryEventsResponse
		parseJSON(t, r.stdout, &resp)
		if len(resp.GetEvents()) != 4 || resp.GetEvents()[3].GetTraceId() != "abc" || resp.GetEvents()[3].GetHttpStatus() != 403 {
			t.Errorf("got %v", &resp)
		}
	})
	t.Run("yaml parses back", func(t *testing.T) {
		r := fx.run("errors", "tail", "-o", "yaml")
		r.want(t, 0)
		var resp wsfleetv1.QueryEventsResponse
		parseYAML(t, r.stdout, &resp)
		if len(resp.GetEvents()) != 4 || resp.GetEvents()[0].GetClass() != wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT {
			t.Errorf("got %v", &resp)
		}
	})
}

// liveEvent is a new event as a node would report it now.
func liveEvent(trace string) *wsfleetv1.ErrorEvent {
	return &wsfleetv1.ErrorEvent{
		Kind: wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET,
		CloseCode: 1006, TraceId: trace, NodeId: "node-c", Pool: "edge", Origin: "https://app.example",
		RemoteAddr: "10.0.0.20:7000", Time: timestamppb.Now(), Error: "connection reset by peer",
	}
}

func TestErrorsTailFollow(t *testing.T) {
	t.Run("streams the backlog then live events until cancelled, then exits 0", func(t *testing.T) {
		fx := newFleetFixture(t)
		r := fx.start("errors", "tail", "--follow", "--limit", "2", "--node", "node-b")
		fx.waitTailing()
		fx.push(liveEvent("skipped")) // node-c: the filter drops it
		live := liveEvent("live-1")
		live.NodeId = "node-b"
		fx.push(live)
		r.waitFor("the live event", func(out string) bool { return strings.Contains(out, "trace=live-1") })
		if code := r.stop(); code != 0 {
			t.Errorf("exit code %d, want 0; stderr:\n%s", code, r.stderr)
		}
		ls := lines(r.stdout.String())
		if len(ls) != 3 {
			t.Fatalf("want two backlog events and one live one:\n%s", r.stdout)
		}
		assertContains(t, "first line", ls[0], "trace=t3")
		assertContains(t, "second line", ls[1], "trace=abc")
		assertContains(t, "third line", ls[2], localTime(live.GetTime()), "conn_reset", "close 1006", "node=node-b", "connection reset by peer")
		assertEqual(t, "stderr", r.stderr.String(), "")

		req := fx.fleet.lastTail()
		if req.GetBacklog() != 2 || req.GetFilter().GetNodeId() != "node-b" || !req.GetFilter().GetErrorsOnly() || req.GetFilter().GetStartTime() != nil {
			t.Errorf("sent %v", req)
		}
	})
	t.Run("without since the backlog is not cut by time", func(t *testing.T) {
		fx := newFleetFixture(t)
		r := fx.start("errors", "tail", "--follow")
		fx.waitTailing()
		r.waitFor("the backlog", func(out string) bool { return strings.Count(out, "\n") == 5 })
		if code := r.stop(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		assertContains(t, "first line", lines(r.stdout.String())[0], "trace=old")
	})
	t.Run("an explicit since trims the backlog", func(t *testing.T) {
		fx := newFleetFixture(t)
		r := fx.start("errors", "tail", "--follow", "--since", "30m")
		fx.waitTailing()
		fx.push(liveEvent("live-1"))
		r.waitFor("the live event", func(out string) bool { return strings.Contains(out, "trace=live-1") })
		r.stop()
		if out := r.stdout.String(); strings.Contains(out, "trace=old") || strings.Count(out, "\n") != 5 {
			t.Errorf("want the 4 errors of the last 30m and the live one:\n%s", out)
		}
	})
	t.Run("json is one object per line", func(t *testing.T) {
		fx := newFleetFixture(t)
		r := fx.start("errors", "tail", "--follow", "--limit", "1", "-o", "json")
		fx.waitTailing()
		fx.push(liveEvent("live-1"))
		r.waitFor("two lines", func(out string) bool { return strings.Count(out, "\n") == 2 })
		if code := r.stop(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		ls := lines(r.stdout.String())
		var traces []string
		for _, l := range ls {
			var resp wsfleetv1.TailEventsResponse
			parseJSON(t, l, &resp)
			traces = append(traces, resp.GetEvent().GetTraceId())
		}
		assertEqual(t, "traces", strings.Join(traces, ","), "abc,live-1")
	})
	t.Run("yaml is one document per event", func(t *testing.T) {
		fx := newFleetFixture(t)
		r := fx.start("errors", "tail", "--follow", "--limit", "2", "-o", "yaml")
		fx.waitTailing()
		r.waitFor("two documents", func(out string) bool { return strings.Count(out, "---\n") == 2 })
		if code := r.stop(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		docs := strings.Split(r.stdout.String(), "---\n")
		if docs[0] != "" || len(docs) != 3 {
			t.Fatalf("want two documents, each after ---:\n%s", r.stdout)
		}
		var traces []string
		for _, d := range docs[1:] {
			var resp wsfleetv1.TailEventsResponse
			parseYAML(t, d, &resp)
			traces = append(traces, resp.GetEvent().GetTraceId())
		}
		assertEqual(t, "traces", strings.Join(traces, ","), "t3,abc")
	})
	t.Run("a stream the control plane ends is an error", func(t *testing.T) {
		fx := newFleetFixture(t)
		fx.fleet.mu.Lock()
		fx.fleet.endTail = true
		fx.fleet.mu.Unlock()
		r := fx.run("errors", "tail", "--follow", "--limit", "1")
		r.want(t, 1)
		assertContains(t, "stdout", r.stdout, "trace=abc")
		assertEqual(t, "stderr", r.stderr, "error: the control plane ended the event stream\n")
	})
	t.Run("an unreachable control plane fails instead of waiting", func(t *testing.T) {
		addr := closedAddr(t)
		h := &harness{t: t, env: map[string]string{envAddr: addr}}
		r := h.run("errors", "tail", "--follow")
		r.want(t, exitUnreachable)
		assertContains(t, "stderr", r.stderr, "error: the control plane at "+addr+" is unreachable")
	})
}

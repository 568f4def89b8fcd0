package wsctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fleetFixture is a harness whose fake control plane knows three nodes and
// a handful of events spread over the last two hours.
type fleetFixture struct {
	*harness
	now time.Time
	// Events by name; see newFleetFixture.
	ev map[string]*wsfleetv1.ErrorEvent
}

const longNack = "limits.max_connections: 2000000 is over this node's file descriptor limit of 1048576, refusing"

func newFleetFixture(t *testing.T) *fleetFixture {
	t.Helper()
	h := newHarness(t)
	now := time.Now()
	at := func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-ago)) }

	h.fleet.setNodes(
		&wsfleetv1.NodeStatus{
			NodeId: "node-c", Pool: "edge", Address: "10.0.0.3:8080",
		},
		&wsfleetv1.NodeStatus{
			NodeId: "node-b", Pool: "edge", Address: "10.0.0.2:8080", Connected: true,
			AppliedPool: "default", AppliedRevision: 7, LastSeenTime: at(time.Second),
		},
		&wsfleetv1.NodeStatus{
			NodeId: "node-a", Pool: "default", Address: "10.0.0.1:8080",
			AppliedPool: "default", AppliedRevision: 6,
			LastNackRevision: 7, LastNackError: longNack,
			LastSeenTime: at(5*time.Minute + 10*time.Second),
		},
	)

	ev := map[string]*wsfleetv1.ErrorEvent{
		// A rejected handshake of trace abc on node-a.
		"rejected": {
			Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
			HttpStatus: 403, TraceId: "abc", NodeId: "node-a", Pool: "default", Origin: "https://evil.example",
			RemoteAddr: "10.0.0.7:5001", UserAgent: "Mozilla/5.0 (X11)", Time: at(10 * time.Minute),
			Error: `origin "https://evil.example" is not allowed`, PolicyRevision: 6,
		},
		"rejected2": {
			Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
			HttpStatus: 403, TraceId: "t2", NodeId: "node-b", Pool: "edge", Origin: "https://evil.example",
			RemoteAddr: "10.0.0.8:5002", Time: at(9 * time.Minute),
		},
		"rejected3": {
			Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
			HttpStatus: 403, TraceId: "t3", NodeId: "node-b", Pool: "edge", Origin: "https://other.example",
			RemoteAddr: "10.0.0.9:5003", Time: at(8 * time.Minute),
		},
		// The same trace, retried through node-b, then timed out.
		"timeout": {
			Kind: wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT,
			CloseCode: 1006, TraceId: "abc", ConnId: "c-17", NodeId: "node-b", Pool: "edge", Origin: "https://app.example",
			RemoteAddr: "10.0.0.7:5010", UserAgent: "Mozilla/5.0 (X11)", OpenTime: at(8*time.Minute + 2500*time.Millisecond),
			Time: at(7 * time.Minute), Duration: durationpb.New(62500 * time.Millisecond),
			MessagesIn: 12, MessagesOut: 30, BytesIn: 1024, BytesOut: 4096, Error: "read deadline exceeded\nafter 60s",
		},
		// A normal close, left out unless --all.
		"normal": {
			Kind: wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL,
			CloseCode: 1000, TraceId: "abc", ConnId: "c-18", NodeId: "node-a", Pool: "default",
			RemoteAddr: "10.0.0.7:5011", Time: at(6 * time.Minute), Duration: durationpb.New(time.Second),
		},
		// Two hours old: outside the default 15m, inside trace's 24h.
		"old": {
			Kind: wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, Class: wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED,
			HttpStatus: 429, TraceId: "old", NodeId: "node-a", Pool: "default", Origin: "https://app.example",
			RemoteAddr: "10.0.0.5:6000", Time: at(2 * time.Hour),
		},
	}
	all := make([]*wsfleetv1.ErrorEvent, 0, len(ev))
	for _, e := range ev {
		all = append(all, e)
	}
	h.fleet.setEvents(all...)
	return &fleetFixture{harness: h, now: now, ev: ev}
}

// localTime is how wsctl prints an event's time.
func localTime(ts *timestamppb.Timestamp) string {
	return ts.AsTime().Local().Format("2006-01-02T15:04:05.000Z07:00")
}

// lines splits output into its lines, without the final newline.
func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// parseJSON reads wsctl's JSON output back into m. wsctl writes durations
// as policy files do ("1m2.5s"), which protojson does not read ("62.5s"),
// and error classes by their short names with an explanation, so those are
// converted first.
func parseJSON(t *testing.T, data string, m proto.Message) {
	t.Helper()
	var tree any
	if err := json.Unmarshal([]byte(data), &tree); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, data)
	}
	if err := protoDurations(tree); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if err := protoClasses(tree); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	b, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		t.Fatalf("output does not parse back as %T: %v\n%s", m, err, data)
	}
}

// protoDurations rewrites every "duration" value of a JSON tree from Go
// syntax to protojson's seconds.
func protoDurations(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "duration" {
				d, err := time.ParseDuration(s)
				if err != nil {
					return fmt.Errorf("duration %q: %w", s, err)
				}
				v[k] = strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
				continue
			}
			if err := protoDurations(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := protoDurations(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseYAML reads wsctl's YAML output back into m.
func parseYAML(t *testing.T, data string, m proto.Message) {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(data))
	if err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, data)
	}
	parseJSON(t, string(j), m)
}

// within checks that ts is d before a moment between before and after.
func within(t *testing.T, what string, ts *timestamppb.Timestamp, d time.Duration, before, after time.Time) {
	t.Helper()
	if ts == nil {
		t.Fatalf("%s: not set", what)
	}
	got := ts.AsTime()
	if got.Before(before.Add(-d)) || got.After(after.Add(-d)) {
		t.Errorf("%s = %s, want %s before the call (%s..%s)", what, got, d, before.Add(-d), after.Add(-d))
	}
}

// syncBuffer is a bytes.Buffer that a test may read while wsctl writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is wsctl running in the background until its context is
// cancelled.
type running struct {
	t              *testing.T
	cancel         context.CancelFunc
	stdout, stderr *syncBuffer
	done           chan int
}

func (h *harness) start(args ...string) *running {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: h.t, cancel: cancel, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	go func() {
		r.done <- run(ctx, args, strings.NewReader(""), r.stdout, r.stderr, func(k string) string { return h.env[k] })
	}()
	// Never leave it running past the test, whatever happens.
	h.t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// waitFor polls cond for up to 5 seconds.
func (r *running) waitFor(what string, cond func(stdout string) bool) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(r.stdout.String()) {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; stdout:\n%s\nstderr:\n%s", what, r.stdout, r.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop cancels the context, as Ctrl-C does, and returns the exit code.
func (r *running) stop() int {
	r.t.Helper()
	r.cancel()
	return r.wait()
}

func (r *running) wait() int {
	r.t.Helper()
	select {
	case code := <-r.done:
		r.done <- code // for the cleanup
		return code
	case <-time.After(5 * time.Second):
		r.t.Fatalf("wsctl did not return within 5s; stdout:\n%s", r.stdout)
		return -1
	}
}

// waitTailing waits until the fake has sent a tail stream its backlog.
func (h *harness) waitTailing() {
	h.t.Helper()
	select {
	case <-h.fleet.tailing:
	case <-time.After(5 * time.Second):
		h.t.Fatal("no tail stream opened within 5s")
	}
}

// push hands the fake's open tail stream a live event.
func (h *harness) push(ev *wsfleetv1.ErrorEvent) {
	h.t.Helper()
	select {
	case h.fleet.live <- ev:
	case <-time.After(5 * time.Second):
		h.t.Fatal("no tail stream took a live event within 5s")
	}
}

func TestNodesList(t *testing.T) {
	fx := newFleetFixture(t)

	t.Run("table lists nodes by id with revision, state and last nack", func(t *testing.T) {
		r := fx.run("nodes", "list")
		r.want(t, 0)
		want := `NODE    POOL     ADDRESS        REVISION   STATE                LAST NACK
node-a  default  10.0.0.1:8080  default@6  disconnected 5m ago  rev 7: limits.max_connections: 2000000 is over this node'...
node-b  edge     10.0.0.2:8080  default@7  connected            -
node-c  edge     10.0.0.3:8080  -          disconnected         -
`
		assertEqual(t, "stdout", r.stdout, want)
		if got := len([]rune(lines(r.stdout)[1])) - strings.Index(lines(r.stdout)[1], "rev 7"); got != nackWidth {
			t.Errorf("last nack is %d runes, want it cut to %d", got, nackWidth)
		}
	})
	t.Run("the pool flag is sent and only that pool is listed", func(t *testing.T) {
		r := fx.run("nodes", "list", "--pool", "edge")
		r.want(t, 0)
		if got := len(lines(r.stdout)); got != 3 {
			t.Errorf("%d lines, want a header and two nodes:\n%s", got, r.stdout)
		}
		if strings.Contains(r.stdout, "node-a") {
			t.Errorf("node-a of pool default listed:\n%s", r.stdout)
		}
		fx.fleet.mu.Lock()
		got := fx.fleet.nodeReqs[len(fx.fleet.nodeReqs)-1].GetPool()
		fx.fleet.mu.Unlock()
		if got != "edge" {
			t.Errorf("sent pool %q, want edge", got)
		}
	})
	t.Run("an empty pool says so", func(t *testing.T) {
		r := fx.run("nodes", "list", "--pool", "canary")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "no nodes in pool canary\n")
	})
	t.Run("json parses back with the whole nack error, sorted by id", func(t *testing.T) {
		r := fx.run("nodes", "list", "-o", "json")
		r.want(t, 0)
		var resp wsfleetv1.ListNodesResponse
		parseJSON(t, r.stdout, &resp)
		var ids []string
		for _, n := range resp.GetNodes() {
			ids = append(ids, n.GetNodeId())
		}
		assertEqual(t, "node ids", strings.Join(ids, ","), "node-a,node-b,node-c")
		assertEqual(t, "nack error", resp.GetNodes()[0].GetLastNackError(), longNack)
	})
	t.Run("yaml parses back", func(t *testing.T) {
		r := fx.run("nodes", "list", "-o", "yaml")
		r.want(t, 0)
		var resp wsfleetv1.ListNodesResponse
		parseYAML(t, r.stdout, &resp)
		if len(resp.GetNodes()) != 3 || resp.GetNodes()[1].GetAppliedRevision() != 7 || !resp.GetNodes()[1].GetConnected() {
			t.Errorf("got %v", &resp)
		}
	})
}

func TestNodesListPagesThroughTheWholeFleet(t *testing.T) {
	fx := newFleetFixture(t)
	var nodes []*wsfleetv1.NodeStatus
	for i := range 25 {
		nodes = append(nodes, &wsfleetv1.NodeStatus{NodeId: fmt.Sprintf("node-%02d", i), Pool: "edge", Connected: true})
	}
	fx.fleet.setNodes(nodes...)
	fx.fleet.mu.Lock()
	fx.fleet.nodePage = 10
	fx.fleet.mu.Unlock()

	r := fx.run("nodes", "list", "-o", "json")
	r.want(t, 0)
	var resp wsfleetv1.ListNodesResponse
	parseJSON(t, r.stdout, &resp)
	if len(resp.GetNodes()) != 25 || resp.GetNextPageToken() != "" {
		t.Fatalf("%d nodes listed, token %q", len(resp.GetNodes()), resp.GetNextPageToken())
	}
	for i, n := range resp.GetNodes() {
		if want := fmt.Sprintf("node-%02d", i); n.GetNodeId() != want {
			t.Fatalf("node %d is %s, want %s", i, n.GetNodeId(), want)
		}
	}
	fx.fleet.mu.Lock()
	defer fx.fleet.mu.Unlock()
	var tokens []string
	for _, req := range fx.fleet.nodeReqs {
		tokens = append(tokens, req.GetPageToken())
	}
	assertEqual(t, "page tokens sent", strings.Join(tokens, ","), ",10,20")
}

func TestNodesListWithoutNodes(t *testing.T) {
	h := newHarness(t)
	r := h.run("nodes", "list")
	r.want(t, 0)
	assertEqual(t, "stdout", r.stdout, "no nodes have registered with the control plane\n")
}

func TestFleetUsageErrorsExit2(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown nodes subcommand", []string{"nodes", "lst"}, `unknown command "lst" for "wsctl nodes"; did you mean "list"?`},
		{"nodes list with an argument", []string{"nodes", "list", "edge"}, "accepts 0 arg(s), received 1"},
		{"an unknown errors subcommand", []string{"errors", "tpo"}, `unknown command "tpo" for "wsctl errors"; did you mean "top"?`},
		{"an unknown grouping", []string{"errors", "top", "--by", "colour"}, `invalid --by "colour" (want class, origin, node or pool)`},
		{"a since without a unit", []string{"errors", "top", "--since", "15"}, `invalid argument "15" for "--since" flag: time: missing unit in duration "15"`},
		{"a since that is not a duration", []string{"errors", "tail", "--since", "yesterday"}, `invalid argument "yesterday" for "--since" flag`},
		{"a negative since", []string{"errors", "top", "--since", "-5m"}, "--since must be positive, got -5m0s"},
		{"a zero since on trace", []string{"trace", "abc", "--since", "0s"}, "--since must be positive, got 0s"},
		{"an unknown class on top", []string{"errors", "top", "--class", "origin_rejected,bogus"}, `--class: unknown error class "bogus" (valid: origin_rejected, unauthorized, `},
		{"an unknown class on tail", []string{"errors", "tail", "--class", "unspecified"}, `--class: unknown error class "unspecified" (valid: `},
		{"a zero top limit", []string{"errors", "top", "--limit", "0"}, "--limit must be 1 or more, got 0"},
		{"a zero tail limit without follow", []string{"errors", "tail", "--limit", "0"}, "--limit must be 1 or more without --follow, got 0"},
		{"a tail limit over the server's cap", []string{"errors", "tail", "--follow", "--limit", "10001"}, "--limit must be between 0 and 10000, got 10001"},
		{"trace without an id", []string{"trace"}, "accepts 1 arg(s), received 0"},
		{"trace with two ids", []string{"trace", "a", "b"}, "accepts 1 arg(s), received 2"},
		{"trace with a blank id", []string{"trace", " "}, "TRACE_ID must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" exits 2", func(t *testing.T) {
			r := h.run(tt.args...)
			r.want(t, 2)
			ls := lines(r.stderr)
			if len(ls) != 2 || !strings.HasPrefix(ls[0], "error: "+tt.want) {
				t.Errorf("stderr:\n%s\nwant the error %q then a pointer to --help", r.stderr, tt.want)
			}
			assertContains(t, "stderr", r.stderr, "--help' for usage.")
		})
	}
	if n := h.fleet.calls(); n != 0 {
		t.Errorf("usage errors reached the control plane %d times", n)
	}
}

func TestFleetHelpExits0(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{{"nodes"}, {"errors"}, {"errors", "top", "--help"}, {"errors", "tail", "--help"}, {"trace", "--help"}} {
		t.Run("wsctl "+strings.Join(args, " ")+" shows help", func(t *testing.T) {
			r := h.run(args...)
			r.want(t, 0)
			assertContains(t, "stdout", r.stdout, "Usage:")
		})
	}
	r := h.run("--help")
	assertContains(t, "root help", r.stdout, "nodes", "errors", "trace")
}

func TestMainContextEndsAFollowOnCancel(t *testing.T) {
	fx := newFleetFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- MainContext(ctx, []string{"--addr", fx.addr, "errors", "tail", "--follow"}, strings.NewReader(""), stdout, stderr)
	}()
	fx.waitTailing()
	r := &running{t: t, stdout: stdout, stderr: stderr}
	r.waitFor("the backlog", func(out string) bool { return strings.Contains(out, "trace=abc") })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d after cancel, want 0; stderr:\n%s", code, stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("MainContext did not return within 5s of cancel")
	}
}

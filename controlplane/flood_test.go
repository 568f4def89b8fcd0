package controlplane

// The flood test of issue 8: a control plane flooded through every door a
// node credential or an anonymous client has — oversized telemetry events,
// oversized and many hellos, tails that never read, rejected handshakes
// with 7 KB headers through a real node — keeps its heap under a stated
// bound while nodes list, errors top and trace keep answering correctly.
//
// The control plane runs in process (its heap is what runtime.ReadMemStats
// reads; --dev, so the test does not depend on how node credentials are
// written), the node and wsctl are the real binaries.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// The flood, bounded in count (and so in time).
const (
	floodEvents        = 300      // telemetry events ...
	floodEventField    = 500_000  // ... with an origin and a user agent this long
	floodBadHellos     = 100      // hellos with ...
	floodBadLabels     = 64       // ... this many labels ...
	floodBadLabelBytes = 30_000   // ... this long
	floodFleet         = 1000     // valid hellos with labels at their total cap
	floodTails         = 100      // TailEvents streams that never read
	floodHandshakes    = 3000     // anonymous rejected handshakes through the node ...
	floodHeader        = 7 << 10  // ... with an Origin and a User-Agent this long
	floodHeapBound     = 64 << 20 // what the control plane's heap may grow by
)

// controlHeap is the live heap after a full collection, less what this
// test process keeps of the node's log (startProc keeps every line for
// failure messages: 3000 rejections with 7 KB headers make tens of MB).
func controlHeap(node *nodeProc) int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	node.mu.Lock()
	defer node.mu.Unlock()
	return int64(ms.HeapAlloc) - int64(node.logs.Cap())
}

func TestAFloodLeavesTheControlPlaneBoundedAndAnswering(t *testing.T) {
	binaries(t) // the node and wsctl; skipped with -short
	const tailBuffer = 16
	srv := startServer(t, func(c *Config) { c.TailBuffer = tailBuffer })
	addr := srv.GRPCAddr().String()
	node := startNodeProc(t, "--control", addr, "--node-id", "honest", "--cache-file", filepath.Join(t.TempDir(), "c.json"))
	waitFor(t, 10*time.Second, "the honest node registered", func() bool { return nodesList(t, addr)["honest"].Connected })

	// Every gRPC flood goes over its own connection: the tails' must not
	// hold up the others with its flow control. Fixed windows keep the
	// test's own buffers (in this process's heap too) small.
	conn := func() *grpc.ClientConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	base := controlHeap(node)
	logHeap := func(after string) {
		t.Logf("after %s: heap %+.1f MiB", after, float64(controlHeap(node)-base)/(1<<20))
	}

	// Tails first, so that the events below reach them: the first
	// MaxTails are taken and never read, the rest refused.
	tailCtx, stopTails := context.WithCancel(ctx)
	defer stopTails()
	fleet := wsfleetv1.NewFleetServiceClient(conn())
	tails := make([]wsfleetv1.FleetService_TailEventsClient, floodTails)
	for i := range tails {
		var err error
		if tails[i], err = fleet.TailEvents(tailCtx, &wsfleetv1.TailEventsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every tail answered", func() bool {
		return srv.events.Stats().TailSubscribers == telemetry.DefaultMaxTails
	})
	logHeap(fmt.Sprintf("%d tails", floodTails))

	// Oversized telemetry events from a node credential: three 1 MB
	// events per batch, under the 4 MiB message limit.
	report, err := wsfleetv1.NewNodeServiceClient(conn()).ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bigOrigin, bigAgent := "https://"+strings.Repeat("o", floodEventField), strings.Repeat("u", floodEventField)
	for seq := uint64(1); seq <= floodEvents/3; seq++ {
		req := &wsfleetv1.ReportTelemetryRequest{NodeId: "flooder", ReporterId: "flood", Sequence: seq}
		for range 3 {
			req.Events = append(req.Events, &wsfleetv1.ErrorEvent{
				Kind:    wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED,
				Class:   wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION,
				TraceId: fmt.Sprintf("flood-evt-%d", len(req.Events)+3*int(seq-1)),
				Origin:  bigOrigin, UserAgent: bigAgent,
				Time: timestamppb.Now(),
			})
		}
		if err := report.Send(req); err != nil {
			t.Fatal(err)
		}
		if ack, err := report.Recv(); err != nil || ack.GetAckedSequence() != seq {
			t.Fatalf("batch %d: ack %v, %v", seq, ack, err)
		}
	}
	_ = report.CloseSend()
	logHeap(fmt.Sprintf("%d events of %d KB", floodEvents, 2*floodEventField/1000))

	// Hellos: oversized ones are refused; valid ones fill the registry
	// with a fleet whose listing is larger than a gRPC message.
	nodes := wsfleetv1.NewNodeServiceClient(conn())
	hello := func(h *wsfleetv1.NodeHello) error {
		hctx, hcancel := context.WithCancel(ctx)
		defer hcancel()
		st, err := nodes.Watch(hctx)
		if err != nil {
			return err
		}
		if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: h}}); err != nil {
			return err
		}
		_, err = st.Recv() // the push of the default policy, or the refusal
		return err
	}
	badLabels := map[string]string{}
	for i := range floodBadLabels {
		badLabels[fmt.Sprintf("label-%02d", i)] = strings.Repeat("v", floodBadLabelBytes)
	}
	for i := range floodBadHellos {
		if err := hello(&wsfleetv1.NodeHello{NodeId: fmt.Sprintf("bad-%03d", i), Labels: badLabels}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("oversized hello %d: %v", i, err)
		}
	}
	goodLabels := map[string]string{}
	for i := range 16 {
		goodLabels[fmt.Sprintf("label-%02d", i)] = strings.Repeat("v", 240)
	}
	parallel(t, floodFleet, 8, func(i int) error {
		return hello(&wsfleetv1.NodeHello{NodeId: fmt.Sprintf("fleet-%04d", i), Labels: goodLabels})
	})
	logHeap(fmt.Sprintf("%d oversized and %d valid hellos", floodBadHellos, floodFleet))

	// Anonymous: rejected handshakes with 7 KB headers through the real
	// node. The first carries a trace id to look up.
	longOrigin := "https://" + strings.Repeat("a", floodHeader) + ".example"
	longAgent := strings.Repeat("b", floodHeader)
	if s := rawHandshake(t, node.ws, longOrigin, longAgent, "trace_id=flood-first"); s != http.StatusForbidden {
		t.Fatalf("first handshake: status %d", s)
	}
	parallel(t, floodHandshakes-1, 8, func(int) error {
		if s := rawHandshake(t, node.ws, longOrigin, longAgent, ""); s != http.StatusForbidden {
			return fmt.Errorf("status %d", s)
		}
		return nil
	})
	// Every rejection is counted, however the node batched or folded them.
	waitFor(t, 45*time.Second, "the control plane counted every rejected handshake", func() bool {
		return topTotal(t, addr, "--node", "honest") == floodHandshakes
	})
	logHeap(fmt.Sprintf("%d rejected handshakes", floodHandshakes))

	// The bound, with everything still held: tails open, nodes known.
	grown := controlHeap(node) - base
	t.Logf("the control plane's heap grew by %.1f MiB (bound %d MiB); raw events %d (%d bytes), tails dropped %d",
		float64(grown)/(1<<20), floodHeapBound>>20, srv.events.Stats().RawEvents, srv.events.Stats().RawBytes, srv.events.Stats().TailsDropped)
	if grown > floodHeapBound {
		t.Errorf("the control plane's heap grew by %d MiB, over the bound of %d MiB", grown>>20, floodHeapBound>>20)
	}

	t.Run("nodes list answers with every node, in pages", func(t *testing.T) {
		listed := nodesList(t, addr)
		if !listed["honest"].Connected {
			t.Errorf("the honest node is not shown connected: %+v", listed["honest"])
		}
		for i := range floodFleet {
			if _, ok := listed[fmt.Sprintf("fleet-%04d", i)]; !ok {
				t.Fatalf("fleet-%04d not listed", i)
			}
		}
		for id := range listed {
			if strings.HasPrefix(id, "bad-") {
				t.Fatalf("refused hello %s listed", id)
			}
		}
	})
	t.Run("errors top counts exactly", func(t *testing.T) {
		if got := topTotal(t, addr, "--node", "flooder"); got != floodEvents {
			t.Errorf("flooder: %d events, want %d", got, floodEvents)
		}
		if got := topTotal(t, addr, "--node", "honest"); got != floodHandshakes {
			t.Errorf("honest: %d rejections, want %d", got, floodHandshakes)
		}
	})
	t.Run("trace finds the events, their strings capped", func(t *testing.T) {
		for _, tc := range []struct{ trace, node string }{{"flood-first", "honest"}, {"flood-evt-7", "flooder"}} {
			ev := traceEvent(t, addr, tc.trace)
			if ev.NodeID != tc.node || len(ev.Origin) > telemetry.MaxOriginBytes || len(ev.UserAgent) > telemetry.MaxUserAgentBytes ||
				!strings.HasSuffix(ev.Origin, clip.Mark) {
				t.Errorf("trace %s: node %s, origin of %d bytes, user agent of %d bytes", tc.trace, ev.NodeID, len(ev.Origin), len(ev.UserAgent))
			}
		}
	})
	t.Run("tails beyond the cap were refused and the ones that did not read were dropped", func(t *testing.T) {
		if st := srv.events.Stats(); st.TailsDropped != telemetry.DefaultMaxTails {
			t.Errorf("%d tails dropped, want all %d that never read", st.TailsDropped, telemetry.DefaultMaxTails)
		}
		refused, dropped := 0, 0
		for _, tail := range tails {
			for {
				_, err := tail.Recv()
				if err == nil {
					continue
				}
				switch msg := status.Convert(err).Message(); {
				case status.Code(err) != codes.ResourceExhausted:
					t.Fatalf("tail ended with %v", err)
				case strings.Contains(msg, "too many live tails"):
					refused++
				case strings.Contains(msg, "tail dropped"):
					dropped++
				}
				break
			}
		}
		if refused != floodTails-telemetry.DefaultMaxTails || dropped != telemetry.DefaultMaxTails {
			t.Errorf("%d tails refused and %d dropped", refused, dropped)
		}
	})
}

// parallel runs f(0..n-1) on workers goroutines and fails the test on the
// first error.
func parallel(t *testing.T, n, workers int, f func(int) error) {
	t.Helper()
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- fmt.Errorf("%d: %w", i, err)
					return
				}
			}
		})
	}
	func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// rawHandshake sends a WebSocket upgrade with the given Origin and
// User-Agent and returns the HTTP status. It may run on any goroutine.
func rawHandshake(t *testing.T, addr, origin, agent, query string) int {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	path := "/ws"
	if query != "" {
		path += "?" + query
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: " + origin + "\r\nUser-Agent: " + agent + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Error(err)
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	return resp.StatusCode
}

// topTotal is the total of `wsctl errors top` with args.
func topTotal(t *testing.T, addr string, args ...string) int64 {
	t.Helper()
	out := mustWsctl(t, addr, "", append([]string{"errors", "top", "--since", "1h", "-o", "json"}, args...)...)
	var resp struct {
		Total json.RawMessage `json:"total"` // a number, or a string as protojson writes an int64
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("errors top -o json: %v\n%s", err, out)
	}
	if len(resp.Total) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(strings.Trim(string(resp.Total), `"`), 10, 64)
	if err != nil {
		t.Fatalf("total %s", resp.Total)
	}
	return n
}

type traceJSON struct {
	NodeID    string `json:"node_id"`
	Origin    string `json:"origin"`
	UserAgent string `json:"user_agent"`
}

// traceEvent is the one event `wsctl trace` shows for trace.
func traceEvent(t *testing.T, addr, trace string) traceJSON {
	t.Helper()
	out := mustWsctl(t, addr, "", "trace", trace, "-o", "json")
	var resp struct {
		Events []traceJSON `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Events) != 1 {
		t.Fatalf("trace %s -o json: %v\n%.2000s", trace, err, out)
	}
	return resp.Events[0]
}

func TestTheBoundFlagsReachTheControlPlane(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev", "--max-tails", "1", "--max-nodes", "1")
	cc, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("a tail beyond --max-tails is refused", func(t *testing.T) {
		// An event for the first tail's backlog: once it has it, the tail
		// holds the one slot.
		report, err := wsfleetv1.NewNodeServiceClient(cc).ReportTelemetry(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev := &wsfleetv1.ErrorEvent{Class: wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, TraceId: "t1"}
		if err := report.Send(&wsfleetv1.ReportTelemetryRequest{NodeId: "n0", ReporterId: "r", Sequence: 1, Events: []*wsfleetv1.ErrorEvent{ev}}); err != nil {
			t.Fatal(err)
		}
		if _, err := report.Recv(); err != nil {
			t.Fatal(err)
		}
		fleet := wsfleetv1.NewFleetServiceClient(cc)
		first, err := fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{Backlog: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Recv(); err != nil {
			t.Fatal(err)
		}
		second, err := fleet.TailEvents(ctx, &wsfleetv1.TailEventsRequest{})
		if err == nil {
			_, err = second.Recv()
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "at most 1") {
			t.Fatalf("second tail: %v", err)
		}
	})
	t.Run("a node beyond --max-nodes is refused while the first is connected", func(t *testing.T) {
		nodes := wsfleetv1.NewNodeServiceClient(cc)
		watch := func(id string) (wsfleetv1.NodeService_WatchClient, error) {
			st, err := nodes.Watch(ctx)
			if err != nil {
				return nil, err
			}
			if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{NodeId: id}}}); err != nil {
				return nil, err
			}
			_, err = st.Recv()
			return st, err
		}
		if _, err := watch("n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := watch("n2"); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `node "n2" not admitted`) {
			t.Fatalf("second node: %v", err)
		}
	})
}

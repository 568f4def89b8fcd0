package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

// got is one batch as the fake control plane received it.
type got struct {
	reporter string
	seq      uint64
	traceIDs []string
	dropped  uint64
	node     string
	pool     string
	traffic  []int64 // the samples' policy_revision, which tests use as an id
}

// fakeNode is a NodeService whose ReportTelemetry ingests batches the way
// the control plane must: in order per reporter, duplicates (same reporter
// id and sequence) dropped but acknowledged. It can refuse streams, fail
// them after ingesting, stop reading (stall) and hold acknowledgements.
type fakeNode struct {
	wsfleetv1.UnimplementedNodeServiceServer

	mu       sync.Mutex
	received []got             // every batch, duplicates included
	last     map[string]uint64 // reporter id → highest sequence ingested
	events   uint64            // events in distinct batches
	dropped  uint64            // dropped fields of distinct batches
	samples  []int64           // traffic samples of distinct batches, by policy_revision
	dups     int
	gaps     []string // sequences that skipped ahead: the reporter lost a batch
	streams  int
	refuse   error         // every stream fails with it at once
	failNext int           // the next N new batches are ingested, then the stream fails unacknowledged
	stall    chan struct{} // while open, the handler does not call Recv
	hold     chan struct{} // while open, acknowledgements wait
}

func (f *fakeNode) ReportTelemetry(st wsfleetv1.NodeService_ReportTelemetryServer) error {
	f.mu.Lock()
	f.streams++
	refuse := f.refuse
	f.mu.Unlock()
	if refuse != nil {
		return refuse
	}
	for {
		if err := f.gate(st.Context(), func() chan struct{} { return f.stall }); err != nil {
			return err
		}
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if f.ingest(req) {
			return status.Error(codes.Unavailable, "injected failure")
		}
		if err := f.gate(st.Context(), func() chan struct{} { return f.hold }); err != nil {
			return err
		}
		if err := st.Send(&wsfleetv1.ReportTelemetryResponse{AckedSequence: req.GetSequence()}); err != nil {
			return err
		}
	}
}

// gate waits while the channel pick returns is open (non-nil).
func (f *fakeNode) gate(ctx context.Context, pick func() chan struct{}) error {
	f.mu.Lock()
	ch := pick()
	f.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ingest records req and reports whether the stream should now fail.
func (f *fakeNode) ingest(req *wsfleetv1.ReportTelemetryRequest) (fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := got{reporter: req.GetReporterId(), seq: req.GetSequence(), dropped: req.GetDropped(), node: req.GetNodeId(), pool: req.GetPool()}
	for _, ev := range req.GetEvents() {
		g.traceIDs = append(g.traceIDs, ev.GetTraceId())
	}
	for _, s := range req.GetTraffic() {
		g.traffic = append(g.traffic, s.GetPolicyRevision())
	}
	f.received = append(f.received, g)
	if f.last == nil {
		f.last = map[string]uint64{}
	}
	last := f.last[g.reporter]
	switch {
	case g.seq <= last:
		f.dups++
		return false
	case g.seq != last+1:
		f.gaps = append(f.gaps, fmt.Sprintf("reporter %s: sequence %d after %d", g.reporter, g.seq, last))
		return false
	}
	f.last[g.reporter] = g.seq
	f.events += uint64(len(g.traceIDs))
	f.dropped += g.dropped
	f.samples = append(f.samples, g.traffic...)
	if f.failNext > 0 {
		f.failNext--
		return true
	}
	return false
}

func (f *fakeNode) setStall(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && f.stall == nil {
		f.stall = make(chan struct{})
	}
	if !on && f.stall != nil {
		close(f.stall)
		f.stall = nil
	}
}

func (f *fakeNode) setHold(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && f.hold == nil {
		f.hold = make(chan struct{})
	}
	if !on && f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
}

func (f *fakeNode) setRefuse(err error) {
	f.mu.Lock()
	f.refuse = err
	f.mu.Unlock()
}

func (f *fakeNode) setFailNext(n int) {
	f.mu.Lock()
	f.failNext = n
	f.mu.Unlock()
}

// totals are the fake's sums over distinct batches.
type totals struct {
	events, dropped uint64
	dups, streams   int
	batches         int // received, duplicates included
	gaps            []string
}

func (f *fakeNode) totals() totals {
	f.mu.Lock()
	defer f.mu.Unlock()
	return totals{events: f.events, dropped: f.dropped, dups: f.dups, streams: f.streams, batches: len(f.received), gaps: append([]string(nil), f.gaps...)}
}

func (f *fakeNode) batches() []got {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]got(nil), f.received...)
}

// startFake serves a fakeNode on 127.0.0.1:0 and returns it with a client
// connection to it; both stop at the end of the test.
func startFake(t testing.TB) (*fakeNode, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{}
	srv := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(srv, f)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop() // not Graceful: a stalled handler would never return
		<-served
	})
	return f, conn
}

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func newReporter(t testing.TB, conn *grpc.ClientConn, mutate func(*telemetry.Config)) *telemetry.Reporter {
	t.Helper()
	cfg := telemetry.Config{
		Conn:          conn,
		NodeID:        "node-1",
		Pool:          "edge",
		FlushInterval: 20 * time.Millisecond,
		MinBackoff:    5 * time.Millisecond,
		MaxBackoff:    50 * time.Millisecond,
		Log:           quietLog(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := telemetry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run starts r.Run and returns a stop function, also called at cleanup,
// that cancels it and checks that it returns promptly with nil.
func run(t testing.TB, r *telemetry.Reporter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel; want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// event builds an event whose user agent pads it to roughly pad bytes.
func event(i, pad int) *wsfleetv1.ErrorEvent {
	return &wsfleetv1.ErrorEvent{
		Kind:       wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED,
		Class:      wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET,
		CloseCode:  1006,
		TraceId:    fmt.Sprintf("t%06d", i),
		RemoteAddr: "127.0.0.1:5555",
		UserAgent:  strings.Repeat("u", pad),
	}
}

func flush(t testing.TB, r *telemetry.Reporter, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v (stats %+v)", err, r.Stats())
	}
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkAccounting asserts the invariant once everything is
// acknowledged: the control plane holds exactly recorded − dropped events
// and was told of every drop exactly once.
func checkAccounting(t testing.TB, f *fakeNode, r *telemetry.Reporter) {
	t.Helper()
	s, tot := r.Stats(), f.totals()
	if len(tot.gaps) > 0 {
		t.Errorf("the control plane saw sequence gaps: %v", tot.gaps)
	}
	if tot.events != s.Recorded-s.Dropped {
		t.Errorf("control plane holds %d events; recorded %d − dropped %d = %d", tot.events, s.Recorded, s.Dropped, s.Recorded-s.Dropped)
	}
	if tot.dropped != s.Dropped {
		t.Errorf("batches reported %d drops; the reporter dropped %d", tot.dropped, s.Dropped)
	}
	if s.Recorded != s.Acked+s.Dropped+uint64(s.Buffered) {
		t.Errorf("stats %+v: recorded ≠ acked + dropped + buffered", s)
	}
	if s.Acked != tot.events || s.Buffered != 0 || s.BufferedBytes != 0 || s.InFlight != 0 {
		t.Errorf("after a flush: %+v; want Acked %d and nothing buffered", s, tot.events)
	}
}

// trafficSamples returns the samples of distinct batches, in order.
func (f *fakeNode) trafficSamples() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.samples)
}

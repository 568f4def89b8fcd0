package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewChecksConfig(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tests := []struct {
		name   string
		mutate func(*telemetry.Config)
		want   error // nil: New succeeds
	}{
		{"a connection and a node id are enough", func(*telemetry.Config) {}, nil},
		{"no connection is refused", func(c *telemetry.Config) { c.Conn = nil }, telemetry.ErrConfig},
		{"no node id is refused", func(c *telemetry.Config) { c.NodeID = "" }, telemetry.ErrConfig},
		{"a negative event bound is refused", func(c *telemetry.Config) { c.MaxEvents = -1 }, telemetry.ErrConfig},
		{"a negative flush interval is refused", func(c *telemetry.Config) { c.FlushInterval = -time.Second }, telemetry.ErrConfig},
		{"a byte bound under 1 KiB is refused", func(c *telemetry.Config) { c.MaxBytes = 100 }, telemetry.ErrConfig},
		{"a batch larger than the buffer is refused", func(c *telemetry.Config) { c.MaxEvents, c.BatchSize = 10, 11 }, telemetry.ErrConfig},
		{"a small buffer shrinks the default batch to fit", func(c *telemetry.Config) { c.MaxEvents = 10 }, nil},
		{"a batch near gRPC's message limit is refused", func(c *telemetry.Config) { c.BatchBytes = 4 << 20 }, telemetry.ErrConfig},
		{"a minimum backoff above the maximum is refused", func(c *telemetry.Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, telemetry.ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := telemetry.Config{Conn: conn, NodeID: "n"}
			tt.mutate(&cfg)
			_, err := telemetry.New(cfg)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("New: %v; want %v", err, tt.want)
			}
		})
	}
}

func TestBatching(t *testing.T) {
	t.Run("a full batch goes out without waiting for the interval", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.BatchSize, c.FlushInterval = 10, time.Hour })
		run(t, r)
		for i := range 25 {
			r.Record(event(i, 0))
		}
		eventually(t, 5*time.Second, "two full batches", func() bool { return f.totals().batches == 2 })
		flush(t, r, 5*time.Second) // the remaining 5 go now, not in an hour
		bs := f.batches()
		if len(bs) != 3 {
			t.Fatalf("got %d batches; want 3", len(bs))
		}
		next := 0
		for i, b := range bs {
			if want := []int{10, 10, 5}[i]; len(b.traceIDs) != want {
				t.Errorf("batch %d has %d events; want %d", i, len(b.traceIDs), want)
			}
			if b.seq != uint64(i+1) || b.reporter != r.ReporterID() || b.node != "node-1" || b.pool != "edge" {
				t.Errorf("batch %d: seq %d reporter %q node %q pool %q", i, b.seq, b.reporter, b.node, b.pool)
			}
			for _, id := range b.traceIDs {
				if want := fmt.Sprintf("t%06d", next); id != want {
					t.Fatalf("event %s arrived where %s was expected: order lost", id, want)
				}
				next++
			}
		}
		checkAccounting(t, f, r)
	})

	t.Run("a partial batch goes out after the flush interval", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.FlushInterval = 30 * time.Millisecond })
		run(t, r)
		for i := range 3 {
			r.Record(event(i, 0))
		}
		eventually(t, 5*time.Second, "the 3 events without a Flush", func() bool { return f.totals().events == 3 })
		eventually(t, 5*time.Second, "the acknowledgement", func() bool { return r.Stats().Acked == 3 })
	})

	t.Run("a batch stops at BatchBytes", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.BatchBytes, c.FlushInterval = 4096, time.Hour })
		run(t, r)
		for i := range 20 {
			r.Record(event(i, 1000))
		}
		flush(t, r, 5*time.Second)
		for _, b := range f.batches() {
			if n := len(b.traceIDs); n == 0 || n > 4 {
				t.Errorf("batch %d has %d events of ~1 KiB; want 1 to 4 under 4 KiB", b.seq, n)
			}
		}
		checkAccounting(t, f, r)
	})
}

func TestRecordFillsNodeAndPool(t *testing.T) {
	_, conn := startFake(t)
	r := newReporter(t, conn, nil)
	ev := event(0, 0)
	ev.NodeId = "other"
	r.Record(ev)
	blank := event(1, 0)
	r.Record(blank)
	if ev.GetNodeId() != "other" || ev.GetPool() != "edge" || blank.GetNodeId() != "node-1" || blank.GetPool() != "edge" {
		t.Fatalf("node/pool: kept %q/%q, filled %q/%q", ev.GetNodeId(), ev.GetPool(), blank.GetNodeId(), blank.GetPool())
	}
	r.Record(nil) // ignored, not counted
	if s := r.Stats(); s.Recorded != 2 || s.Buffered != 2 || s.BufferedBytes != proto.Size(ev)+proto.Size(blank) {
		t.Fatalf("stats %+v; want 2 recorded and buffered", s)
	}
}

func TestFlush(t *testing.T) {
	t.Run("nothing recorded returns at once even without Run", func(t *testing.T) {
		_, conn := startFake(t)
		r := newReporter(t, conn, nil)
		if err := r.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("events before the first Run wait for it", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, nil)
		r.Record(event(0, 0))
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := r.Flush(short); !errors.Is(err, telemetry.ErrFlush) {
			t.Fatalf("Flush without Run: %v; want ErrFlush at the deadline", err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Flush(context.Background()) }()
		run(t, r)
		if err := <-done; err != nil {
			t.Fatalf("Flush started before Run: %v", err)
		}
		checkAccounting(t, f, r)
	})

	t.Run("events after Run stopped fail at once with ErrNotRunning", func(t *testing.T) {
		_, conn := startFake(t)
		r := newReporter(t, conn, nil)
		run(t, r)()
		r.Record(event(0, 0))
		if err := r.Flush(context.Background()); !errors.Is(err, telemetry.ErrNotRunning) {
			t.Fatalf("Flush: %v; want ErrNotRunning", err)
		}
	})

	t.Run("it waits for the acknowledgement, not just the send", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.FlushInterval = time.Hour })
		run(t, r)
		f.setHold(true)
		for i := range 5 {
			r.Record(event(i, 0))
		}
		short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := r.Flush(short)
		cancel()
		if !errors.Is(err, telemetry.ErrFlush) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Flush with acks held: %v; want ErrFlush wrapping DeadlineExceeded", err)
		}
		if tot := f.totals(); tot.events != 5 {
			t.Fatalf("the control plane received %d events; want the 5 sent by the first Flush", tot.events)
		}
		if s := r.Stats(); s.Sent != 5 || s.Acked != 0 || s.InFlight != 1 || s.Buffered != 5 {
			t.Fatalf("stats while unacknowledged: %+v", s)
		}

		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- r.Flush(ctx)
		}()
		select {
		case err := <-done:
			t.Fatalf("Flush returned (%v) while the acknowledgement was held", err)
		case <-time.After(100 * time.Millisecond):
		}
		f.setHold(false)
		if err := <-done; err != nil {
			t.Fatalf("Flush after the acknowledgement: %v", err)
		}
		checkAccounting(t, f, r)
	})

	t.Run("it stops waiting when Run stops", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, nil)
		stop := run(t, r)
		f.setHold(true)
		r.Record(event(0, 0))
		done := make(chan error, 1)
		go func() { done <- r.Flush(context.Background()) }()
		eventually(t, 5*time.Second, "the batch at the control plane", func() bool { return f.totals().batches == 1 })
		stop()
		select {
		case err := <-done:
			if !errors.Is(err, telemetry.ErrNotRunning) {
				t.Fatalf("Flush: %v; want ErrNotRunning", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Flush still waiting 5s after Run returned")
		}
		f.setHold(false)
	})
}

// The scenario: the control plane stops reading while traffic
// flows. Record must keep returning, the buffer must stay within its
// bounds, drops must be counted, and after recovery the control plane's
// count must equal recorded − dropped.
func TestFinalFlush(t *testing.T) {
	t.Run("with the control plane down it returns at once with what it could not deliver", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		_ = lis.Close() // nothing listens there any more
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r := newReporter(t, conn, nil)
		run(t, r)
		for i := range 3 {
			r.Record(event(i, 10))
		}
		eventually(t, 5*time.Second, "a failed stream", func() bool { return r.Stats().LastError != "" })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		left, err := r.FinalFlush(ctx)
		if !errors.Is(err, telemetry.ErrNotConnected) || left != 3 {
			t.Fatalf("FinalFlush = %d, %v; want 3 undelivered and ErrNotConnected", left, err)
		}
		if ctx.Err() != nil {
			t.Fatal("FinalFlush waited for its context with no control plane to wait for")
		}
	})

	t.Run("with a stream open it delivers everything", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.FlushInterval = time.Hour })
		run(t, r)
		eventually(t, 5*time.Second, "connected", func() bool { return r.Stats().Connected })
		for i := range 3 {
			r.Record(event(i, 10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if left, err := r.FinalFlush(ctx); left != 0 || err != nil {
			t.Fatalf("FinalFlush = %d, %v; want everything delivered", left, err)
		}
		if got := f.totals().events; got != 3 {
			t.Fatalf("the control plane holds %d events, want 3", got)
		}
	})

	t.Run("with a control plane that does not acknowledge it gives up when its context ends", func(t *testing.T) {
		f, conn := startFake(t)
		f.setHold(true)
		t.Cleanup(func() { f.setHold(false) })
		r := newReporter(t, conn, nil)
		run(t, r)
		eventually(t, 5*time.Second, "connected", func() bool { return r.Stats().Connected })
		for i := range 3 {
			r.Record(event(i, 10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if left, err := r.FinalFlush(ctx); left != 3 || !errors.Is(err, telemetry.ErrFlush) {
			t.Fatalf("FinalFlush = %d, %v; want 3 undelivered and ErrFlush", left, err)
		}
	})

	t.Run("with nothing buffered it succeeds without a control plane", func(t *testing.T) {
		conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r := newReporter(t, conn, nil)
		if left, err := r.FinalFlush(context.Background()); left != 0 || err != nil {
			t.Fatalf("FinalFlush = %d, %v; want 0, nil", left, err)
		}
	})
}

func TestStalledControlPlane(t *testing.T) {
	f, conn := startFake(t)
	const maxEvents, maxBytes = 2000, 1 << 20
	r := newReporter(t, conn, func(c *telemetry.Config) {
		c.MaxEvents, c.MaxBytes, c.BatchSize, c.MaxInFlight = maxEvents, maxBytes, 200, 4
	})
	run(t, r)
	for i := range 50 {
		r.Record(event(i, 1000))
	}
	flush(t, r, 5*time.Second)

	// ~1 KiB events and 200-event batches: one batch overflows the stream's
	// flow-control window, so the sender blocks in Send.
	f.setStall(true)
	const n = 100_000
	done := make(chan string, 1)
	go func() {
		for i := range n {
			r.Record(event(50+i, 1000))
			if i%1000 == 0 {
				if s := r.Stats(); s.Buffered > maxEvents || s.BufferedBytes > maxBytes || s.InFlight > 4 ||
					s.Recorded != s.Acked+s.Dropped+uint64(s.Buffered) {
					done <- fmt.Sprintf("over a bound after %d events: %+v", i, s)
					return
				}
			}
		}
		done <- ""
	}()
	select {
	case msg := <-done:
		if msg != "" {
			t.Fatal(msg)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("100k Records did not complete in 60s with the control plane stalled: Record blocks (stats %+v)", r.Stats())
	}
	s := r.Stats()
	if s.Recorded != n+50 || s.Dropped == 0 || s.Buffered > maxEvents || s.BufferedBytes > maxBytes {
		t.Fatalf("while stalled: %+v; want %d recorded, drops counted, within bounds", s, n+50)
	}
	t.Logf("stalled: %+v", s)
	if tot := f.totals(); tot.events >= s.Recorded-s.Dropped {
		t.Fatalf("the stalled control plane already holds %d events; the stall did not hold", tot.events)
	}

	f.setStall(false)
	flush(t, r, 20*time.Second)
	checkAccounting(t, f, r)
}

func TestStreamFailureResendsWithTheSameSequence(t *testing.T) {
	f, conn := startFake(t)
	r := newReporter(t, conn, func(c *telemetry.Config) { c.BatchSize = 10 })
	run(t, r)
	f.setFailNext(3) // ingest, then fail before acknowledging
	for i := range 100 {
		r.Record(event(i, 0))
	}
	flush(t, r, 10*time.Second)

	tot := f.totals()
	if tot.dups < 3 || tot.streams < 4 {
		t.Fatalf("the control plane saw %d duplicates on %d streams; want at least 3 on 4", tot.dups, tot.streams)
	}
	bySeq := map[uint64]string{}
	for _, b := range f.batches() {
		content := strings.Join(b.traceIDs, ",")
		if prev, ok := bySeq[b.seq]; ok && prev != content {
			t.Fatalf("sequence %d was resent with different events:\n%s\n%s", b.seq, prev, content)
		}
		bySeq[b.seq] = content
	}
	s := r.Stats()
	if s.Resent < 3 || s.Streams < 4 || !strings.Contains(s.LastError, "injected failure") || s.Sent != 100 {
		t.Fatalf("stats %+v; want ≥3 resent, ≥4 streams, the failure as LastError, 100 sent once", s)
	}
	checkAccounting(t, f, r)
}

func TestRefusedStreamIsRetriedWithBackoff(t *testing.T) {
	f, conn := startFake(t)
	f.setRefuse(status.Error(codes.PermissionDenied, "no node role"))
	r := newReporter(t, conn, func(c *telemetry.Config) { c.MinBackoff, c.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond })
	run(t, r)
	r.Record(event(0, 0))
	eventually(t, 5*time.Second, "three refused attempts", func() bool { return f.totals().streams >= 3 })
	s := r.Stats()
	if !strings.Contains(s.LastError, "no node role") || s.Acked != 0 {
		t.Fatalf("stats %+v; want the refusal as LastError and nothing acknowledged", s)
	}
	// Full jitter capped at 40ms averages 20ms a wait: ~25 attempts in
	// 500ms. A tight loop would make thousands.
	before := f.totals().streams
	time.Sleep(500 * time.Millisecond)
	if tried := f.totals().streams - before; tried > 200 {
		t.Fatalf("%d attempts in 500ms: retrying without backoff", tried)
	}

	f.setRefuse(nil)
	flush(t, r, 5*time.Second)
	if s := r.Stats(); !s.Connected {
		t.Fatalf("stats %+v; want connected after recovery", s)
	}
	checkAccounting(t, f, r)
}

func TestDropsWhileDisconnectedTravelInTheNextBatch(t *testing.T) {
	f, conn := startFake(t)
	r := newReporter(t, conn, func(c *telemetry.Config) { c.MaxEvents = 100 })
	for i := range 10_000 {
		r.Record(event(i, 0))
	}
	if s := r.Stats(); s.Buffered != 100 || s.Dropped != 9_900 {
		t.Fatalf("stats %+v; want 100 buffered and 9,900 dropped", s)
	}
	run(t, r)
	flush(t, r, 5*time.Second)
	bs := f.batches()
	if len(bs) == 0 || bs[0].dropped != 9_900 || bs[0].traceIDs[0] != "t009900" {
		t.Fatalf("first batch %+v; want the 9,900 drops and the newest 100 events (oldest dropped)", bs[0])
	}
	checkAccounting(t, f, r)
}

func TestOversizedEventIsDroppedAndReported(t *testing.T) {
	f, conn := startFake(t)
	r := newReporter(t, conn, func(c *telemetry.Config) { c.MaxBytes = 4096 })
	run(t, r)
	r.Record(event(0, 0))
	r.Record(event(1, 5000))
	r.Record(event(2, 0))
	flush(t, r, 5*time.Second)
	if s := r.Stats(); s.Dropped != 1 || s.Acked != 2 {
		t.Fatalf("stats %+v; want the big one dropped and the others delivered", s)
	}
	checkAccounting(t, f, r)
}

func TestInFlightBatchesAreBoundedAndNeverDropped(t *testing.T) {
	f, conn := startFake(t)
	r := newReporter(t, conn, func(c *telemetry.Config) { c.MaxEvents, c.BatchSize, c.MaxInFlight = 50, 10, 2 })
	run(t, r)
	f.setHold(true)
	for i := range 20 {
		r.Record(event(i, 0))
	}
	eventually(t, 5*time.Second, "two batches in flight", func() bool { return r.Stats().InFlight == 2 })
	for i := 20; i < 1000; i++ {
		r.Record(event(i, 0))
	}
	s := r.Stats()
	if s.InFlight != 2 || s.Buffered != 50 || s.Dropped != 1000-50 {
		t.Fatalf("stats %+v; want 2 batches in flight, 50 held, 950 dropped", s)
	}
	if tot := f.totals(); tot.batches > 2 {
		t.Fatalf("the control plane received %d batches with 2 unacknowledged; want at most 2", tot.batches)
	}
	f.setHold(false)
	flush(t, r, 5*time.Second)
	bs := f.batches()
	if bs[0].traceIDs[0] != "t000000" || bs[1].traceIDs[9] != "t000019" {
		t.Fatalf("in-flight events were replaced: %v %v", bs[0].traceIDs, bs[1].traceIDs)
	}
	checkAccounting(t, f, r)
}

func TestRun(t *testing.T) {
	t.Run("it returns when its context ends, even with a send blocked", func(t *testing.T) {
		f, conn := startFake(t)
		f.setStall(true)
		r := newReporter(t, conn, func(c *telemetry.Config) { c.BatchSize = 200 })
		stop := run(t, r)
		for i := range 2000 {
			r.Record(event(i, 1000))
		}
		eventually(t, 5*time.Second, "a batch sent", func() bool { return r.Stats().Sent > 0 || r.Stats().InFlight > 0 })
		stop() // fails the test unless Run returns nil within 5s
		if r.Stats().Connected {
			t.Fatal("still connected after Run returned")
		}
		f.setStall(false)
	})

	t.Run("a second concurrent Run is refused", func(t *testing.T) {
		_, conn := startFake(t)
		r := newReporter(t, conn, nil)
		run(t, r)
		eventually(t, 5*time.Second, "the first Run connected", func() bool { return r.Stats().Connected })
		if err := r.Run(context.Background()); !errors.Is(err, telemetry.ErrRunning) {
			t.Fatalf("second Run: %v; want ErrRunning", err)
		}
	})

	t.Run("a later Run resumes the same sequence", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, nil)
		stop := run(t, r)
		r.Record(event(0, 0))
		flush(t, r, 5*time.Second)
		stop()
		r.Record(event(1, 0))
		run(t, r)
		// Flush fails fast after a Run stopped, until the next one starts.
		eventually(t, 5*time.Second, "the second Run connected", func() bool { return r.Stats().Connected })
		flush(t, r, 5*time.Second)
		bs := f.batches()
		if len(bs) != 2 || bs[1].seq != 2 {
			t.Fatalf("batches %+v; want sequences 1 then 2", bs)
		}
		checkAccounting(t, f, r)
	})
}

func TestTheByteBoundDropsTheOldestFirst(t *testing.T) {
	f, conn := startFake(t)
	const maxBytes = 16 << 10
	r := newReporter(t, conn, func(c *telemetry.Config) { c.MaxEvents, c.MaxBytes = 10_000, maxBytes })
	one := event(0, 1000)
	one.NodeId, one.Pool = "node-1", "edge" // as Record fills them
	size := proto.Size(one)
	fit := maxBytes / size
	const recorded = 100
	for i := range recorded {
		r.Record(event(i, 1000))
		if s := r.Stats(); s.BufferedBytes > maxBytes {
			t.Fatalf("after %d events: %d bytes buffered, over the %d-byte bound", i+1, s.BufferedBytes, maxBytes)
		}
	}
	if s := r.Stats(); s.Buffered != fit || s.BufferedBytes != fit*size || s.Dropped != uint64(recorded-fit) {
		t.Fatalf("stats %+v; want %d events of %d bytes held (the byte bound, far below the count bound) and %d dropped", s, fit, size, recorded-fit)
	}
	run(t, r)
	flush(t, r, 5*time.Second)
	bs := f.batches()
	if want := fmt.Sprintf("t%06d", recorded-fit); bs[0].dropped != uint64(recorded-fit) || bs[0].traceIDs[0] != want {
		t.Fatalf("first batch %+v; want the %d drops and the newest events from %s on (oldest dropped)", bs[0], recorded-fit, want)
	}
	checkAccounting(t, f, r)
}

// A raw header may hold any byte, and protobuf refuses to marshal a string
// field that is not valid UTF-8: the batch would fail on every stream, for
// good. Record repairs every string field, whatever its name.
func TestInvalidUTF8IsRepairedSoTheStreamKeepsFlowing(t *testing.T) {
	t.Run("an event with an invalid Origin and the next one are delivered", func(t *testing.T) {
		f, conn := startFake(t)
		r := newReporter(t, conn, nil)
		run(t, r)
		bad := event(0, 0)
		bad.Origin = "https://a\xff.example"
		r.Record(bad)
		r.Record(event(1, 0))
		flush(t, r, 10*time.Second)
		if s := r.Stats(); s.Repaired != 1 || s.Acked != 2 || s.LastError != "" {
			t.Fatalf("stats %+v; want one repaired event and both acknowledged without a stream failure", s)
		}
		checkAccounting(t, f, r)
	})

	fields := (&wsfleetv1.ErrorEvent{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.StringKind {
			continue
		}
		t.Run("field "+string(fd.Name())+" is repaired", func(t *testing.T) {
			_, conn := startFake(t)
			r := newReporter(t, conn, nil) // not running: the event stays put
			ev := event(0, 0)
			ev.ProtoReflect().Set(fd, protoreflect.ValueOfString("x\xffy"))
			r.Record(ev)
			if _, err := proto.Marshal(ev); err != nil {
				t.Fatalf("after Record the event does not marshal: %v", err)
			}
			if got := ev.ProtoReflect().Get(fd).String(); got != "x\uFFFDy" {
				t.Fatalf("%s = %q; want the invalid byte replaced with U+FFFD", fd.Name(), got)
			}
		})
	}
}

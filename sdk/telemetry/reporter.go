package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The node's EventSink and Flusher, spelled out: the SDK must not import
// dataplane.
var (
	_ interface{ Record(*wsfleetv1.ErrorEvent) } = (*Reporter)(nil)
	_ interface {
		FinalFlush(context.Context) (int, error)
	} = (*Reporter)(nil)
	_ interface {
		RecordTraffic(*wsfleetv1.TrafficSample)
	} = (*Reporter)(nil)
)

// Reporter buffers error events and streams them to the control plane's
// NodeService.ReportTelemetry. See the package doc for goroutines and
// blocking, and Config for the buffer bounds.
type Reporter struct {
	cfg      Config
	client   wsfleetv1.NodeServiceClient
	id       string
	maxEvent int // largest event that can ever be sent: min(MaxBytes, BatchBytes)

	// wake nudges the sending loop: a batch filled up, a Flush asked, an
	// acknowledgement freed an in-flight slot. One slot, sent without
	// blocking, so a burst of nudges costs one wake-up.
	wake chan struct{}
	// state is neverRun, running or stopped. Flush fails fast only when a
	// Run has stopped: before the first Run, the caller may be about to
	// start one (go r.Run(ctx) races with the first Flush).
	state atomic.Int32

	mu           sync.Mutex
	pending      ring // recorded, not yet in a batch; the only events ever dropped
	pendingBytes int
	inflight     []*batch // cut, not yet acknowledged, in sequence order
	flightEvents int
	flightBytes  int
	nextSeq      uint64
	unreported   uint64 // drops not yet carried by a batch
	// samples are traffic samples waiting for a batch (at most
	// MaxTrafficSamples; the next batch cut takes them all). samplesIn
	// counts samples ever recorded (Stats.TrafficRecorded), samplesOut
	// those ever cut or dropped, ackedSamples samplesOut at the last
	// acknowledged cut: Flush waits for the samples recorded before it the
	// way it waits for events.
	samples                             []*wsfleetv1.TrafficSample
	samplesIn, samplesOut, ackedSamples uint64
	trafficDropped                      uint64

	// Flush bookkeeping. tail counts entries ever pushed to pending and
	// head entries ever removed from it (batched or dropped); both only
	// grow and pending is FIFO, so "head at the last acknowledged cut ≥
	// tail at the Flush call" means every earlier event was delivered or
	// dropped. Drops are matched the same way by their running total.
	tail, head            uint64
	ackedHead, ackedDrops uint64
	flushHead, flushDrops uint64
	// ackNotify is closed and replaced at every acknowledgement and when
	// Run stops, waking Flush callers.
	ackNotify chan struct{}

	recorded, sent, acked, dropped, resent, streams, repaired uint64
	connected                                                 bool
	failing                                                   bool // a stream failed and none has been acknowledged since
	lastErr                                                   string
}

// batch is one ReportTelemetryRequest kept until acknowledged. req is
// immutable once cut: only the sending loop marshals it.
type batch struct {
	req   *wsfleetv1.ReportTelemetryRequest
	bytes int
	head  uint64 // Reporter.head right after the cut
	drops uint64 // drops reported by this and every earlier batch
	// samplesOut is Reporter.samplesOut right after the cut.
	samplesOut uint64
	sent       bool
}

const (
	neverRun int32 = iota
	running
	stopped
)

// Stats is a snapshot of a Reporter's counters, for metrics and health.
// Recorded == Acked + Dropped + Buffered at every snapshot.
type Stats struct {
	// Recorded counts every Record call with a non-nil event.
	Recorded uint64
	// Sent counts events in batches handed to a stream at least once.
	Sent uint64
	// Acked counts events the control plane acknowledged.
	Acked uint64
	// Dropped counts events dropped: buffer over a bound, or one event
	// larger than a batch may be.
	Dropped uint64
	// Resent counts batches handed to a stream again (after a reconnect).
	Resent uint64
	// Repaired counts events whose strings held invalid UTF-8, replaced
	// with U+FFFD in Record.
	Repaired uint64
	// Streams counts telemetry streams opened (1 + reconnects).
	Streams uint64
	// Buffered and BufferedBytes are what the Reporter holds now: events
	// waiting for a batch plus events in unacknowledged batches.
	Buffered      int
	BufferedBytes int
	// InFlight is the number of unacknowledged batches.
	InFlight int
	// Connected is true while a stream to the control plane is open.
	Connected bool
	// LastError is the last stream failure, kept after recovery; empty
	// until the first one.
	LastError string
	// TrafficRecorded counts traffic samples given to RecordTraffic;
	// TrafficDropped those dropped, oldest first, because
	// MaxTrafficSamples were already waiting.
	TrafficRecorded, TrafficDropped uint64
}

// New checks cfg, fills its defaults and returns a Reporter. It does not
// connect: Run does.
func New(cfg Config) (*Reporter, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("telemetry: reporter id: %w", err)
	}
	return &Reporter{
		cfg:       cfg,
		client:    wsfleetv1.NewNodeServiceClient(cfg.Conn),
		id:        hex.EncodeToString(raw[:]),
		maxEvent:  min(cfg.MaxBytes, cfg.BatchBytes),
		wake:      make(chan struct{}, 1),
		pending:   newRing(cfg.MaxEvents),
		inflight:  make([]*batch, 0, cfg.MaxInFlight),
		nextSeq:   1,
		ackNotify: make(chan struct{}),
	}, nil
}

// ReporterID is the random id this Reporter puts in every batch; the
// control plane deduplicates by (reporter id, sequence).
func (r *Reporter) ReporterID() string { return r.id }

// Record buffers ev for sending and returns at once; it never blocks on the
// network. The event becomes the Reporter's: the caller must not touch it
// afterwards. An empty NodeId or Pool is filled from the Config, and
// invalid UTF-8 in any string is replaced with U+FFFD (Stats.Repaired).
// When the buffer would go over a bound, the oldest events not yet in a
// batch are dropped and counted; the count travels in the next batch.
func (r *Reporter) Record(ev *wsfleetv1.ErrorEvent) {
	if ev == nil {
		return
	}
	if ev.NodeId == "" {
		ev.NodeId = r.cfg.NodeID
	}
	if ev.Pool == "" {
		ev.Pool = r.cfg.Pool
	}
	repaired := repairUTF8(ev)
	size := proto.Size(ev) // outside the lock: the costliest step

	r.mu.Lock()
	r.recorded++
	if repaired {
		r.repaired++
	}
	if size > r.maxEvent {
		r.dropLocked()
		r.mu.Unlock()
		return
	}
	for r.pending.n > 0 && r.overLocked(size) {
		e := r.pending.pop()
		r.pendingBytes -= e.size
		r.head++
		r.dropLocked()
	}
	if r.overLocked(size) {
		// In-flight batches alone fill the bound; they are never dropped.
		r.dropLocked()
		r.mu.Unlock()
		return
	}
	r.pending.push(entry{ev: ev, size: size})
	r.tail++
	r.pendingBytes += size
	full := r.pending.n >= r.cfg.BatchSize || r.pendingBytes >= r.cfg.BatchBytes
	r.mu.Unlock()
	if full {
		r.nudge()
	}
}

// RecordTraffic queues a traffic sample for the next batch, which is cut
// at once, and returns without waiting for the network. The sample becomes
// the Reporter's. With MaxTrafficSamples already waiting (the control
// plane is unreachable) the oldest is dropped and counted. Invalid UTF-8
// in its strings is replaced with U+FFFD, as Record does for events.
func (r *Reporter) RecordTraffic(s *wsfleetv1.TrafficSample) {
	if s == nil {
		return
	}
	repairString(&s.PolicyPool)
	for _, o := range s.Accepted {
		if o != nil {
			repairString(&o.Origin)
		}
	}
	r.mu.Lock()
	if len(r.samples) >= r.cfg.MaxTrafficSamples {
		r.samples[0] = nil
		r.samples = r.samples[1:]
		r.samplesOut++
		r.trafficDropped++
	}
	r.samples = append(r.samples, s)
	r.samplesIn++
	r.mu.Unlock()
	r.nudge()
}

// repairUTF8 replaces invalid UTF-8 in ev's strings with U+FFFD and reports
// whether there was any. Protobuf refuses to marshal a string field that is
// not valid UTF-8, and a batch is resent unchanged until acknowledged: one
// such event (a raw Origin header holds any byte) would fail every stream
// from then on and stop the reporter for good.
func repairUTF8(ev *wsfleetv1.ErrorEvent) bool {
	repaired := false
	for _, s := range [...]*string{&ev.TraceId, &ev.ConnId, &ev.NodeId, &ev.Pool, &ev.Origin, &ev.RemoteAddr, &ev.UserAgent, &ev.Error, &ev.ClientUrl, &ev.ClientDetail} {
		repaired = repairString(s) || repaired
	}
	return repaired
}

// repairString replaces invalid UTF-8 in *s with U+FFFD and reports
// whether there was any.
func repairString(s *string) bool {
	if utf8.ValidString(*s) {
		return false
	}
	*s = strings.ToValidUTF8(*s, "\uFFFD")
	return true
}

func (r *Reporter) overLocked(size int) bool {
	return r.pending.n+r.flightEvents+1 > r.cfg.MaxEvents ||
		r.pendingBytes+r.flightBytes+size > r.cfg.MaxBytes
}

func (r *Reporter) dropLocked() {
	r.dropped++
	r.unreported++
}

func (r *Reporter) nudge() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (r *Reporter) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		Recorded:      r.recorded,
		Sent:          r.sent,
		Acked:         r.acked,
		Dropped:       r.dropped,
		Resent:        r.resent,
		Repaired:      r.repaired,
		Streams:       r.streams,
		Buffered:      r.pending.n + r.flightEvents,
		BufferedBytes: r.pendingBytes + r.flightBytes,
		InFlight:      len(r.inflight),
		Connected:     r.connected,
		LastError:     r.lastErr,

		TrafficRecorded: r.samplesIn,
		TrafficDropped:  r.trafficDropped,
	}
}

// Flush sends at once every event recorded before the call (and the drop
// count up to the call) and waits until the control plane has acknowledged
// them or ctx ends. Events recorded meanwhile are not waited for. It needs
// Run: once a Run has returned and no other runs, it fails with
// ErrNotRunning as soon as it finds something undelivered; before the first
// Run it waits for one.
func (r *Reporter) Flush(ctx context.Context) error {
	r.mu.Lock()
	wantHead, wantDrops, wantSamples := r.tail, r.dropped, r.samplesIn
	r.flushHead = max(r.flushHead, wantHead)
	r.flushDrops = max(r.flushDrops, wantDrops)
	r.mu.Unlock()
	r.nudge()
	for {
		r.mu.Lock()
		// A sample dropped after the last cut was never to be delivered:
		// what is out of the queue and not in flight is accounted for.
		done := r.ackedHead >= wantHead && r.ackedDrops >= wantDrops && r.samplesSettledLocked(wantSamples)
		notify := r.ackNotify
		left := r.pending.n + r.flightEvents
		r.mu.Unlock()
		if done {
			return nil
		}
		if r.state.Load() == stopped {
			return fmt.Errorf("%w: %d events buffered", ErrNotRunning, left)
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return fmt.Errorf("%w: %d events buffered: %w", ErrFlush, left, ctx.Err())
		}
	}
}

// FinalFlush is Flush for a process about to stop, which must not hang on
// a control plane that is down. With no stream to the control plane open
// it does not wait for one: it returns at once, with ErrNotConnected if
// anything is left to deliver. With a stream open it waits as Flush does,
// until the control plane has acknowledged every event recorded before the
// call or ctx ends (ErrFlush). It returns how many of the events the
// Reporter holds were not delivered: 0 with a nil error.
func (r *Reporter) FinalFlush(ctx context.Context) (undelivered int, err error) {
	r.mu.Lock()
	connected := r.connected
	left, unreported := r.pending.n+r.flightEvents, r.unreported
	settled := r.samplesSettledLocked(r.samplesIn)
	r.mu.Unlock()
	if left == 0 && unreported == 0 && settled {
		return 0, nil
	}
	if !connected {
		return left, fmt.Errorf("%w: %d events buffered", ErrNotConnected, left)
	}
	if err := r.Flush(ctx); err != nil {
		r.mu.Lock()
		left = r.pending.n + r.flightEvents
		r.mu.Unlock()
		return left, err
	}
	return 0, nil
}

// samplesSettledLocked reports whether every sample up to the want-th
// ever recorded was acknowledged or dropped.
func (r *Reporter) samplesSettledLocked(want uint64) bool {
	if r.ackedSamples >= want {
		return true
	}
	// Dropped after the last acknowledged cut, with none of them waiting
	// or in flight: nothing is left to deliver.
	return len(r.samples) == 0 && r.samplesOut >= want && !r.samplesInFlightLocked()
}

func (r *Reporter) samplesInFlightLocked() bool {
	for _, b := range r.inflight {
		if len(b.req.Traffic) > 0 {
			return true
		}
	}
	return false
}

// nextLocked returns the batch the sending loop should send next on a
// stream that has sent every sequence up to sentSeq: first any
// unacknowledged batch it has not sent (all of them on a fresh stream),
// else a newly cut batch when one is due. due is the flush interval having
// passed.
func (r *Reporter) nextLocked(sentSeq uint64, due bool) *batch {
	for _, b := range r.inflight {
		if b.req.Sequence > sentSeq {
			return b
		}
	}
	if len(r.inflight) >= r.cfg.MaxInFlight || (r.pending.n == 0 && r.unreported == 0 && len(r.samples) == 0) {
		return nil
	}
	// A traffic sample goes at once: one a minute, and a dry run reads it.
	if due || len(r.samples) > 0 || r.pending.n >= r.cfg.BatchSize || r.pendingBytes >= r.cfg.BatchBytes ||
		r.head < r.flushHead || r.dropped-r.unreported < r.flushDrops {
		return r.cutLocked()
	}
	return nil
}

// idleLocked reports that nothing waits to be cut, so a due flush interval
// has been served.
func (r *Reporter) idleLocked() bool {
	return r.pending.n == 0 && r.unreported == 0 && len(r.samples) == 0
}

// cutLocked moves the oldest waiting events, up to BatchSize and
// BatchBytes (at least one), into a new in-flight batch carrying every drop
// not yet reported.
func (r *Reporter) cutLocked() *batch {
	n, bytes, wire := 0, 0, 0
	for n < r.pending.n && n < r.cfg.BatchSize {
		size := r.pending.buf[(r.pending.head+n)%len(r.pending.buf)].size
		// Count the field framing too, so the request stays near BatchBytes.
		w := protowire.SizeTag(4) + protowire.SizeBytes(size)
		if n > 0 && wire+w > r.cfg.BatchBytes {
			break
		}
		n, bytes, wire = n+1, bytes+size, wire+w
	}
	events := make([]*wsfleetv1.ErrorEvent, n)
	for i := range events {
		events[i] = r.pending.pop().ev
	}
	r.pendingBytes -= bytes
	r.head += uint64(n)
	b := &batch{
		req: &wsfleetv1.ReportTelemetryRequest{
			NodeId:     r.cfg.NodeID,
			Pool:       r.cfg.Pool,
			Sequence:   r.nextSeq,
			Events:     events,
			Dropped:    r.unreported,
			ReporterId: r.id,
			Traffic:    r.samples,
		},
		bytes: bytes,
		head:  r.head,
		drops: r.dropped,
	}
	r.samplesOut += uint64(len(r.samples))
	b.samplesOut = r.samplesOut
	r.samples = nil
	r.nextSeq++
	r.unreported = 0
	r.inflight = append(r.inflight, b)
	r.flightEvents += n
	r.flightBytes += bytes
	return b
}

// markSent records that b is being handed to a stream.
func (r *Reporter) markSent(b *batch) {
	r.mu.Lock()
	if b.sent {
		r.resent++
	} else {
		b.sent = true
		r.sent += uint64(len(b.req.Events))
	}
	r.mu.Unlock()
}

// ack releases every in-flight batch up to and including seq and reports
// whether any was released.
func (r *Reporter) ack(seq uint64) bool {
	r.mu.Lock()
	n := 0
	for n < len(r.inflight) && r.inflight[n].req.Sequence <= seq {
		b := r.inflight[n]
		r.acked += uint64(len(b.req.Events))
		r.flightEvents -= len(b.req.Events)
		r.flightBytes -= b.bytes
		r.ackedHead, r.ackedDrops = b.head, b.drops
		r.ackedSamples = b.samplesOut
		n++
	}
	if n > 0 {
		rest := copy(r.inflight, r.inflight[n:])
		clear(r.inflight[rest:])
		r.inflight = r.inflight[:rest]
		close(r.ackNotify)
		r.ackNotify = make(chan struct{})
	}
	r.mu.Unlock()
	if n > 0 {
		r.nudge() // a slot is free
	}
	return n > 0
}

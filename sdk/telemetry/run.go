package telemetry

import (
	"context"
	"errors"
	"github.com/wsfleet/wsfleet/sdk/internal/backoff"
	"io"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Run is the sending loop: it opens a ReportTelemetry stream, resends the
// unacknowledged batches, sends new ones as they fill up or the flush
// interval passes, and reopens the stream with backoff after any failure.
// It returns nil once ctx is done and every goroutine it started has
// stopped; ErrRunning if another Run of this Reporter is active. Events
// still buffered stay buffered: a later Run sends them.
func (r *Reporter) Run(ctx context.Context) error {
	if !r.state.CompareAndSwap(neverRun, running) && !r.state.CompareAndSwap(stopped, running) {
		return ErrRunning
	}
	defer func() {
		r.state.Store(stopped)
		r.mu.Lock()
		close(r.ackNotify) // Flush callers see that no loop is left
		r.ackNotify = make(chan struct{})
		r.mu.Unlock()
	}()

	log := r.cfg.Log.WithFields(logrus.Fields{"node_id": r.cfg.NodeID, "reporter_id": r.id})
	attempt := 0
	for ctx.Err() == nil {
		healthy, err := r.stream(ctx, log)
		if ctx.Err() != nil {
			break
		}
		if healthy {
			attempt = 0
		}
		wait := backoff.Delay(r.cfg.MinBackoff, r.cfg.MaxBackoff, attempt)
		attempt++
		r.mu.Lock()
		r.lastErr = err.Error()
		r.failing = true
		buffered := r.pending.n + r.flightEvents
		r.mu.Unlock()
		entry := log.WithFields(logrus.Fields{"error": err.Error(), "retry_in": wait.String(), "buffered": buffered})
		// One warning per outage; the retries of a long one go to debug so
		// a node cut off for an hour does not flood its log.
		if attempt == 1 {
			entry.Warn("telemetry stream failed; events stay buffered, retrying with backoff")
		} else {
			entry.Debug("telemetry stream still failing")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// stream runs one ReportTelemetry stream until it fails or ctx ends: a
// receiving goroutine takes acknowledgements, a sending goroutine sends
// batches. It returns once both have stopped, with the first error and
// whether the stream was healthy, which resets the backoff: the control
// plane acknowledged something, or (for a node with nothing to report) the
// stream stayed up for MaxBackoff.
func (r *Reporter) stream(ctx context.Context, log logrus.FieldLogger) (healthy bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := r.client.ReportTelemetry(sctx)
	if err != nil {
		return false, err
	}
	opened := time.Now()
	r.mu.Lock()
	r.connected = true
	r.streams++
	r.mu.Unlock()

	var acked atomic.Bool
	errc := make(chan error, 2)
	go func() { errc <- r.receive(st, &acked, log) }()
	go func() { errc <- r.send(sctx, st) }()
	err = <-errc
	cancel() // unblocks the other goroutine's Send (flow control) or Recv
	if other := <-errc; errors.Is(err, errSendEOF) {
		// The stream had already ended with a status, which Recv returns.
		err = other
	}

	r.mu.Lock()
	r.connected = false
	r.mu.Unlock()
	return acked.Load() || time.Since(opened) >= r.cfg.MaxBackoff, err
}

func (r *Reporter) receive(st wsfleetv1.NodeService_ReportTelemetryClient, acked *atomic.Bool, log logrus.FieldLogger) error {
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return ErrStreamEnded
		}
		if err != nil {
			return err
		}
		if r.ack(resp.GetAckedSequence()) && !acked.Swap(true) {
			r.mu.Lock()
			recovered := r.failing
			r.failing = false
			r.mu.Unlock()
			if recovered {
				log.Info("telemetry stream recovered")
			}
		}
	}
}

// errSendEOF is Send's io.EOF: the stream has ended and the receiving
// goroutine holds the reason.
var errSendEOF = errors.New("telemetry: send on an ended stream")

// send sends batches on st until ctx ends or a Send fails. Send blocks
// when the control plane stops reading (flow control); only this goroutine
// waits then, and Record keeps filling the bounded buffer.
func (r *Reporter) send(ctx context.Context, st wsfleetv1.NodeService_ReportTelemetryClient) error {
	tick := time.NewTicker(r.cfg.FlushInterval)
	defer tick.Stop()
	var sentSeq uint64 // 0: a fresh stream resends every unacknowledged batch
	due := false
	for {
		r.mu.Lock()
		b := r.nextLocked(sentSeq, due)
		if b == nil && r.idleLocked() {
			due = false
		}
		r.mu.Unlock()
		if b != nil {
			// Counted before Send: a Send that fails may still have
			// delivered the batch, and its acknowledgement may already be
			// on its way.
			r.markSent(b)
			if err := st.Send(b.req); err != nil {
				if errors.Is(err, io.EOF) {
					return errSendEOF
				}
				return err
			}
			sentSeq = b.req.Sequence
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
		case <-tick.C:
			due = true
		}
	}
}

package dataplane

import (
	"fmt"
	"math"
	"time"

	"github.com/lxzan/gws"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The heartbeat wheel: one goroutine per node instead of one timer per
// connection (a timer costs more than a hundred bytes on each of hundreds
// of thousands of idle connections). Sessions live in the shards of
// Node.sessions; the wheel visits one shard every interval/len(shards), so
// every session is visited once per interval, and the work is spread over
// the interval instead of pinging every connection at once.
//
// It reads the interval from the current policy at every step, so a new
// interval applies within one step; Apply also nudges it so a shorter
// interval does not wait out a long step.
//
// A peer is closed as heartbeat_timeout only when it stayed silent for the
// timeout after a ping the node actually wrote to its socket — never by
// comparing the time since its last frame with a timeout it was never
// pinged under, which closed healthy clients whenever a push shortened the
// heartbeat (issue 7). The life of one ping:
//
//   - the wheel queues a ping when none is queued or unanswered;
//   - the writer writes it and arms a one-shot timer for it (pingSent): the
//     timer exists only while the ping is unanswered, so an idle connection
//     holds none between pings;
//   - any frame from the peer answers it and stops the timer (sawFrame, on
//     the read loop: two atomic operations, no lock);
//   - when the timer fires it reads the timeout in force then: a longer
//     timeout applied meanwhile extends the wait; otherwise the peer is
//     closed. A shorter timeout applied meanwhile is enforced by the wheel's
//     next visit.
//
// So a peer that stops answering goes within interval + timeout of its last
// frame (the wheel pings within an interval, the peer then has the
// timeout), and a peer that answers is never closed by any heartbeat change.

func (n *Node) runHeartbeats() {
	defer close(n.heartbeatDone)
	shards := len(n.sessions.shards)
	var buf []*session
	shard := 0
	for {
		step := n.snapshot().interval / time.Duration(shards)
		t := time.NewTimer(step)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-n.heartbeatNudge:
			t.Stop()
			continue
		case now := <-t.C:
			snap := n.snapshot()
			buf = n.sessions.shardList(shard, buf[:0])
			for _, s := range buf {
				s.heartbeat(snap, now)
			}
			clear(buf)
			shard = (shard + 1) % shards
		}
	}
}

// heartbeatReset makes the wheel pick up a new interval now.
func (n *Node) heartbeatReset() {
	select {
	case n.heartbeatNudge <- struct{}{}:
	default:
	}
}

// pingWait is one ping written to the peer and not answered yet.
// Immutable once published in session.ping.
type pingWait struct {
	frames uint64    // session.frames just before the write: a higher count answers the ping
	sent   time.Time // when the write completed (monotonic): the timeout runs from here
	timer  *time.Timer
}

// Markers in session.ping besides nil (no ping) and an unanswered ping.
// No frame count exceeds theirs, so no frame "answers" them.
var (
	// pingQueued: a ping waits in the outgoing queue. One at a time: a
	// writer stuck behind a slow consumer is the write deadline's business,
	// not a reason to pile up pings.
	pingQueued = &pingWait{frames: math.MaxUint64}
	// pingEnded: the connection ended, so a ping whose write completed
	// just before cannot arm a timer afterwards.
	pingEnded = &pingWait{frames: math.MaxUint64}
)

// heartbeat is the wheel's visit, once per interval: it queues a ping
// unless one is queued or unanswered. An unanswered one is left to its
// timer, unless a shorter timeout applied since it was sent has already run
// out.
func (s *session) heartbeat(snap *snapshot, now time.Time) {
	if s.closing.Load() != nil {
		return
	}
	switch pw := s.ping.Load(); {
	case pw == nil:
		if s.ping.CompareAndSwap(nil, pingQueued) {
			s.send(outItem{op: gws.OpcodePing})
		}
	case pw == pingQueued || pw == pingEnded:
	case s.frames.Load() > pw.frames:
		s.dropPing(pw) // answered; the read loop is about to drop it
	case now.Sub(pw.sent) >= snap.timeout:
		s.expire(pw, snap.timeout)
	}
}

// sawFrame records a frame from the peer (on the read loop, for every
// frame): it answers an outstanding ping.
func (s *session) sawFrame() {
	n := s.frames.Add(1)
	if pw := s.ping.Load(); pw != nil && n > pw.frames {
		s.dropPing(pw)
	}
}

// pingSent runs on the writer once a ping is on the wire; seen is
// s.frames read just before the write.
func (s *session) pingSent(seen uint64) {
	pw := &pingWait{frames: seen, sent: time.Now()}
	pw.timer = time.AfterFunc(s.node.snapshot().timeout, func() { s.pingDeadline(pw) })
	if !s.ping.CompareAndSwap(pingQueued, pw) {
		// The connection ended (pingEnded) while the ping was being written.
		pw.timer.Stop()
		return
	}
	// An answer read before the CompareAndSwap did not see pw: look again.
	// (sawFrame adds, then loads; this stores, then loads: one of the two
	// sees the other.)
	if s.frames.Load() > seen {
		s.dropPing(pw)
	}
}

// pingDeadline runs when a ping's timer fires (on a runtime timer
// goroutine).
func (s *session) pingDeadline(pw *pingWait) {
	if s.ping.Load() != pw {
		return // answered, or the connection ended
	}
	timeout := s.node.snapshot().timeout
	if left := timeout - time.Since(pw.sent); left > 0 {
		// A longer timeout was applied after the ping was sent: the peer
		// gets all of it.
		pw.timer.Reset(left)
		if s.ping.Load() != pw {
			pw.timer.Stop() // answered while being re-armed
		}
		return
	}
	s.expire(pw, timeout)
}

// dropPing retires an answered ping and its timer.
func (s *session) dropPing(pw *pingWait) {
	if pw != pingQueued && pw != pingEnded && s.ping.CompareAndSwap(pw, nil) {
		pw.timer.Stop()
	}
}

// expire closes the peer for not answering pw within timeout, unless an
// answer came in the meantime.
func (s *session) expire(pw *pingWait, timeout time.Duration) {
	if s.frames.Load() > pw.frames || !s.ping.CompareAndSwap(pw, nil) {
		s.dropPing(pw)
		return
	}
	pw.timer.Stop()
	s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT,
		fmt.Sprintf("no frame from the client for %s after a ping (heartbeat timeout %s)", time.Since(pw.sent).Round(time.Millisecond), timeout))
}

// endHeartbeat stops the heartbeat of a connection that has ended.
func (s *session) endHeartbeat() {
	if pw := s.ping.Swap(pingEnded); pw != nil && pw != pingQueued && pw != pingEnded {
		pw.timer.Stop()
	}
}

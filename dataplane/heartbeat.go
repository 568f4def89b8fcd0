package dataplane

import (
	"time"
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

package dataplane

import (
	"sync"
	"sync/atomic"
)

// numShards is the number of session-set shards, and of stripes of the
// per-message counters (dataCounters): a session's shard picks both.
const numShards = 32

// sessionSet holds the open sessions, for the heartbeat wheel and
// Shutdown. Sharded plain maps cost a fraction of a sync.Map's per-entry
// memory, which matters at hundreds of thousands of idle connections.
type sessionSet struct {
	shards [numShards]struct {
		mu sync.Mutex
		m  map[*session]struct{}
	}
	next atomic.Uint32
}

// assign chooses s's shard, round-robin, before anything of s is used: the
// shard also picks the stripe its counters go to, which its first frame
// (the welcome, queued before add) already counts in.
func (ss *sessionSet) assign(s *session) {
	s.shard = uint8(ss.next.Add(1) % uint32(len(ss.shards)))
}

// add stores s in the shard assign chose; s remembers it for remove.
func (ss *sessionSet) add(s *session) {
	sh := &ss.shards[s.shard]
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[*session]struct{})
	}
	sh.m[s] = struct{}{}
	sh.mu.Unlock()
}

func (ss *sessionSet) remove(s *session) {
	sh := &ss.shards[s.shard]
	sh.mu.Lock()
	delete(sh.m, s)
	sh.mu.Unlock()
}

// each calls f for every session, one shard at a time, without holding
// the shard's lock (f may block, e.g. writing a close frame).
func (ss *sessionSet) each(f func(*session)) {
	var buf []*session
	for i := range ss.shards {
		buf = ss.shardList(i, buf[:0])
		for _, s := range buf {
			f(s)
		}
	}
}

// shardList appends the sessions of shard i to buf.
func (ss *sessionSet) shardList(i int, buf []*session) []*session {
	sh := &ss.shards[i]
	sh.mu.Lock()
	for s := range sh.m {
		buf = append(buf, s)
	}
	sh.mu.Unlock()
	return buf
}

package broker

import "sync/atomic"

// chunkLen is the most subscribers one chunk of a channel's list holds.
// A change copies at most two chunks (and a view, made by the next publish
// after a change, copies one slice header per chunk), so building or
// emptying a channel of n subscribers costs O(n) in all instead of O(n²).
const chunkLen = 256

// subList is one channel's subscribers, in no particular order: remove
// moves the last one into the hole it leaves. Its fields are read and
// written only under the shard mutex of the channel, but snap.
//
// Publishers read snap, without a lock: an immutable view published after
// the last change. A change only drops snap; the next publish takes the
// shard mutex once to publish a new view. A view shares the list's chunks
// (it copies their slice headers, cut to their lengths), so the list never
// writes into a chunk a view may have below that cut: appends write beyond
// it, and remove first copies a chunk made before the last view (gen).
//
// Chunks are whole but the last, which holds 1..chunkLen. The first chunk
// grows with the channel, so a channel of one subscriber (a user's own
// channel) holds one slot, not a chunk's worth.
type subList struct {
	chunks []chunk
	n      int
	// gen is bumped by each view: a chunk whose gen is the list's is in no
	// view and may be written anywhere.
	gen  uint64
	snap atomic.Pointer[view]
}

type chunk struct {
	subs []Subscriber
	gen  uint64
}

// view is an immutable snapshot of a channel's subscribers: n of them, in
// chunks.
type view struct {
	chunks [][]Subscriber
	n      int
}

// emptyView is what a channel dropped with its last subscriber shows a
// publish that found it just before.
var emptyView = &view{}

func (l *subList) len() int { return l.n }

// add appends s and returns its index.
func (l *subList) add(s Subscriber) int {
	i := l.n
	ci := i / chunkLen
	if ci == len(l.chunks) {
		c := chunk{gen: l.gen}
		if ci > 0 {
			c.subs = make([]Subscriber, 0, chunkLen)
		}
		l.chunks = append(l.chunks, c)
	}
	c := &l.chunks[ci]
	if len(c.subs) == cap(c.subs) {
		// Only the first chunk grows; append moves it to a new array,
		// which no view has.
		c.gen = l.gen
	}
	c.subs = append(c.subs, s)
	l.n++
	l.snap.Store(nil)
	return i
}

// remove removes the subscriber at index i by moving the last one into its
// place, and returns the one it moved (nil when i was the last).
func (l *subList) remove(i int) (moved Subscriber) {
	last := l.n - 1
	li := last / chunkLen
	l.own(li)
	lc := &l.chunks[li]
	if i != last {
		l.own(i / chunkLen)
		moved = lc.subs[last%chunkLen]
		l.chunks[i/chunkLen].subs[i%chunkLen] = moved
	}
	lc.subs[last%chunkLen] = nil // the chunk must not keep a gone subscriber alive
	lc.subs = lc.subs[:last%chunkLen]
	if len(lc.subs) == 0 {
		l.chunks[li] = chunk{}
		l.chunks = l.chunks[:li]
	}
	l.n--
	l.snap.Store(nil)
	return moved
}

// own copies chunk ci if a view may have it.
func (l *subList) own(ci int) {
	c := &l.chunks[ci]
	if c.gen == l.gen {
		return
	}
	subs := make([]Subscriber, len(c.subs), cap(c.subs))
	copy(subs, c.subs)
	*c = chunk{subs: subs, gen: l.gen}
}

// view returns the published view, or publishes one of the list as it is.
func (l *subList) view() *view {
	if v := l.snap.Load(); v != nil {
		return v
	}
	v := &view{chunks: make([][]Subscriber, len(l.chunks)), n: l.n}
	for i, c := range l.chunks {
		v.chunks[i] = c.subs[:len(c.subs):len(c.subs)]
	}
	l.gen++
	l.snap.Store(v)
	return v
}

// clear empties a list whose channel is being dropped.
func (l *subList) clear() {
	l.chunks, l.n = nil, 0
	l.snap.Store(emptyView)
}

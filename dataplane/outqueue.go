package dataplane

import (
	"sync"

	"github.com/lxzan/gws"
)

// outItem is one frame waiting for the writer.
type outItem struct {
	op   gws.Opcode
	data []byte // shared read-only with other subscribers for published messages
}

// outQueue is a connection's bounded outgoing queue. The writer goroutine
// runs only while it is non-empty: push reports when one must be started,
// pop reports when it must stop, both under the same lock, so exactly one
// writer runs at a time and none is left behind.
type outQueue struct {
	mu      sync.Mutex
	items   []outItem
	head    int
	bytes   int
	running bool
	closed  bool
}

type pushResult uint8

const (
	pushQueued      pushResult = iota // queued; a writer is already running
	pushStartWriter                   // queued; the caller must start the writer
	pushOverflow                      // not queued: the queue is full (slow consumer)
	pushClosed                        // not queued: the connection is closing
)

func (q *outQueue) push(it outItem, maxItems, maxBytes int) pushResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return pushClosed
	}
	// Control frames (pings) may exceed the bound by one: they are tiny and
	// the overflow would be reported by the next data frame anyway.
	if it.op < gws.OpcodeCloseConnection &&
		(len(q.items)-q.head >= maxItems || q.bytes+len(it.data) > maxBytes) {
		return pushOverflow
	}
	q.items = append(q.items, it)
	q.bytes += len(it.data)
	if q.running {
		return pushQueued
	}
	q.running = true
	return pushStartWriter
}

// pop returns the next item, or ok=false after marking the writer stopped.
func (q *outQueue) pop() (outItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.head == len(q.items) {
		q.running = false
		q.reset()
		return outItem{}, false
	}
	it := q.items[q.head]
	q.items[q.head] = outItem{}
	q.head++
	q.bytes -= len(it.data)
	return it, true
}

// close drops everything queued and refuses further pushes; the memory of
// a slow consumer is freed at once, not when its socket finally dies.
func (q *outQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.reset()
}

// reset empties the queue, keeping a small backing array for reuse and
// dropping a large one so an idle connection does not pin a past burst.
func (q *outQueue) reset() {
	if cap(q.items) > 64 {
		q.items = nil
	} else {
		clear(q.items)
		q.items = q.items[:0]
	}
	q.head = 0
	q.bytes = 0
}

package dataplane

import (
	"encoding/binary"
	"sync"

	"github.com/lxzan/gws"
)

// outItem is one frame waiting for the writer.
type outItem struct {
	op   gws.Opcode
	data []byte // shared read-only with other subscribers for published messages
}

// outQueue is a connection's bounded outgoing queue. It has a writer only
// while it is non-empty: push reports when one must be scheduled (the
// writer pool, writer.go), done reports whether the writer must come back
// for more, both under the same lock, so exactly one writer works on a
// connection at a time and none is left behind.
//
// The writer takes everything queued at once (take) and writes it in one
// go; items pushed meanwhile are appended behind the batch and wait for
// the next one. The bounds count the batch being written too, until it is
// written (done): what a client that does not read costs stays within them.
type outQueue struct {
	mu sync.Mutex
	// items[:taken] are the batch being written; items[taken:] wait.
	items     []outItem
	taken     int
	bytes     int // of every item, the batch's included
	scheduled bool
	closed    bool
}

type pushResult uint8

const (
	pushQueued   pushResult = iota // queued; a writer is already scheduled
	pushSchedule                   // queued; the caller must schedule the writer
	pushOverflow                   // not queued: the queue is full (slow consumer)
	pushClosed                     // not queued: the connection is closing
)

// keepItems is the largest backing array an emptied queue keeps for reuse:
// an idle connection must not pin a past burst.
const keepItems = 64

func (q *outQueue) push(it outItem, maxItems, maxBytes int) pushResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return pushClosed
	}
	// Control frames (pings, pongs) may exceed the bound by one: they are
	// tiny and the overflow would be reported by the next data frame
	// anyway.
	if it.op < gws.OpcodeCloseConnection &&
		(len(q.items) >= maxItems || q.bytes+len(it.data) > maxBytes) {
		return pushOverflow
	}
	q.items = append(q.items, it)
	q.bytes += len(it.data)
	if q.scheduled {
		return pushQueued
	}
	q.scheduled = true
	return pushSchedule
}

// take returns everything queued for the scheduled writer to write, or nil
// when the queue is closed (or, which a scheduled writer never sees,
// empty). The slice stays valid after the lock is released: pushes only
// append beyond it.
func (q *outQueue) take() []outItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.taken == len(q.items) {
		return nil
	}
	batch := q.items[q.taken:len(q.items):len(q.items)]
	q.taken = len(q.items)
	return batch
}

// done retires the batch take returned, of size bytes, once it is written.
// It reports whether more is queued: then the writer stays scheduled and
// must come back for it.
func (q *outQueue) done(bytes int) (more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.bytes -= bytes
	// Move what waits to the front; clear the rest so the backing array
	// does not keep written payloads alive.
	n := copy(q.items, q.items[q.taken:])
	clear(q.items[n:])
	q.items = q.items[:n]
	q.taken = 0
	if n > 0 {
		return true
	}
	q.scheduled = false
	if cap(q.items) > keepItems {
		q.items = nil
	}
	return false
}

// close drops everything queued and refuses further pushes; the memory of
// a slow consumer is freed at once, not when its socket finally dies (a
// batch being written is freed when its write ends).
func (q *outQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.items = nil
	q.taken = 0
	q.bytes = 0
}

// appendFrameHeader appends the header of a final, unmasked frame (a
// server's, RFC 6455 §5.2) of opcode op carrying n bytes.
func appendFrameHeader(b []byte, op gws.Opcode, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// maxFrameHeader is the longest frame header appendFrameHeader writes.
const maxFrameHeader = 10

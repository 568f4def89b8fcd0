package telemetry

import wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"

// entry is one event waiting for a batch, with its proto.Size computed once
// in Record.
type entry struct {
	ev   *wsfleetv1.ErrorEvent
	size int
}

// ring is a FIFO of entries that grows by doubling up to limit and then
// reuses its slots, so a Record in steady state allocates nothing. The
// caller keeps n < limit before push (the Reporter drops first).
type ring struct {
	buf   []entry
	head  int // index of the oldest entry
	n     int
	limit int
}

func newRing(limit int) ring {
	return ring{buf: make([]entry, min(limit, 1024)), limit: limit}
}

func (q *ring) push(e entry) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
}

func (q *ring) grow() {
	next := make([]entry, min(max(2*len(q.buf), 1), q.limit))
	for i := range q.n {
		next[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = next, 0
}

// front returns the oldest entry; the ring must not be empty.
func (q *ring) front() entry { return q.buf[q.head] }

// pop removes the oldest entry, clearing its slot so the event can be
// collected once its batch is acknowledged.
func (q *ring) pop() entry {
	e := q.buf[q.head]
	q.buf[q.head] = entry{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return e
}

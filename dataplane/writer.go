package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/lxzan/gws"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The outgoing path. A frame for a client (a published message, an ack, an
// error, a ping or pong) goes to the connection's bounded queue
// (outqueue.go); the connection's writer takes everything queued at once,
// encodes it as complete server frames into one buffer and writes that
// buffer with one system call. Under load a connection gets many frames
// per write, so the cost of a write is shared by all of them.
//
// Writers are a pool of Config.Writers goroutines per node, shared by all
// connections: a connection whose queue becomes non-empty is put on the
// pool's ready list, and a pool goroutine takes it from there. No goroutine
// is started per message or per connection, and none exits and restarts
// under steady load.
//
// A pool goroutine never waits for a client: it writes only what the
// socket takes at once (a non-blocking write). When the socket is full (a
// client that reads slowly, or a burst bigger than its socket buffer), the
// rest of the batch goes to a goroutine of the connection's own, which
// waits for the socket for at most Config.WriteTimeout per write and then
// hands the connection back to the pool. So one slow client never holds up
// another; a client that takes nothing within WriteTimeout is closed as
// slow_consumer, as is one whose queue overflows, and its queue is freed at
// once.
//
// gws writes on the same socket too: the 101 response and close frames
// (its own, answering the client's or a protocol error, and the node's,
// through WriteClose). Every write of either goes through traceConn under
// its write mutex, so frames never interleave; after a close frame nothing
// else is written (traceConn.closeSent), nor after a write that failed
// part-way (traceConn.broken), when the stream is no longer frame-aligned.

// writeBufferBytes is the size of the buffer one write is encoded into.
// A batch bigger than that takes several writes; a frame bigger than that
// is written from its own memory after its header.
const writeBufferBytes = 64 << 10

// errWouldBlock: the socket took less than it was given without blocking;
// the rest must wait for it.
var errWouldBlock = errors.New("dataplane: write would block")

// errBatchCut: the connection is closing, and the batch stopped at a frame
// boundary so the close frame can go next.
var errBatchCut = errors.New("dataplane: batch cut short by a close")

// rawWriters serve the read loops' own writes (session.sendInline); pool
// goroutines keep one each.
var rawWriters = sync.Pool{New: func() any { return newRawWriter() }}

// framesPool keeps batches with their write buffers: a batch (one per
// write of a connection's queue, so one per message in a round trip)
// allocates neither.
var framesPool = sync.Pool{New: func() any {
	b := make([]byte, 0, writeBufferBytes)
	return &frames{buf: &b}
}}

// writerPool is the node's pool of writer goroutines; see above.
type writerPool struct {
	mu   sync.Mutex
	cond sync.Cond
	// ready[head:] are the connections waiting for a writer, oldest first.
	ready   []*session
	head    int
	waiting int // pool goroutines waiting on cond
	stopped bool
	wg      sync.WaitGroup
}

// readyGrab is how many ready connections a pool goroutine takes at once:
// fewer trips to the lock, while another goroutine still finds work.
const readyGrab = 32

func newWriterPool(writers int) *writerPool {
	p := &writerPool{}
	p.cond.L = &p.mu
	p.wg.Add(writers)
	for range writers {
		go p.run()
	}
	return p
}

// add puts s on the ready list. Its queue was empty and has a frame now.
func (p *writerPool) add(s *session) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.ready = append(p.ready, s)
	wake := p.waiting > 0
	p.mu.Unlock()
	if wake {
		p.cond.Signal()
	}
}

// stop ends the pool goroutines and waits for them. Connections still
// ready are not written: the node has closed them.
func (p *writerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.ready, p.head = nil, 0
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}

func (p *writerPool) run() {
	defer p.wg.Done()
	w := newRawWriter()
	var got []*session
	for {
		p.mu.Lock()
		for p.head == len(p.ready) && !p.stopped {
			p.waiting++
			p.cond.Wait()
			p.waiting--
		}
		if p.stopped {
			p.mu.Unlock()
			return
		}
		n := min(len(p.ready)-p.head, readyGrab)
		got = append(got[:0], p.ready[p.head:p.head+n]...)
		clear(p.ready[p.head : p.head+n])
		p.head += n
		switch {
		case p.head == len(p.ready):
			p.ready, p.head = p.ready[:0], 0
			if cap(p.ready) > 4096 {
				p.ready = nil // a past burst of ready connections
			}
		case p.head > len(p.ready)/2:
			k := copy(p.ready, p.ready[p.head:])
			clear(p.ready[k:])
			p.ready, p.head = p.ready[:k], 0
		}
		p.mu.Unlock()
		for _, s := range got {
			s.flush(w)
		}
		clear(got)
	}
}

// frames is one batch of a connection's queue on its way to the socket.
type frames struct {
	items []outItem
	next  int // items[next:] are not encoded yet
	// buf holds encoded frames; (*buf)[off:] are not written yet.
	buf *[]byte
	off int
	// direct is the part not yet written of a payload too big for buf,
	// written from its own memory after buf.
	direct []byte
	bytes  int    // payload bytes of items, as the queue counts them
	seen   uint64 // session.frames before the batch's ping (if any) went out
}

func newFrames(items []outItem) *frames {
	f := framesPool.Get().(*frames)
	*f = frames{items: items, buf: f.buf}
	for _, it := range items {
		f.bytes += len(it.data)
	}
	return f
}

// release returns f, with its buffer, to framesPool; f must not be used
// after it.
func (f *frames) release() {
	*f.buf = (*f.buf)[:0]
	f.items, f.direct = nil, nil
	framesPool.Put(f)
}

// fill encodes the next frames into buf, as many as fit (at least the
// header of one).
func (f *frames) fill() {
	b := (*f.buf)[:0]
	for ; f.next < len(f.items); f.next++ {
		it := f.items[f.next]
		size := maxFrameHeader + len(it.data)
		if len(b)+size > cap(b) {
			if len(b) > 0 {
				break
			}
			// Alone too big for buf: its header here, its payload
			// from where it is.
			b = appendFrameHeader(b, it.op, len(it.data))
			f.direct = it.data
			f.next++
			break
		}
		b = appendFrameHeader(b, it.op, len(it.data))
		b = append(b, it.data...)
	}
	*f.buf, f.off = b, 0
}

// writeTo writes what is left of the batch to w; it returns nil once
// everything is written, and w's error otherwise (errWouldBlock from a
// rawWriter: call it again when the socket has room). Before encoding more
// frames it asks stop: when that says true (the node decided to close the
// connection) it returns errBatchCut with every frame begun written whole,
// so the close frame follows on a frame boundary instead of waiting for,
// or being cut by the deadline of, the rest of a large batch.
func (f *frames) writeTo(w io.Writer, stop func() bool) error {
	for {
		switch {
		case f.off < len(*f.buf):
			n, err := w.Write((*f.buf)[f.off:])
			f.off += n
			if err != nil {
				return err
			}
		case len(f.direct) > 0:
			n, err := w.Write(f.direct)
			f.direct = f.direct[n:]
			if err != nil {
				return err
			}
		case f.next < len(f.items):
			if stop() {
				return errBatchCut
			}
			f.fill()
		default:
			return nil
		}
	}
}

// flush is a pool goroutine's turn with s: it writes the batch s has
// queued, or hands it to a goroutine of s's own when the socket is full or
// someone else is writing on it.
func (s *session) flush(w *rawWriter) {
	items := s.q.take()
	if items == nil {
		return
	}
	f := s.batch(items)
	tc := s.conn.NetConn().(*traceConn) // upgrade wraps every connection in one
	if !tc.wmu.TryLock() {
		// gws is writing a close frame (it takes the lock only for
		// that), or about to: not worth a pool goroutine's wait.
		go s.writeBlocked(tc, f, false)
		return
	}
	if !s.mayWrite(tc) {
		tc.wmu.Unlock()
		s.dropBatch(f)
		return
	}
	w.conn = tc.Conn
	err := f.writeTo(w, s.isClosing)
	w.conn = nil
	if errors.Is(err, errWouldBlock) {
		// The socket is full: a goroutine of s's own waits for it,
		// holding the write lock, so the partly written frame is
		// finished before anything else goes out.
		go s.writeBlocked(tc, f, true)
		return
	}
	if errors.Is(err, errBatchCut) {
		tc.wmu.Unlock()
		s.dropBatch(f)
		return
	}
	if err != nil {
		tc.broken = true
	}
	tc.wmu.Unlock()
	s.batchEnded(f, err)
}

// isClosing reports whether the connection is closing: the node decided
// to close it, or gws is about to write a close frame (answering the
// client's close, or a protocol error).
func (s *session) isClosing() bool {
	return s.closing.Load() != nil || s.conn.NetConn().(*traceConn).closeWanted.Load()
}

// writeBlocked writes the rest of f, waiting for the socket for at most
// WriteTimeout per write. It runs on a goroutine of s's own; locked says
// whether the caller handed over traceConn's write lock.
func (s *session) writeBlocked(tc *traceConn, f *frames, locked bool) {
	if !locked {
		tc.wmu.Lock()
	}
	// The deadline first, then the check: a close decided after the check
	// sets its own, shorter deadline after this one (writeClose), so it
	// cuts this write instead of waiting out WriteTimeout.
	_ = tc.Conn.SetWriteDeadline(time.Now().Add(s.node.cfg.WriteTimeout))
	if !s.mayWrite(tc) {
		_ = tc.Conn.SetWriteDeadline(time.Time{})
		tc.wmu.Unlock()
		s.dropBatch(f)
		return
	}
	err := f.writeTo(tc.Conn, s.isClosing)
	if errors.Is(err, errBatchCut) {
		_ = tc.Conn.SetWriteDeadline(time.Time{})
		tc.wmu.Unlock()
		s.dropBatch(f)
		return
	}
	if err != nil {
		tc.broken = true
	}
	// No deadline left behind: the pool's non-blocking writes would fail
	// on it once it has passed. gws's close frame sets its own
	// (traceConn.Write).
	_ = tc.Conn.SetWriteDeadline(time.Time{})
	tc.wmu.Unlock()
	s.batchEnded(f, err)
}

// mayWrite reports whether frames may still go out on tc; called with
// tc.wmu held. Not after a close frame, nor once the node decided to close
// the connection (its close frame goes next), nor after a failed write.
func (s *session) mayWrite(tc *traceConn) bool {
	return !tc.closeSent && !tc.broken && s.closing.Load() == nil
}

// batch makes the frames of items, noting the heartbeat's frame count if
// they carry a ping (a frame counted after that answers it).
func (s *session) batch(items []outItem) *frames {
	f := newFrames(items)
	for _, it := range items {
		if it.op == gws.OpcodePing {
			f.seen = s.frames.Load()
			break
		}
	}
	return f
}

// dropBatch gives up a batch that may not be written: the connection is
// closing, and nothing queued will be written either.
func (s *session) dropBatch(f *frames) {
	f.release()
	s.q.close()
}

// batchEnded accounts for a batch once its write ended: err is nil when
// every frame of it is on the wire.
func (s *session) batchEnded(f *frames, err error) {
	if err != nil {
		f.release()
		s.writeFailed(err)
		return
	}
	var texts, textBytes int
	for _, it := range f.items {
		switch it.op {
		case gws.OpcodeText:
			texts++
			textBytes += len(it.data)
		case gws.OpcodePing:
			s.pingSent(f.seen)
		}
	}
	bytes := f.bytes
	f.release()
	if texts > 0 {
		s.countOut(texts, textBytes)
	}
	if s.q.done(bytes) {
		s.node.writers.add(s)
	}
}

// writeFailed closes a connection whose write failed. A write that timed
// out is a client that does not read: slow_consumer. Anything else is a
// peer that went away (a reset, a broken pipe) or a socket closed under the
// write; the first close wins, so a close the node or gws already started
// keeps its own class.
func (s *session) writeFailed(err error) {
	s.q.close()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER,
			fmt.Sprintf("a write to the client took longer than the write timeout (%s): the client is not reading", s.node.cfg.WriteTimeout))
		return
	}
	info := errclass.Lookup(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET)
	if s.closing.CompareAndSwap(nil, &closeInfo{class: info.Class, code: int32(info.CloseCode), reason: err.Error()}) {
		s.abort()
	}
}

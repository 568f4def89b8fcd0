package dataplane

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the lingering close (see traceConn.Close).
const (
	// closeLinger is how long a closed connection keeps reading what the
	// client still sends before the socket is closed.
	closeLinger = 2 * time.Second
	// maxLingerBytes bounds what is read (and discarded) meanwhile.
	maxLingerBytes = 16 << 20
)

// traceConn is the net.Conn gws writes a connection through. It does three
// things net.Conn alone does not:
//
//   - it adds the X-Trace-ID header to the 101 response gws writes. gws's
//     extra response headers are fixed per Upgrader, and the trace id is
//     per request; gws writes the whole response in one Write, so the
//     header is spliced in after the status line of that first write, and
//     every later write passes straight through;
//   - it serializes gws's writes with the node's own writer (writer.go),
//     which writes queued frames straight to the underlying connection,
//     many per system call (gws writes one frame per call): every write of
//     either holds wmu for a whole frame or batch of frames;
//   - it closes lingering, so the close frame reaches the client (Close).
//
// gws reads through traceConn too (its Read is the underlying
// connection's), with a reader from gws's own pool (see hijacker).
type traceConn struct {
	net.Conn
	// resp is what the upgrade response gets, nil once it is written:
	// behind a pointer, so a connection's long life carries 8 bytes for
	// it, not two slice headers (the struct stays in a 48-byte size class).
	resp       *upgradeResponse
	halfClosed atomic.Bool

	// closeWanted: gws is about to write a close frame (its answer to the
	// client's close, a protocol error, the node's WriteClose).
	closeWanted atomic.Bool

	wmu sync.Mutex
	// closeSent: a close frame was written (or tried); nothing may follow
	// it. Under wmu.
	closeSent bool
	// broken: a write failed, possibly part-way through a frame: the
	// stream is not frame-aligned any more, so nothing else is written,
	// not even a close frame. Under wmu.
	broken bool
}

// upgradeResponse is what traceConn adds to the upgrade response gws
// writes.
type upgradeResponse struct {
	header  []byte // "X-Trace-ID: <id>\r\n", after the status line
	trailer []byte // right behind a 101 response: the welcome frame
}

// closeFrameByte is the first byte of a server's close frame (FIN, opcode
// 8). After the 101 response gws writes nothing but close frames: the
// node queues pings, pongs and messages to its own writer.
const closeFrameByte = 0x88

// Write is gws's write: the 101 response (or a refusal), then close frames.
func (c *traceConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == closeFrameByte {
		// Before waiting for the lock: a batch being written stops at
		// its next frame boundary for this close frame (writer.go).
		c.closeWanted.Store(true)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.resp != nil {
		return c.writeResponse(p)
	}
	if c.broken {
		return 0, errStreamBroken
	}
	if len(p) > 0 && p[0] == closeFrameByte {
		c.closeSent = true
		// The node's writer leaves no deadline behind (a pool goroutine's
		// non-blocking writes would fail on one once it passed), so the
		// close frame bounds itself: a client that does not read must
		// not hold the read loop that writes it.
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeGrace))
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.broken = true
	}
	return n, err
}

// writeResponse writes the upgrade response with the trace header and, for
// a 101, the trailer (the welcome frame) in one write.
func (c *traceConn) writeResponse(p []byte) (int, error) {
	h, trailer := c.resp.header, c.resp.trailer
	c.resp = nil
	i := bytes.Index(p, []byte("\r\n"))
	if i < 0 || !bytes.HasPrefix(p, []byte("HTTP/1.1 101")) {
		return c.Conn.Write(p)
	}
	out := make([]byte, 0, len(p)+len(h)+len(trailer))
	out = append(out, p[:i+2]...)
	out = append(out, h...)
	out = append(out, p[i+2:]...)
	out = append(out, trailer...)
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close is how gws ends a connection, right after writing its close frame
// (1009 for an oversized frame, the node's own 1008, 1001, ...). Closing a
// socket that still has unread input makes the kernel answer with a TCP
// reset, and a client that is still sending — the rest of an oversized
// frame, a flood — then sees the reset instead of the close frame: a
// browser reports 1006, and the class the node recorded never reaches the
// page. So the first Close only shuts the write side (a FIN after the close
// frame) and bounds further reads by closeLinger; the read loop goes on
// reading until the client answers or closes its side, and finish closes
// the socket after it (RFC 6455 §7.1.1: the server closes the TCP
// connection once the close handshake is done). A later Close, or a
// connection that is not TCP, closes at once.
func (c *traceConn) Close() error {
	tcp, ok := c.Conn.(*net.TCPConn)
	if !ok || !c.halfClosed.CompareAndSwap(false, true) {
		return c.Conn.Close()
	}
	if err := tcp.CloseWrite(); err != nil {
		return c.Conn.Close()
	}
	return tcp.SetReadDeadline(time.Now().Add(closeLinger))
}

// abort closes the socket at once, without a close frame and without
// lingering: for a peer that is gone (heartbeat timeout) or a drain that ran
// out of time.
func (c *traceConn) abort() {
	c.halfClosed.Store(true)
	_ = c.Conn.Close()
}

// finish runs after the connection's read loop ended: it reads and discards
// what the client still sends (bounded by Close's deadline and
// maxLingerBytes), so its last writes are not answered with a reset that
// would overtake the close frame, then closes the socket.
func (c *traceConn) finish() {
	if c.halfClosed.Load() {
		_, _ = io.Copy(io.Discard, io.LimitReader(c.Conn, maxLingerBytes))
	}
	_ = c.Conn.Close()
}

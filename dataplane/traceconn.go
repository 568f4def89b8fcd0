package dataplane

import (
	"bytes"
	"io"
	"net"
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

// traceConn is the net.Conn gws writes a connection through. It does two
// things net.Conn alone does not:
//
//   - it adds the X-Trace-ID header to the 101 response gws writes. gws's
//     extra response headers are fixed per Upgrader, and the trace id is
//     per request; gws writes the whole response in one Write, so the
//     header is spliced in after the status line of that first write, and
//     every later write passes straight through;
//   - it closes lingering, so the close frame reaches the client (Close).
//
// gws reads through traceConn too (its Read is the underlying
// connection's), with a reader from gws's own pool (see hijacker).
type traceConn struct {
	net.Conn
	header     []byte // "X-Trace-ID: <id>\r\n", nil once written
	halfClosed atomic.Bool
}

func (c *traceConn) Write(p []byte) (int, error) {
	if c.header == nil {
		return c.Conn.Write(p)
	}
	h := c.header
	c.header = nil
	i := bytes.Index(p, []byte("\r\n"))
	if i < 0 || !bytes.HasPrefix(p, []byte("HTTP/1.1 101")) {
		return c.Conn.Write(p)
	}
	out := make([]byte, 0, len(p)+len(h))
	out = append(out, p[:i+2]...)
	out = append(out, h...)
	out = append(out, p[i+2:]...)
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

package dataplane

import (
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wsfleet/wsfleet/dataplane/admission"
)

// rejectLinger bounds how long a connection answered with a reject close
// frame stays open after it, reading (and dropping) what the client still
// sends: its own close frame, usually, after which it closes. Closing a
// socket with unread input makes the kernel send a reset, which can
// overtake the close frame on its way to the client; net/http waits as
// long (its rstAvoidanceDelay) after an HTTP rejection for the same reason,
// so either mode holds a rejected connection for about the same time.
const rejectLinger = 500 * time.Millisecond

// maxRejectLingerBytes bounds what is read meanwhile: a client answering
// the close sends at most a close frame (131 bytes); one that sends more
// is not reading what it got, and the socket is closed.
const maxRejectLingerBytes = 4 << 10

// rejectWithClose answers rej the way handshake.reject_with: close asks:
// it takes the connection from net/http and writes a 101 then a close
// frame with the class's 4xxx code and reason, before reading anything the
// client sent after its request, then shuts the connection after a short
// linger (rejectLinger). It reports false, having written nothing, when
// the rejection must be answered over HTTP instead: a class with no reject
// close code (bad_handshake), a request that is not a valid upgrade, a
// server that cannot hand the connection over (HTTP/2), or a node that has
// stopped. Otherwise it calls answered once the close frame is written (or
// the write failed: the client is gone), before the linger, so the
// rejection is recorded as soon as the client has its answer.
//
// Such a connection never holds an admission ticket, so it counts against
// no cap; its cost is the handler's goroutine for at most closeGrace +
// rejectLinger, as an HTTP rejection costs net/http's.
func (n *Node) rejectWithClose(w http.ResponseWriter, r *http.Request, traceID string, rej *admission.Rejection, answered func()) bool {
	wire, ok := admission.RejectionClose(r, traceID, rej)
	if !ok {
		return false
	}
	hj, ok := w.(http.Hijacker)
	if !ok || !n.enterReject() {
		return false
	}
	defer n.rejects.Done()
	conn, _, err := hj.Hijack()
	if err != nil {
		// Nothing was written and the connection is still net/http's:
		// the caller answers over HTTP.
		return false
	}
	// The client's buffered bytes (frames pipelined behind its request)
	// are never read: the answer is decided.
	_ = conn.SetWriteDeadline(time.Now().Add(closeGrace))
	_, err = conn.Write(wire)
	answered()
	if err != nil {
		_ = conn.Close()
		return true
	}
	lingerClose(conn)
	return true
}

// lingerClose shuts the write side (a FIN after the close frame), reads
// and drops what the client still sends within rejectLinger (bounded by
// maxRejectLingerBytes), then closes.
func lingerClose(conn net.Conn) {
	tcp, ok := conn.(*net.TCPConn)
	if !ok || tcp.CloseWrite() != nil {
		_ = conn.Close()
		return
	}
	_ = tcp.SetReadDeadline(time.Now().Add(rejectLinger))
	_, _ = io.Copy(io.Discard, io.LimitReader(tcp, maxRejectLingerBytes))
	_ = tcp.Close()
}

// enterReject counts a connection being answered with a reject close
// frame, so that Shutdown waits for it; false once Shutdown has stopped
// waiting (a node mounted on a server that still runs then answers over
// HTTP).
func (n *Node) enterReject() bool {
	n.drainMu.RLock()
	defer n.drainMu.RUnlock()
	if n.rejectsDone {
		return false
	}
	n.rejects.Add(1)
	return true
}

// waitRejects lets no new reject-close answer start and waits for those
// under way, each bounded by closeGrace + rejectLinger.
func (n *Node) waitRejects() {
	n.drainMu.Lock()
	n.rejectsDone = true
	n.drainMu.Unlock()
	n.rejects.Wait()
}

package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
	"unique"

	"github.com/lxzan/gws"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/admission"
	"github.com/wsfleet/wsfleet/dataplane/internal/fold"
	"github.com/wsfleet/wsfleet/dataplane/protocol"
)

// ServeHTTP is the handshake path, in the order of DESIGN.md: trace id,
// origin, capacity, handshake rate, connect authorization (breaker), then
// the upgrade. Every rejection answers its class's status (and Retry-After
// when the class carries one) from api/errclass with a JSON body and
// X-Trace-ID — or, under handshake.reject_with: close, a 101 and the
// class's 4xxx close frame — and is recorded as an event.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	open := time.Now()
	traceID, _ := admission.TraceID(r)
	if n.draining.Load() {
		n.reject(w, r, traceID, open, n.drainRejection())
		return
	}
	ticket, rej := n.admitter.Admit(r.Context(), r, traceID)
	if rej != nil {
		n.reject(w, r, traceID, open, rej)
		return
	}
	if rej := admission.ValidateUpgrade(r); rej != nil {
		ticket.Release()
		n.reject(w, r, traceID, open, rej)
		return
	}
	if _, ok := w.(http.Hijacker); !ok {
		ticket.Release()
		n.reject(w, r, traceID, open, admission.NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE,
			"connection cannot be upgraded (HTTP/2 or a non-hijackable server)"))
		return
	}
	if !n.enter() {
		ticket.Release()
		n.reject(w, r, traceID, open, n.drainRejection())
		return
	}
	// One snapshot for the upgrade and the welcome: the heartbeat the
	// client is told is the one in force when its connection opened.
	snap := n.snapshot()
	s, socket, err := n.upgrade(snap, w, r, traceID, ticket, open)
	if err != nil {
		n.loops.Done()
		ticket.Release()
		// gws has answered (400) or the client is gone.
		n.recordRejection(r, traceID, open, admission.NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, err.Error()), 0)
		return
	}
	n.metrics.accepted.Inc()
	n.metrics.active.Inc()
	conns, fromIP := ticket.Counts()
	n.traffic.Accepted(s.origin, conns, fromIP, open)
	n.sessions.add(s)
	// Shutdown sets draining before it walks the sessions: either it saw
	// this one, or this sees draining. Closing twice is harmless.
	if n.draining.Load() {
		s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, "server shutdown")
	}
	// The read loop gets its own goroutine so this handler returns and
	// net/http drops its per-connection buffers and state.
	go func() {
		defer n.loops.Done()
		socket.ReadLoop()
	}()
}

// enter admits one more connection unless the node is draining; once it
// returns true, Shutdown waits for the connection's read loop.
func (n *Node) enter() bool {
	n.drainMu.RLock()
	defer n.drainMu.RUnlock()
	if n.draining.Load() {
		return false
	}
	n.loops.Add(1)
	return true
}

// drainRejection refuses a handshake that arrives while the node drains:
// node_draining, a handshake class (server_shutdown is what the connections
// already open get), with Retry-After: other nodes take the client meanwhile.
func (n *Node) drainRejection() *admission.Rejection {
	rej := admission.NewRejection(wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, "node is draining")
	rej.RetryAfter = n.cfg.ShutdownRetry
	return rej
}

// errPipelined stops gws's own hijack when the client sent bytes after its
// upgrade request that net/http has already read (see hijacker).
var errPipelined = errors.New("dataplane: bytes pipelined after the upgrade request")

// hijacker is the ResponseWriter gws upgrades through: its Hijack hands gws
// the connection wrapped in a traceConn. gws then reads the connection
// through a reader from its own pool, as bare gws does, and net/http's
// reader, which parsed the upgrade request, is dropped with the rest of
// net/http's per-connection state. An idle connection thus keeps a reader
// that may never have been written to (pages the kernel has not handed out
// yet), not one that has.
//
// When the client sent bytes after the request (frames before the 101),
// net/http has them buffered and gws would lose them: Hijack refuses
// (errPipelined) and the node upgrades with net/http's reader instead.
type hijacker struct {
	http.ResponseWriter
	resp upgradeResponse // the trace header and the welcome frame
	conn *traceConn
	// pipelined is net/http's reader when it holds the client's bytes.
	pipelined *bufio.Reader
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	netConn, brw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	h.conn = &traceConn{Conn: netConn, resp: &h.resp}
	if brw.Reader.Buffered() > 0 {
		h.pipelined = brw.Reader
		return nil, nil, errPipelined
	}
	return h.conn, brw, nil
}

// upgrade hijacks the connection and lets gws answer 101 (with our
// X-Trace-ID spliced in); gws answers 400 itself if it refuses.
func (n *Node) upgrade(snap *snapshot, w http.ResponseWriter, r *http.Request, traceID string, ticket *admission.Ticket, open time.Time) (*session, *gws.Conn, error) {
	up := snap.upgrader
	// The welcome goes out in the same write as the 101 (traceConn), so it
	// is the connection's first frame — before any heartbeat ping, close
	// or answer to a frame the client pipelined behind its request — and
	// costs no system call of its own.
	welcome := protocol.AppendWelcomeFrame(nil, protocol.Welcome{
		TraceID:           traceID,
		NodeID:            n.cfg.NodeID,
		HeartbeatInterval: snap.interval,
		HeartbeatTimeout:  snap.timeout,
	})
	hj := &hijacker{ResponseWriter: w, resp: upgradeResponse{
		header:  []byte(admission.TraceHeader + ": " + traceID + "\r\n"),
		trailer: appendFrameHeader(make([]byte, 0, maxFrameHeader+len(welcome)), gws.OpcodeText, len(welcome)),
	}}
	hj.resp.trailer = append(hj.resp.trailer, welcome...)
	socket, err := up.Upgrade(hj, r)
	if errors.Is(err, errPipelined) {
		// net/http's reader holds the first frames; it reads on through
		// net/http's connection reader.
		socket, err = up.UpgradeFromConn(hj.conn, hj.pipelined, r)
	}
	if err != nil {
		if hj.conn != nil {
			// gws has answered 400 and closed (half-closed) the socket;
			// no read loop will finish the close.
			hj.conn.abort()
		}
		return nil, nil, err
	}
	s := sessionOf(socket)
	s.node = n
	s.conn = socket
	s.ticket = ticket
	s.connNum = n.nextConn.Add(1)
	s.traceID = traceID
	// Few distinct origins and user agents serve many connections: share
	// one copy of each. Capped like an event's fields: the connection's
	// log lines, events and hooks see these, and a client must not make
	// the node hold a 16 KiB header for the connection's life.
	s.origin = unique.Make(n.capField(fieldOrigin, r.Header.Get("Origin"))).Value()
	s.remote = n.capField(fieldRemote, r.RemoteAddr)
	s.userAgent = unique.Make(n.capField(fieldUserAgent, r.Header.Get("User-Agent"))).Value()
	s.openNanos = open.UnixNano()
	n.sessions.assign(s)
	s.countOut(1, len(welcome))
	return s, socket, nil
}

// reject answers a refused handshake as the policy in force says
// (handshake.reject_with): its class's HTTP status, or a 101 and a close
// frame with the class's 4xxx code (rejectWithClose; bad_handshake and
// requests that cannot be upgraded stay HTTP). Either way it is counted,
// logged and reported the same, the event carrying what the client got.
func (n *Node) reject(w http.ResponseWriter, r *http.Request, traceID string, open time.Time, rej *admission.Rejection) {
	if n.snapshot().rejectClose && n.rejectWithClose(w, r, traceID, rej, func() {
		n.metrics.rejectedByMode[rejectModeClose].Inc()
		n.recordRejection(r, traceID, open, rej, rej.CloseCode())
	}) {
		return
	}
	admission.WriteRejection(w, traceID, rej)
	n.metrics.rejectedByMode[rejectModeHTTP].Inc()
	n.recordRejection(r, traceID, open, rej, 0)
}

// recordRejection records the status WriteRejection answers, or with
// closeCode set the close frame rejectWithClose sent (and no status), so
// the event and the wire agree. The metric counts every rejection; the event and its
// log line go through the fold table, which records the first rejection of
// a class, status, origin and client network at once and counts the rest
// of its window into one event (Config.FoldWindow).
func (n *Node) recordRejection(r *http.Request, traceID string, open time.Time, rej *admission.Rejection, closeCode uint16) {
	now := time.Now()
	name := errclass.Name(rej.Class)
	n.metrics.handshakeRejected(rej.Class)
	ev := newEvent(wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, rej.Class, open, now)
	if closeCode != 0 {
		ev.CloseCode = int32(closeCode)
	} else {
		ev.HttpStatus = int32(rej.HTTPStatus())
	}
	ev.TraceId = traceID
	ev.NodeId = n.cfg.NodeID
	ev.Pool = n.cfg.Pool
	ev.Origin = n.capField(fieldOrigin, r.Header.Get("Origin"))
	ev.RemoteAddr = n.capField(fieldRemote, r.RemoteAddr)
	ev.UserAgent = n.capField(fieldUserAgent, r.Header.Get("User-Agent"))
	ev.Error = n.capField(fieldError, rej.Reason)
	ev.PolicyRevision = n.snapshot().rev.GetRevision()
	// Every rejection, folded or not, is explainable to its client.
	n.noteExplain(traceID, r.RemoteAddr, rej.Class, int(ev.HttpStatus), int(ev.CloseCode), rej.RetryAfterSeconds())
	key := fold.Key{
		Class:   rej.Class,
		Status:  ev.HttpStatus + ev.CloseCode, // one of them is 0
		Origin:  ev.Origin,
		Network: fold.NetworkOf(ev.RemoteAddr, n.cfg.FoldIPv4Prefix, n.cfg.FoldIPv6Prefix),
	}
	out := n.folds.Add(key, ev, now)
	if out.Now == nil {
		n.metrics.folded.WithLabelValues(name).Inc()
	}
	if out.Overflow {
		n.metrics.foldOverflow.Inc()
	}
	if out.Ended != nil {
		n.emit(out.Ended)
	}
	if out.Now != nil {
		n.emit(out.Now)
	}
}

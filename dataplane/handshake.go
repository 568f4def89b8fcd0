package dataplane

import (
	"fmt"
	"net/http"
	"time"
	"unique"

	"github.com/lxzan/gws"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/admission"
)

// drainRetryAfter is what a client refused during shutdown is told: other
// nodes take it in the meantime.
const drainRetryAfter = 5 * time.Second

// ServeHTTP is the handshake path, in the order of DESIGN.md: trace id,
// origin, capacity, handshake rate, connect authorization (breaker), then
// the upgrade. Every rejection answers its class's status with a JSON body
// and X-Trace-ID, and is recorded as an event.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	open := time.Now()
	traceID, _ := admission.TraceID(r)
	if n.draining.Load() {
		n.reject(w, r, traceID, open, drainRejection())
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
	hj, ok := w.(http.Hijacker)
	if !ok {
		ticket.Release()
		n.reject(w, r, traceID, open, &admission.Rejection{
			Class:  wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE,
			Status: http.StatusBadRequest,
			Reason: "connection cannot be upgraded (HTTP/2 or a non-hijackable server)",
		})
		return
	}
	if !n.enter() {
		ticket.Release()
		n.reject(w, r, traceID, open, drainRejection())
		return
	}
	s, socket, err := n.upgrade(hj, r, traceID, ticket, open)
	if err != nil {
		n.loops.Done()
		ticket.Release()
		n.recordRejection(r, traceID, open, http.StatusBadRequest, wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, err.Error())
		return
	}
	n.metrics.handshakes.WithLabelValues("accepted").Inc()
	n.metrics.active.Inc()
	n.sessions.add(s)
	// Shutdown sets draining before it walks the sessions: either it saw
	// this one, or this sees draining. Closing twice is harmless.
	if n.draining.Load() {
		s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, closeGoingAway, "server shutdown")
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

func drainRejection() *admission.Rejection {
	return &admission.Rejection{
		Class:      wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN,
		Status:     http.StatusServiceUnavailable,
		RetryAfter: drainRetryAfter,
		Reason:     "node is draining",
	}
}

// upgrade hijacks the connection and lets gws answer 101 (with our
// X-Trace-ID spliced in); gws answers 400 itself if it refuses.
func (n *Node) upgrade(hj http.Hijacker, r *http.Request, traceID string, ticket *admission.Ticket, open time.Time) (*session, *gws.Conn, error) {
	netConn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	conn := &traceConn{Conn: netConn, header: []byte("X-Trace-ID: " + traceID + "\r\n")}
	br := brw.Reader
	if br.Buffered() == 0 {
		// Read the socket directly rather than through net/http's
		// connection reader, which would stay reachable (with its state)
		// for the connection's whole life.
		br.Reset(netConn)
	}
	socket, err := n.snapshot().upgrader.UpgradeFromConn(conn, br, r)
	if err != nil {
		return nil, nil, err
	}
	s := sessionOf(socket)
	s.node = n
	s.conn = socket
	s.ticket = ticket
	s.connNum = n.nextConn.Add(1)
	s.traceID = traceID
	// Few distinct origins and user agents serve many connections: share
	// one copy of each.
	s.origin = unique.Make(r.Header.Get("Origin")).Value()
	s.remote = r.RemoteAddr
	s.userAgent = unique.Make(r.Header.Get("User-Agent")).Value()
	s.openNanos = open.UnixNano()
	return s, socket, nil
}

func (n *Node) reject(w http.ResponseWriter, r *http.Request, traceID string, open time.Time, rej *admission.Rejection) {
	admission.WriteRejection(w, traceID, rej)
	n.recordRejection(r, traceID, open, rej.Status, rej.Class, rej.Reason)
}

func (n *Node) recordRejection(r *http.Request, traceID string, open time.Time, status int, class wsfleetv1.ErrorClass, reason string) {
	ev := newEvent(wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, class, open, time.Now())
	ev.HttpStatus = int32(status)
	ev.TraceId = traceID
	ev.NodeId = n.cfg.NodeID
	ev.Pool = n.cfg.Pool
	ev.Origin = r.Header.Get("Origin")
	ev.RemoteAddr = r.RemoteAddr
	ev.UserAgent = r.Header.Get("User-Agent")
	ev.Error = reason
	ev.PolicyRevision = n.snapshot().rev.GetRevision()
	if ev.HttpStatus == 0 {
		ev.HttpStatus = int32(errclass.Lookup(class).HTTPStatus)
	}
	n.record(ev)
}

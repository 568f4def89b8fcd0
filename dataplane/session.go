package dataplane

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/sirupsen/logrus"
	"go.uber.org/ratelimit"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/admission"
	"github.com/wsfleet/wsfleet/dataplane/broker"
	"github.com/wsfleet/wsfleet/dataplane/protocol"
)

// closeGrace bounds writing a close frame to a client that may not read.
const closeGrace = time.Second

// closeInfo is why the node itself closed a connection. The first close
// wins; gws's error in OnClose is then only a consequence.
type closeInfo struct {
	class  wsfleetv1.ErrorClass
	code   int32
	reason string
}

// session is one upgraded connection. It is gws's SessionStorage for the
// connection (so socket.Session() finds it without a map lookup) and its
// broker.Subscriber.
//
// Ownership: fields under "read goroutine" are touched only by the gws
// read loop (OnOpen, OnMessage, OnClose run there); the rest are atomics or
// immutable after the upgrade.
type session struct {
	node   *Node
	conn   *gws.Conn
	ticket *admission.Ticket

	traceID, origin, remote, userAgent string
	connNum                            uint64 // conn id, rendered by id()
	openNanos                          int64
	shard                              uint8 // in Node.sessions
	// publishing: the read loop is in broker.Publish (see publish). Next
	// to shard, in the padding before closing: the struct keeps its size
	// class.
	publishing atomic.Bool

	closing  atomic.Pointer[closeInfo]
	msgsOut  atomic.Int64
	bytesOut atomic.Int64
	q        outQueue

	// heartbeat (see heartbeat.go)
	frames atomic.Uint64            // frames received from the client, pongs included
	ping   atomic.Pointer[pingWait] // the unanswered ping, pingQueued, pingEnded or nil

	// read goroutine
	msgsIn, bytesIn int64
	subs            map[string]struct{}
	pacer           *pacer // built at the first message: idle connections carry none
}

// pacer holds a connection to the policy's message rate. It also counts
// the messages of the current second for the node's traffic peak (here,
// not in session: an idle connection carries no pacer, and session has no
// padding left for it).
type pacer struct {
	limiter        ratelimit.Limiter
	rate, burst    int32
	throttledSince time.Time
	second         int64  // unix second inSecond counts
	inSecond       uint32 // messages read in it
}

var (
	_ gws.Event          = (*eventHandler)(nil)
	_ gws.SessionStorage = (*session)(nil)
	_ broker.Subscriber  = (*session)(nil)
)

// The node keeps nothing in gws's per-connection key/value storage; these
// satisfy the interface so the session itself can be the storage.
func (s *session) Len() int                     { return 0 }
func (s *session) Load(string) (any, bool)      { return nil, false }
func (s *session) Delete(string)                {}
func (s *session) Store(string, any)            {}
func (s *session) Range(func(string, any) bool) {}
func (s *session) info() ConnInfo {
	return ConnInfo{ConnID: s.id(), TraceID: s.traceID, Origin: s.origin, RemoteAddr: s.remote, UserAgent: s.userAgent}
}

// log builds the connection's structured fields only when something is
// logged: an idle connection carries no logger.
func (s *session) log() *logrus.Entry {
	return s.node.log.WithFields(logrus.Fields{
		"node_id":  s.node.cfg.NodeID,
		"conn_id":  s.id(),
		"trace_id": s.traceID,
		"origin":   s.origin,
		"remote":   s.remote,
	})
}

// eventHandler is the node's gws.Event; it finds the session through
// socket.Session().
type eventHandler struct{ node *Node }

func sessionOf(socket *gws.Conn) *session { return socket.Session().(*session) }

// OnOpen has nothing to do: the session was registered (and its
// heartbeat scheduled by the node's heartbeat wheel) at the upgrade.
func (h *eventHandler) OnOpen(*gws.Conn) {}

func (h *eventHandler) OnPing(socket *gws.Conn, payload []byte) {
	s := sessionOf(socket)
	s.sawFrame()
	s.sendInline(outItem{op: gws.OpcodePong, data: append([]byte(nil), payload...)})
}

func (h *eventHandler) OnPong(socket *gws.Conn, _ []byte) {
	sessionOf(socket).sawFrame()
}

func (h *eventHandler) OnMessage(socket *gws.Conn, msg *gws.Message) {
	s := sessionOf(socket)
	defer msg.Close()
	if s.closing.Load() != nil {
		// Frames gws still had buffered after the node closed the
		// connection: drop them instead of pacing through them.
		return
	}
	defer s.recoverPanic()
	s.sawFrame()
	now := time.Now()
	n := msg.Data.Len()
	s.countIn(n)
	h.node.traffic.MessageBytes(n)

	snap := h.node.snapshot()
	// gws enforces the limit in force when the connection opened; a lower
	// one applied since is enforced here.
	if n > snap.maxMessageBytes {
		s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG,
			fmt.Sprintf("message of %d bytes over max_message_bytes %d", n, snap.maxMessageBytes))
		return
	}
	if !s.pace(snap, now) {
		return
	}
	if msg.Opcode != gws.OpcodeText {
		fe := protocol.BinaryFrameError()
		s.sendError(fe.Code, fe.Message, "")
		return
	}
	f, ferr := protocol.DecodeClientFrame(msg.Bytes(), protocol.Limits{MaxChannelLength: h.node.cfg.MaxChannelLength})
	if ferr != nil {
		s.sendError(ferr.Code, ferr.Message, ferr.ID)
		return
	}
	switch f.Type {
	case protocol.Subscribe:
		s.subscribe(f.Channel, f.ID)
	case protocol.Unsubscribe:
		s.unsubscribe(f.Channel, f.ID)
	case protocol.Publish:
		s.publish(f.Channel, f.Data, f.ID)
	case protocol.Ping:
		// Paced and counted above like any frame; the pong goes through
		// the queue, behind whatever was queued before it.
		s.sendInline(outItem{op: gws.OpcodeText, data: protocol.AppendPongFrame(nil, f.ID)})
	}
}

func (h *eventHandler) OnClose(socket *gws.Conn, err error) {
	s := sessionOf(socket)
	now := time.Now()
	s.q.close()
	s.endHeartbeat()
	for ch := range s.subs {
		h.node.broker.Unsubscribe(ch, s)
	}
	s.subs = nil
	s.ticket.Release()
	h.node.sessions.remove(s)
	h.node.metrics.active.Dec()

	class, code := classify(err)
	text := ""
	if err != nil {
		text = err.Error()
	}
	if ci := s.closing.Load(); ci != nil {
		class, code, text = ci.class, ci.code, ci.reason
	}
	ev := newEvent(wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, class, time.Unix(0, s.openNanos), now)
	ev.CloseCode = code
	ev.TraceId = s.traceID
	ev.ConnId = s.id()
	ev.NodeId = h.node.cfg.NodeID
	ev.Pool = h.node.cfg.Pool
	ev.Origin = s.origin
	ev.RemoteAddr = s.remote
	ev.UserAgent = s.userAgent
	ev.MessagesIn = s.msgsIn
	ev.BytesIn = s.bytesIn
	ev.MessagesOut = s.msgsOut.Load()
	ev.BytesOut = s.bytesOut.Load()
	// A close reason is the client's text (gws quotes it in its error).
	ev.Error = h.node.capField(fieldError, text)
	ev.PolicyRevision = h.node.snapshot().rev.GetRevision()
	h.node.record(ev)
	// Last: it may read what the client still sends for up to closeLinger.
	if tc, ok := socket.NetConn().(*traceConn); ok {
		tc.finish()
	}
}

// abort closes the connection's socket at once, without a close frame.
func (s *session) abort() {
	if tc, ok := s.conn.NetConn().(*traceConn); ok {
		tc.abort()
		return
	}
	_ = s.conn.NetConn().Close()
}

// id renders the connection id, unique per node process.
func (s *session) id() string { return "c" + strconv.FormatUint(s.connNum, 36) }

// pace holds the read loop to the policy's message rate (TCP backpressure
// slows the client down) and closes a client that stays over the rate for
// the whole abuse window: it ignores the backpressure. Returns false when
// it closed the connection.
func (s *session) pace(snap *snapshot, now time.Time) bool {
	p := s.pacer
	if p == nil || p.rate != snap.msgRate || p.burst != snap.msgBurst {
		// Built on first use and rebuilt only when rate or burst changed: an
		// unrelated policy change keeps the limiter's state.
		next := &pacer{
			limiter: ratelimit.New(int(snap.msgRate), ratelimit.WithSlack(int(snap.msgBurst))),
			rate:    snap.msgRate,
			burst:   snap.msgBurst,
		}
		if p != nil {
			next.second, next.inSecond = p.second, p.inSecond
		}
		p = next
		s.pacer = p
	}
	if sec := now.Unix(); sec != p.second {
		p.second, p.inSecond = sec, 0
	}
	p.inSecond++
	s.node.traffic.MessageRate(p.inSecond)
	after := p.limiter.Take()
	if after.Sub(now) < snap.throttleThreshold {
		p.throttledSince = time.Time{}
		return true
	}
	if p.throttledSince.IsZero() {
		p.throttledSince = now
		return true
	}
	if over := after.Sub(p.throttledSince); over >= s.node.cfg.AbuseWindow {
		s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION,
			fmt.Sprintf("message rate over messages_per_second %d for %s", snap.msgRate, over.Round(time.Millisecond)))
		return false
	}
	return true
}

// subscribe, unsubscribe and publish answer with id ("" when the frame
// had none) on their acknowledgement or error frame.
func (s *session) subscribe(ch, id string) {
	if _, ok := s.subs[ch]; ok {
		s.sendAck(protocol.AckSubscribed, ch, id)
		return
	}
	if len(s.subs) >= s.node.cfg.MaxSubscriptions {
		s.sendError(protocol.CodeTooManySubscriptions, "at most "+strconv.Itoa(s.node.cfg.MaxSubscriptions)+" channels per connection", id)
		return
	}
	if hook := s.node.cfg.Hooks.OnSubscribe; hook != nil {
		if err := hook(s.node.ctx, s.info(), ch); err != nil {
			s.sendError(protocol.CodeForbidden, err.Error(), id)
			return
		}
	}
	if _, err := s.node.broker.Subscribe(ch, s); err != nil {
		s.sendError(protocol.CodeUnavailable, "subscribe failed: "+err.Error(), id)
		return
	}
	if s.subs == nil {
		s.subs = make(map[string]struct{}, 1)
	}
	s.subs[ch] = struct{}{}
	s.sendAck(protocol.AckSubscribed, ch, id)
}

func (s *session) unsubscribe(ch, id string) {
	if _, ok := s.subs[ch]; ok {
		s.node.broker.Unsubscribe(ch, s)
		delete(s.subs, ch)
	}
	s.sendAck(protocol.AckUnsubscribed, ch, id)
}

// publish hands data to the broker, which delivers the message frame to
// every subscriber it reaches (encoded once per node). A publish the broker
// cannot carry reaches nobody and is answered with an "unavailable" error
// frame; with NATS that includes this node's own subscribers (see package
// natsbroker: no split view). It blocks the read loop at most for the
// broker's own bound (natsbroker's write timeout), and not at all once the
// broker's breaker is open.
//
// A publish with an id is acknowledged ("published") once the broker has
// taken it; one without is not, so the common case costs no frame back.
// With the in-process broker the publisher's own copy, if it is
// subscribed, is queued before the acknowledgement.
func (s *session) publish(ch string, data []byte, id string) {
	m := s.node.metrics.data
	if hook := s.node.cfg.Hooks.OnPublish; hook != nil {
		if err := hook(s.node.ctx, s.info(), ch, data); err != nil {
			m.publishForbidden.Add(1)
			s.sendError(protocol.CodeForbidden, err.Error(), id)
			return
		}
	}
	// While it publishes, a delivery to this connection (it is subscribed
	// to its own channel) is written at once on this goroutine, as an ack
	// is (sendInline).
	s.publishing.Store(true)
	_, err := s.node.broker.Publish(s.node.ctx, ch, data)
	s.publishing.Store(false)
	if err == nil {
		s.stripe().publishOK.Add(1)
		if id != "" {
			s.sendAck(protocol.AckPublished, ch, id)
		}
		return
	}
	m.publishFailed(err)
	if errors.Is(err, broker.ErrTooBig) {
		s.sendError(protocol.CodeUnavailable, "publish not delivered: "+err.Error(), id)
		return
	}
	s.sendError(protocol.CodeUnavailable, "publish not delivered to anyone: "+err.Error()+"; retry later", id)
}

// Deliver implements broker.Subscriber. It never blocks: the frame goes
// to the bounded queue, or the connection is closed as a slow consumer.
func (s *session) Deliver(msg []byte) {
	if s.publishing.Load() {
		s.sendInline(outItem{op: gws.OpcodeText, data: msg})
		return
	}
	s.send(outItem{op: gws.OpcodeText, data: msg})
}

func (s *session) sendError(code, message, id string) {
	s.sendInline(outItem{op: gws.OpcodeText, data: protocol.AppendErrorFrame(nil, code, message, id)})
}

func (s *session) sendAck(kind, ch, id string) {
	s.sendInline(outItem{op: gws.OpcodeText, data: protocol.AppendAckFrame(nil, kind, ch, id)})
}

// send queues a frame for the connection's writer (writer.go). It never
// blocks: a full queue closes the connection as a slow consumer instead.
func (s *session) send(it outItem) { s.push(it, false) }

// sendInline is send for a frame the connection's own read loop makes in
// answer to the client (an ack, an error, a pong, its own publish coming
// back): when nothing else is queued or being written, the read loop
// writes it at once, as bare gws writes an echo, instead of waking a pool
// goroutine for it. The write is the pool's own turn (session.flush): it
// never waits for the socket, and a socket that takes less hands the rest
// to a goroutine of the connection's own.
func (s *session) sendInline(it outItem) { s.push(it, true) }

func (s *session) push(it outItem, inline bool) {
	switch s.q.push(it, s.node.cfg.MaxQueueMessages, s.node.cfg.MaxQueueBytes) {
	case pushSchedule:
		if !inline {
			s.node.writers.add(s)
			return
		}
		w := rawWriters.Get().(*rawWriter)
		s.flush(w)
		rawWriters.Put(w)
	case pushOverflow:
		s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER,
			fmt.Sprintf("outgoing queue full (%d messages or %d bytes): the client is not reading", s.node.cfg.MaxQueueMessages, s.node.cfg.MaxQueueBytes))
	}
}

// closeWith closes the connection for a reason the node decided, with the
// close code the error-class table gives the class (none for
// heartbeat_timeout). Only the first call has an effect. It never blocks for
// long: writes of the close frame are bounded by closeGrace, and a slow
// consumer is closed from a goroutine because Deliver runs on another
// connection's read loop.
func (s *session) closeWith(class wsfleetv1.ErrorClass, reason string) {
	info := errclass.Lookup(class)
	// The event records the code the client sees (1006 when no frame is
	// sent); the frame carries the code the node sends.
	if !s.closing.CompareAndSwap(nil, &closeInfo{class: class, code: int32(info.CloseCode), reason: reason}) {
		return
	}
	switch class {
	case wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT:
		// The peer is gone or stuck: no close frame (the client sees 1006).
		// Closing the socket ends the read loop; a read deadline would make
		// gws write close 1000 "i/o timeout" first.
		s.abort()
	case wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER:
		s.q.close() // free what it did not read now
		go s.writeClose(info.SentCloseCode, reason)
	default:
		s.writeClose(info.SentCloseCode, reason)
	}
}

// maxCloseReason is the most a close frame's reason may take: a control
// frame carries at most 125 bytes (RFC 6455 §5.5), two of them the code.
const maxCloseReason = 123

func (s *session) writeClose(code uint16, reason string) {
	// The deadline also cuts a write in flight on the connection's own
	// writer goroutine, which holds the write lock (writer.go).
	_ = s.conn.SetWriteDeadline(time.Now().Add(closeGrace))
	// The reason must be valid UTF-8 (RFC 6455 §5.5.1; browsers fail the
	// connection otherwise): cut on a rune boundary, never inside one.
	_ = s.conn.WriteClose(code, []byte(clip.ValidString(reason, maxCloseReason)))
}

// recoverPanic turns a panic in message handling into a 1011 close of this
// connection only, with the stack in the log.
func (s *session) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	s.log().WithFields(logrus.Fields{"panic": fmt.Sprint(p), "stack": string(debug.Stack())}).Error("message handler panicked")
	s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR, "internal error")
}

package wsclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// handshakeSlack keeps gws's own handshake timeout past OpenTimeout, so
// the client's timer always cuts a stalled handshake first, by closing the
// socket. (gws v1.9.1 writes the request from a goroutine that blocks for
// ever on an unbuffered channel if its own timeout fires while the write
// is stuck; a closed socket makes the write return at once instead.)
const handshakeSlack = 5 * time.Second

// closeWriteTimeout bounds writing the close frame on Close: a node that
// does not read any more must not hold Close up.
const closeWriteTimeout = time.Second

// maxReasonBytes caps a close reason kept in a Failure.
const maxReasonBytes = 123

var (
	classUnreachable      = wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_UNREACHABLE
	classHandshakeFailed  = wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_FAILED
	classHandshakeTimeout = wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_TIMEOUT
	classConnectionLost   = wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_CONNECTION_LOST
)

// pending is a request waiting for the node's answer: a publish or an
// unsubscribe (done), or a subscribe (sub, whose waiters are answered).
type pending struct {
	done    chan error
	channel string
	sub     *subscription
}

// conn is one socket, from the 101 to its read loop's end. Its gws read
// loop runs the Event methods below; its keeper goroutine sends the
// application heartbeat and cuts the socket when the node goes silent.
type conn struct {
	c       *Client
	socket  *gws.Conn
	traceID string

	// welcome receives the welcome frame (once).
	welcome  chan nodeFrame
	welcomed atomic.Bool
	hello    nodeFrame
	// lastSeen is when the last frame of any kind (ping included) came,
	// in Unix nanoseconds.
	lastSeen atomic.Int64
	// dead says why the keeper cut the socket; empty otherwise.
	dead atomic.Pointer[string]

	// closed is closed by OnClose, after closeErr is set.
	closed   chan struct{}
	closeErr error

	mu      sync.Mutex
	pending map[string]*pending
	over    bool // the connection ended: no request may wait on it
}

func newConn(c *Client, traceID string) *conn {
	cn := &conn{
		c:       c,
		traceID: traceID,
		welcome: make(chan nodeFrame, 1),
		closed:  make(chan struct{}),
		pending: map[string]*pending{},
	}
	cn.lastSeen.Store(time.Now().UnixNano())
	return cn
}

// dialer is the socket's dialer: it dials with the attempt's context and
// keeps the connection, so the open timeout and Close can cut a handshake
// at any step by closing it.
type dialer struct {
	ctx     context.Context
	mu      sync.Mutex
	conn    net.Conn
	aborted bool
	dialed  atomic.Bool
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(d.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		_ = c.Close()
		return nil, context.Cause(d.ctx)
	}
	d.conn = c
	d.dialed.Store(true)
	return c, nil
}

func (d *dialer) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aborted = true
	if d.conn != nil {
		_ = d.conn.Close()
	}
}

// gwsLogger hands gws's own error lines to the client's log.
type gwsLogger struct{ log logrus.FieldLogger }

func (l gwsLogger) Error(v ...any) { l.log.Error(v...) }

// open makes one attempt: dial, handshake, welcome frame, all within
// OpenTimeout. It returns the welcomed connection, or why the attempt
// failed; both nil when Close cut it short.
func (c *Client) open(traceID string) (*conn, *Failure) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.OpenTimeout)
	defer cancel()
	d := &dialer{ctx: ctx}
	stop := context.AfterFunc(ctx, d.abort)
	cn := newConn(c, traceID)
	hdr := http.Header{}
	for k, v := range c.cfg.Header {
		hdr[k] = append([]string(nil), v...)
	}
	if c.cfg.Origin != "" {
		hdr.Set("Origin", c.cfg.Origin)
	}
	var tlsCfg *tls.Config
	if c.cfg.TLSConfig != nil {
		tlsCfg = c.cfg.TLSConfig.Clone()
	}
	socket, resp, err := gws.NewClient(cn, &gws.ClientOption{
		Addr:               c.attemptURL(traceID),
		RequestHeader:      hdr,
		HandshakeTimeout:   c.cfg.OpenTimeout + handshakeSlack,
		TlsConfig:          tlsCfg,
		NewDialer:          func() (gws.Dialer, error) { return d, nil },
		ReadMaxPayloadSize: c.cfg.MaxMessageBytes,
		CheckUtf8Enabled:   true,
		Logger:             gwsLogger{c.log},
		Recovery:           gws.Recovery,
	})
	if err == nil && !stop() {
		// The timeout or Close cut the socket just as the 101 came.
		_ = socket.NetConn().Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		stop()
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		return nil, c.openFailed(ctx, traceID, d, resp, err)
	}
	cn.socket = socket
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		socket.ReadLoop()
	}()
	select {
	case cn.hello = <-cn.welcome:
		return cn, nil
	case <-cn.closed:
		if c.ctx.Err() != nil {
			return nil, nil
		}
		return nil, c.ended(cn)
	case <-ctx.Done():
		cn.abort()
		<-cn.closed
		if c.ctx.Err() != nil {
			return nil, nil
		}
		return nil, c.failureOf(classHandshakeTimeout, traceID, "no welcome frame",
			fmt.Sprintf("the node answered 101 but sent no welcome frame within %s", c.cfg.OpenTimeout))
	}
}

// openFailed explains an attempt that got no 101: a timeout, an HTTP answer
// (the node's rejection, or something in front of it), or a dial that
// failed (the node never saw it).
func (c *Client) openFailed(ctx context.Context, traceID string, d *dialer, resp *http.Response, err error) *Failure {
	if ctx.Err() != nil {
		stage := "dialing"
		if d.dialed.Load() {
			stage = "connected, no 101"
		}
		return c.failureOf(classHandshakeTimeout, traceID, "no 101",
			fmt.Sprintf("no answer to the handshake within %s (%s)", c.cfg.OpenTimeout, stage))
	}
	if resp != nil {
		signal := "HTTP " + strconv.Itoa(resp.StatusCode)
		detail := signal
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// A 101 whose headers do not complete the upgrade: a proxy
			// answered for the node.
			detail += ": " + err.Error()
		}
		// When the node cannot explain (its explain endpoint refuses or
		// fails), a rejection that carries the node's X-Trace-ID still
		// names its class by its status wherever the status is the
		// class's alone: Go, unlike a browser, sees it.
		unexplained := classUnreachable
		if resp.Header.Get("X-Trace-ID") == "" {
			detail += " without X-Trace-ID (not from a wsfleet node)"
		} else if resp.StatusCode != http.StatusSwitchingProtocols {
			unexplained = classOfStatus(resp.StatusCode)
		}
		return c.explainOr(traceID, signal, detail, classHandshakeFailed, unexplained, parseRetryAfter(resp.Header.Get("Retry-After")))
	}
	what := describeNetError(err)
	if !d.dialed.Load() || strings.HasPrefix(what, "tls") {
		// DNS, TCP or TLS: the node cannot know an attempt that never
		// reached it, so there is nothing to ask it.
		return c.failureOf(classUnreachable, traceID, "no connection", what)
	}
	return c.explainOr(traceID, "no response", what, classHandshakeFailed, classUnreachable, 0)
}

// classOfStatus is the handshake class a node answers with status, when
// only one class does (403 origin_rejected, 429 rate_limited, …);
// client_handshake_failed when several do (503) or none.
func classOfStatus(status int) wsfleetv1.ErrorClass {
	found := classHandshakeFailed
	n := 0
	for _, info := range errclass.All() {
		if info.Kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED && (info.HTTPStatus == status || info.AltHTTPStatus == status) {
			found, n = info.Class, n+1
		}
	}
	if n != 1 {
		return classHandshakeFailed
	}
	return found
}

// ended explains a connection that ended (before or after its welcome).
func (c *Client) ended(cn *conn) *Failure {
	if why := cn.dead.Load(); why != nil {
		return c.failureOf(classConnectionLost, cn.traceID, "no frame within the heartbeat timeout", *why)
	}
	var ce *gws.CloseError
	if errors.As(cn.closeErr, &ce) {
		reason := clip.ValidString(string(ce.Reason), maxReasonBytes)
		if f, ok := c.fromRejectClose(ce.Code, reason, cn.traceID); ok {
			return f
		}
		byCode := errclass.FromCloseCode(ce.Code, false)
		return c.explainOr(cn.traceID, "close "+strconv.Itoa(int(ce.Code)), join("close "+strconv.Itoa(int(ce.Code)), reason), byCode, byCode, 0)
	}
	// No close frame: 1006.
	return c.explainOr(cn.traceID, "close 1006", describeNetError(cn.closeErr), classConnectionLost, classConnectionLost, 0)
}

// explainOr asks the node about traceID: its class when it knows the
// attempt, unknown when it answers 404, unreachable when it cannot be
// asked. retryAfter (a Retry-After header the client saw) applies when the
// node's answer carries none.
func (c *Client) explainOr(traceID, signal, detail string, unknown, unreachable wsfleetv1.ErrorClass, retryAfter time.Duration) *Failure {
	e, err := c.explain(c.ctx, traceID)
	var f *Failure
	switch {
	case err == nil:
		f = c.explained(e, traceID, detail)
	case errors.Is(err, errUnknownTrace):
		f = c.failureOf(unknown, traceID, signal, detail)
	default:
		f = c.failureOf(unreachable, traceID, signal, join(detail, "explain: "+describeNetError(err)))
	}
	f.RetryAfter = max(f.RetryAfter, retryAfter)
	return f
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// serve runs a welcomed connection to its end and says why it ended; nil
// when Close ended it.
func (c *Client) serve(cn *conn, attempt int) *Failure {
	c.mu.Lock()
	c.cur = cn
	c.stats.Connects++
	var frames [][]byte
	for ch, s := range c.subs {
		s.acked = false
		frames = append(frames, cn.subscribeLocked(ch, s))
	}
	c.flushLocked()
	c.mu.Unlock()
	for _, f := range frames {
		if cn.send(f) != nil {
			break // the read loop is ending; the next connection resubscribes
		}
	}
	interval := durationMS(cn.hello.HeartbeatIntervalMS, DefaultHeartbeatInterval)
	timeout := durationMS(cn.hello.HeartbeatTimeoutMS, DefaultHeartbeatTimeout)
	c.log.WithFields(logrus.Fields{"trace_id": cn.traceID, "node_id": cn.hello.NodeID, "channels": len(frames)}).Info("connected")
	c.emit(Event{State: StateConnected, Attempt: attempt, TraceID: cn.traceID, NodeID: cn.hello.NodeID})
	c.wg.Add(1)
	go cn.keep(interval, timeout)

	select {
	case <-cn.closed:
	case <-c.ctx.Done():
		_ = cn.socket.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		_ = cn.socket.WriteClose(1000, []byte("client closed"))
		<-cn.closed
	}
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	if c.ctx.Err() != nil {
		cn.finish(ErrClosed)
		return nil
	}
	cn.finish(ErrDisconnected)
	return c.ended(cn)
}

func durationMS(ms int64, def time.Duration) time.Duration {
	if ms <= 0 {
		return def
	}
	return time.Duration(ms) * time.Millisecond
}

// subscribeLocked registers a subscribe of ch on cn and returns the frame
// to send (after c.mu is released: a write may wait for the socket).
func (cn *conn) subscribeLocked(ch string, s *subscription) []byte {
	id := cn.c.id()
	cn.expect(id, &pending{channel: ch, sub: s})
	return encode(clientFrame{Type: typeSubscribe, Channel: ch, ID: id})
}

// expect registers p under id; false when the connection has ended.
func (cn *conn) expect(id string, p *pending) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.over {
		return false
	}
	cn.pending[id] = p
	return true
}

// take removes and returns the request id; nil if there is none.
func (cn *conn) take(id string) *pending {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	p := cn.pending[id]
	delete(cn.pending, id)
	return p
}

func (cn *conn) forget(id string) { cn.take(id) }

// finish fails every request still waiting with err; a subscribe's
// callers keep waiting for the next connection.
func (cn *conn) finish(err error) {
	cn.mu.Lock()
	ps := cn.pending
	cn.pending, cn.over = nil, true
	cn.mu.Unlock()
	for _, p := range ps {
		if p.done != nil {
			p.done <- err
		}
	}
}

// send writes one text frame, with RequestTimeout as its deadline: a node
// that stops reading fails the write and the connection, rather than
// blocking the caller for ever.
func (cn *conn) send(frame []byte) error {
	_ = cn.socket.SetWriteDeadline(time.Now().Add(cn.c.cfg.RequestTimeout))
	return cn.socket.WriteMessage(gws.OpcodeText, frame)
}

// abort cuts the socket without a close frame; the read loop ends.
func (cn *conn) abort() { _ = cn.socket.NetConn().Close() }

// keep is the connection's heartbeat goroutine: a {"type":"ping"} every
// interval, and the socket cut when no frame at all came for timeout.
func (cn *conn) keep(interval, timeout time.Duration) {
	defer cn.c.wg.Done()
	lastPing := time.Now()
	t := time.NewTimer(min(interval, timeout))
	defer t.Stop()
	for {
		select {
		case <-cn.closed:
			return
		case <-t.C:
		}
		now := time.Now()
		silent := now.Sub(time.Unix(0, cn.lastSeen.Load()))
		if silent >= timeout {
			why := fmt.Sprintf("no frame from the node for %s (heartbeat timeout %s)", silent.Round(time.Millisecond), timeout)
			cn.dead.Store(&why)
			cn.abort()
			return
		}
		if now.Sub(lastPing) >= interval {
			if cn.send(pingFrame) != nil {
				return // the read loop is ending
			}
			lastPing = now
		}
		t.Reset(max(min(interval-now.Sub(lastPing), timeout-silent), time.Millisecond))
	}
}

// gws.Event, run by the socket's read loop.

var _ gws.Event = (*conn)(nil)

func (cn *conn) OnOpen(*gws.Conn) {}

func (cn *conn) OnClose(_ *gws.Conn, err error) {
	cn.closeErr = err
	close(cn.closed)
}

func (cn *conn) OnPing(socket *gws.Conn, payload []byte) {
	cn.lastSeen.Store(time.Now().UnixNano())
	_ = socket.WritePong(payload)
}

func (cn *conn) OnPong(*gws.Conn, []byte) { cn.lastSeen.Store(time.Now().UnixNano()) }

func (cn *conn) OnMessage(_ *gws.Conn, msg *gws.Message) {
	defer func() { _ = msg.Close() }()
	cn.lastSeen.Store(time.Now().UnixNano())
	if msg.Opcode != gws.OpcodeText {
		return
	}
	var f nodeFrame
	if err := json.Unmarshal(msg.Bytes(), &f); err != nil {
		cn.c.log.WithError(err).Debug("frame from the node is not JSON; ignored")
		return
	}
	c := cn.c
	switch f.Type {
	case typeWelcome:
		if cn.welcomed.CompareAndSwap(false, true) {
			cn.welcome <- f
		}
	case typeMessage:
		c.mu.Lock()
		var h Handler
		if s := c.subs[f.Channel]; s != nil {
			h = s.handler
		}
		c.mu.Unlock()
		if h != nil {
			h(f.Channel, f.Data)
		}
	case typeSubscribed, typeUnsubscribed, typePublished:
		cn.answer(f.ID, nil)
	case typeError:
		err := &ServerError{Code: f.Code, Message: f.Message}
		if f.ID == "" || !cn.answer(f.ID, err) {
			c.log.WithFields(logrus.Fields{"code": f.Code, "message": f.Message}).Warn("error frame from the node")
		}
	case typePong:
	}
}

// answer resolves request id with err; false when no such request waits.
func (cn *conn) answer(id string, err error) bool {
	if id == "" {
		return false
	}
	p := cn.take(id)
	if p == nil {
		return false
	}
	if p.done != nil {
		p.done <- err
		return true
	}
	c := cn.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[p.channel] != p.sub {
		return true // unsubscribed or replaced meanwhile
	}
	if err != nil {
		// The node refuses the channel: the subscription is gone.
		delete(c.subs, p.channel)
		c.log.WithFields(logrus.Fields{"channel": p.channel, "error": err}).Warn("subscription refused by the node; dropped")
	} else {
		p.sub.acked = true
	}
	for _, w := range p.sub.waiters {
		w <- err
	}
	p.sub.waiters = nil
	return true
}

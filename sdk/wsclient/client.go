package wsclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/sdk/internal/backoff"
)

// State is where the client is; the names are the JS SDK's.
type State int32

// The states. A client is idle until Start, then connecting, connected and
// disconnected (waiting to reconnect) in turn, and closed for good after
// Close or a terminal failure.
const (
	StateIdle State = iota
	StateConnecting
	StateConnected
	StateDisconnected
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Event is one state change, handed to Config.OnEvent in order.
type Event struct {
	Time  time.Time
	State State
	// Attempt counts the attempts so far (1 is the first); TraceID is the
	// current or last attempt's.
	Attempt int
	TraceID string
	// NodeID is the node that welcomed the connection (connected).
	NodeID string
	// Failure is why the connection failed or ended (disconnected, and
	// closed by a terminal failure); nil on a Close.
	Failure *Failure
	// Delay is the wait before the next attempt (disconnected).
	Delay time.Duration
}

// Stats counts what the client did.
type Stats struct {
	// Attempts counts handshakes tried; Connects those that got their
	// welcome frame.
	Attempts, Connects uint64
	// ReportsQueued counts client_* failures queued for the node;
	// ReportsSent those the node accepted; ReportsDropped those dropped
	// from a full queue or refused by the node.
	ReportsQueued, ReportsSent, ReportsDropped uint64
}

// Handler receives a channel's messages: the data of each
// {"type":"message"} frame, the caller's to keep. It runs on the
// connection's read loop, one message at a time in the node's order, and
// must not block for long (hand over to another goroutine for slow work).
type Handler func(channel string, data json.RawMessage)

// subscription is a channel the client keeps subscribed across
// reconnects.
type subscription struct {
	handler Handler
	// acked: the current connection confirmed it.
	acked bool
	// waiters are Subscribe calls waiting for the confirmation.
	waiters []chan error
}

// Client is a reconnecting client of a wsfleet node (see the package doc).
type Client struct {
	cfg Config
	url *url.URL
	log logrus.FieldLogger

	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the client starts; Close waits for it.
	wg      sync.WaitGroup
	started atomic.Bool
	// done is closed when the run goroutine has ended: the client is
	// closed.
	done chan struct{}

	state  atomic.Int32
	nextID atomic.Uint64

	mu       sync.Mutex
	cur      *conn // the welcomed connection, nil between connections
	subs     map[string]*subscription
	terminal *Failure
	reports  []report
	flushing bool
	stats    Stats
}

// New checks cfg, fills its defaults and returns a Client; Start starts it.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:    cfg,
		url:    u,
		log:    cfg.Log.WithField("url", cfg.URL),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		subs:   map[string]*subscription{},
	}
	return c, nil
}

// Start starts connecting in the background. It returns at once; the
// client reconnects until Close or a terminal failure.
func (c *Client) Start() error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	if !c.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	c.wg.Add(1)
	go c.run()
	return nil
}

// Close stops the client: an open connection is closed with 1000, an
// attempt or a backoff wait is cut short, pending requests fail with
// ErrClosed. It returns once every goroutine of the client has ended.
// Close may be called any number of times, from any goroutine except
// Config.OnEvent's.
func (c *Client) Close() error {
	c.cancel()
	if c.started.CompareAndSwap(false, true) {
		// Never started: nothing runs, nothing to wait for.
		close(c.done)
		c.state.Store(int32(StateClosed))
		return nil
	}
	c.wg.Wait()
	return nil
}

// Done is closed once the client is closed, by Close or by a terminal
// failure (see Failure).
func (c *Client) Done() <-chan struct{} { return c.done }

// State returns the client's state now.
func (c *Client) State() State { return State(c.state.Load()) }

// Failure returns the terminal failure that stopped the client, or nil.
func (c *Client) Failure() *Failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.terminal
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// emit sets the state and hands the event to OnEvent (run goroutine only,
// so events arrive in order).
func (c *Client) emit(ev Event) {
	ev.Time = c.cfg.Now()
	c.state.Store(int32(ev.State))
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(ev)
	}
}

// run is the client's one goroutine that owns the connection: one attempt
// at a time, each to its end, then the backoff wait. Exactly one socket
// exists at a time: the next dial starts only after the last socket's read
// loop has ended.
func (c *Client) run() {
	defer c.wg.Done()
	defer close(c.done)
	var attempts, failures int
	for c.ctx.Err() == nil {
		attempts++
		traceID := newTraceID()
		c.mu.Lock()
		c.stats.Attempts++
		c.mu.Unlock()
		c.emit(Event{State: StateConnecting, Attempt: attempts, TraceID: traceID})
		c.log.WithField("trace_id", traceID).Debug("connecting")
		cn, f := c.open(traceID)
		if cn != nil {
			welcomed := time.Now()
			f = c.serve(cn, attempts)
			if time.Since(welcomed) >= c.cfg.StableAfter {
				// It held: the backoff starts over. One that ends at
				// once counts as a failure (see Config.StableAfter).
				failures = 0
			}
		}
		if c.ctx.Err() != nil || f == nil {
			break
		}
		c.note(f)
		if !f.Retryable {
			c.mu.Lock()
			c.terminal = f
			c.mu.Unlock()
			c.log.WithFields(logrus.Fields{"class": f.Name, "trace_id": f.TraceID, "what_to_do": f.WhatToDo}).
				Error("connection refused for good; not reconnecting")
			c.cancel()
			c.failWaiters(f)
			c.emit(Event{State: StateClosed, Attempt: attempts, TraceID: traceID, Failure: f})
			return
		}
		delay := max(c.cfg.Jitter(backoff.Ceiling(c.cfg.MinBackoff, c.cfg.MaxBackoff, failures)), f.RetryAfter)
		failures++
		c.log.WithFields(logrus.Fields{"class": f.Name, "trace_id": f.TraceID, "detail": f.Detail, "retry_in": delay}).
			Info("disconnected")
		c.emit(Event{State: StateDisconnected, Attempt: attempts, TraceID: traceID, Failure: f, Delay: delay})
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	c.failWaiters(ErrClosed)
	c.emit(Event{State: StateClosed, Attempt: attempts})
}

// note queues f for the node when it is a failure the node never saw.
func (c *Client) note(f *Failure) {
	if !clientClass(f.Class) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queueLocked(reportOf(f))
}

// failWaiters ends every Subscribe still waiting and drops every
// subscription: the client is closed.
func (c *Client) failWaiters(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch, s := range c.subs {
		for _, w := range s.waiters {
			w <- err
		}
		delete(c.subs, ch)
	}
}

// attemptURL is the handshake URL of the attempt traceID.
func (c *Client) attemptURL(traceID string) string {
	u := *c.url
	q := u.Query()
	q.Set("trace_id", traceID)
	u.RawQuery = q.Encode()
	return u.String()
}

// httpURL is the node's HTTP endpoint next to the WebSocket path:
// ws://h/ws → http://h/ws/explain.
func (c *Client) httpURL(suffix string) *url.URL {
	u := *c.url
	u.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	u.Path += suffix
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return &u
}

// newTraceID is 32 random hex digits.
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// id is a fresh request id.
func (c *Client) id() string { return strconv.FormatUint(c.nextID.Add(1), 10) }

// Subscribe subscribes to ch and returns once the node confirmed it. The
// subscription is the client's until Unsubscribe: it is renewed on every
// reconnect, and handler gets the channel's messages meanwhile. While the
// client is between connections, Subscribe waits for the next one.
//
// On ErrTimeout or a ctx error the subscription stays (the client keeps
// subscribing on every connect); on a *ServerError (the node refused:
// bad_channel, forbidden, too_many_subscriptions) or ErrClosed it is gone.
// Subscribing again to a channel replaces its handler.
func (c *Client) Subscribe(ctx context.Context, ch string, handler Handler) error {
	if ch == "" || handler == nil {
		return fmt.Errorf("%w: Subscribe needs a channel and a handler", ErrBadRequest)
	}
	wait := make(chan error, 1)
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return ErrClosed
	}
	s, ok := c.subs[ch]
	if ok && s.acked {
		s.handler = handler
		c.mu.Unlock()
		return nil
	}
	var frame []byte
	cn := c.cur
	if !ok {
		s = &subscription{}
		c.subs[ch] = s
		if cn != nil {
			frame = cn.subscribeLocked(ch, s)
		}
	}
	s.handler = handler
	s.waiters = append(s.waiters, wait)
	c.mu.Unlock()
	if frame != nil {
		// A failed write ends the connection; the next one subscribes.
		_ = cn.send(frame)
	}
	err := c.await(ctx, wait)
	if err != nil {
		c.mu.Lock()
		if i := indexOf(s.waiters, wait); i >= 0 {
			s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
		}
		c.mu.Unlock()
	}
	return err
}

// Unsubscribe drops the subscription to ch. When connected it tells the
// node and returns once the node confirmed it; otherwise it returns at
// once (the next connection will not subscribe).
func (c *Client) Unsubscribe(ctx context.Context, ch string) error {
	c.mu.Lock()
	s, ok := c.subs[ch]
	if ok {
		delete(c.subs, ch)
		for _, w := range s.waiters {
			w <- fmt.Errorf("%w: unsubscribed", ErrBadRequest)
		}
	}
	cn := c.cur
	c.mu.Unlock()
	if !ok || cn == nil {
		return nil
	}
	return c.request(ctx, cn, clientFrame{Type: typeUnsubscribe, Channel: ch})
}

// Publish publishes data (one JSON value) on ch and returns once the node
// confirmed it ({"type":"published"}). It fails with ErrNotConnected when
// no connection is up (a publish is not kept for the next one), with a
// *ServerError when the node refused it, ErrDisconnected when the
// connection ended first, ErrTimeout after Config.RequestTimeout.
func (c *Client) Publish(ctx context.Context, ch string, data json.RawMessage) error {
	if ch == "" || !json.Valid(data) {
		return fmt.Errorf("%w: Publish needs a channel and one JSON value", ErrBadRequest)
	}
	c.mu.Lock()
	cn := c.cur
	closed := c.ctx.Err() != nil
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if cn == nil {
		return ErrNotConnected
	}
	return c.request(ctx, cn, clientFrame{Type: typePublish, Channel: ch, Data: data})
}

// request sends f with a fresh id on cn and waits for the answer.
func (c *Client) request(ctx context.Context, cn *conn, f clientFrame) error {
	f.ID = c.id()
	wait := make(chan error, 1)
	if !cn.expect(f.ID, &pending{done: wait}) {
		return ErrDisconnected
	}
	if err := cn.send(encode(f)); err != nil {
		cn.forget(f.ID)
		return fmt.Errorf("%w: %v", ErrDisconnected, err)
	}
	err := c.await(ctx, wait)
	if err != nil {
		cn.forget(f.ID)
	}
	return err
}

// await waits for an answer on wait, at most RequestTimeout.
func (c *Client) await(ctx context.Context, wait <-chan error) error {
	t := time.NewTimer(c.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case err := <-wait:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrTimeout
	case <-c.done:
		// The answer may have come just before.
		select {
		case err := <-wait:
			return err
		default:
			return ErrClosed
		}
	}
}

func indexOf(ws []chan error, w chan error) int {
	for i := range ws {
		if ws[i] == w {
			return i
		}
	}
	return -1
}

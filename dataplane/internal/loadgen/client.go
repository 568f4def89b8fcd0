package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Target is one WebSocket endpoint under load.
type Target struct {
	// Name labels the results ("node", "echo").
	Name string `json:"name"`
	// URL is the ws:// address, e.g. ws://127.0.0.1:8080/ws.
	URL string `json:"url"`
	// Origin is sent as the Origin header of every handshake; empty sends
	// none.
	Origin string `json:"origin,omitempty"`
}

func (t Target) validate() error {
	if !strings.HasPrefix(t.URL, "ws://") {
		return fmt.Errorf("%w: target %q: want a ws:// URL, got %q", ErrConfig, t.Name, t.URL)
	}
	return nil
}

// Defaults shared by the scenarios.
const (
	// DefaultDialTimeout bounds one TCP connect plus WebSocket handshake.
	DefaultDialTimeout = 5 * time.Second
	// DefaultReplyTimeout is how long a scenario waits for an expected frame
	// before it gives up: far above any loopback round trip, so hitting it
	// means a lost message, not a slow one.
	DefaultReplyTimeout = 5 * time.Second
	// DefaultDialers bounds concurrent handshakes when a scenario opens many
	// connections, so the accept backlog never overflows.
	DefaultDialers = 64
	// closeWriteTimeout bounds writing one close frame: a server that stopped
	// reading must not hang the teardown.
	closeWriteTimeout = time.Second
	// closeWaitTimeout bounds waiting for every read loop to end after close.
	closeWaitTimeout = 10 * time.Second
)

// ctxDialer makes gws's dial honour the scenario's context, so cancelling a
// run aborts connects in flight instead of waiting out the dial timeout.
type ctxDialer struct {
	ctx     context.Context
	timeout time.Duration
	local   net.Addr // nil: the kernel picks
}

func (d ctxDialer) Dial(network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout, LocalAddr: d.local}
	return nd.DialContext(d.ctx, network, addr)
}

// dial opens one WebSocket connection to t with h as its event handler. The
// caller owns the connection and starts its read loop (or closes it).
func dial(ctx context.Context, t Target, h gws.Event) (*gws.Conn, error) {
	return dialFrom(ctx, t, h, nil)
}

// dialFrom is dial from the local address local (nil: any).
func dialFrom(ctx context.Context, t Target, h gws.Event, local net.Addr) (*gws.Conn, error) {
	hdr := http.Header{}
	if t.Origin != "" {
		hdr.Set("Origin", t.Origin)
	}
	// A fresh option per dial: gws fills defaults into the struct it is given.
	conn, resp, err := gws.NewClient(h, &gws.ClientOption{
		Addr:             t.URL,
		RequestHeader:    hdr,
		HandshakeTimeout: DefaultDialTimeout,
		NewDialer: func() (gws.Dialer, error) {
			return ctxDialer{ctx: ctx, timeout: DefaultDialTimeout, local: local}, nil
		},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("%w: %s: HTTP %d: %v", ErrDial, t.URL, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrDial, t.URL, err)
	}
	return conn, nil
}

// handler adapts callbacks to gws.Event. Callbacks run on the connection's
// read loop goroutine and must not block. Pings are answered by the embedded
// BuiltinEventHandler, so a server heartbeat never closes a bench client.
type handler struct {
	gws.BuiltinEventHandler
	onMessage func(b []byte)
	onClose   func(err error)
}

var _ gws.Event = (*handler)(nil)

func (h *handler) OnMessage(_ *gws.Conn, m *gws.Message) {
	if h.onMessage != nil {
		h.onMessage(m.Bytes())
	}
	_ = m.Close()
}

func (h *handler) OnClose(_ *gws.Conn, err error) {
	if h.onClose != nil {
		h.onClose(err)
	}
}

// connSet owns the read loops of the connections a scenario opened. A close
// that closeAll did not start is reported through onUnexpected, because a
// scenario whose connection the server dropped has not measured what it
// claims to.
type connSet struct {
	mu    sync.Mutex
	conns []*gws.Conn
	loops sync.WaitGroup
	// closing is set before closeAll closes anything, so the read loops can
	// tell our closes from the server's.
	closing      atomic.Bool
	onUnexpected func(err error)
}

func newConnSet(onUnexpected func(err error)) *connSet {
	return &connSet{onUnexpected: onUnexpected}
}

// closeHook returns the onClose callback for a connection of the set.
func (s *connSet) closeHook() func(err error) {
	return func(err error) {
		if s.closing.Load() || s.onUnexpected == nil {
			return
		}
		s.onUnexpected(fmt.Errorf("%w: %v", ErrClosed, err))
	}
}

// add takes ownership of conn and starts its read loop.
func (s *connSet) add(conn *gws.Conn) {
	s.mu.Lock()
	s.conns = append(s.conns, conn)
	s.mu.Unlock()
	s.loops.Go(conn.ReadLoop)
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeAll sends close 1000 on every connection, closes the sockets and
// waits for every read loop to return. Connections whose loop is still
// running after closeWaitTimeout are an error: a bench that leaks
// connections skews the next scenario's figures.
func (s *connSet) closeAll() error {
	s.closing.Store(true)
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		// WriteClose also closes the socket, which ends the read loop.
		if err := c.WriteClose(1000, nil); err != nil && !errors.Is(err, net.ErrClosed) {
			_ = c.NetConn().Close()
		}
	}
	done := make(chan struct{})
	go func() {
		s.loops.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(closeWaitTimeout):
		// The waiter goroutine ends with the last loop; the process is about
		// to report failure anyway.
		return fmt.Errorf("%w: read loops still running %s after close", ErrStalled, closeWaitTimeout)
	}
}

// openMany dials n connections with at most dialers handshakes in flight,
// connection i to targets[i % len(targets)], adding each to set.
// newHandler builds the handler of connection i. It stops at the first
// failure and returns it.
func openMany(ctx context.Context, targets []Target, n, dialers int, set *connSet, newHandler func(i int) gws.Event) error {
	return openManyFrom(ctx, targets, n, dialers, set, newHandler, nil)
}

// openManyFrom is openMany with connection i dialled from local(i) (nil
// local: any address).
func openManyFrom(ctx context.Context, targets []Target, n, dialers int, set *connSet, newHandler func(i int) gws.Event,
	local func(i int) net.Addr) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(dialers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				var from net.Addr
				if local != nil {
					from = local(i)
				}
				conn, err := dialFrom(ctx, targets[i%len(targets)], newHandler(i), from)
				if err != nil {
					cancel(err)
					return
				}
				set.add(conn)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// rootCause prefers the reason ctx was cancelled over err: when a read loop
// cancels a scenario (an unexpected frame, a dropped connection), whatever
// the scenario was doing at that moment fails with a bare "operation was
// canceled", which would hide the reason.
func rootCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

package loadgen

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// EchoServer is the baseline the node is compared with: bare gws as lean
// as it allows. A net/http server (as the node's) whose handler upgrades
// with a gws.Upgrader of default options and starts the connection's read
// loop on a goroutine of its own, so the request goroutine (whose stack
// grew while net/http parsed the request) returns right after the upgrade;
// the handler writes every message straight back with WriteMessage.
// Nothing else is kept per connection: no registry of connections, no
// goroutine but gws's read loop, so its memory per idle connection is
// gws's own and the node's figure above it is the node's.
//
// Like the node (issue 11), it greets every connection with one welcome
// frame (echoWelcome, the size of the node's) right after the upgrade: a
// server that gives its clients what the node's protocol gives them pays
// one small write per connection, so the handshake and idle comparisons
// stay like with like and the node's figures above it are still the
// node's own overhead.
//
// (It replaces a baseline built like gws.Server.RunListener, where the
// read loop runs on the goroutine that parsed the request and keeps its
// grown stack, and a map held every connection so that a stop could close
// them: about 350 B of RSS per idle connection heavier on this machine
// (11.4 against 11.05 KB, 10,000 connections), costs of that server loop
// and not of gws, which the node does not pay either.)
type EchoServer struct {
	up *gws.Upgrader
	// loops counts the read loops running, open the connections upgraded
	// and not yet closed: two words for the whole server.
	loops sync.WaitGroup
	open  atomic.Int64
}

// NewEchoServer returns an echo server with gws's default options.
func NewEchoServer() *EchoServer {
	return &EchoServer{up: gws.NewUpgrader(echoHandler{}, &gws.ServerOption{})}
}

type echoHandler struct{ gws.BuiltinEventHandler }

var _ gws.Event = echoHandler{}

func (echoHandler) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

// echoWelcome is the baseline's welcome frame: the node's, byte for byte in
// shape and about in size (a 32-hex trace id, a short node id, the default
// heartbeat).
var echoWelcome = []byte(`{"type":"welcome","trace_id":"00000000000000000000000000000000","node_id":"echo","heartbeat_interval_ms":25000,"heartbeat_timeout_ms":60000}`)

// echoReadHeaderTimeout is the node's default: a client that trickles its
// request headers costs the baseline what it costs the node.
const echoReadHeaderTimeout = 5 * time.Second

// ServeHTTP upgrades any request (gws answers 400 to one that is not a
// valid upgrade) and returns, leaving the connection to its read loop.
func (s *EchoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := s.up.Upgrade(w, r)
	if err != nil {
		return
	}
	// A failed write means the client is gone: its read loop ends at once.
	_ = conn.WriteMessage(gws.OpcodeText, echoWelcome)
	s.loops.Add(1) // before open counts it: whoever sees it open may Wait
	s.open.Add(1)
	go func() {
		defer s.loops.Done()
		conn.ReadLoop()
		s.open.Add(-1)
	}()
}

// Serve accepts on ln until ctx is done, then closes ln and returns nil,
// or the error that stopped it serving. Connections already upgraded are
// not tracked, so they are not closed: they stay open until their peer
// closes them (Wait waits for that); in the echo-server process, exiting
// closes them.
func (s *EchoServer) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: echoReadHeaderTimeout}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Close stops the listener and any connection not yet upgraded;
	// hijacked ones are no longer the http.Server's.
	_ = srv.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Wait blocks until every upgraded connection has closed and its read
// loop returned.
func (s *EchoServer) Wait() { s.loops.Wait() }

// Open is the number of upgraded connections not yet closed.
func (s *EchoServer) Open() int { return int(s.open.Load()) }

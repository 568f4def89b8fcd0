package loadgen

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

// EchoServer is the baseline the node is compared with: a bare gws server
// with default options whose handler writes every message straight back
// with WriteMessage.
//
// It does what gws.Server.RunListener does per connection (a goroutine
// reads the upgrade request into a ReadBufferSize reader and hands it to
// Server.OnRequest, which upgrades and runs the read loop), from an accept
// loop that can stop: RunListener retries a failed Accept forever, so once
// its listener is closed it spins and cannot be shut down. The per-connection
// cost measured against the node is gws's own.
type EchoServer struct {
	srv     *gws.Server
	bufSize int

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewEchoServer returns an echo server with gws's default options.
func NewEchoServer() *EchoServer {
	opt := &gws.ServerOption{}
	srv := gws.NewServer(echoHandler{}, opt) // fills opt's defaults in place
	return &EchoServer{srv: srv, bufSize: opt.ReadBufferSize, conns: make(map[net.Conn]struct{})}
}

type echoHandler struct{ gws.BuiltinEventHandler }

var _ gws.Event = echoHandler{}

func (echoHandler) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

// acceptRetryDelay spaces Accept retries after a temporary error (out of
// descriptors), so the loop waits for one to free instead of spinning.
const acceptRetryDelay = 10 * time.Millisecond

// Serve accepts on ln until ctx is done, then closes ln and every
// connection and waits for their goroutines. It returns nil after a
// shutdown by ctx, or the Accept error that stopped it.
func (s *EchoServer) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var err error
	for {
		var conn net.Conn
		conn, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				t := time.NewTimer(acceptRetryDelay)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
				continue
			}
			break
		}
		if !s.track(conn) {
			_ = conn.Close()
			break
		}
		s.wg.Go(func() { s.serveConn(conn) })
	}
	_ = ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *EchoServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *EchoServer) serveConn(conn net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		_ = conn.Close()
	}()
	br := bufio.NewReaderSize(conn, s.bufSize)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	// Upgrades (answering 400 itself on a bad request) and runs the read
	// loop until the connection ends.
	s.srv.OnRequest(conn, br, req)
}

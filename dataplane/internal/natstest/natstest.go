// Package natstest runs an embedded NATS server (nats-server's own package)
// on loopback for tests. Only tests import it, so only their binaries
// carry the server.
package natstest

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is an embedded NATS server bound to 127.0.0.1.
type Server struct {
	*server.Server
	// Port is the client port; Restart binds the same one.
	Port   int
	t      testing.TB
	mutate []func(*server.Options)
}

// Start runs a server on a free port and shuts it down when the test ends.
// mutate, if any, edits its options (authorization, limits).
func Start(t testing.TB, mutate ...func(*server.Options)) *Server {
	t.Helper()
	s := &Server{t: t, mutate: mutate}
	s.run(server.RANDOM_PORT)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) run(port int) {
	s.t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true}
	for _, m := range s.mutate {
		m(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		s.t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("nats server on port %d not ready", port)
	}
	s.Server = srv
	s.Port = srv.Addr().(*net.TCPAddr).Port
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Port) }

// Stop shuts the server down and waits until it has; its clients see the
// connection drop. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.Server == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
	s.Server = nil
}

// Restart starts a new server on the same port after Stop (a NATS restart
// as clients see it: same address, no state). mutate, if given, replaces
// Start's option edits.
func (s *Server) Restart(mutate ...func(*server.Options)) {
	s.t.Helper()
	if mutate != nil {
		s.mutate = mutate
	}
	s.run(s.Port)
}

// Subscriptions is the number of subscriptions the server holds for the
// client connection named name, and whether such a connection exists.
func (s *Server) Subscriptions(name string) (int, bool) {
	s.t.Helper()
	cz, err := s.Connz(&server.ConnzOptions{Limit: 1 << 20})
	if err != nil {
		s.t.Fatalf("connz: %v", err)
	}
	for _, c := range cz.Conns {
		if c.Name == name {
			return int(c.NumSubs), true
		}
	}
	return 0, false
}

//go:build !unix

package dataplane

import "net"

// rawWriter has no non-blocking write here: every batch is written by a
// goroutine of its connection's own (see writer.go).
type rawWriter struct {
	conn net.Conn
}

func newRawWriter() *rawWriter { return &rawWriter{} }

func (w *rawWriter) Write([]byte) (int, error) { return 0, errWouldBlock }

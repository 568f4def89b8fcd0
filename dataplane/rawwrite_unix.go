//go:build unix

package dataplane

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// rawWriter writes to a connection's socket without blocking: one write
// system call, taking what the socket's buffer takes. A pool goroutine
// owns one and reuses it (its fields carry the call's arguments and
// results, so a write allocates nothing but the syscall.RawConn).
type rawWriter struct {
	conn net.Conn // set by the caller for the batch at hand
	p    []byte
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func newRawWriter() *rawWriter {
	w := &rawWriter{}
	w.fn = w.write
	return w
}

func (w *rawWriter) write(fd uintptr) bool {
	for {
		w.n, w.err = syscall.Write(int(fd), w.p)
		if w.err != syscall.EINTR {
			return true // done either way: never wait for the socket
		}
	}
}

// Write writes what the socket takes of p now. It returns errWouldBlock
// with the count taken when that is not all of p, and for a connection it
// cannot write to directly (not a socket: a TLS connection of a server
// embedding the node), which the caller then writes blocking.
func (w *rawWriter) Write(p []byte) (int, error) {
	sc, ok := w.conn.(syscall.Conn)
	if !ok {
		return 0, errWouldBlock
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	w.p = p
	err = rc.Write(w.fn)
	n, werr := max(w.n, 0), w.err
	w.p, w.n, w.err = nil, 0, nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A deadline left over from a close in progress: the caller's
		// blocking write sets its own.
		return 0, errWouldBlock
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN:
		return n, errWouldBlock
	case werr != nil:
		return n, &net.OpError{Op: "write", Net: w.conn.LocalAddr().Network(), Source: w.conn.LocalAddr(), Addr: w.conn.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	case n < len(p):
		return n, errWouldBlock
	}
	return n, nil
}

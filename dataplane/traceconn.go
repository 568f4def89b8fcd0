package dataplane

import (
	"bytes"
	"net"
)

// traceConn adds an X-Trace-ID header to the 101 response gws writes.
// gws's extra response headers are fixed per Upgrader, and the trace id is
// per request; gws writes the whole response in one Write, so the header is
// spliced in after the status line of that first write, and every later
// write passes straight through.
type traceConn struct {
	net.Conn
	header []byte // "X-Trace-ID: <id>\r\n", nil once written
}

func (c *traceConn) Write(p []byte) (int, error) {
	if c.header == nil {
		return c.Conn.Write(p)
	}
	h := c.header
	c.header = nil
	i := bytes.Index(p, []byte("\r\n"))
	if i < 0 || !bytes.HasPrefix(p, []byte("HTTP/1.1 101")) {
		return c.Conn.Write(p)
	}
	out := make([]byte, 0, len(p)+len(h))
	out = append(out, p[:i+2]...)
	out = append(out, h...)
	out = append(out, p[i+2:]...)
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

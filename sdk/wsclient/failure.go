package wsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Failure is why an attempt failed or a connection ended, for the app and
// its user. The fields match the JS SDK's Failure (class, message,
// what_to_do, trace_id, retryable, retry_after_s).
type Failure struct {
	// Class is the error class (api/errclass); Name is its short name
	// ("origin_rejected"), the key of Config.Messages.
	Class wsfleetv1.ErrorClass
	Name  string
	// Message is a sentence for an end user: Config.Messages[Name], else
	// the class's errclass UserMessage.
	Message string
	// WhatToDo is for the developer or operator: the class's action, as
	// the node's explain endpoint gives it.
	WhatToDo string
	// TraceID is the attempt's trace id (sent as ?trace_id=): `wsctl trace
	// ID` shows the node's side of it.
	TraceID string
	// Retryable false means the client stopped: it will not reconnect
	// (origin_rejected, unauthorized, bad_handshake).
	Retryable bool
	// RetryAfter is the node's retry_after_s (0 when it gave none): the
	// next attempt waits at least this long.
	RetryAfter time.Duration
	// Signal is what was seen on the wire: "HTTP 403", "close 4403",
	// "dial: connection refused".
	Signal string
	// NodeID is the node that explained it, when one did.
	NodeID string
	// Detail is what the client saw, for the report and logs: the dial
	// error (DNS, connection refused, TLS), the HTTP status, the close
	// reason.
	Detail string
	// URL is the attempt's URL and Time when the client saw the failure.
	URL  string
	Time time.Time
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("wsclient: %s (%s, trace %s)", f.Name, f.Signal, f.TraceID)
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// clientClass reports whether c is one of the client_* classes: failures
// the node never saw, which the client reports once a node is reachable.
func clientClass(c wsfleetv1.ErrorClass) bool {
	switch c {
	case wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_UNREACHABLE,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_FAILED,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_TIMEOUT,
		wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_CONNECTION_LOST:
		return true
	}
	return false
}

// failureOf builds the Failure of class from the one error-class table,
// with the app's message override.
func (c *Client) failureOf(class wsfleetv1.ErrorClass, traceID, signal, detail string) *Failure {
	info := errclass.Lookup(class)
	f := &Failure{
		Class:     class,
		Name:      info.Name,
		Message:   info.UserMessage,
		WhatToDo:  info.Action,
		TraceID:   traceID,
		Retryable: info.Retryable,
		Signal:    signal,
		Detail:    detail,
		URL:       c.attemptURL(traceID),
		Time:      c.cfg.Now(),
	}
	if m, ok := c.cfg.Messages[info.Name]; ok {
		f.Message = m
	}
	return f
}

// fromRejectClose is the failure of a connection the node upgraded only to
// close it with a reject code (the pool's reject_with: close): the class
// comes with the code, Retry-After with the reason ("rate_limited;
// retry_after_s=3"). ok is false for any other code.
func (c *Client) fromRejectClose(code uint16, reason, traceID string) (*Failure, bool) {
	info, ok := errclass.FromRejectCloseCode(code)
	if !ok {
		return nil, false
	}
	f := c.failureOf(info.Class, traceID, "close "+strconv.Itoa(int(code)), reason)
	if _, secs, ok := errclass.ParseRejectReason(reason); ok {
		f.RetryAfter = time.Duration(secs) * time.Second
	}
	return f, true
}

// explanation is the body of a 200 from /ws/explain.
type explanation struct {
	TraceID     string `json:"trace_id"`
	Class       string `json:"class"`
	Signal      string `json:"signal"`
	Retryable   bool   `json:"retryable"`
	RetryAfterS int64  `json:"retry_after_s"`
	WhatToDo    string `json:"what_to_do"`
	Message     string `json:"message"`
	NodeID      string `json:"node_id"`
}

// maxExplainBytes bounds what is read of an explain answer (a few hundred
// bytes when it comes from a node).
const maxExplainBytes = 16 << 10

// errUnknownTrace: the node answered 404, it has no record of the trace id.
var errUnknownTrace = errors.New("wsclient: the node has no record of the attempt")

// explain asks the node what it decided for traceID. It returns
// errUnknownTrace on a 404, and any other error when the request failed.
func (c *Client) explain(ctx context.Context, traceID string) (*explanation, error) {
	u := c.httpURL("/explain")
	q := url.Values{"trace_id": {traceID}}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ExplainTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.cfg.Origin != "" {
		req.Header.Set("Origin", c.cfg.Origin)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExplainBytes))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errUnknownTrace
	default:
		return nil, fmt.Errorf("explain: HTTP %d", resp.StatusCode)
	}
	var e explanation
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	return &e, nil
}

// explained turns the node's explanation into a Failure. The class, its
// retryability and action come from the node (it may be newer than this
// build); the message from Config.Messages, else the node's, else the
// table's.
func (c *Client) explained(e *explanation, traceID, detail string) *Failure {
	class, err := errclass.Parse(e.Class)
	if err != nil {
		class = wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED
	}
	f := c.failureOf(class, traceID, e.Signal, detail)
	f.Name = e.Class
	f.Retryable = e.Retryable
	f.RetryAfter = time.Duration(max(e.RetryAfterS, 0)) * time.Second
	f.NodeID = e.NodeID
	if e.WhatToDo != "" {
		f.WhatToDo = e.WhatToDo
	}
	if m, ok := c.cfg.Messages[e.Class]; ok {
		f.Message = m
	} else if e.Message != "" {
		f.Message = e.Message
	}
	return f
}

// describeNetError names what failed, as far as Go can tell: DNS, a refused
// or reset TCP connection, TLS, a timeout. A browser sees none of this; the
// Go client puts it in Failure.Detail and the report.
func describeNetError(err error) string {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		opErr   *net.OpError
	)
	switch {
	case errors.As(err, &dnsErr):
		return "dns: " + dnsErr.Error()
	case errors.As(err, &certErr), errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		return "tls: certificate: " + err.Error()
	case errors.As(err, &recErr), errors.As(err, &alert):
		return "tls: " + err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "tcp: connection refused: " + err.Error()
	case errors.Is(err, syscall.ECONNRESET):
		return "tcp: connection reset: " + err.Error()
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
		return "timeout: " + err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the peer: " + err.Error()
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "tcp: " + err.Error()
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// join joins the non-empty parts with "; ".
func join(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	return b.String()
}

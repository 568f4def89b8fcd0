package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// maxAuthDrain bounds how much of the endpoint's response body is read
// (and thrown away) so its connection can be reused; a bigger body costs a
// new connection, not unbounded reading.
const maxAuthDrain = 64 << 10

// authFailureRetryAfter is the Retry-After of a handshake whose own
// authorization call failed while the breaker is still closed: the upstream
// is in trouble, so the client should pause, but the breaker has no open
// time to quote yet.
const authFailureRetryAfter = time.Second

// authRequest is the JSON body POSTed to Config.AuthURL.
type authRequest struct {
	TraceID string            `json:"trace_id"`
	Origin  string            `json:"origin"`
	Remote  string            `json:"remote"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
}

// newAuthClient is the default Config.HTTPClient: idle connections kept
// per host in the hundreds (a handshake burst would otherwise open and
// close a socket per call), a cap on connections to the endpoint, bounded
// response headers, and redirects not followed (a 3xx is an unexpected
// answer, hence a failure). Per-call time is bounded by the context.
func newAuthClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   timeout,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           256,
			MaxIdleConnsPerHost:    256,
			MaxConnsPerHost:        1024,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    timeout,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// authorize asks the endpoint through the breaker. It returns nil to admit.
func (a *Admitter) authorize(ctx context.Context, r *http.Request, traceID, origin string, b *breaker) *Rejection {
	var status int
	_, err := b.cb.Execute(func() (struct{}, error) {
		var err error
		status, err = a.callAuth(ctx, r, traceID, origin)
		return struct{}{}, err
	})
	const (
		unauthorized = wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED
		breakerOpen  = wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN
	)
	switch {
	case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return NewRejection(unauthorized, fmt.Sprintf("connect authorization denied: endpoint answered %d", status))
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState):
		rej := NewRejection(breakerOpen, "breaker open after connect authorization failures; endpoint not called")
		rej.RetryAfter = b.retryAfter()
		return rej
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		rej := NewRejection(breakerOpen, "breaker half-open with every probe in flight; endpoint not called")
		rej.RetryAfter = roundRetryAfter(0)
		return rej
	default:
		// Fail closed: a node that cannot ask must not let everyone in.
		rej := NewRejection(breakerOpen, "connect authorization failed: "+err.Error())
		rej.RetryAfter = authFailureRetryAfter
		rej.Err = err
		return rej
	}
}

// callAuth POSTs the handshake's description to the endpoint. 2xx, 401 and
// 403 are answers from a healthy upstream (nil error, the status tells
// them apart); anything else is an error that counts against the breaker,
// except ErrClientGone.
func (a *Admitter) callAuth(parent context.Context, r *http.Request, traceID, origin string) (int, error) {
	body, err := json.Marshal(authRequest{
		TraceID: traceID,
		Origin:  origin,
		Remote:  r.RemoteAddr,
		Path:    r.URL.Path,
		Query:   r.URL.RawQuery,
		Headers: a.forwardedHeaders(r.Header),
	})
	if err != nil {
		return 0, fmt.Errorf("%w: encoding the request: %w", ErrAuthUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(parent, a.cfg.AuthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.AuthURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if traceID != "" {
		req.Header[TraceHeader] = []string{traceID}
	}
	resp, err := a.client.Do(req)
	if err != nil {
		switch {
		case parent.Err() != nil:
			return 0, fmt.Errorf("%w: %w", ErrClientGone, parent.Err())
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return 0, fmt.Errorf("%w after %s", ErrAuthTimeout, a.cfg.AuthTimeout)
		default:
			return 0, fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAuthDrain))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300, code == http.StatusUnauthorized, code == http.StatusForbidden:
		return code, nil
	default:
		return code, fmt.Errorf("%w: %d", ErrAuthStatus, code)
	}
}

// forwardedHeaders picks Config.AuthHeaders out of the handshake. Repeated
// headers are joined the way HTTP folds them ("; " for Cookie, which RFC
// 6265 requires, ", " for the rest). Absent headers are left out.
func (a *Admitter) forwardedHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(a.cfg.AuthHeaders))
	for _, name := range a.cfg.AuthHeaders {
		vs := h[name]
		if len(vs) == 0 {
			continue
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		out[name] = strings.Join(vs, sep)
	}
	return out
}

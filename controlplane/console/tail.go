package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Live tail limits.
const (
	// maxTailBacklog bounds the recent events a tail starts with.
	maxTailBacklog = 200
)

// sseStream is a FleetService_TailEventsServer writing server-sent events.
type sseStream struct {
	ctx context.Context
	w   http.ResponseWriter
	rc  *http.ResponseController
	// timeout bounds one write (Config.TailWriteTimeout).
	timeout time.Duration
	mu      sync.Mutex // one write at a time: Send and the keepalive
}

var _ wsfleetv1.FleetService_TailEventsServer = (*sseStream)(nil)

func (s *sseStream) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseStream) Send(m *wsfleetv1.TailEventsResponse) error {
	b, err := marshal.Marshal(m)
	if err != nil {
		return err
	}
	return s.write(fmt.Appendf(nil, "data: %s\n\n", b))
}

func (s *sseStream) SetHeader(metadata.MD) error  { return nil }
func (s *sseStream) SendHeader(metadata.MD) error { return nil }
func (s *sseStream) SetTrailer(metadata.MD)       {}
func (s *sseStream) Context() context.Context     { return s.ctx }
func (s *sseStream) SendMsg(m any) error {
	if r, ok := m.(*wsfleetv1.TailEventsResponse); ok {
		return s.Send(r)
	}
	return status.Error(codes.Internal, "unexpected message")
}
func (s *sseStream) RecvMsg(any) error {
	return status.Error(codes.Unimplemented, "no client messages")
}

// serveTail streams TailEvents as server-sent events (GET, query
// parameters pool, node, origin, errors_only, backlog). A tail ends with
// its request, its session (logout, expiry) or the console's Close; at
// most Config.MaxTails are open at once.
func (c *Console) serveTail(w http.ResponseWriter, r *http.Request) {
	s, id, ok := c.authorize(w, r, false)
	if !ok {
		return
	}
	const method = wsfleetv1.FleetService_TailEvents_FullMethodName
	if !auth.Allowed(id.Role, method) {
		writeStatus(w, status.Errorf(codes.PermissionDenied, "%s (role %s) may not call %s", id.Name, id.Role, method))
		return
	}
	q := r.URL.Query()
	backlog, _ := strconv.Atoi(q.Get("backlog"))
	req := &wsfleetv1.TailEventsRequest{
		Filter: &wsfleetv1.EventFilter{
			Pool:       q.Get("pool"),
			NodeId:     q.Get("node"),
			Origin:     q.Get("origin"),
			ErrorsOnly: q.Get("errors_only") == "true",
		},
		Backlog: int32(min(max(backlog, 0), maxTailBacklog)),
	}
	if s.tails.Add(1) > int64(c.cfg.MaxTailsPerSession) {
		s.tails.Add(-1)
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", "too many live tails open in this session; close one", nil)
		return
	}
	defer s.tails.Add(-1)
	if c.tails.Add(1) > int64(c.cfg.MaxTails) {
		c.tails.Add(-1)
		writeError(w, http.StatusTooManyRequests, "ResourceExhausted", "too many live tails open; close one", nil)
		return
	}
	defer c.tails.Add(-1)

	ctx, cancel := context.WithCancel(callContext(r.Context(), s, id, c.cfg.Auth.Dev()))
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	stream := &sseStream{ctx: ctx, w: w, rc: http.NewResponseController(w), timeout: c.cfg.TailWriteTimeout}
	if err := stream.write([]byte(": tail open\n\n")); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.TailKeepalive)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := c.cfg.Auth.AuthenticateToken(s.token); err != nil {
					// Removed from the tokens file: the session ends,
					// and with it this tail (s.ctx).
					c.sessions.remove(s.id)
					return
				}
				if stream.write([]byte(": keepalive\n\n")) != nil {
					cancel()
					return
				}
			}
		}
	})
	err := c.cfg.Fleet.TailEvents(req, stream)
	// Whether the tail failed by itself (dropped for reading too slowly,
	// no tail free on the store), before cancel makes ctx end either way.
	failed := err != nil && ctx.Err() == nil
	cancel()
	wg.Wait()
	if failed || s.ctx.Err() != nil {
		// The page learns why its tail ended (a session end included)
		// instead of reconnecting blindly; it JSON.parses the reason.
		msg := "session ended"
		if s.ctx.Err() == nil {
			msg = status.Convert(err).Message()
		}
		reason, _ := json.Marshal(msg) // invalid UTF-8 becomes U+FFFD
		_ = stream.write(fmt.Appendf(nil, "event: end\ndata: %s\n\n", reason))
	}
}

package fanout

import (
	"context"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

const (
	// A replica's tail that broke is reopened from reopenMin to reopenMax
	// apart while the replica is registered.
	reopenMin = 500 * time.Millisecond
	reopenMax = 5 * time.Second
	// joinEvery is how often a tail looks for replicas that joined.
	joinEvery = time.Second
)

// TailEvents implements FleetService.TailEvents for every replica: the
// newest of every replica's backlog, oldest first, then every replica's
// events as they are ingested, and news of replicas whose tail broke
// (replica_lost) or came back (replica_back).
func (f *Fleet) TailEvents(req *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	ctx := stream.Context()
	peers := f.peers(ctx)
	if len(peers) == 0 {
		return f.cfg.Local.TailEvents(req, stream)
	}
	backlog, err := telemetry.TailBacklog(req)
	if err != nil {
		return err
	}
	select {
	case <-f.cfg.Local.Done():
		return errShuttingDown
	default:
	}
	past, local, err := f.cfg.Local.Tail(req.GetFilter(), backlog)
	if err != nil {
		return err
	}
	defer local.Cancel()

	ctx, cancel := context.WithCancel(ctx)
	var followers sync.WaitGroup
	defer followers.Wait()
	defer cancel()

	// Every replica's tail is opened at once, its backlog read, within the
	// timeout.
	type opened struct {
		st   *peerTail
		past []*wsfleetv1.ErrorEvent
		err  error
	}
	opens := make([]opened, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { opens[i].st, opens[i].past, opens[i].err = f.openTail(ctx, p, req.GetFilter(), backlog) })
	}
	wg.Wait()
	for _, o := range opens {
		past = append(past, o.past...)
	}
	slices.SortStableFunc(past, func(a, b *wsfleetv1.ErrorEvent) int { return compareTime(a.GetTime(), b.GetTime()) })
	if len(past) > backlog {
		past = past[len(past)-backlog:]
	}
	if err := stream.SendHeader(metadata.Pairs(telemetry.BacklogHeader, strconv.Itoa(len(past)))); err != nil {
		return err
	}
	for _, ev := range past {
		if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: ev}); err != nil {
			return err
		}
	}

	in := make(chan *wsfleetv1.TailEventsResponse, f.cfg.TailBuffer)
	// following: the replicas followed now. A follower ends when its
	// replica is no longer registered, saying whether its events were
	// said lost; if the replica registers again it is followed again
	// (and said back once its tail is open).
	following := map[string]bool{}
	ended := make(chan followEnd, len(peers)+1)
	lostEarlier := map[string]bool{}
	follow := func(p replicas.Peer, st *peerTail, lost bool) {
		following[p.ID] = true
		followers.Go(func() {
			lost := f.followTail(ctx, p, st, lost, req.GetFilter(), in)
			select {
			case ended <- followEnd{p.ID, lost}:
			case <-ctx.Done():
			}
		})
	}
	for i, p := range peers {
		if err := opens[i].err; err != nil {
			// The tails opened are ended with ctx.
			if err := stream.Send(&wsfleetv1.TailEventsResponse{ReplicaLost: f.missing(p, err, false)}); err != nil {
				return err
			}
		}
		follow(p, opens[i].st, opens[i].err != nil)
	}

	joins := time.NewTicker(joinEvery)
	defer joins.Stop()
	for {
		var msg *wsfleetv1.TailEventsResponse
		select {
		case <-f.cfg.Local.Done():
			return errShuttingDown
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case ev, ok := <-local.C:
			if !ok {
				return status.Errorf(codes.ResourceExhausted,
					"tail dropped: the client read too slowly and %d events were waiting; open a new tail", cap(local.C))
			}
			msg = &wsfleetv1.TailEventsResponse{Event: ev}
		case msg = <-in:
		case e := <-ended:
			delete(following, e.id)
			lostEarlier[e.id] = e.lost
			continue
		case <-joins.C:
			// A replica that joined (or registered again): its tail is
			// opened, with no backlog (it has just started, or what it
			// holds was said lost).
			for _, p := range f.peers(ctx) {
				if !following[p.ID] {
					follow(p, nil, lostEarlier[p.ID])
				}
			}
			continue
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}

// peerTail is a tail stream open on another replica.
type peerTail struct {
	st     wsfleetv1.FleetService_TailEventsClient
	cancel context.CancelFunc
}

func (t *peerTail) close() {
	if t != nil {
		t.cancel()
	}
}

// openTail opens a tail on replica p and reads its backlog, within the
// timeout.
func (f *Fleet) openTail(ctx context.Context, p replicas.Peer, filter *wsfleetv1.EventFilter, backlog int) (*peerTail, []*wsfleetv1.ErrorEvent, error) {
	c, err := f.client(p.Addr)
	if err != nil {
		f.metrics.calls.WithLabelValues("TailEvents", "error").Inc()
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(f.outgoing(ctx))
	timer := time.AfterFunc(f.cfg.Timeout, cancel)
	past, st, err := func() ([]*wsfleetv1.ErrorEvent, wsfleetv1.FleetService_TailEventsClient, error) {
		st, err := c.TailEvents(sctx, &wsfleetv1.TailEventsRequest{Filter: filter, Backlog: int32(backlog)})
		if err != nil {
			return nil, nil, err
		}
		h, err := st.Header()
		if err != nil {
			return nil, nil, err
		}
		if h == nil {
			// The stream ended without headers: Recv has its status.
			_, err := st.Recv()
			if err == nil || err == io.EOF {
				err = status.Error(codes.Unavailable, "its tail ended at once")
			}
			return nil, nil, err
		}
		// A replica that says nothing of a backlog sends none apart.
		n := 0
		if v := h.Get(telemetry.BacklogHeader); len(v) > 0 {
			n, _ = strconv.Atoi(v[0])
		}
		past := make([]*wsfleetv1.ErrorEvent, 0, min(n, backlog))
		for range min(n, telemetry.MaxTailBacklog) {
			m, err := st.Recv()
			if err != nil {
				return nil, nil, err
			}
			if m.GetEvent() != nil {
				past = append(past, m.GetEvent())
			}
		}
		return past, st, nil
	}()
	if !timer.Stop() {
		err = status.Errorf(codes.DeadlineExceeded, "no answer within %s", f.cfg.Timeout)
	}
	if err != nil {
		cancel()
		result := "error"
		if status.Code(err) == codes.DeadlineExceeded {
			result = "timeout"
		}
		f.metrics.calls.WithLabelValues("TailEvents", result).Inc()
		return nil, nil, err
	}
	f.metrics.calls.WithLabelValues("TailEvents", "ok").Inc()
	return &peerTail{st: st, cancel: cancel}, past, nil
}

// followEnd is a follower's end: its replica, and whether its events were
// said lost (and not back).
type followEnd struct {
	id   string
	lost bool
}

// followTail hands replica p's events to in until ctx ends or p is no
// longer registered. st is p's tail, opened; nil with lost when it could
// not be opened (which was said); nil without lost for a replica that
// joined: it is opened now. When the tail breaks it says so
// (replica_lost) and reopens it, with backoff, while p is registered;
// once reopened it says so too (replica_back). It returns whether p's
// events are said lost.
func (f *Fleet) followTail(ctx context.Context, p replicas.Peer, st *peerTail, lost bool, filter *wsfleetv1.EventFilter, in chan<- *wsfleetv1.TailEventsResponse) bool {
	send := func(m *wsfleetv1.TailEventsResponse) bool {
		select {
		case in <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if st == nil && !lost {
		var err error
		if st, _, err = f.openTail(ctx, p, filter, 0); err != nil {
			if !send(&wsfleetv1.TailEventsResponse{ReplicaLost: f.missing(p, err, false)}) {
				return lost
			}
			lost = true
		}
	}
	retry := &backoff.ExponentialBackOff{
		InitialInterval:     reopenMin,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         reopenMax,
	}
	retry.Reset()
	for {
		if st != nil {
			err := f.pump(ctx, st, send)
			st.close()
			st = nil
			if ctx.Err() != nil {
				return lost
			}
			if err == io.EOF {
				err = status.Error(codes.Unavailable, "its tail ended")
			}
			if !send(&wsfleetv1.TailEventsResponse{ReplicaLost: f.missing(p, err, false)}) {
				return lost
			}
			lost = true
			retry.Reset()
		}
		for st == nil {
			t := time.NewTimer(retry.NextBackOff())
			select {
			case <-ctx.Done():
				t.Stop()
				return lost
			case <-t.C:
			}
			if !f.isPeer(p.ID) {
				// Gone from etcd: it stopped, and its nodes report
				// elsewhere now.
				return lost
			}
			st, _, _ = f.openTail(ctx, p, filter, 0)
		}
		if lost {
			if !send(&wsfleetv1.TailEventsResponse{ReplicaBack: p.Addr}) {
				st.close()
				return lost
			}
			lost = false
		}
	}
}

// pump hands the events of st to send until the stream ends.
func (f *Fleet) pump(ctx context.Context, st *peerTail, send func(*wsfleetv1.TailEventsResponse) bool) error {
	for {
		m, err := st.st.Recv()
		if err != nil {
			return err
		}
		if m.GetEvent() == nil {
			continue
		}
		if !send(&wsfleetv1.TailEventsResponse{Event: m.GetEvent()}) {
			return ctx.Err()
		}
	}
}

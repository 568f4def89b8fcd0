package wsctl

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakeFleet is an in-memory FleetService that filters, groups and streams
// the events it is given the way the API describes, and records what it
// was asked.
type fakeFleet struct {
	wsfleetv1.UnimplementedFleetServiceServer

	// live carries events to open tail streams once their backlog is sent.
	live chan *wsfleetv1.ErrorEvent
	// tailing gets one value per tail stream whose backlog has been sent.
	tailing chan struct{}

	mu     sync.Mutex
	nodes  []*wsfleetv1.NodeStatus
	events []*wsfleetv1.ErrorEvent
	// truncated is what QueryEvents reports.
	truncated bool
	// endTail ends tail streams after the backlog, as a control plane
	// shutting down would.
	endTail bool
	// nodePage, when set, makes ListNodes answer in pages of that many
	// nodes, the token the index of the next one.
	nodePage int
	// degraded is what ListNodes says of its view; missing the replicas
	// QueryEvents and TopErrors name as not answering; tailNews the
	// replica messages a tail sends after its backlog.
	degraded string
	missing  []*wsfleetv1.ReplicaError
	tailNews []*wsfleetv1.TailEventsResponse

	nodeReqs  []*wsfleetv1.ListNodesRequest
	queries   []*wsfleetv1.QueryEventsRequest
	tops      []*wsfleetv1.TopErrorsRequest
	tails     []*wsfleetv1.TailEventsRequest
	callCount int
}

var _ wsfleetv1.FleetServiceServer = (*fakeFleet)(nil)

func newFakeFleet() *fakeFleet {
	return &fakeFleet{
		live:    make(chan *wsfleetv1.ErrorEvent),
		tailing: make(chan struct{}, 16),
	}
}

func (f *fakeFleet) setNodes(nodes ...*wsfleetv1.NodeStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = nodes
}

func (f *fakeFleet) setEvents(events ...*wsfleetv1.ErrorEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = events
}

func (f *fakeFleet) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.callCount
}

func (f *fakeFleet) lastQuery() *wsfleetv1.QueryEventsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		return nil
	}
	return f.queries[len(f.queries)-1]
}

func (f *fakeFleet) lastTop() *wsfleetv1.TopErrorsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tops) == 0 {
		return nil
	}
	return f.tops[len(f.tops)-1]
}

func (f *fakeFleet) lastTail() *wsfleetv1.TailEventsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tails) == 0 {
		return nil
	}
	return f.tails[len(f.tails)-1]
}

// matches applies an EventFilter as the control plane does; time bounds
// are left to the caller because the tail ignores them.
func matches(ev *wsfleetv1.ErrorEvent, filter *wsfleetv1.EventFilter) bool {
	if filter.GetErrorsOnly() {
		switch ev.GetClass() {
		case wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY:
			return false
		}
	}
	if cs := filter.GetClasses(); len(cs) > 0 && !slices.Contains(cs, ev.GetClass()) {
		return false
	}
	for _, c := range []struct{ want, got string }{
		{filter.GetNodeId(), ev.GetNodeId()},
		{filter.GetPool(), ev.GetPool()},
		{filter.GetOrigin(), ev.GetOrigin()},
		{filter.GetTraceId(), ev.GetTraceId()},
	} {
		if c.want != "" && c.want != c.got {
			return false
		}
	}
	return true
}

func inRange(ev *wsfleetv1.ErrorEvent, filter *wsfleetv1.EventFilter) bool {
	t := ev.GetTime().AsTime()
	if s := filter.GetStartTime(); s != nil && t.Before(s.AsTime()) {
		return false
	}
	if e := filter.GetEndTime(); e != nil && !t.Before(e.AsTime()) {
		return false
	}
	return true
}

// selectLocked returns the matching events, oldest first.
func (f *fakeFleet) selectLocked(filter *wsfleetv1.EventFilter, timed bool) []*wsfleetv1.ErrorEvent {
	var out []*wsfleetv1.ErrorEvent
	for _, ev := range f.events {
		if matches(ev, filter) && (!timed || inRange(ev, filter)) {
			out = append(out, ev)
		}
	}
	slices.SortStableFunc(out, func(a, b *wsfleetv1.ErrorEvent) int {
		return a.GetTime().AsTime().Compare(b.GetTime().AsTime())
	})
	return out
}

func (f *fakeFleet) ListNodes(_ context.Context, req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callCount++
	f.nodeReqs = append(f.nodeReqs, req)
	resp := &wsfleetv1.ListNodesResponse{Degraded: f.degraded}
	from := 0
	if tok := req.GetPageToken(); tok != "" {
		var err error
		if from, err = strconv.Atoi(tok); err != nil {
			return nil, status.Error(codes.InvalidArgument, "page_token: bad")
		}
	}
	// In the order given, so that the test sees wsctl sort.
	for i := from; i < len(f.nodes); i++ {
		n := f.nodes[i]
		if f.nodePage > 0 && len(resp.Nodes) == f.nodePage {
			resp.NextPageToken = strconv.Itoa(i)
			break
		}
		if req.GetPool() == "" || n.GetPool() == req.GetPool() {
			resp.Nodes = append(resp.Nodes, n)
		}
	}
	return resp, nil
}

func (f *fakeFleet) QueryEvents(_ context.Context, req *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callCount++
	f.queries = append(f.queries, req)
	evs := f.selectLocked(req.GetFilter(), true)
	slices.Reverse(evs)
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 100
	}
	if len(evs) > limit {
		evs = evs[:limit]
	}
	return &wsfleetv1.QueryEventsResponse{Events: evs, Truncated: f.truncated, MissingReplicas: f.missing}, nil
}

func (f *fakeFleet) TopErrors(_ context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callCount++
	f.tops = append(f.tops, req)
	type group struct {
		key     string
		count   int64
		classes map[wsfleetv1.ErrorClass]int64
	}
	groups := map[string]*group{}
	resp := &wsfleetv1.TopErrorsResponse{MissingReplicas: f.missing}
	for _, ev := range f.selectLocked(req.GetFilter(), true) {
		var key string
		switch req.GetGroupBy() {
		case wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN:
			key = ev.GetOrigin()
		case wsfleetv1.TopErrorsRequest_GROUP_BY_NODE:
			key = ev.GetNodeId()
		case wsfleetv1.TopErrorsRequest_GROUP_BY_POOL:
			key = ev.GetPool()
		default:
			key = errclass.Name(ev.GetClass())
		}
		g := groups[key]
		if g == nil {
			g = &group{key: key, classes: map[wsfleetv1.ErrorClass]int64{}}
			groups[key] = g
		}
		g.count++
		g.classes[ev.GetClass()]++
		resp.Total++
	}
	for _, g := range groups {
		var top wsfleetv1.ErrorClass
		for c, n := range g.classes {
			if n > g.classes[top] || (n == g.classes[top] && c < top) {
				top = c
			}
		}
		resp.Groups = append(resp.Groups, &wsfleetv1.TopErrorsResponse_Group{Key: g.key, Count: g.count, TopClass: top})
	}
	slices.SortFunc(resp.Groups, func(a, b *wsfleetv1.TopErrorsResponse_Group) int {
		return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), cmp.Compare(a.GetKey(), b.GetKey()))
	})
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 20
	}
	if len(resp.Groups) > limit {
		resp.Groups = resp.Groups[:limit]
	}
	return resp, nil
}

// TailEvents sends the newest backlog events oldest first, then whatever
// arrives on live until the client goes away.
func (f *fakeFleet) TailEvents(req *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	f.mu.Lock()
	f.callCount++
	f.tails = append(f.tails, req)
	backlog := f.selectLocked(req.GetFilter(), false)
	if n := int(req.GetBacklog()); len(backlog) > n {
		backlog = backlog[len(backlog)-n:]
	}
	end := f.endTail
	news := f.tailNews
	f.mu.Unlock()
	for _, ev := range backlog {
		if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: ev}); err != nil {
			return err
		}
	}
	for _, m := range news {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	select {
	case f.tailing <- struct{}{}:
	default:
	}
	if end {
		return nil
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-f.live:
			if !matches(ev, req.GetFilter()) {
				continue
			}
			if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: proto.Clone(ev).(*wsfleetv1.ErrorEvent)}); err != nil {
				return err
			}
		}
	}
}

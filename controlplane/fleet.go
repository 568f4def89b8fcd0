package controlplane

import (
	"context"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/policyserver"
	"github.com/wsfleet/wsfleet/controlplane/publish"
	"github.com/wsfleet/wsfleet/controlplane/registry"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// nodeService is the node-facing API: policy watch (registry),
// telemetry ingest (telemetry) and backend publishes (publish).
type nodeService struct {
	wsfleetv1.UnimplementedNodeServiceServer
	fleet     *registry.Registry
	telemetry *telemetry.Server
	publish   *publish.Server
}

var _ wsfleetv1.NodeServiceServer = (*nodeService)(nil)

func (s *nodeService) Watch(stream wsfleetv1.NodeService_WatchServer) error {
	return s.fleet.Watch(stream)
}

func (s *nodeService) ReportTelemetry(stream wsfleetv1.NodeService_ReportTelemetryServer) error {
	return s.telemetry.ReportTelemetry(stream)
}

func (s *nodeService) Deliveries(req *wsfleetv1.DeliveriesRequest, stream wsfleetv1.NodeService_DeliveriesServer) error {
	return s.publish.Deliveries(req, stream)
}

// fleetService is the operators' query API: node status (registry) and
// error events (telemetry; with replicas, every replica's through fanout).
type fleetService struct {
	wsfleetv1.UnimplementedFleetServiceServer
	fleet  *registry.Registry
	events eventQueries
	// degraded says why the registry's view of the fleet may be incomplete
	// or stale ("" when it is whole).
	degraded func() string
}

// eventQueries answers the event queries: telemetry.Server for this
// replica's events, fanout.Fleet for every replica's.
type eventQueries interface {
	QueryEvents(context.Context, *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error)
	TopErrors(context.Context, *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error)
	TailEvents(*wsfleetv1.TailEventsRequest, wsfleetv1.FleetService_TailEventsServer) error
	ErrorSeries(context.Context, *wsfleetv1.ErrorSeriesRequest) (*wsfleetv1.ErrorSeriesResponse, error)
	TrafficSummary(context.Context, *wsfleetv1.TrafficSummaryRequest) (*wsfleetv1.TrafficSummaryResponse, error)
}

var _ wsfleetv1.FleetServiceServer = (*fleetService)(nil)

func (s *fleetService) ListNodes(ctx context.Context, req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	resp, err := s.fleet.ListNodes(ctx, req)
	if err != nil {
		return nil, err
	}
	if d := s.degraded(); d != "" {
		if resp.Degraded != "" {
			d = resp.Degraded + "; " + d
		}
		resp.Degraded = d
	}
	return resp, nil
}

func (s *fleetService) QueryEvents(ctx context.Context, req *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error) {
	return s.events.QueryEvents(ctx, req)
}

func (s *fleetService) TopErrors(ctx context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	return s.events.TopErrors(ctx, req)
}

func (s *fleetService) ErrorSeries(ctx context.Context, req *wsfleetv1.ErrorSeriesRequest) (*wsfleetv1.ErrorSeriesResponse, error) {
	return s.events.ErrorSeries(ctx, req)
}

func (s *fleetService) TrafficSummary(ctx context.Context, req *wsfleetv1.TrafficSummaryRequest) (*wsfleetv1.TrafficSummaryResponse, error) {
	return s.events.TrafficSummary(ctx, req)
}

func (s *fleetService) TailEvents(req *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	return s.events.TailEvents(req, stream)
}

// eventQueries is every replica's events with replicas, else this one's.
func (s *Server) eventQueries() eventQueries {
	if s.queries != nil {
		return s.queries
	}
	return s.telemetry
}

// degraded is why ListNodes may not show the whole fleet as it is: with
// replicas, the sharing's state (etcd unreachable, ...).
func (s *Server) degraded() string {
	if s.status == nil {
		return ""
	}
	return s.status.Degraded()
}

// fleetRunning is what every known node runs, as RecoverPolicy reads it:
// the registry's view handed over without policyserver knowing the
// registry.
func (s *Server) fleetRunning() []policyserver.NodeRevision {
	reported := s.fleet.Running()
	out := make([]policyserver.NodeRevision, len(reported))
	for i, n := range reported {
		out[i] = policyserver.NodeRevision{NodeID: n.NodeID, Pool: n.Pool, Connected: n.Connected, LastSeen: n.LastSeen, Running: n.Running}
	}
	return out
}

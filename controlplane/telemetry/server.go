package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Request limits of the Server.
const (
	// MaxBatchEvents bounds one ReportTelemetry batch in events; the
	// control plane's gRPC message limit (4 MiB by default) bounds it in
	// bytes.
	MaxBatchEvents = 10_000
	// DefaultQueryLimit and MaxQueryLimit bound QueryEvents answers in
	// events, MaxQueryBytes in encoded bytes (well under gRPC's default
	// 4 MiB receive limit): an answer that would be larger holds the newest
	// events that fit and says truncated.
	DefaultQueryLimit = 100
	MaxQueryLimit     = 10_000
	MaxQueryBytes     = 2 << 20
	// DefaultTopLimit is TopErrors' group count when none is asked for;
	// larger requests are capped at MaxTopLimit.
	DefaultTopLimit = 20
	MaxTopLimit     = 10_000
	// DefaultTopWindow is TopErrors' range when the filter has no start.
	DefaultTopWindow = 15 * time.Minute
	// MaxTailBacklog bounds TailEvents' backlog.
	MaxTailBacklog = 10_000
)

// Server implements the telemetry half of the gRPC API on a Store:
// NodeService.ReportTelemetry and FleetService.QueryEvents, TopErrors and
// TailEvents. It registers nothing itself; the control plane combines its
// methods with the node registry's into the registered services.
// Authentication and authorization are the interceptors' job.
type Server struct {
	store *Store
	log   logrus.FieldLogger
	now   func() time.Time

	done     chan struct{}
	shutdown sync.Once
}

// The methods a NodeService and a FleetService delegate to.
var (
	_ interface {
		ReportTelemetry(wsfleetv1.NodeService_ReportTelemetryServer) error
	} = (*Server)(nil)
	_ interface {
		QueryEvents(context.Context, *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error)
		TopErrors(context.Context, *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error)
		TailEvents(*wsfleetv1.TailEventsRequest, wsfleetv1.FleetService_TailEventsServer) error
		ErrorSeries(context.Context, *wsfleetv1.ErrorSeriesRequest) (*wsfleetv1.ErrorSeriesResponse, error)
	} = (*Server)(nil)
)

// NewServer returns a Server on s. A nil log means the store's.
func NewServer(s *Store, log logrus.FieldLogger) *Server {
	if log == nil {
		log = s.cfg.Log
	}
	return &Server{store: s, log: log, now: s.cfg.Now, done: make(chan struct{})}
}

// Shutdown ends every ReportTelemetry and TailEvents stream, now and
// later, with Unavailable, so that a graceful stop of the gRPC server is
// not held up by streams that never end on their own. Nodes resend the
// batches they have no ack for to the next control plane. Idempotent.
func (srv *Server) Shutdown() {
	srv.shutdown.Do(func() { close(srv.done) })
}

var errShuttingDown = status.Error(codes.Unavailable, "control plane shutting down")

// ReportTelemetry implements NodeService.ReportTelemetry: every batch is
// validated, ingested (or recognised as a duplicate) and acked with its
// sequence number. An invalid batch ends the stream with InvalidArgument;
// so does a node id that differs from the first batch's. A batch whose
// node, pool or events are not the stream credential's node ends it with
// PermissionDenied (see attribute).
//
// Receiving runs on a goroutine of its own, so that Shutdown can end a
// stream whose node is idle; it ends with the stream.
func (srv *Server) ReportTelemetry(stream wsfleetv1.NodeService_ReportTelemetryServer) error {
	ctx := stream.Context()
	batches := make(chan *wsfleetv1.ReportTelemetryRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case batches <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	var nodeID string
	var nBatches, nEvents, nDuplicates int
	defer func() {
		if nodeID != "" {
			srv.log.WithFields(logrus.Fields{
				"node_id": nodeID, "batches": nBatches, "events": nEvents, "duplicates": nDuplicates,
			}).Debug("telemetry stream ended")
		}
	}()
	for {
		select {
		case <-srv.done:
			return errShuttingDown
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case req := <-batches:
			if err := validateBatch(req, nodeID); err != nil {
				srv.log.WithFields(logrus.Fields{
					"node_id": req.GetNodeId(), "reporter_id": req.GetReporterId(), "sequence": req.GetSequence(),
				}).WithError(err).Warn("telemetry batch refused")
				return err
			}
			if err := attribute(ctx, req); err != nil {
				srv.log.WithFields(logrus.Fields{
					"node_id": req.GetNodeId(), "pool": req.GetPool(), "reporter_id": req.GetReporterId(),
				}).WithError(err).Warn("telemetry batch refused: not the credential's node")
				return err
			}
			nodeID = req.GetNodeId()
			nBatches++
			if srv.store.Ingest(req) {
				nEvents += len(req.GetEvents())
			} else {
				nDuplicates++
			}
			if err := stream.Send(&wsfleetv1.ReportTelemetryResponse{AckedSequence: req.GetSequence()}); err != nil {
				return err
			}
		}
	}
}

// attribute checks who a batch is from. The stream's credential must be
// allowed to act as the batch's node id and pool (auth.AuthorizeNode), and
// each event must be that node's, in that pool, or name neither (Ingest
// fills them in from the batch). Anything else ends the stream with
// PermissionDenied naming the id: a batch is never rewritten, since a node
// that reports as another is misconfigured or hostile, and its operator
// should hear of it rather than find its events filed under another name.
// The stream's first batch fixes its node id (validateBatch), so every
// event of a stream is attributed to the one node its credential allowed.
func attribute(ctx context.Context, req *wsfleetv1.ReportTelemetryRequest) error {
	node, pool := req.GetNodeId(), req.GetPool()
	if pool == "" {
		pool = policy.DefaultPool
	}
	if _, err := auth.AuthorizeNode(ctx, node, pool); err != nil {
		return err
	}
	for i, ev := range req.GetEvents() {
		if id := ev.GetNodeId(); id != "" && id != node {
			return status.Errorf(codes.PermissionDenied, "events[%d].node_id %q is not the batch's node %q: a node reports its own events only",
				i, clip.ValidString(id, maxIDInMessage), clip.ValidString(node, maxIDInMessage))
		}
		if p := ev.GetPool(); p != "" && p != pool {
			return status.Errorf(codes.PermissionDenied, "events[%d].pool %q is not the batch's pool %q: a node reports its own events only",
				i, clip.ValidString(p, maxIDInMessage), clip.ValidString(pool, maxIDInMessage))
		}
	}
	return nil
}

// maxIDInMessage bounds a node id or pool quoted in an error.
const maxIDInMessage = 160

func validateBatch(req *wsfleetv1.ReportTelemetryRequest, streamNode string) error {
	var vs []*errdetails.BadRequest_FieldViolation
	switch {
	case req.GetNodeId() == "":
		vs = append(vs, violation("node_id", "is required"))
	case len(req.GetNodeId()) > MaxNodeIDBytes:
		// Refused, not cut: the id names the node in the registry.
		vs = append(vs, violation("node_id", fmt.Sprintf("%d bytes; at most %d", len(req.GetNodeId()), MaxNodeIDBytes)))
	case streamNode != "" && req.GetNodeId() != streamNode:
		vs = append(vs, violation("node_id", fmt.Sprintf("%q differs from %q sent earlier on this stream", req.GetNodeId(), streamNode)))
	}
	if n := len(req.GetPool()); n > MaxPoolBytes {
		vs = append(vs, violation("pool", fmt.Sprintf("%d bytes; at most %d", n, MaxPoolBytes)))
	}
	switch n := len(req.GetReporterId()); {
	case n == 0:
		vs = append(vs, violation("reporter_id", "is required"))
	case n > MaxReporterIDBytes:
		vs = append(vs, violation("reporter_id", fmt.Sprintf("%d bytes; at most %d", n, MaxReporterIDBytes)))
	}
	if req.GetSequence() == 0 {
		vs = append(vs, violation("sequence", "must be positive"))
	}
	if n := len(req.GetEvents()); n > MaxBatchEvents {
		vs = append(vs, violation("events", fmt.Sprintf("%d events; at most %d per batch", n, MaxBatchEvents)))
	}
	if n := len(req.GetTraffic()); n > MaxBatchSamples {
		vs = append(vs, violation("traffic", fmt.Sprintf("%d samples; at most %d per batch", n, MaxBatchSamples)))
	}
	return badRequest(vs)
}

// QueryEvents implements FleetService.QueryEvents. An answer is at most
// MaxQueryBytes: the newest events that fit, marked truncated.
func (srv *Server) QueryEvents(_ context.Context, req *wsfleetv1.QueryEventsRequest) (*wsfleetv1.QueryEventsResponse, error) {
	vs := validateFilter(req.GetFilter(), true)
	limit, vs := limitOf(vs, "limit", req.GetLimit(), DefaultQueryLimit, MaxQueryLimit)
	if err := badRequest(vs); err != nil {
		return nil, err
	}
	events, truncated := srv.store.Query(req.GetFilter(), limit)
	// The newest events that fit in MaxQueryBytes: 10,000 events with
	// every string at its cap would not fit in a client's message limit.
	size := 0
	for i, ev := range events {
		if size += proto.Size(ev) + 8; size > MaxQueryBytes {
			events, truncated = events[:i], true
			break
		}
	}
	return &wsfleetv1.QueryEventsResponse{Events: events, Truncated: truncated}, nil
}

// TopErrors implements FleetService.TopErrors. Without a start time the
// range is the DefaultTopWindow before its end (or now). Counts have minute
// granularity; see Store.Top.
func (srv *Server) TopErrors(_ context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	vs := validateFilter(req.GetFilter(), true)
	by := req.GetGroupBy()
	if _, ok := wsfleetv1.TopErrorsRequest_GroupBy_name[int32(by)]; !ok {
		vs = append(vs, violation("group_by", fmt.Sprintf("unknown grouping %d", by)))
	}
	limit, vs := limitOf(vs, "limit", req.GetLimit(), DefaultTopLimit, MaxTopLimit)
	if err := badRequest(vs); err != nil {
		return nil, err
	}
	f := req.GetFilter()
	if f.GetStartTime() == nil {
		if f == nil {
			f = &wsfleetv1.EventFilter{}
		} else {
			f = proto.Clone(f).(*wsfleetv1.EventFilter)
		}
		end := srv.now()
		if f.GetEndTime() != nil {
			end = f.GetEndTime().AsTime()
		}
		f.StartTime = timestamppb.New(end.Add(-DefaultTopWindow))
	}
	return srv.store.Top(f, by, limit), nil
}

// TrafficSummary implements FleetService.TrafficSummary from this
// replica's samples. Without an end the range ends now; without a start it
// is the DefaultTrafficWindow before its end.
func (srv *Server) TrafficSummary(_ context.Context, req *wsfleetv1.TrafficSummaryRequest) (*wsfleetv1.TrafficSummaryResponse, error) {
	start, end, err := TrafficRange(req, srv.now())
	if err != nil {
		return nil, err
	}
	return srv.store.TrafficSummary(req.GetPool(), start, end), nil
}

// TrafficRange checks a TrafficSummary request (InvalidArgument naming
// every invalid field) and returns its range with the defaults filled in.
func TrafficRange(req *wsfleetv1.TrafficSummaryRequest, now time.Time) (start, end time.Time, err error) {
	var vs []*errdetails.BadRequest_FieldViolation
	if n := len(req.GetPool()); n > MaxPoolBytes {
		vs = append(vs, violation("pool", fmt.Sprintf("%d bytes; at most %d", n, MaxPoolBytes)))
	}
	end = now
	if e := req.GetEndTime(); e != nil {
		if e.CheckValid() != nil {
			vs = append(vs, violation("end_time", "invalid timestamp"))
		} else {
			end = e.AsTime()
		}
	}
	start = end.Add(-DefaultTrafficWindow)
	if st := req.GetStartTime(); st != nil {
		switch {
		case st.CheckValid() != nil:
			vs = append(vs, violation("start_time", "invalid timestamp"))
		case st.AsTime().After(end):
			vs = append(vs, violation("end_time", "is before start_time"))
		default:
			start = st.AsTime()
		}
	}
	return start, end, badRequest(vs)
}

// TailEvents implements FleetService.TailEvents: up to backlog recent
// matching events, oldest first, then every matching event as it is
// ingested until the client goes away or Shutdown. The stream's header,
// sent once the tail is open, says how many events are backlog
// (BacklogHeader). Beyond Config.MaxTails
// open tails it fails with ResourceExhausted. A client that reads too
// slowly for its tail's buffer is dropped rather than slow ingest down:
// its stream ends with ResourceExhausted once it has read what was
// buffered. (A client that stops reading altogether keeps its stream, and
// its slot, until it goes away: gRPC cannot end a stream whose handler is
// blocked sending to it, but its transport buffers at most 64 KiB and the
// store sends it nothing more.)
func (srv *Server) TailEvents(req *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	backlog, err := TailBacklog(req)
	if err != nil {
		return err
	}
	select {
	case <-srv.done:
		return errShuttingDown
	default:
	}
	past, tail, err := srv.Tail(req.GetFilter(), backlog)
	if err != nil {
		return err
	}
	defer tail.Cancel()
	// The header says how many of the first events are backlog: a replica
	// merging this stream with its own (package fanout) tells them from
	// live ones by it.
	if err := stream.SendHeader(metadata.Pairs(BacklogHeader, strconv.Itoa(len(past)))); err != nil {
		return err
	}
	for _, ev := range past {
		if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: ev}); err != nil {
			return err
		}
	}
	ctx := stream.Context()
	for {
		select {
		case <-srv.done:
			return errShuttingDown
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case ev, ok := <-tail.C:
			if !ok {
				// Only a drop closes the channel while the stream lives.
				return status.Errorf(codes.ResourceExhausted,
					"tail dropped: the client read too slowly and %d events were waiting; open a new tail", cap(tail.C))
			}
			if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: ev}); err != nil {
				return err
			}
		}
	}
}

// TailBacklog checks a TailEvents request (InvalidArgument naming every
// invalid field) and returns its backlog, capped at MaxTailBacklog.
func TailBacklog(req *wsfleetv1.TailEventsRequest) (int, error) {
	vs := validateFilter(req.GetFilter(), false)
	backlog, vs := limitOf(vs, "backlog", req.GetBacklog(), 0, MaxTailBacklog)
	return backlog, badRequest(vs)
}

// BacklogHeader is the header of a TailEvents stream that says how many of
// its first events are backlog (the rest are live), in decimal.
const BacklogHeader = "wsfleet-tail-backlog"

// Tail opens a live tail of the Store for a TailEvents stream: up to backlog
// of the most recent events matching f, oldest first, and then the tail's
// channel, with neither a gap nor a repeat between the two. Beyond
// Config.MaxTails open tails it fails with ResourceExhausted. The caller
// must cancel the tail. The request must have been validated.
func (srv *Server) Tail(f *wsfleetv1.EventFilter, backlog int) ([]*wsfleetv1.ErrorEvent, *Tail, error) {
	past, tail, err := srv.store.tail(f, backlog, 0)
	if err != nil {
		return nil, nil, status.Errorf(codes.ResourceExhausted, "%v; try again later", err)
	}
	return past, tail, nil
}

// Done is closed once Shutdown has begun: streams end then.
func (srv *Server) Done() <-chan struct{} { return srv.done }

// validateFilter names every invalid field of f; withTime false skips the
// time range (tails ignore it).
func validateFilter(f *wsfleetv1.EventFilter, withTime bool) []*errdetails.BadRequest_FieldViolation {
	var vs []*errdetails.BadRequest_FieldViolation
	if withTime {
		start, end := f.GetStartTime(), f.GetEndTime()
		startOK, endOK := start != nil, end != nil
		if startOK {
			if err := start.CheckValid(); err != nil {
				vs = append(vs, violation("filter.start_time", "invalid timestamp"))
				startOK = false
			}
		}
		if endOK {
			if err := end.CheckValid(); err != nil {
				vs = append(vs, violation("filter.end_time", "invalid timestamp"))
				endOK = false
			}
		}
		if startOK && endOK && end.AsTime().Before(start.AsTime()) {
			vs = append(vs, violation("filter.end_time", "is before filter.start_time"))
		}
	}
	for i, c := range f.GetClasses() {
		if !knownClass(c) {
			vs = append(vs, violation(fmt.Sprintf("filter.classes[%d]", i), fmt.Sprintf("unknown error class %d", c)))
		}
	}
	return vs
}

// limitOf applies a request's count field: negative is refused, 0 means
// def, more than maxN is capped.
func limitOf(vs []*errdetails.BadRequest_FieldViolation, field string, n int32, def, maxN int) (int, []*errdetails.BadRequest_FieldViolation) {
	switch {
	case n < 0:
		return 0, append(vs, violation(field, "must not be negative"))
	case n == 0:
		return def, vs
	case int(n) > maxN:
		return maxN, vs
	}
	return int(n), vs
}

func violation(field, desc string) *errdetails.BadRequest_FieldViolation {
	return &errdetails.BadRequest_FieldViolation{Field: field, Description: desc}
}

// badRequest is InvalidArgument carrying a google.rpc.BadRequest with every
// violation, or nil when there are none.
func badRequest(vs []*errdetails.BadRequest_FieldViolation) error {
	if len(vs) == 0 {
		return nil
	}
	msg := "invalid request"
	if len(vs) == 1 {
		msg = vs[0].GetField() + ": " + vs[0].GetDescription()
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: vs})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

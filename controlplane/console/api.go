package console

import (
	"context"
	"net/http"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// rpc is one unary method the API exposes.
type rpc struct {
	fullMethod string
	call       func(ctx context.Context, body []byte) (proto.Message, error)
}

// Requests accept proto or JSON field names; answers use the proto names,
// the spelling of BadRequest field paths and policy files, with every
// field present so that the page needs no defaults of its own.
var (
	unmarshal = protojson.UnmarshalOptions{}
	marshal   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
)

// unary makes the rpc of one service method.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](fullMethod string, f func(context.Context, PReq) (Resp, error)) rpc {
	return rpc{fullMethod: fullMethod, call: func(ctx context.Context, body []byte) (proto.Message, error) {
		req := PReq(new(Req))
		if len(body) > 0 {
			if err := unmarshal.Unmarshal(body, req); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "request is not a valid %s: %v", req.ProtoReflect().Descriptor().Name(), err)
			}
		}
		return f(ctx, req)
	}}
}

// table lists the methods the console calls, by "Service/Method". Who
// may call which is auth's methodRoles, as over gRPC.
func (c *Console) table() map[string]rpc {
	p, f := c.cfg.Policy, c.cfg.Fleet
	list := []rpc{
		unary(wsfleetv1.PolicyService_ListPools_FullMethodName, p.ListPools),
		unary(wsfleetv1.PolicyService_GetPolicy_FullMethodName, p.GetPolicy),
		unary(wsfleetv1.PolicyService_ListPolicyRevisions_FullMethodName, p.ListPolicyRevisions),
		unary(wsfleetv1.PolicyService_DiffPolicy_FullMethodName, p.DiffPolicy),
		unary(wsfleetv1.PolicyService_ValidatePolicy_FullMethodName, p.ValidatePolicy),
		unary(wsfleetv1.PolicyService_ApplyPolicy_FullMethodName, p.ApplyPolicy),
		unary(wsfleetv1.PolicyService_RollbackPolicy_FullMethodName, p.RollbackPolicy),
		unary(wsfleetv1.PolicyService_GetRollout_FullMethodName, p.GetRollout),
		unary(wsfleetv1.PolicyService_PromoteRollout_FullMethodName, p.PromoteRollout),
		unary(wsfleetv1.PolicyService_AbortRollout_FullMethodName, p.AbortRollout),
		unary(wsfleetv1.PolicyService_ProposePolicy_FullMethodName, p.ProposePolicy),
		unary(wsfleetv1.PolicyService_ListProposals_FullMethodName, p.ListProposals),
		unary(wsfleetv1.PolicyService_GetProposal_FullMethodName, p.GetProposal),
		unary(wsfleetv1.PolicyService_ApproveProposal_FullMethodName, p.ApproveProposal),
		unary(wsfleetv1.PolicyService_RejectProposal_FullMethodName, p.RejectProposal),
		unary(wsfleetv1.FleetService_ListNodes_FullMethodName, f.ListNodes),
		unary(wsfleetv1.FleetService_QueryEvents_FullMethodName, f.QueryEvents),
		unary(wsfleetv1.FleetService_TopErrors_FullMethodName, f.TopErrors),
		unary(wsfleetv1.FleetService_ErrorSeries_FullMethodName, f.ErrorSeries),
	}
	out := make(map[string]rpc, len(list))
	for _, r := range list {
		// "/wsfleet.v1.PolicyService/ApplyPolicy" → "PolicyService/ApplyPolicy"
		name := r.fullMethod[len("/wsfleet.v1."):]
		out[name] = r
	}
	return out
}

// callContext is the context a service method runs in for identity id of
// session s: the identity as the gRPC interceptors store it, and the
// incoming metadata a gRPC call would carry, so that the queries that ask
// the other replicas (package fanout) forward the same credential.
func callContext(ctx context.Context, s *session, id auth.Identity, dev bool) context.Context {
	md := metadata.Pairs("authorization", "Bearer "+s.token)
	if dev {
		md = metadata.Pairs(auth.UserHeader, s.token)
	}
	return auth.WithIdentity(metadata.NewIncomingContext(ctx, md), id)
}

// serveRPC calls one service method: POST with the request as JSON, the
// answer as JSON, errors as errorBody with the gRPC code's HTTP status.
func (c *Console) serveRPC(w http.ResponseWriter, r *http.Request) {
	s, id, ok := c.authorize(w, r, true)
	if !ok {
		return
	}
	name := r.PathValue("service") + "/" + r.PathValue("method")
	m, known := c.rpcs[name]
	if !known {
		writeError(w, http.StatusNotFound, "NotFound", "no such API call", nil)
		return
	}
	log := c.cfg.Log.WithFields(logrus.Fields{"grpc.method": m.fullMethod, "user": id.Name, "role": id.Role, "via": "console"})
	if !auth.Allowed(id.Role, m.fullMethod) {
		log.WithField("grpc.code", codes.PermissionDenied.String()).Info("console: call refused")
		writeStatus(w, status.Errorf(codes.PermissionDenied, "%s (role %s) may not call %s", id.Name, id.Role, m.fullMethod))
		return
	}
	body, ok := c.readBody(w, r)
	if !ok {
		return
	}
	resp, err := m.call(callContext(r.Context(), s, id, c.cfg.Auth.Dev()), body)
	log = log.WithField("grpc.code", status.Code(err).String())
	if err != nil {
		log.WithError(err).Info("console: call failed")
		writeStatus(w, err)
		return
	}
	out, err := marshal.Marshal(resp)
	if err != nil {
		writeStatus(w, status.Errorf(codes.Internal, "encode answer: %v", err))
		return
	}
	log.Info("console: call")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

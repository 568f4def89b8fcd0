package publish

import (
	"fmt"
	"unicode"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// maxNodeIDLength is the longest node id a hello may carry (registry).
const maxNodeIDLength = 128

// Deliveries implements NodeService.Deliveries: it checks that the
// stream's credential may act as the node and pool the request names
// (auth.AuthorizeNode), attaches the stream, answers with headers at once
// (the node then knows it is attached), and sends every message published
// to the pool until the node goes away, a newer stream of the node
// replaces it, or the control plane stops.
func (s *Server) Deliveries(req *wsfleetv1.DeliveriesRequest, out wsfleetv1.NodeService_DeliveriesServer) error {
	ctx := out.Context()
	pool := req.GetPool()
	if pool == "" {
		pool = policy.DefaultPool
	}
	if err := validateDeliveries(req); err != nil {
		return err
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	log := s.log.WithFields(logrus.Fields{"node_id": req.GetNodeId(), "pool": pool, "peer": addr})
	who, err := auth.AuthorizeNode(ctx, req.GetNodeId(), pool)
	if err != nil {
		log.WithError(err).Warn("delivery stream refused: the credential may not act as this node")
		return err
	}
	st, err := s.hub.attach(req.GetNodeId(), pool, who.Credential)
	if err != nil {
		log.WithError(err).Warn("delivery stream refused")
		return err
	}
	defer s.hub.detach(st)
	if err := out.SendHeader(nil); err != nil {
		return err
	}
	log.Debug("delivery stream attached")
	for {
		select {
		case m := <-st.q:
			err := out.Send(&wsfleetv1.DeliveriesResponse{Channel: m.channel, Data: m.data})
			m.release(1)
			if err != nil {
				return err
			}
			s.metrics.sent.Inc()
		case <-st.stop:
			s.hub.mu.Lock()
			closed := s.hub.closed
			s.hub.mu.Unlock()
			if closed {
				return status.Error(codes.Unavailable, "control plane shutting down")
			}
			log.Info("delivery stream replaced by a newer one for the same node id")
			return status.Error(codes.Aborted, "replaced by a newer delivery stream for this node id")
		case <-ctx.Done():
			log.Debug("delivery stream ended")
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func validateDeliveries(req *wsfleetv1.DeliveriesRequest) error {
	var bad []string
	switch id := req.GetNodeId(); {
	case id == "":
		bad = append(bad, "node_id: required")
	case len(id) > maxNodeIDLength:
		bad = append(bad, fmt.Sprintf("node_id: longer than %d", maxNodeIDLength))
	default:
		for _, c := range id {
			if !unicode.IsPrint(c) || unicode.IsSpace(c) {
				bad = append(bad, "node_id: only printable characters without spaces")
				break
			}
		}
	}
	if p := req.GetPool(); p != "" {
		if err := policy.ValidatePoolName(p); err != nil {
			bad = append(bad, "pool: not a DNS label")
		}
	}
	if len(bad) > 0 {
		return status.Errorf(codes.InvalidArgument, "invalid deliveries request: %v", bad)
	}
	return nil
}

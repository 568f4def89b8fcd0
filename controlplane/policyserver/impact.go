package policyserver

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// ImpactFunc computes what next would have done to the pool's recent
// traffic, compared with head (nil for a new pool). See Config.Impact.
type ImpactFunc func(ctx context.Context, pool string, head, next *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error)

// impact is Config.Impact for the pool's current head and p, or nil
// without a hook. Its error is a gRPC status the caller may return.
func (s *Server) impact(ctx context.Context, pool string, p *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error) {
	if s.cfg.Impact == nil {
		return nil, nil
	}
	var headPolicy *wsfleetv1.Policy
	head, err := s.cfg.Store.Head(ctx, pool)
	switch {
	case err == nil:
		headPolicy = head.GetPolicy()
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, s.storeError(ctx, err, "read head")
	}
	imp, err := s.cfg.Impact(ctx, pool, headPolicy, p)
	if err != nil {
		s.cfg.Log.WithFields(logrus.Fields{"pool": pool}).WithError(err).Warn("dry-run impact failed")
		return nil, err
	}
	return imp, nil
}

package policyserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// RecoverPolicy implements PolicyService: it makes the newest policy the
// fleet runs for a pool the pool's next revision, numbered above every
// revision any node reports for the pool and above the head, so every node
// accepts it (a node refuses a revision below the one it runs). It is for
// a control plane whose store was reset or replaced while the nodes kept
// running.
//
// The source is the node named by from_node, else the node running the
// highest revision of the pool (ties: a connected node first, then the one
// seen last, then the lowest node id). Recovering what the control plane
// already has (the source runs a revision of this store not above its head)
// is refused: that is a rollback, not a recovery.
func (s *Server) RecoverPolicy(ctx context.Context, req *wsfleetv1.RecoverPolicyRequest) (*wsfleetv1.RecoverPolicyResponse, error) {
	pool, err := poolName(req.GetPool())
	if err != nil {
		return nil, err
	}
	if err := checkMessage(req.GetMessage()); err != nil {
		return nil, err
	}
	var expected *int64
	if req.ExpectedRevision != nil {
		e := req.GetExpectedRevision()
		if e < 0 {
			return nil, badRequest(&wsfleetv1.FieldViolation{Field: "expected_revision", Description: "must not be negative"})
		}
		expected = &e
	}
	if s.cfg.Fleet == nil {
		return nil, status.Error(codes.Unimplemented, "this control plane does not track nodes; nothing to recover from")
	}

	fleet := s.cfg.Fleet()
	var (
		candidates []NodeRevision // nodes that run a revision of pool
		highest    int64
	)
	for _, n := range fleet {
		if n.Running != nil && n.Running.GetPool() == pool {
			candidates = append(candidates, n)
			highest = max(highest, n.Running.GetRevision())
		}
	}
	src, err := recoverySource(pool, req.GetFromNode(), fleet, candidates)
	if err != nil {
		return nil, err
	}
	run := src.Running

	head, err := s.cfg.Store.Head(ctx, pool)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, s.storeError(ctx, err, "read head")
	}
	if head != nil && run.GetStoreId() == s.cfg.Store.ID() && run.GetRevision() <= head.GetRevision() {
		return nil, status.Errorf(codes.FailedPrecondition,
			"nothing to recover: node %s runs %s@%d, which this control plane's store issued, and the head is %d; to restore that content, roll back to it",
			src.NodeID, pool, run.GetRevision(), head.GetRevision())
	}
	// What a node runs passed the rules of the control plane that issued
	// it; store it only if it passes today's.
	if v := policy.Validate(run.GetPolicy()); len(v) > 0 {
		return nil, invalidPolicy(fmt.Sprintf("the policy node %s runs does not pass validation: %s", src.NodeID, policyViolationsMessage(len(v))), v)
	}
	msg := req.GetMessage()
	if msg == "" {
		msg = fmt.Sprintf("recovered from node %s, which runs %s@%d from %s", src.NodeID, pool, run.GetRevision(), storeName(run.GetStoreId()))
	}
	res, err := s.write(ctx, change{
		pool:          pool,
		policy:        run.GetPolicy(),
		expected:      expected,
		message:       msg,
		recoveredFrom: src.NodeID,
		above:         highest,
		dryRun:        req.GetDryRun(),
		direct:        true,
	})
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.RecoverPolicyResponse{
		Revision:                res.rev,
		PreviousRevision:        res.previous,
		SourceNode:              src.NodeID,
		SourceRevision:          run.GetRevision(),
		SourceStoreId:           run.GetStoreId(),
		HighestReportedRevision: highest,
		Changes:                 res.changes,
	}, nil
}

// recoverySource picks the node whose running policy is recovered: the one
// named, which must run a revision of pool, else the best candidate.
func recoverySource(pool, from string, fleet, candidates []NodeRevision) (NodeRevision, error) {
	if from != "" {
		i := slices.IndexFunc(fleet, func(n NodeRevision) bool { return n.NodeID == from })
		if i < 0 {
			return NodeRevision{}, status.Errorf(codes.NotFound, "node %q is not known to this control plane (wsctl nodes list shows the known ones)", from)
		}
		n := fleet[i]
		switch {
		case n.Running == nil:
			return NodeRevision{}, status.Errorf(codes.FailedPrecondition, "node %q reports no running policy to recover from", from)
		case n.Running.GetPool() != pool:
			return NodeRevision{}, status.Errorf(codes.FailedPrecondition, "node %q runs pool %q's policy (%s@%d), not pool %q's", from, n.Running.GetPool(), n.Running.GetPool(), n.Running.GetRevision(), pool)
		}
		return n, nil
	}
	if len(candidates) == 0 {
		return NodeRevision{}, status.Errorf(codes.FailedPrecondition, "no node reports running a policy of pool %q: nothing to recover it from", pool)
	}
	return slices.MaxFunc(candidates, func(a, b NodeRevision) int {
		return cmp.Or(
			cmp.Compare(a.Running.GetRevision(), b.Running.GetRevision()),
			cmp.Compare(boolInt(a.Connected), boolInt(b.Connected)),
			a.LastSeen.Compare(b.LastSeen),
			cmp.Compare(b.NodeID, a.NodeID), // the lower id wins
		)
	}), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func storeName(id string) string {
	if id == "" {
		return "a store without identity"
	}
	return "store " + id
}

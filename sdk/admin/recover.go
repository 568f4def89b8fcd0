package admin

import (
	"context"

	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Recovery asks the control plane to restore a pool's policy from what
// the fleet runs (PolicyService.RecoverPolicy): after its store was reset
// or replaced, nodes keep running a revision it no longer has and refuse
// its older ones; the recovered revision is numbered above every revision
// any node reports, so every node accepts it.
type Recovery struct {
	// Pool to recover; empty means default.
	Pool string
	// FromNode takes the policy this node runs; empty takes the newest
	// revision any node of the fleet reports for the pool.
	FromNode string
	// Message is kept with the new revision; empty lets the control plane
	// name the source node, revision and store.
	Message string
	// ExpectRevision, if set, makes the recovery a compare-and-set on the
	// pool's current head (0: the pool has no revision yet).
	ExpectRevision *int64
	// DryRun reports what would be stored without storing it.
	DryRun bool
}

// Recover runs a Recovery. Errors are the control plane's: FailedPrecondition
// when no node reports a policy for the pool, when the named node runs
// another pool's, when there is nothing to recover, or for a stale
// ExpectRevision (see Conflict); NotFound for an unknown node;
// InvalidArgument (see FieldViolations) for a policy that no longer
// validates or a message over the bound; PermissionDenied without the
// admin role.
func (c *Client) Recover(ctx context.Context, r Recovery) (*wsfleetv1.RecoverPolicyResponse, error) {
	req := &wsfleetv1.RecoverPolicyRequest{Pool: r.Pool, FromNode: r.FromNode, Message: r.Message, DryRun: r.DryRun}
	if r.ExpectRevision != nil {
		req.ExpectedRevision = proto.Int64(*r.ExpectRevision)
	}
	return c.policy.RecoverPolicy(ctx, req)
}

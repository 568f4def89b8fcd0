package auth

import (
	"testing"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// TestOnlyAdminsWriteProposalsAndRollouts: every write of issue 12
// (propose, approve, reject, promote, abort, and the canary apply) is
// admin-only; viewers read proposals and rollouts, nodes and publishers
// neither.
func TestOnlyAdminsWriteProposalsAndRollouts(t *testing.T) {
	writes := []string{
		wsfleetv1.PolicyService_ProposePolicy_FullMethodName,
		wsfleetv1.PolicyService_ApproveProposal_FullMethodName,
		wsfleetv1.PolicyService_RejectProposal_FullMethodName,
		wsfleetv1.PolicyService_PromoteRollout_FullMethodName,
		wsfleetv1.PolicyService_AbortRollout_FullMethodName,
		wsfleetv1.PolicyService_ApplyPolicy_FullMethodName,
	}
	reads := []string{
		wsfleetv1.PolicyService_GetRollout_FullMethodName,
		wsfleetv1.PolicyService_GetProposal_FullMethodName,
		wsfleetv1.PolicyService_ListProposals_FullMethodName,
	}
	for _, m := range writes {
		if !Allowed(RoleAdmin, m) {
			t.Errorf("admin may not call %s", m)
		}
		for _, r := range []Role{RoleViewer, RoleNode, RolePublisher} {
			if Allowed(r, m) {
				t.Errorf("%s may call %s", r, m)
			}
		}
	}
	for _, m := range reads {
		if !Allowed(RoleViewer, m) {
			t.Errorf("viewer may not call %s", m)
		}
		for _, r := range []Role{RoleNode, RolePublisher} {
			if Allowed(r, m) {
				t.Errorf("%s may call %s", r, m)
			}
		}
	}
}

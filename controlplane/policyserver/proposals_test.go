package policyserver

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// wantStatus fails unless err has code and a message containing every
// part of want.
func wantStatus(t *testing.T, err error, code codes.Code, want ...string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("error = %v, want code %v", err, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Fatalf("error %q does not say %q", st.Message(), w)
		}
	}
}

func headOf(t *testing.T, f *fixture, pool string) *wsfleetv1.PolicyRevision {
	t.Helper()
	r, err := f.st.Head(t.Context(), pool)
	if err != nil {
		t.Fatalf("Head(%s): %v", pool, err)
	}
	return r
}

func propose(t *testing.T, f *fixture, who string, p *wsfleetv1.Policy, msg string) *wsfleetv1.Proposal {
	t.Helper()
	resp, err := f.srv.ProposePolicy(as(who), &wsfleetv1.ProposePolicyRequest{Policy: p, Message: msg})
	if err != nil {
		t.Fatalf("ProposePolicy as %s: %v", who, err)
	}
	return resp.GetProposal()
}

// requireApproval applies approval.required on default (allowed: the head
// does not require it yet) and returns that policy.
func requireApproval(t *testing.T, f *fixture) *wsfleetv1.Policy {
	t.Helper()
	p := policy.Default()
	p.Approval.Required = true
	if _, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: p, Message: "approval on"}); err != nil {
		t.Fatalf("turning approval on: %v", err)
	}
	return p
}

func (f *fixture) proposalEvents(t *testing.T, event string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "wsfleet_control_policy_proposals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "event" && l.GetValue() == event {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func TestApprovedProposalIsTheProposersRevisionWithTheApproverRecorded(t *testing.T) {
	f := newFixture(t)
	p := stagingPolicy()
	prop := propose(t, f, "alice", p, "staging origins")
	if prop.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN || prop.GetBaseRevision() != 1 || prop.GetProposer() != "alice" || len(prop.GetChanges()) == 0 {
		t.Fatalf("proposal = %v", prop)
	}
	if head := headOf(t, f, "default"); head.GetRevision() != 1 {
		t.Fatalf("proposing stored revision %d", head.GetRevision())
	}

	resp, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId(), Message: "lgtm"})
	if err != nil {
		t.Fatalf("ApproveProposal as bob: %v", err)
	}
	rev := resp.GetRevision()
	if rev.GetRevision() != 2 || rev.GetAuthor() != "alice" || rev.GetApprovedBy() != "bob" || rev.GetProposalId() != prop.GetId() || rev.GetMessage() != "staging origins" {
		t.Fatalf("revision = %v, want 2 by alice approved by bob from proposal %d", rev, prop.GetId())
	}
	if !proto.Equal(rev.GetPolicy(), p) {
		t.Fatalf("revision policy = %v, want the proposed one", rev.GetPolicy())
	}
	if !proto.Equal(headOf(t, f, "default"), rev) {
		t.Fatalf("head is not the approved revision")
	}
	got := resp.GetProposal()
	if got.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED || got.GetDecidedBy() != "bob" || got.GetDecisionMessage() != "lgtm" || got.GetRevision() != 2 {
		t.Fatalf("approved proposal = %v", got)
	}
	var audited bool
	for _, e := range f.log.AllEntries() {
		if e.Data["event"] == "proposal_approved" && e.Data["by"] == "bob" && e.Data["proposal_id"] == prop.GetId() {
			audited = true
		}
	}
	if !audited {
		t.Error("no audit line for the approval")
	}
	if n := f.proposalEvents(t, "approved"); n != 1 {
		t.Errorf("approved proposals counted %v, want 1", n)
	}
	_, err = f.srv.ApproveProposal(as("carol"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()})
	wantStatus(t, err, codes.FailedPrecondition, "already approved")
}

func TestTheProposerCannotApproveTheirOwnProposal(t *testing.T) {
	f := newFixture(t)
	prop := propose(t, f, "dev:alice", stagingPolicy(), "mine")
	_, err := f.srv.ApproveProposal(as("dev:alice"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()})
	wantStatus(t, err, codes.PermissionDenied, "you proposed it; another admin must approve")
	if head := headOf(t, f, "default"); head.GetRevision() != 1 {
		t.Fatalf("a refused approval stored revision %d", head.GetRevision())
	}
	// Another name of the same dev credential is another admin.
	if _, err := f.srv.ApproveProposal(as("dev:bob"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()}); err != nil {
		t.Fatalf("ApproveProposal as dev:bob: %v", err)
	}
}

func TestAProposalOvertakenByAnotherChangeMustBeReproposed(t *testing.T) {
	f := newFixture(t)
	prop := propose(t, f, "alice", stagingPolicy(), "against 1")
	other := policy.Default()
	other.Limits.MaxConnections = 123
	if _, err := f.srv.ApplyPolicy(as("carol"), &wsfleetv1.ApplyPolicyRequest{Policy: other}); err != nil {
		t.Fatalf("ApplyPolicy: %v", err)
	}
	got, err := f.srv.GetProposal(as("bob"), &wsfleetv1.GetProposalRequest{Id: prop.GetId()})
	if err != nil {
		t.Fatalf("GetProposal: %v", err)
	}
	if !got.GetProposal().GetStale() {
		t.Fatal("proposal not marked stale after the head moved")
	}
	_, err = f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()})
	wantStatus(t, err, codes.FailedPrecondition, "proposal 1 was made against revision 1; the head is now 2: re-propose")
	if head := headOf(t, f, "default"); head.GetRevision() != 2 || head.GetPolicy().GetLimits().GetMaxConnections() != 123 {
		t.Fatalf("head after a stale approval = %v", head)
	}
	still, err := f.st.GetProposal(t.Context(), prop.GetId())
	if err != nil || still.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
		t.Fatalf("proposal after a stale approval: %v, %v", still, err)
	}
}

func TestRejectedProposalIsNeverApplied(t *testing.T) {
	f := newFixture(t)
	prop := propose(t, f, "alice", stagingPolicy(), "try")
	_, err := f.srv.RejectProposal(as("bob"), &wsfleetv1.RejectProposalRequest{Id: prop.GetId()})
	wantStatus(t, err, codes.InvalidArgument, "message")
	resp, err := f.srv.RejectProposal(as("bob"), &wsfleetv1.RejectProposalRequest{Id: prop.GetId(), Message: "not now"})
	if err != nil {
		t.Fatalf("RejectProposal: %v", err)
	}
	if p := resp.GetProposal(); p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED || p.GetDecidedBy() != "bob" || p.GetDecisionMessage() != "not now" {
		t.Fatalf("rejected proposal = %v", p)
	}
	_, err = f.srv.ApproveProposal(as("carol"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()})
	wantStatus(t, err, codes.FailedPrecondition, "already rejected")
	_, err = f.srv.RejectProposal(as("carol"), &wsfleetv1.RejectProposalRequest{Id: prop.GetId(), Message: "again"})
	wantStatus(t, err, codes.FailedPrecondition, "already rejected")
	_, err = f.srv.RejectProposal(as("carol"), &wsfleetv1.RejectProposalRequest{Id: 99, Message: "x"})
	wantStatus(t, err, codes.NotFound, "no proposal 99")
	if head := headOf(t, f, "default"); head.GetRevision() != 1 {
		t.Fatalf("rejecting stored revision %d", head.GetRevision())
	}
	if n := f.proposalEvents(t, "rejected"); n != 1 {
		t.Errorf("rejected proposals counted %v, want 1", n)
	}
}

func TestAPoolThatRequiresApprovalChangesOnlyThroughProposals(t *testing.T) {
	f := newRecoverFixture(t, node("n1", "default", true, ran("default", 40, 4000)))
	on := requireApproval(t, f.fixture)
	head := headOf(t, f.fixture, "default").GetRevision()

	changed := proto.Clone(on).(*wsfleetv1.Policy)
	changed.Limits.MaxConnections = 77
	off := proto.Clone(on).(*wsfleetv1.Policy)
	off.Approval.Required = false
	refusals := []struct {
		name string
		call func() error
	}{
		{"an apply is refused", func() error {
			_, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: changed})
			return err
		}},
		{"an apply that turns approval off is refused", func() error {
			_, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: off})
			return err
		}},
		{"a rollback is refused", func() error {
			_, err := f.srv.RollbackPolicy(as("alice"), &wsfleetv1.RollbackPolicyRequest{ToRevision: 1})
			return err
		}},
		{"a recovery is refused", func() error {
			_, err := f.srv.RecoverPolicy(as("alice"), &wsfleetv1.RecoverPolicyRequest{})
			return err
		}},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			err := r.call()
			wantStatus(t, err, codes.FailedPrecondition, `pool "default" requires approval`, "wsctl policy propose")
			var reason string
			for _, d := range status.Convert(err).Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					reason = info.GetReason()
				}
			}
			if reason != policy.ReasonApprovalRequired {
				t.Errorf("ErrorInfo reason %q, want %q", reason, policy.ReasonApprovalRequired)
			}
			if got := headOf(t, f.fixture, "default").GetRevision(); got != head {
				t.Fatalf("head moved to %d", got)
			}
		})
	}
	t.Run("a dry run is answered", func(t *testing.T) {
		if _, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: changed, DryRun: true}); err != nil {
			t.Fatalf("dry run: %v", err)
		}
	})
	t.Run("a pool's first revision needs no approval", func(t *testing.T) {
		if _, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Pool: "edge", Policy: on}); err != nil {
			t.Fatalf("first revision of edge: %v", err)
		}
	})
	t.Run("an approved proposal turns approval off, then applies work again", func(t *testing.T) {
		prop := propose(t, f.fixture, "alice", off, "approval off")
		if _, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()}); err != nil {
			t.Fatalf("ApproveProposal: %v", err)
		}
		if _, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: changed}); err != nil {
			t.Fatalf("apply after approval was turned off: %v", err)
		}
	})
}

func TestProposeNamesEveryBadField(t *testing.T) {
	f := newFixture(t)
	p := policy.Default()
	p.Origins.Allow = []string{"https://*.*.example.com"}
	neg := int64(-1)
	_, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{
		Policy:           p,
		ExpectedRevision: &neg,
		Bake:             durationpb.New(time.Minute),
		CanaryMaxRatio:   -1,
	})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("error = %v, want InvalidArgument", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	want := []string{"message", "expected_revision", "bake", "canary_max_ratio", "origins.allow[0]"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Fatalf("fields = %v, want %v", fields, want)
	}
	ps, err := f.st.ListProposals(t.Context(), store.ProposalFilter{})
	if err != nil || len(ps) != 0 {
		t.Fatalf("a refused proposal was stored: %v, %v", ps, err)
	}
}

func TestProposeChecksTheHead(t *testing.T) {
	f := newFixture(t)
	t.Run("a stale expected revision is refused", func(t *testing.T) {
		two := int64(2)
		_, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: stagingPolicy(), Message: "m", ExpectedRevision: &two})
		wantStatus(t, err, codes.FailedPrecondition, "at revision 1, not 2")
	})
	t.Run("the head's own policy is nothing to propose", func(t *testing.T) {
		_, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: policy.Default(), Message: "m"})
		wantStatus(t, err, codes.FailedPrecondition, "nothing to propose")
	})
	t.Run("a pool without a policy takes a proposal against revision 0", func(t *testing.T) {
		resp, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Pool: "edge", Policy: stagingPolicy(), Message: "m"})
		if err != nil {
			t.Fatalf("ProposePolicy: %v", err)
		}
		if resp.GetProposal().GetBaseRevision() != 0 || resp.GetProposal().GetPool() != "edge" {
			t.Fatalf("proposal = %v", resp.GetProposal())
		}
	})
}

func TestProposalCarriesTheDryRunImpact(t *testing.T) {
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logger, hook := logtest.NewNullLogger()
	fail := false
	var gotHead, gotNext *wsfleetv1.Policy
	srv, err := New(Config{Store: st, Log: logger, Registerer: prometheus.NewRegistry(),
		Impact: func(_ context.Context, pool string, head, next *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error) {
			if fail {
				return nil, errors.New("telemetry down")
			}
			gotHead, gotNext = head, next
			return &wsfleetv1.PolicyImpact{NodesReporting: 3}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Bootstrap(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: stagingPolicy(), Message: "m"})
	if err != nil {
		t.Fatalf("ProposePolicy: %v", err)
	}
	if resp.GetProposal().GetImpact().GetNodesReporting() != 3 || !proto.Equal(gotHead, policy.Default()) || !proto.Equal(gotNext, stagingPolicy()) {
		t.Fatalf("impact %v from head %v next %v", resp.GetProposal().GetImpact(), gotHead, gotNext)
	}
	fail = true
	p := stagingPolicy()
	p.Limits.MaxConnections = 5
	resp, err = srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: p, Message: "m"})
	if err != nil {
		t.Fatalf("ProposePolicy with a failing impact: %v", err)
	}
	if resp.GetProposal().GetImpact() != nil {
		t.Fatalf("impact %v from a failing hook", resp.GetProposal().GetImpact())
	}
	var warned bool
	for _, e := range hook.AllEntries() {
		warned = warned || strings.Contains(e.Message, "impact failed")
	}
	if !warned {
		t.Error("a failing impact was not logged")
	}
}

func TestListProposals(t *testing.T) {
	f := newFixture(t)
	a := propose(t, f, "alice", stagingPolicy(), "a")
	p := stagingPolicy()
	p.Limits.MaxConnections = 9
	b := propose(t, f, "alice", p, "b")
	if _, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: b.GetId()}); err != nil {
		t.Fatalf("ApproveProposal: %v", err)
	}
	resp, err := f.srv.ListProposals(as("viewer"), &wsfleetv1.ListProposalsRequest{})
	if err != nil {
		t.Fatalf("ListProposals: %v", err)
	}
	ps := resp.GetProposals()
	if len(ps) != 2 || ps[0].GetId() != b.GetId() || ps[1].GetId() != a.GetId() {
		t.Fatalf("proposals = %v, want b then a", ps)
	}
	if ps[0].GetStale() || !ps[1].GetStale() {
		t.Fatalf("stale: approved %v, overtaken open %v; want false, true", ps[0].GetStale(), ps[1].GetStale())
	}
	resp, err = f.srv.ListProposals(as("viewer"), &wsfleetv1.ListProposalsRequest{OpenOnly: true, Pool: "default"})
	if err != nil || len(resp.GetProposals()) != 1 || resp.GetProposals()[0].GetId() != a.GetId() {
		t.Fatalf("open proposals = %v, %v", resp.GetProposals(), err)
	}
	_, err = f.srv.ListProposals(as("viewer"), &wsfleetv1.ListProposalsRequest{Limit: -1})
	wantStatus(t, err, codes.InvalidArgument, "limit")
	_, err = f.srv.GetProposal(as("viewer"), &wsfleetv1.GetProposalRequest{Id: 42})
	wantStatus(t, err, codes.NotFound, "no proposal 42")
}

func TestOpenProposalsPerPoolAreBounded(t *testing.T) {
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logger, _ := logtest.NewNullLogger()
	srv, err := New(Config{Store: st, Log: logger, ProposalLimits: store.ProposalLimits{MaxOpen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Bootstrap(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: stagingPolicy(), Message: "1"}); err != nil {
		t.Fatal(err)
	}
	_, err = srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: stagingPolicy(), Message: "2"})
	wantStatus(t, err, codes.ResourceExhausted, "1 open proposals")
}

func TestRacingApprovalsHaveOneWinnerAndTheOthersAreToldItIsApproved(t *testing.T) {
	f := newFixture(t)
	prop := propose(t, f, "alice", stagingPolicy(), "race")
	approvers := []string{"bob", "carol", "dave", "erin"}
	errs := make([]error, len(approvers))
	var wg sync.WaitGroup
	for i, who := range approvers {
		wg.Go(func() {
			_, errs[i] = f.srv.ApproveProposal(as(who), &wsfleetv1.ApproveProposalRequest{Id: prop.GetId()})
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			continue
		}
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "already approved by") {
			t.Errorf("%s: %v, want FailedPrecondition saying it is already approved", approvers[i], err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d approvals won, want 1", wins)
	}
	if head := headOf(t, f, "default"); head.GetRevision() != 2 {
		t.Fatalf("head is %d, want 2", head.GetRevision())
	}
}

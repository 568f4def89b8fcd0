package policyserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// violatedFields are the fields an InvalidArgument status names.
func violatedFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// TestAProposalIsRefusedForCanaryFieldsItsApprovalWouldRefuse: what a
// proposal carries for its rollout is checked when it is proposed, as an
// apply checks it, so no proposal is stored that no approval could ever
// start (gRPC carries NaN and infinities, JSON cannot).
func TestAProposalIsRefusedForCanaryFieldsItsApprovalWouldRefuse(t *testing.T) {
	huge := strings.Repeat("k", 1<<20) + "=v"
	for _, tc := range []struct {
		name  string
		req   *wsfleetv1.ProposePolicyRequest
		field string
	}{
		{"an infinite max ratio", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", CanaryMaxRatio: math.Inf(1)}, "canary_max_ratio"},
		{"a NaN max ratio", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", CanaryMaxRatio: math.NaN()}, "canary_max_ratio"},
		{"a max ratio below one", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", CanaryMaxRatio: 0.5}, "canary_max_ratio"},
		{"a max ratio over the most", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", CanaryMaxRatio: 1e9}, "canary_max_ratio"},
		{"min samples over the most", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", CanaryMinSamples: math.MaxInt32}, "canary_min_samples"},
		{"negative min samples", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", CanaryMinSamples: -1}, "canary_min_samples"},
		{"a selector that does not parse", &wsfleetv1.ProposePolicyRequest{Canary: "zone"}, "canary"},
		{"a selector with a bad key", &wsfleetv1.ProposePolicyRequest{Canary: "zone a=b"}, "canary"},
		{"a selector of a megabyte", &wsfleetv1.ProposePolicyRequest{Canary: huge}, "canary"},
		{"a negative bake", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", Bake: durationpb.New(-5 * time.Second)}, "bake"},
		{"a bake of 1000h", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", Bake: durationpb.New(1000 * time.Hour)}, "bake"},
		{"a bake that is no duration", &wsfleetv1.ProposePolicyRequest{Canary: "zone=a", Bake: &durationpb.Duration{Seconds: 1, Nanos: -1}}, "bake"},
		{"a bake without a canary", &wsfleetv1.ProposePolicyRequest{Bake: durationpb.New(time.Minute)}, "bake"},
		{"a NaN max ratio without a canary", &wsfleetv1.ProposePolicyRequest{CanaryMaxRatio: math.NaN()}, "canary_max_ratio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRolloutFixture(t, nil)
			tc.req.Policy, tc.req.Message = stagingPolicy(), "hostile"
			_, err := f.srv.ProposePolicy(as("alice"), tc.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("error = %v, want InvalidArgument", err)
			}
			if got := violatedFields(err); len(got) != 1 || got[0] != tc.field {
				t.Fatalf("fields %v, want [%s]", got, tc.field)
			}
			if n := len(status.Convert(err).Message()) + len(status.Convert(err).Proto().String()); n > 8<<10 {
				t.Fatalf("the refusal is %d bytes: it repeats the input", n)
			}
			ps, err := f.st.ListProposals(t.Context(), store.ProposalFilter{})
			if err != nil || len(ps) != 0 {
				t.Fatalf("a refused proposal was stored: %v, %v", ps, err)
			}
		})
	}
}

// TestHostileIdsAndLimitsAreRefusedOrBounded: ids that cannot be a
// proposal's, and page sizes out of range, are refused with the field
// named or bounded; none reaches the store as a write.
func TestHostileIdsAndLimitsAreRefusedOrBounded(t *testing.T) {
	f := newRolloutFixture(t, nil)
	propose(t, f, "alice", stagingPolicy(), "one")
	for _, id := range []int64{0, -1, math.MinInt64} {
		_, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: id})
		if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), " ") != "id" {
			t.Errorf("approve %d: %v, want InvalidArgument on id", id, err)
		}
		_, err = f.srv.RejectProposal(as("bob"), &wsfleetv1.RejectProposalRequest{Id: id, Message: "no"})
		if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), " ") != "id" {
			t.Errorf("reject %d: %v, want InvalidArgument on id", id, err)
		}
		_, err = f.srv.GetProposal(as("bob"), &wsfleetv1.GetProposalRequest{Id: id})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("get %d: %v, want InvalidArgument", id, err)
		}
	}
	for _, call := range []func() error{
		func() error {
			_, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: math.MaxInt64})
			return err
		},
		func() error {
			_, err := f.srv.RejectProposal(as("bob"), &wsfleetv1.RejectProposalRequest{Id: math.MaxInt64, Message: "no"})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.NotFound {
			t.Errorf("deciding proposal 2^63-1: %v, want NotFound", err)
		}
	}
	big := strings.Repeat("x", 1<<20)
	_, err := f.srv.RejectProposal(as("bob"), &wsfleetv1.RejectProposalRequest{Id: 1, Message: big})
	if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), " ") != "message" {
		t.Errorf("a 1 MB reason: %v, want InvalidArgument on message", err)
	}
	_, err = f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: 1, Message: big})
	if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), " ") != "message" {
		t.Errorf("a 1 MB approval message: %v, want InvalidArgument on message", err)
	}
	_, err = f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: stagingPolicy(), Message: big})
	if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), " ") != "message" {
		t.Errorf("a 1 MB proposal message: %v, want InvalidArgument on message", err)
	}
	if _, err := f.srv.ListProposals(as("v"), &wsfleetv1.ListProposalsRequest{Limit: -1}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("limit -1: %v, want InvalidArgument", err)
	}
	resp, err := f.srv.ListProposals(as("v"), &wsfleetv1.ListProposalsRequest{Limit: 1e9})
	if err != nil || len(resp.GetProposals()) != 1 {
		t.Errorf("limit 1e9: %v, %v; want the one proposal", resp, err)
	}
	p, err := f.st.GetProposal(t.Context(), 1)
	if err != nil || p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN || p.GetDecidedBy() != "" {
		t.Fatalf("proposal 1 after the hostile calls: %v, %v; want it open and untouched", p, err)
	}
}

// TestAPoolThatRequiresApprovalTakesNoCanaryByApplyButEndsOne: a canary
// apply is a direct write, refused when the head requires approval; a
// canary that an approval started is still ended by an admin's promote or
// abort and by the control plane's own decision, which store no new
// content.
func TestAPoolThatRequiresApprovalTakesNoCanaryByApplyButEndsOne(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(f *fixture, canary int64) (*wsfleetv1.PolicyRevision, error)
		result wsfleetv1.RolloutResult
	}{
		{"an admin's promote", func(f *fixture, canary int64) (*wsfleetv1.PolicyRevision, error) {
			r, err := f.srv.PromoteRollout(as("carol"), &wsfleetv1.PromoteRolloutRequest{CanaryRevision: canary})
			return r.GetRevision(), err
		}, wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED},
		{"an admin's abort", func(f *fixture, canary int64) (*wsfleetv1.PolicyRevision, error) {
			r, err := f.srv.AbortRollout(as("carol"), &wsfleetv1.AbortRolloutRequest{CanaryRevision: canary})
			return r.GetRevision(), err
		}, wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK},
		{"an automatic rollback", func(f *fixture, canary int64) (*wsfleetv1.PolicyRevision, error) {
			return f.srv.EndRollout(SystemContext(t.Context()), "default", canary, wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, true, "origin_rejected worse")
		}, wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRolloutFixture(t, nil)
			base := requireApproval(t, f)
			next := stagingPolicy()
			next.Approval.Required = true
			_, err := f.srv.ApplyPolicy(as("alice"), canaryApply("zone=a", next))
			wantStatus(t, err, codes.FailedPrecondition, "requires approval")
			if h := headOf(t, f, "default"); h.GetRevision() != 2 {
				t.Fatalf("head %d after a refused canary apply, want 2", h.GetRevision())
			}
			resp, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: next, Message: "canary first", Canary: "zone=a", Bake: durationpb.New(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			stale := propose(t, f, "dave", stagingPolicy(), "made before the canary")
			got, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: resp.GetProposal().GetId()})
			if err != nil {
				t.Fatal(err)
			}
			canary := got.GetRevision().GetRevision()
			end, err := tc.end(f, canary)
			if err != nil {
				t.Fatalf("ending the canary of a pool that requires approval: %v", err)
			}
			if end.GetRolloutOutcome().GetResult() != tc.result || end.GetRevision() != canary+1 {
				t.Fatalf("ending revision %v, want %v at %d", end, tc.result, canary+1)
			}
			if tc.result == wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK && !proto.Equal(end.GetPolicy(), base) {
				t.Fatalf("rolled back to %v, want the base's content", end.GetPolicy())
			}
			// A proposal made before the canary is stale now: its approval
			// would silently undo the rollout's end.
			_, err = f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: stale.GetId()})
			wantStatus(t, err, codes.FailedPrecondition, "re-propose")
			l, err := f.srv.ListProposals(as("v"), &wsfleetv1.ListProposalsRequest{OpenOnly: true})
			if err != nil || len(l.GetProposals()) != 1 || !l.GetProposals()[0].GetStale() {
				t.Fatalf("open proposals after the rollout: %v, %v; want the one, stale", l, err)
			}
		})
	}
}

// bigPolicy is a valid policy at its size limits: the most origins, each
// near the longest host; i makes each one different.
func bigPolicy(i int) *wsfleetv1.Policy {
	p := stagingPolicy()
	l := strings.Repeat("a", 60)
	p.Origins.Allow = nil
	for j := range policy.MaxOrigins {
		p.Origins.Allow = append(p.Origins.Allow, fmt.Sprintf("https://%d-%d.%s.%s.%s.%s.com", i, j, l, l, l, l[:40]))
	}
	return p
}

// TestListingsOfPoliciesAtTheirLimitsFitInOneAnswer: eighteen revisions or
// proposals of policies at their size limits would make an answer larger
// than any default gRPC client accepts, so that nobody could list the
// history or the proposals any more: an answer stays under MaxListBytes,
// history pages on, and proposals list the newest that fit.
func TestListingsOfPoliciesAtTheirLimitsFitInOneAnswer(t *testing.T) {
	f := newRolloutFixture(t, nil)
	const n = 18
	for i := range n {
		if v := policy.Validate(bigPolicy(i)); len(v) > 0 {
			t.Fatalf("bigPolicy is invalid: %v", v[0])
		}
		if _, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: bigPolicy(i), Message: "big"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Policy: bigPolicy(100 + i), Message: "big"}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("history pages on and every revision is listed once", func(t *testing.T) {
		seen := map[int64]bool{}
		token := ""
		for range n + 1 {
			resp, err := f.srv.ListPolicyRevisions(as("v"), &wsfleetv1.ListPolicyRevisionsRequest{PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			if sz := proto.Size(resp); sz > MaxListBytes+1024 {
				t.Fatalf("a page of %d bytes with %d revisions", sz, len(resp.GetRevisions()))
			}
			for _, r := range resp.GetRevisions() {
				if seen[r.GetRevision()] {
					t.Fatalf("revision %d listed twice", r.GetRevision())
				}
				seen[r.GetRevision()] = true
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if len(seen) != n+1 {
			t.Fatalf("listed %d revisions, want %d", len(seen), n+1)
		}
	})
	t.Run("proposals list the newest that fit", func(t *testing.T) {
		resp, err := f.srv.ListProposals(as("v"), &wsfleetv1.ListProposalsRequest{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		ps := resp.GetProposals()
		if sz := proto.Size(resp); sz > MaxListBytes+1024 || len(ps) == 0 {
			t.Fatalf("an answer of %d bytes with %d proposals", sz, len(ps))
		}
		for i, p := range ps {
			if want := int64(n - i); p.GetId() != want {
				t.Fatalf("proposal %d at %d, want %d: the newest first", p.GetId(), i, want)
			}
		}
	})
}

// lostBase is a store whose revision lost of every pool cannot be read:
// deleted (store.ErrNotFound) or damaged.
type lostBase struct {
	store.Store
	lost int64
	err  error
}

func (s *lostBase) Get(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error) {
	if revision == s.lost {
		return nil, s.err
	}
	return s.Store.Get(ctx, pool, revision)
}

// TestACanaryWhoseBaseIsLostSaysSoAndCanStillBePromoted: rolling a canary
// back needs its base's content; when the store lost it, the abort (and
// the evaluator's rollback) is refused naming the base and the way out,
// nothing is stored, and a promotion still ends the rollout.
func TestACanaryWhoseBaseIsLostSaysSoAndCanStillBePromoted(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"a deleted base", fmt.Errorf("%w: pool default revision 1", store.ErrNotFound), codes.NotFound},
		{"a damaged base", errors.New("boltstore: corrupt data: revision 1"), codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRolloutFixture(t, nil)
			resp, err := f.srv.ApplyPolicy(as("alice"), canaryApply("zone=a", stagingPolicy()))
			if err != nil {
				t.Fatal(err)
			}
			canary := resp.GetRevision().GetRevision()
			logger, _ := logtest.NewNullLogger()
			srv, err := New(Config{Store: &lostBase{Store: f.st, lost: 1, err: tc.err}, Log: logger, Nodes: zoneNodes})
			if err != nil {
				t.Fatal(err)
			}
			_, err = srv.AbortRollout(as("bob"), &wsfleetv1.AbortRolloutRequest{CanaryRevision: canary})
			wantStatus(t, err, tc.code, "cannot be rolled back", "base revision 1", "wsctl rollout promote")
			_, err = srv.EndRollout(SystemContext(t.Context()), "default", canary, wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, true, "worse")
			wantStatus(t, err, tc.code, "cannot be rolled back")
			if h := headOf(t, f, "default"); h.GetRevision() != canary {
				t.Fatalf("head %d after refused rollbacks, want the canary %d", h.GetRevision(), canary)
			}
			end, err := srv.PromoteRollout(as("bob"), &wsfleetv1.PromoteRolloutRequest{CanaryRevision: canary})
			if err != nil || end.GetRevision().GetRolloutOutcome().GetResult() != wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED {
				t.Fatalf("promote: %v, %v", end, err)
			}
		})
	}
}

// TestAHugePoolNameIsRefusedWithoutEchoingIt: a megabyte of pool name is
// refused naming the field, and the refusal does not carry it back (a
// 1 MB request must not cost a 1 MB answer, twice: message and details).
func TestAHugePoolNameIsRefusedWithoutEchoingIt(t *testing.T) {
	f := newRolloutFixture(t, nil)
	huge := strings.Repeat("\xff", 1<<20)
	for name, call := range map[string]func() error{
		"GetRollout": func() error {
			_, err := f.srv.GetRollout(as("v"), &wsfleetv1.GetRolloutRequest{Pool: huge})
			return err
		},
		"PromoteRollout": func() error {
			_, err := f.srv.PromoteRollout(as("bob"), &wsfleetv1.PromoteRolloutRequest{Pool: huge, CanaryRevision: 2})
			return err
		},
		"AbortRollout": func() error {
			_, err := f.srv.AbortRollout(as("bob"), &wsfleetv1.AbortRolloutRequest{Pool: huge, CanaryRevision: 2})
			return err
		},
		"ListProposals": func() error {
			_, err := f.srv.ListProposals(as("v"), &wsfleetv1.ListProposalsRequest{Pool: huge})
			return err
		},
		"ProposePolicy": func() error {
			_, err := f.srv.ProposePolicy(as("alice"), &wsfleetv1.ProposePolicyRequest{Pool: huge, Policy: stagingPolicy(), Message: "m"})
			return err
		},
		"ApplyPolicy": func() error {
			req := canaryApply("zone=a", stagingPolicy())
			req.Pool = huge
			_, err := f.srv.ApplyPolicy(as("alice"), req)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if status.Code(err) != codes.InvalidArgument || strings.Join(violatedFields(err), " ") != "pool" {
				t.Fatalf("error = %.200v, want InvalidArgument on pool", err)
			}
			if n := proto.Size(status.Convert(err).Proto()); n > 1024 {
				t.Fatalf("the refusal is %d bytes: it echoes the pool name", n)
			}
		})
	}
}

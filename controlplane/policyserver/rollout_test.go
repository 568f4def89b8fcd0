package policyserver

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// zoneNodes is a pool of three connected nodes: node-a in zone a, node-b1
// and node-b2 in zone b.
func zoneNodes(context.Context, string) ([]*wsfleetv1.NodeStatus, error) {
	return []*wsfleetv1.NodeStatus{
		{NodeId: "node-a", Pool: "default", Connected: true, Labels: map[string]string{"zone": "a"}},
		{NodeId: "node-b1", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}},
		{NodeId: "node-b2", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}},
		{NodeId: "node-c", Pool: "default", Connected: false, Labels: map[string]string{"zone": "c"}},
	}, nil
}

func newRolloutFixture(t *testing.T, st *boltstore.Store) *fixture {
	t.Helper()
	if st == nil {
		var err error
		st, err = boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
	}
	logger, hook := logtest.NewNullLogger()
	f := &fixture{st: st, log: hook, reg: prometheus.NewRegistry()}
	var err error
	f.srv, err = New(Config{Store: st, Log: logger, Registerer: f.reg, Nodes: zoneNodes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func canaryApply(sel string, p *wsfleetv1.Policy) *wsfleetv1.ApplyPolicyRequest {
	return &wsfleetv1.ApplyPolicyRequest{Policy: p, Canary: sel, Bake: durationpb.New(time.Minute), Message: "canary"}
}

func TestCanaryApplyIsValidated(t *testing.T) {
	f := newRolloutFixture(t, nil)
	tests := []struct {
		name   string
		req    *wsfleetv1.ApplyPolicyRequest
		code   codes.Code
		fields []string
		say    string
	}{
		{"every bad canary field is named at once", &wsfleetv1.ApplyPolicyRequest{
			Policy: stagingPolicy(), Canary: "zone", Bake: durationpb.New(time.Second), CanaryMinSamples: -1, CanaryMaxRatio: 0.5,
		}, codes.InvalidArgument, []string{"canary", "bake", "canary_min_samples", "canary_max_ratio"}, ""},
		{"a bake over a day is refused", &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), Canary: "zone=a", Bake: durationpb.New(25 * time.Hour)},
			codes.InvalidArgument, []string{"bake"}, ""},
		{"a bake without a canary is refused", &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), Bake: durationpb.New(time.Minute)},
			codes.InvalidArgument, []string{"canary"}, ""},
		{"a selector no connected node matches is refused", canaryApply("zone=c", stagingPolicy()), codes.FailedPrecondition, nil, "matches no connected node"},
		{"a selector every connected node matches is refused", canaryApply("zone!=x", stagingPolicy()), codes.FailedPrecondition, nil, "nothing would be left to compare"},
		{"a canary on a pool without a revision is refused", func() *wsfleetv1.ApplyPolicyRequest {
			r := canaryApply("zone=a", stagingPolicy())
			r.Pool = "fresh"
			return r
		}(), codes.FailedPrecondition, nil, "has no revision yet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.srv.ApplyPolicy(as("alice"), tc.req)
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, tc.code)
			}
			if tc.say != "" && !strings.Contains(st.Message(), tc.say) {
				t.Errorf("message %q does not say %q", st.Message(), tc.say)
			}
			if tc.fields != nil {
				var got []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.GetFieldViolations() {
							got = append(got, v.GetField())
						}
					}
				}
				if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
					t.Errorf("violations %v, want %v", got, tc.fields)
				}
			}
		})
	}
	head, _ := f.st.Head(context.Background(), policy.DefaultPool)
	if head.GetRevision() != 1 {
		t.Errorf("a refused canary stored revision %d", head.GetRevision())
	}
}

func TestCanaryDryRunStoresNothing(t *testing.T) {
	f := newRolloutFixture(t, nil)
	req := canaryApply("zone=a", stagingPolicy())
	req.DryRun = true
	resp, err := f.srv.ApplyPolicy(as("alice"), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetRevision().GetRollout(); r.GetSelector() != "zone=a" || r.GetBaseRevision() != 1 || r.GetMinSamples() != DefaultMinSamples || r.GetMaxRatio() != DefaultMaxRatio {
		t.Errorf("dry run's rollout %v", r)
	}
	if head, _ := f.st.Head(context.Background(), policy.DefaultPool); head.GetRevision() != 1 {
		t.Errorf("dry run stored revision %d", head.GetRevision())
	}
}

func TestABakingCanaryRefusesEveryOtherWrite(t *testing.T) {
	f := newRolloutFixture(t, nil)
	resp, err := f.srv.ApplyPolicy(as("alice"), canaryApply("zone=a", stagingPolicy()))
	if err != nil {
		t.Fatal(err)
	}
	canary := resp.GetRevision()
	if canary.GetRevision() != 2 || canary.GetRollout().GetBaseRevision() != 1 || canary.GetRollout().GetBake().AsDuration() != time.Minute {
		t.Fatalf("canary stored as %v", canary)
	}
	writes := map[string]func() error{
		"an apply": func() error {
			p := stagingPolicy()
			p.Heartbeat.Interval = durationpb.New(20 * time.Second)
			_, err := f.srv.ApplyPolicy(as("bob"), &wsfleetv1.ApplyPolicyRequest{Policy: p})
			return err
		},
		"a second canary": func() error {
			p := stagingPolicy()
			p.Heartbeat.Interval = durationpb.New(20 * time.Second)
			_, err := f.srv.ApplyPolicy(as("bob"), canaryApply("zone=a", p))
			return err
		},
		"a rollback": func() error {
			_, err := f.srv.RollbackPolicy(as("bob"), &wsfleetv1.RollbackPolicyRequest{ToRevision: 1})
			return err
		},
	}
	for name, write := range writes {
		t.Run(name+" is refused while the canary bakes", func(t *testing.T) {
			st := status.Convert(write())
			if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "canary revision 2") || !strings.Contains(st.Message(), "wsctl rollout promote") {
				t.Fatalf("got %v %q", st.Code(), st.Message())
			}
		})
	}
	got, err := f.srv.GetRollout(as("viewer"), &wsfleetv1.GetRolloutRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r := got.GetRollout()
	if r.GetState() != wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING || r.GetCanaryRevision() != 2 || len(r.GetNodes()) != 4 ||
		!r.GetNodes()[0].GetCanary() || r.GetNodes()[1].GetCanary() ||
		r.GetBakeEndTime().AsTime().Sub(r.GetStartTime().AsTime()) != time.Minute {
		t.Errorf("status %v", r)
	}
}

func TestEndingARollout(t *testing.T) {
	tests := []struct {
		name    string
		end     func(f *fixture) (*wsfleetv1.PolicyRevision, error)
		content func() *wsfleetv1.Policy
		state   wsfleetv1.RolloutState
		result  string
	}{
		{"a promotion stores the canary's content for every node", func(f *fixture) (*wsfleetv1.PolicyRevision, error) {
			r, err := f.srv.PromoteRollout(as("bob"), &wsfleetv1.PromoteRolloutRequest{CanaryRevision: 2})
			return r.GetRevision(), err
		}, stagingPolicy, wsfleetv1.RolloutState_ROLLOUT_STATE_PROMOTED, "promoted"},
		{"an abort stores the base revision's content", func(f *fixture) (*wsfleetv1.PolicyRevision, error) {
			r, err := f.srv.AbortRollout(as("bob"), &wsfleetv1.AbortRolloutRequest{CanaryRevision: 2, Message: "looks wrong"})
			return r.GetRevision(), err
		}, policy.Default, wsfleetv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK, "rolled_back"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newRolloutFixture(t, nil)
			if _, err := f.srv.ApplyPolicy(as("alice"), canaryApply("zone=a", stagingPolicy())); err != nil {
				t.Fatal(err)
			}
			rev, err := tc.end(f)
			if err != nil {
				t.Fatal(err)
			}
			if rev.GetRevision() != 3 || !proto.Equal(rev.GetPolicy(), tc.content()) || rev.GetRolloutOutcome().GetCanaryRevision() != 2 ||
				rev.GetRolloutOutcome().GetAutomatic() || rev.GetAuthor() != "bob" || rev.GetRollout() != nil {
				t.Fatalf("ending revision %v", rev)
			}
			got, err := f.srv.GetRollout(as("viewer"), &wsfleetv1.GetRolloutRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if r := got.GetRollout(); r.GetState() != tc.state || r.GetEndingRevision() != 3 || r.GetOutcome() == nil || len(r.GetNodes()) != 0 {
				t.Errorf("status %v", r)
			}
			if n := testutil.ToFloat64(f.srv.rollouts.WithLabelValues(tc.result, "false")); n != 1 {
				t.Errorf("wsfleet_rollouts_total{result=%q,automatic=false} = %v", tc.result, n)
			}
			// Writes are open again.
			p := stagingPolicy()
			p.Heartbeat.Interval = durationpb.New(20 * time.Second)
			if _, err := f.srv.ApplyPolicy(as("alice"), &wsfleetv1.ApplyPolicyRequest{Policy: p}); err != nil {
				t.Errorf("apply after the rollout ended: %v", err)
			}
			// The ended rollout can no longer be ended.
			if _, err := f.srv.PromoteRollout(as("bob"), &wsfleetv1.PromoteRolloutRequest{CanaryRevision: 2}); status.Code(err) != codes.FailedPrecondition {
				t.Errorf("promoting an ended rollout: %v", err)
			}
		})
	}
}

func TestEndingARevisionThatIsNoCanaryIsRefused(t *testing.T) {
	f := newRolloutFixture(t, nil)
	for _, rev := range []int64{1, 7} {
		if _, err := f.srv.AbortRollout(as("bob"), &wsfleetv1.AbortRolloutRequest{CanaryRevision: rev}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("abort of revision %d: %v", rev, err)
		}
	}
	if _, err := f.srv.GetRollout(as("bob"), &wsfleetv1.GetRolloutRequest{}); status.Code(err) != codes.NotFound {
		t.Errorf("GetRollout without a rollout: %v", err)
	}
}

// Every replica runs an evaluator: when two decide at once on one store,
// the compare-and-set on the canary revision lets exactly one end it.
func TestTwoDecisionsAtOnceEndTheRolloutOnce(t *testing.T) {
	a := newRolloutFixture(t, nil)
	b := newRolloutFixture(t, a.st)
	if _, err := a.srv.ApplyPolicy(as("alice"), canaryApply("zone=a", stagingPolicy())); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, srv := range []*Server{a.srv, b.srv} {
		result := []wsfleetv1.RolloutResult{wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED, wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK}[i]
		wg.Go(func() {
			_, errs[i] = srv.EndRollout(SystemContext(context.Background()), policy.DefaultPool, 2, result, true, "test")
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			won++
		case codes.FailedPrecondition:
		default:
			t.Errorf("loser got %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d decisions won: %v", won, errs)
	}
	head, _ := a.st.Head(context.Background(), policy.DefaultPool)
	if head.GetRevision() != 3 || head.GetAuthor() != SystemAuthor || !head.GetRolloutOutcome().GetAutomatic() {
		t.Errorf("head %v", head)
	}
}

// A proposal carrying a canary is applied as a canary when approved: the
// revision is the proposer's, with the approver and the rollout spec, and
// it bakes like an applied canary. A selector that matches no node by the
// time of approval is refused then, and the proposal stays open.
func TestAnApprovedProposalWithACanaryIsAppliedAsOne(t *testing.T) {
	f := newRolloutFixture(t, nil)
	req := &wsfleetv1.ProposePolicyRequest{Policy: stagingPolicy(), Message: "staging, canary first", Canary: "zone=a", Bake: durationpb.New(time.Minute)}
	resp, err := f.srv.ProposePolicy(as("alice"), req)
	if err != nil {
		t.Fatal(err)
	}
	nowhere := proto.Clone(req).(*wsfleetv1.ProposePolicyRequest)
	nowhere.Canary = "zone=nowhere"
	nowhere.Policy.Heartbeat.Interval = durationpb.New(21 * time.Second)
	lost, err := f.srv.ProposePolicy(as("alice"), nowhere)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: lost.GetProposal().GetId()})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "matches no connected node") {
		t.Fatalf("approving a canary that matches no node: %v", err)
	}
	if p, err := f.srv.GetProposal(as("viewer"), &wsfleetv1.GetProposalRequest{Id: lost.GetProposal().GetId()}); err != nil || p.GetProposal().GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
		t.Fatalf("the refused proposal: %v, %v; want it still open", p, err)
	}

	got, err := f.srv.ApproveProposal(as("bob"), &wsfleetv1.ApproveProposalRequest{Id: resp.GetProposal().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	rev := got.GetRevision()
	if rev.GetAuthor() != "alice" || rev.GetApprovedBy() != "bob" || rev.GetRollout().GetSelector() != "zone=a" ||
		rev.GetRollout().GetBaseRevision() != 1 || rev.GetRollout().GetBake().AsDuration() != time.Minute {
		t.Fatalf("approved revision %v, want alice's canary on zone=a over revision 1, approved by bob", rev)
	}
	st, err := f.srv.GetRollout(as("viewer"), &wsfleetv1.GetRolloutRequest{})
	if err != nil || st.GetRollout().GetState() != wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING || st.GetRollout().GetCanaryRevision() != rev.GetRevision() {
		t.Fatalf("rollout after the approval: %v, %v", st, err)
	}
}

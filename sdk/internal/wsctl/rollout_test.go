package wsctl

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// rolloutFake answers the rollout calls with a fixed status and records
// what wsctl sent.
type rolloutFake struct {
	wsfleetv1.UnimplementedPolicyServiceServer

	mu       sync.Mutex
	status   *wsfleetv1.RolloutStatus
	applies  []*wsfleetv1.ApplyPolicyRequest
	promotes []*wsfleetv1.PromoteRolloutRequest
	aborts   []*wsfleetv1.AbortRolloutRequest
}

func (f *rolloutFake) ApplyPolicy(_ context.Context, req *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, req)
	return &wsfleetv1.ApplyPolicyResponse{
		Revision:         &wsfleetv1.PolicyRevision{Pool: "default", Revision: 8, Policy: req.GetPolicy(), Rollout: f.status.GetSpec()},
		PreviousRevision: 7,
	}, nil
}

func (f *rolloutFake) GetRollout(context.Context, *wsfleetv1.GetRolloutRequest) (*wsfleetv1.GetRolloutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &wsfleetv1.GetRolloutResponse{Rollout: f.status}, nil
}

func (f *rolloutFake) PromoteRollout(_ context.Context, req *wsfleetv1.PromoteRolloutRequest) (*wsfleetv1.PromoteRolloutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotes = append(f.promotes, req)
	return &wsfleetv1.PromoteRolloutResponse{Revision: &wsfleetv1.PolicyRevision{Pool: "default", Revision: 9}}, nil
}

func (f *rolloutFake) AbortRollout(_ context.Context, req *wsfleetv1.AbortRolloutRequest) (*wsfleetv1.AbortRolloutResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborts = append(f.aborts, req)
	return &wsfleetv1.AbortRolloutResponse{Revision: &wsfleetv1.PolicyRevision{Pool: "default", Revision: 9}}, nil
}

func bakingStatus() *wsfleetv1.RolloutStatus {
	start := time.Now().Add(-time.Minute)
	return &wsfleetv1.RolloutStatus{
		Pool:           "default",
		CanaryRevision: 8,
		Spec:           &wsfleetv1.RolloutSpec{Selector: "zone=a", Bake: durationpb.New(5 * time.Minute), BaseRevision: 7, MinSamples: 10, MaxRatio: 2},
		State:          wsfleetv1.RolloutState_ROLLOUT_STATE_BAKING,
		StartTime:      timestamppb.New(start),
		BakeEndTime:    timestamppb.New(start.Add(5 * time.Minute)),
		Classes: []*wsfleetv1.ClassComparison{
			{Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, CanaryEvents: 42, CanaryRate: 40, RestEvents: 1, RestRate: 0.3, Worse: true},
		},
		Nodes: []*wsfleetv1.RolloutNode{
			{NodeId: "node-a", Canary: true, AppliedRevision: 8, Connected: true},
			{NodeId: "node-b1", AppliedRevision: 7, Connected: true},
		},
	}
}

func serveRolloutFake(t *testing.T, f *rolloutFake) map[string]string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	wsfleetv1.RegisterPolicyServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return map[string]string{envAddr: lis.Addr().String(), envUser: "tester"}
}

func runWith(env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	return result{stdout.String(), stderr.String(), code}
}

func TestRolloutCommands(t *testing.T) {
	f := &rolloutFake{status: bakingStatus()}
	env := serveRolloutFake(t, f)
	file := writeFile(t, encodeYAML(t, policy.Default()))

	t.Run("a canary apply sends the canary fields and says where it went", func(t *testing.T) {
		r := runWith(env, "policy", "apply", "-f", file, "--canary", "zone=a", "--bake", "30s", "--canary-min-samples", "5", "--canary-max-ratio", "3")
		r.want(t, 0)
		f.mu.Lock()
		req := f.applies[len(f.applies)-1]
		f.mu.Unlock()
		if req.GetCanary() != "zone=a" || req.GetBake().AsDuration() != 30*time.Second || req.GetCanaryMinSamples() != 5 || req.GetCanaryMaxRatio() != 3 {
			t.Fatalf("request %v", req)
		}
		assertContains(t, "apply output", r.stdout, "revision 7 -> 8", "canary revision 8 (selector zone=a) on 1 node(s): node-a", "the other 1 node(s) keep revision 7", "rollout status --pool default --watch")
	})
	t.Run("status shows the state, the classes and the nodes", func(t *testing.T) {
		r := runWith(env, "rollout", "status")
		r.want(t, 0)
		assertContains(t, "status", r.stdout, "canary revision 8 (selector zone=a, base revision 7)", "state: baking, 4m", "origin_rejected", "40.00", "0.30", "yes", "node-a", "canary", "node-b1", "rest")
	})
	t.Run("promote and abort end the baking canary by its revision", func(t *testing.T) {
		runWith(env, "rollout", "promote", "-m", "looks good").want(t, 0)
		runWith(env, "rollout", "abort").want(t, 0)
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.promotes) != 1 || f.promotes[0].GetCanaryRevision() != 8 || f.promotes[0].GetMessage() != "looks good" {
			t.Errorf("promotes %v", f.promotes)
		}
		if len(f.aborts) != 1 || f.aborts[0].GetCanaryRevision() != 8 {
			t.Errorf("aborts %v", f.aborts)
		}
	})
	t.Run("an ended rollout can be neither promoted nor aborted", func(t *testing.T) {
		f.mu.Lock()
		f.status.State, f.status.EndingRevision = wsfleetv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK, 9
		f.status.Outcome = &wsfleetv1.RolloutOutcome{CanaryRevision: 8, Result: wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, Automatic: true, Reason: "origin_rejected 40.0/min per canary node vs 0.3/min elsewhere (42 events)"}
		f.mu.Unlock()
		r := runWith(env, "rollout", "promote")
		r.want(t, 1)
		assertContains(t, "promote", r.stderr, "has no baking rollout")
		s := runWith(env, "rollout", "status")
		s.want(t, 0)
		assertContains(t, "status", s.stdout, "state: rolled back automatically at revision 9: origin_rejected 40.0/min")
	})
}

func TestHistoryMarksRollouts(t *testing.T) {
	var b bytes.Buffer
	revs := []*wsfleetv1.PolicyRevision{
		{Revision: 9, Message: "roll back", RollbackOf: 7, RolloutOutcome: &wsfleetv1.RolloutOutcome{CanaryRevision: 8, Result: wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, Automatic: true}},
		{Revision: 8, Message: "drop app", Rollout: &wsfleetv1.RolloutSpec{Selector: "zone=a", Bake: durationpb.New(time.Minute), BaseRevision: 7}},
	}
	if err := writeHistory(&b, revs); err != nil {
		t.Fatal(err)
	}
	assertContains(t, "history", b.String(), "(rollback of 7) [canary 8 rolled back automatically]", "drop app [canary zone=a, bake 1m0s, base 7]")
}

package rollout

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/policyserver"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	originRejected = wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED
	heartbeat      = wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT
	normal         = wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL
	draining       = wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING
)

// counts is events per node per class.
type counts map[string]map[wsfleetv1.ErrorClass]int64

// fakeEvents answers TopErrors by node from fixed counts: onCanary for a
// filter on a policy revision, all otherwise, each with the replicas
// missing.
type fakeEvents struct {
	mu            sync.Mutex
	all, onCanary counts
	missing       []*wsfleetv1.ReplicaError
}

func (f *fakeEvents) TopErrors(_ context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src := f.all
	if req.GetFilter().GetPolicyRevision() != 0 {
		src = f.onCanary
	}
	resp := &wsfleetv1.TopErrorsResponse{MissingReplicas: f.missing}
	for node, byClass := range src {
		g := &wsfleetv1.TopErrorsResponse_Group{Key: node}
		for c, n := range byClass {
			g.Count += n
			g.Classes = append(g.Classes, &wsfleetv1.TopErrorsResponse_ClassCount{Class: c, Count: n})
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

func zoneNodes(nack string) func(context.Context, string) ([]*wsfleetv1.NodeStatus, error) {
	return func(context.Context, string) ([]*wsfleetv1.NodeStatus, error) {
		a := &wsfleetv1.NodeStatus{NodeId: "node-a", Pool: "default", Connected: true, Labels: map[string]string{"zone": "a"}, AppliedPool: "default", AppliedRevision: 2}
		switch nack {
		case "":
		case notRunning:
			a.AppliedRevision, a.Connected = 1, false
		default:
			a.AppliedRevision, a.LastNackRevision, a.LastNackError = 1, 2, nack
		}
		return []*wsfleetv1.NodeStatus{
			a,
			{NodeId: "node-b1", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}, AppliedRevision: 1},
			{NodeId: "node-b2", Pool: "default", Connected: true, Labels: map[string]string{"zone": "b"}, AppliedRevision: 1},
		}, nil
	}
}

// notRunning, as zoneNodes' nack, makes node-a a canary node that never
// took the canary and is gone.
const notRunning = "(not running)"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type fixture struct {
	st     *boltstore.Store
	srv    *policyserver.Server
	clk    *clock
	events *fakeEvents
	start  time.Time
}

// newFixture stores a canary (revision 2, zone=a, bake 1m, min_samples 10,
// max_ratio 2) over the default revision 1, with the clock at its store
// time.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &fixture{st: st, clk: &clock{t: start}, events: &fakeEvents{}, start: start}
	f.srv = f.server(t, "")
	if _, err := f.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := policy.Default()
	p.Origins.Allow = []string{"https://other.example.com"}
	ctx := auth.WithIdentity(context.Background(), auth.Identity{Name: "alice", Role: auth.RoleAdmin})
	if _, err := f.srv.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: p, Canary: "zone=a", Bake: durationpb.New(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) server(t *testing.T, nack string) *policyserver.Server {
	t.Helper()
	logger, _ := logtest.NewNullLogger()
	srv, err := policyserver.New(policyserver.Config{Store: f.st, Log: logger, Now: f.clk.Now, Nodes: zoneNodes(nack)})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func (f *fixture) evaluator(t *testing.T, srv *policyserver.Server, nack string) (*Evaluator, *logtest.Hook) {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	e, err := New(Config{
		Heads:   f.st.Pools,
		Nodes:   zoneNodes(nack),
		Events:  f.events,
		Ender:   srv,
		Context: policyserver.SystemContext,
		Log:     logger,
		Now:     f.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, hook
}

func (f *fixture) head(t *testing.T) *wsfleetv1.PolicyRevision {
	t.Helper()
	h, err := f.st.Head(context.Background(), policy.DefaultPool)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestTheEvaluatorDecides(t *testing.T) {
	tests := []struct {
		name     string
		after    time.Duration
		onCanary counts
		all      counts
		missing  bool
		nack     string
		result   wsfleetv1.RolloutResult // UNSPECIFIED: still baking
		reason   string
	}{
		{"a class worse on the canary rolls it back before the bake ends", 30 * time.Second,
			counts{"node-a": {originRejected: 20}},
			counts{"node-a": {originRejected: 20}, "node-b1": {originRejected: 1}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK,
			"origin_rejected 40.0/min per canary node vs 1.0/min elsewhere (20 events)"},
		{"a class the rest never had is worse once it has the minimum samples", 30 * time.Second,
			counts{"node-a": {heartbeat: 10}}, counts{"node-a": {heartbeat: 10}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, "heartbeat_timeout 20.0/min per canary node vs 0.0/min elsewhere (10 events)"},
		{"fewer events than the minimum samples keep it baking", 30 * time.Second,
			counts{"node-a": {originRejected: 9}}, counts{"node-a": {originRejected: 9}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED, ""},
		{"a rate within max_ratio of the rest's keeps it baking", 30 * time.Second,
			counts{"node-a": {originRejected: 20}},
			counts{"node-a": {originRejected: 20}, "node-b1": {originRejected: 15}, "node-b2": {originRejected: 15}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED, ""},
		{"expected closes never count", 30 * time.Second,
			counts{"node-a": {normal: 500, draining: 500}}, counts{"node-a": {normal: 500, draining: 500}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED, ""},
		{"events of nodes outside the pool's known nodes are ignored", 30 * time.Second,
			counts{"node-x": {originRejected: 500}}, counts{"node-x": {originRejected: 500}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED, ""},
		{"a bake that passed with nothing worse promotes", 61 * time.Second,
			counts{"node-a": {originRejected: 2}}, counts{"node-a": {originRejected: 2}, "node-b1": {originRejected: 2}},
			false, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_PROMOTED, "bake of 1m0s passed; no class worse on canary"},
		{"a bake with no canary node running the canary does not promote", 61 * time.Second,
			counts{}, counts{}, false, notRunning, wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED, ""},
		{"a missing replica keeps a due promotion waiting", 61 * time.Second,
			counts{}, counts{}, true, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED, ""},
		{"a missing replica does not stop a rollback on the evidence there is", 30 * time.Second,
			counts{"node-a": {originRejected: 20}}, counts{"node-a": {originRejected: 20}},
			true, "", wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK, "origin_rejected 40.0/min per canary node vs 0.0/min elsewhere (20 events)"},
		{"a canary node refusing the canary rolls it back with its text", 5 * time.Second,
			counts{}, counts{}, false, "heartbeat.timeout: too short", wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK,
			"node node-a refused canary revision 2: heartbeat.timeout: too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.events.onCanary, f.events.all = tc.onCanary, tc.all
			if tc.missing {
				f.events.missing = []*wsfleetv1.ReplicaError{{Replica: "10.0.0.2:7000", Error: "Unavailable: down"}}
			}
			f.clk.Set(f.start.Add(tc.after))
			e, _ := f.evaluator(t, f.srv, tc.nack)
			e.Tick(context.Background())
			head := f.head(t)
			if tc.result == wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED {
				if head.GetRevision() != 2 {
					t.Fatalf("decided: %v", head.GetRolloutOutcome())
				}
				st := &wsfleetv1.RolloutStatus{Pool: "default", CanaryRevision: 2, Spec: head.GetRollout(), StartTime: head.GetCreateTime()}
				e.Compare(context.Background(), st)
				if tc.missing && !strings.Contains(st.GetDegraded(), "10.0.0.2:7000") {
					t.Errorf("status.degraded %q does not name the missing replica", st.GetDegraded())
				}
				return
			}
			o := head.GetRolloutOutcome()
			if head.GetRevision() != 3 || o.GetResult() != tc.result || !o.GetAutomatic() || o.GetCanaryRevision() != 2 || head.GetAuthor() != policyserver.SystemAuthor {
				t.Fatalf("ending revision %v", head)
			}
			if o.GetReason() != tc.reason {
				t.Errorf("reason %q, want %q", o.GetReason(), tc.reason)
			}
		})
	}
}

// Every replica runs an evaluator over the one store: when they decide at
// once, one revision ends the rollout and the other sees it ended.
func TestTwoEvaluatorsOnOneStoreDecideOnce(t *testing.T) {
	f := newFixture(t)
	f.events.onCanary = counts{"node-a": {originRejected: 50}}
	f.events.all = counts{"node-a": {originRejected: 50}}
	f.clk.Set(f.start.Add(30 * time.Second))
	e1, _ := f.evaluator(t, f.srv, "")
	e2, _ := f.evaluator(t, f.server(t, ""), "")
	var wg sync.WaitGroup
	for _, e := range []*Evaluator{e1, e2} {
		wg.Go(func() { e.Tick(context.Background()) })
	}
	wg.Wait()
	// And once more each, as their next tick would.
	e1.Tick(context.Background())
	e2.Tick(context.Background())
	revs, err := f.st.History(context.Background(), policy.DefaultPool, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 3 || revs[0].GetRolloutOutcome().GetResult() != wsfleetv1.RolloutResult_ROLLOUT_RESULT_ROLLED_BACK {
		t.Fatalf("history has %d revisions, head %v", len(revs), revs[0])
	}
}

func TestComparisonFillsTheStatus(t *testing.T) {
	f := newFixture(t)
	f.events.onCanary = counts{"node-a": {originRejected: 4}}
	f.events.all = counts{"node-a": {originRejected: 4}, "node-b1": {heartbeat: 2}}
	f.clk.Set(f.start.Add(2 * time.Minute))
	e, _ := f.evaluator(t, f.srv, "")
	head := f.head(t)
	st := &wsfleetv1.RolloutStatus{Pool: "default", CanaryRevision: 2, Spec: head.GetRollout(), StartTime: head.GetCreateTime()}
	e.Compare(context.Background(), st)
	if len(st.GetClasses()) != 2 {
		t.Fatalf("classes %v", st.GetClasses())
	}
	or, hb := st.GetClasses()[0], st.GetClasses()[1]
	if or.GetClass() != originRejected || or.GetCanaryEvents() != 4 || or.GetCanaryRate() != 2 || or.GetRestEvents() != 0 || or.GetWorse() {
		t.Errorf("origin_rejected %v", or)
	}
	if hb.GetClass() != heartbeat || hb.GetRestEvents() != 2 || hb.GetRestRate() != 0.5 || hb.GetWorse() {
		t.Errorf("heartbeat_timeout %v", hb)
	}
	if st.GetDegraded() != "" {
		t.Errorf("degraded %q", st.GetDegraded())
	}
}

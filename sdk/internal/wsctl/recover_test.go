package wsctl

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakeRecover is a PolicyService that answers RecoverPolicy as a control
// plane whose store was reset would: default at revision 1, and a fleet
// whose node n2 runs default@81 of the lost store.
type fakeRecover struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	mu   sync.Mutex
	reqs []*wsfleetv1.RecoverPolicyRequest
}

func (f *fakeRecover) RecoverPolicy(_ context.Context, req *wsfleetv1.RecoverPolicyRequest) (*wsfleetv1.RecoverPolicyResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	switch {
	case req.GetFromNode() == "ghost":
		return nil, status.Error(codes.NotFound, `node "ghost" is not known to this control plane (wsctl nodes list shows the known ones)`)
	case req.GetPool() == "eu":
		return nil, status.Error(codes.FailedPrecondition, `no node reports running a policy of pool "eu": nothing to recover it from`)
	}
	p := policy.Default()
	p.Origins.Allow = []string{"https://app.example.com"}
	msg := req.GetMessage()
	if msg == "" {
		msg = "recovered from node n2, which runs default@81 from store bolt-lost"
	}
	return &wsfleetv1.RecoverPolicyResponse{
		Revision: &wsfleetv1.PolicyRevision{
			Pool: "default", Revision: 82, Author: "tester", Message: msg, Policy: p,
			StoreId: "bolt-new", RecoveredFromNode: "n2", CreateTime: timestamppb.Now(),
		},
		PreviousRevision:        1,
		SourceNode:              "n2",
		SourceRevision:          81,
		SourceStoreId:           "bolt-lost",
		HighestReportedRevision: 81,
		Changes: []*wsfleetv1.FieldChange{
			{Field: "origins.allow", Kind: wsfleetv1.FieldChange_KIND_ADDED, NewValue: `"https://app.example.com"`},
		},
	}, nil
}

func (f *fakeRecover) last() *wsfleetv1.RecoverPolicyRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

func newRecoverHarness(t *testing.T) (*harness, *fakeRecover) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRecover{}
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
	addr := lis.Addr().String()
	return &harness{t: t, addr: addr, env: map[string]string{envAddr: addr, envUser: "tester"}}, f
}

func TestPolicyRecover(t *testing.T) {
	h, f := newRecoverHarness(t)

	t.Run("recover prints what it took from where and the new revision", func(t *testing.T) {
		r := h.run("policy", "recover")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout,
			"recovered default@81 of store bolt-lost from node n2 (highest revision any node reports: 81)\n"+
				"pool default: revision 1 -> 82\n"+
				"  + origins.allow: \"https://app.example.com\"\n")
		if got, want := f.last(), (&wsfleetv1.RecoverPolicyRequest{Pool: "default"}); !proto.Equal(got, want) {
			t.Errorf("request %v, want %v", got, want)
		}
	})
	t.Run("every flag is sent", func(t *testing.T) {
		r := h.run("policy", "recover", "--pool", "default", "--from-node", "n2", "-m", "store lost", "--expect-revision", "1", "--dry-run")
		r.want(t, 0)
		want := &wsfleetv1.RecoverPolicyRequest{Pool: "default", FromNode: "n2", Message: "store lost", ExpectedRevision: proto.Int64(1), DryRun: true}
		if got := f.last(); !proto.Equal(got, want) {
			t.Errorf("request %v, want %v", got, want)
		}
		assertContains(t, "stdout", r.stdout, "would recover default@81 of store bolt-lost from node n2", "dry run: pool default would go from revision 1 to 82")
	})
	t.Run("an expected revision of 0 is sent as an expectation", func(t *testing.T) {
		h.run("policy", "recover", "--expect-revision", "0").want(t, 0)
		if f.last().ExpectedRevision == nil {
			t.Error("--expect-revision 0 was not sent")
		}
	})
	t.Run("json parses back with the source", func(t *testing.T) {
		r := h.run("policy", "recover", "-o", "json")
		r.want(t, 0)
		// The policy's durations read as in policy files; only the
		// recovery's own fields are checked here.
		var resp struct {
			Revision struct {
				Revision          int64  `json:"revision"`
				RecoveredFromNode string `json:"recovered_from_node"`
			} `json:"revision"`
			SourceNode    string `json:"source_node"`
			SourceStoreID string `json:"source_store_id"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if resp.SourceNode != "n2" || resp.SourceStoreID != "bolt-lost" || resp.Revision.RecoveredFromNode != "n2" || resp.Revision.Revision != 82 {
			t.Errorf("got %+v", resp)
		}
	})
	t.Run("the control plane's refusal is shown and exits 1", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"policy", "recover", "--pool", "eu"}, `no node reports running a policy of pool "eu"`},
			{[]string{"policy", "recover", "--from-node", "ghost"}, `node "ghost" is not known`},
		} {
			r := h.run(tt.args...)
			r.want(t, 1)
			assertContains(t, "stderr", r.stderr, tt.want)
		}
	})
	t.Run("an argument is a usage error", func(t *testing.T) {
		h.run("policy", "recover", "default").want(t, 2)
	})
}

func TestNodesListShowsANodeAheadOfTheControlPlane(t *testing.T) {
	h := newHarness(t)
	const nack = "policyclient: revision went backwards: running default@81 from store bolt-lost, offered default@1 from store bolt-new"
	h.fleet.setNodes(
		&wsfleetv1.NodeStatus{
			NodeId: "n1", Pool: "default", Address: "10.0.0.1:8080", Connected: true,
			AppliedPool: "default", AppliedRevision: 81, AppliedStoreId: "bolt-lost", Ahead: true, HeadRevision: 1,
			LastNackRevision: 1, LastNackError: nack,
		},
		&wsfleetv1.NodeStatus{
			NodeId: "n2", Pool: "edge", Address: "10.0.0.2:8080", Connected: true,
			AppliedPool: "edge", AppliedRevision: 4, Ahead: true,
		},
		&wsfleetv1.NodeStatus{
			NodeId: "n3", Pool: "default", Address: "10.0.0.3:8080", Connected: true,
			AppliedPool: "default", AppliedRevision: 1, HeadRevision: 1,
		},
	)
	r := h.run("nodes", "list")
	r.want(t, 0)
	want := `NODE  POOL     ADDRESS        REVISION                                     STATE      LAST NACK
n1    default  10.0.0.1:8080  default@81 AHEAD of control plane (@1)       connected  rev 1: policyclient: revision went backwards: running def...
n2    edge     10.0.0.2:8080  edge@4 AHEAD of control plane (no revision)  connected  -
n3    default  10.0.0.3:8080  default@1                                    connected  -

nodes run a revision of pool default that the control plane does not have (its store was reset or replaced?);
they keep it and refuse older ones. To make it the pool's next revision: wsctl policy recover --pool default

nodes run a revision of pool edge that the control plane does not have (its store was reset or replaced?);
they keep it and refuse older ones. To make it the pool's next revision: wsctl policy recover --pool edge
`
	assertEqual(t, "stdout", r.stdout, want)

	r = h.run("nodes", "list", "-o", "json")
	r.want(t, 0)
	var resp wsfleetv1.ListNodesResponse
	parseJSON(t, r.stdout, &resp)
	n1 := resp.GetNodes()[0]
	if !n1.GetAhead() || n1.GetHeadRevision() != 1 || n1.GetAppliedStoreId() != "bolt-lost" || n1.GetLastNackError() != nack {
		t.Errorf("json node %v", n1)
	}
	if strings.Contains(r.stdout, "AHEAD of") {
		t.Error("json output carries the table's text")
	}
}

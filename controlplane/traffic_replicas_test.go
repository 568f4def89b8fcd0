package controlplane

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

// reportTraffic sends one batch of traffic samples to srv as node and
// waits for the ack.
func reportTraffic(t *testing.T, srv *Server, node string, samples ...*wsfleetv1.TrafficSample) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := wsfleetv1.NewNodeServiceClient(dial(t, srv)).ReportTelemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&wsfleetv1.ReportTelemetryRequest{NodeId: node, ReporterId: fmt.Sprint(node, "-", time.Now().UnixNano()), Sequence: 1, Traffic: samples}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseSend()
}

// allowing applies the default policy with this allowlist on srv.
func allowing(t *testing.T, srv *Server, origins ...string) *wsfleetv1.Policy {
	t.Helper()
	p := proto.Clone(policy.Default()).(*wsfleetv1.Policy)
	p.Origins.Allow = origins
	if _, err := wsfleetv1.NewPolicyServiceClient(dial(t, srv)).ApplyPolicy(context.Background(), &wsfleetv1.ApplyPolicyRequest{Policy: p}); err != nil {
		t.Fatal(err)
	}
	return p
}

func trafficSample(peakConns uint32, origins ...any) *wsfleetv1.TrafficSample {
	s := &wsfleetv1.TrafficSample{
		Minute:     timestamppb.New(time.Now().Add(-2 * time.Minute).Truncate(time.Minute)),
		PolicyPool: "default", PolicyRevision: 1, PeakConnections: peakConns,
	}
	for i := 0; i < len(origins); i += 2 {
		s.Accepted = append(s.Accepted, &wsfleetv1.OriginCount{Origin: origins[i].(string), Count: uint64(origins[i+1].(int))})
	}
	return s
}

func TestADryRunOnAnyReplicaSeesEveryReplicasTraffic(t *testing.T) {
	e := etcdtest.Start(t, nil)
	rs := []*Server{replica(t, e.Endpoint), replica(t, e.Endpoint), replica(t, e.Endpoint)}
	for _, r := range rs {
		waitFor(t, 10*time.Second, "every replica registered", func() bool { return len(r.member.Peers()) == 2 })
	}
	const a, b = "https://a.example.com", "https://b.example.com"
	allowing(t, rs[0], a, b)
	reportTraffic(t, rs[0], "node-a", trafficSample(40, a, 5, b, 2))
	reportTraffic(t, rs[1], "node-b", trafficSample(70, b, 3))

	t.Run("traffic summary adds up every replica's samples", func(t *testing.T) {
		resp, err := fleetOf(t, rs[2]).TrafficSummary(context.Background(), &wsfleetv1.TrafficSummaryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for _, o := range resp.GetAccepted() {
			got[o.GetOrigin()] = o.GetCount()
		}
		if len(got) != 2 || got[a] != 5 || got[b] != 5 || resp.GetNodesReporting() != 2 || len(resp.GetMissingReplicas()) != 0 {
			t.Fatalf("summary %v", resp)
		}
	})
	t.Run("a dry run on a replica no node reports to has the whole fleet's impact", func(t *testing.T) {
		next := proto.Clone(policy.Default()).(*wsfleetv1.Policy)
		next.Origins.Allow = []string{a}
		next.Limits.MaxConnections = 50
		resp, err := wsfleetv1.NewPolicyServiceClient(dial(t, rs[2])).ApplyPolicy(context.Background(),
			&wsfleetv1.ApplyPolicyRequest{Policy: next, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		imp := resp.GetImpact()
		// The head allows a and b: b is newly rejected, 2 handshakes on
		// A's node and 3 on B's.
		if len(imp.GetNewlyRejected()) != 1 || imp.GetNewlyRejected()[0].GetOrigin() != b || imp.GetNewlyRejected()[0].GetHandshakes() != 5 {
			t.Fatalf("newly rejected %v", imp.GetNewlyRejected())
		}
		var conns *wsfleetv1.LimitImpact
		for _, l := range imp.GetLimits() {
			if l.GetField() == "limits.max_connections" {
				conns = l
			}
		}
		if !conns.GetExceeded() || conns.GetPeak() != 70 || conns.GetNodeId() != "node-b" {
			t.Fatalf("max_connections %v", conns)
		}
		if len(imp.GetMissingReplicas()) != 0 || imp.GetNodesReporting() != 2 {
			t.Fatalf("missing %v, nodes %d", imp.GetMissingReplicas(), imp.GetNodesReporting())
		}
	})
}

func TestADryRunNamesAReplicaThatDoesNotAnswer(t *testing.T) {
	e := etcdtest.Start(t, nil)
	a := replica(t, e.Endpoint, func(c *Config) { c.PeerTimeout = time.Second })
	down := closedAddr(t)
	register(t, e, "r-down", down)
	waitFor(t, 10*time.Second, "A knows the other replica", func() bool { return len(a.member.Peers()) == 1 })
	allowing(t, a, "https://a.example.com")
	reportTraffic(t, a, "node-a", trafficSample(1, "https://a.example.com", 4))
	next := proto.Clone(policy.Default()).(*wsfleetv1.Policy)
	next.Origins.Allow = []string{"https://other.example.com"}
	resp, err := wsfleetv1.NewPolicyServiceClient(dial(t, a)).ApplyPolicy(context.Background(),
		&wsfleetv1.ApplyPolicyRequest{Policy: next, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	imp := resp.GetImpact()
	if len(imp.GetNewlyRejected()) != 1 || imp.GetNewlyRejected()[0].GetHandshakes() != 4 {
		t.Fatalf("newly rejected %v: want this replica's figures", imp.GetNewlyRejected())
	}
	if len(imp.GetMissingReplicas()) != 1 || !strings.HasPrefix(imp.GetMissingReplicas()[0], down+": ") {
		t.Fatalf("missing %v, want %s named once", imp.GetMissingReplicas(), down)
	}
}

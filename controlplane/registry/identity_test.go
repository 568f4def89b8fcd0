package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// refused opens a watch stream with ctx's credential, says hello and
// returns how the stream ended.
func refused(t *testing.T, ctx context.Context, c wsfleetv1.NodeServiceClient, hello *wsfleetv1.NodeHello) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: hello}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err == nil {
		t.Fatalf("the stream was accepted and pushed %v", m)
	}
	return err
}

func TestWatchIsForTheCredentialsOwnNodes(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	nodeA := as("node-a", "na", "default")

	tests := []struct {
		name  string
		hello *wsfleetv1.NodeHello
		says  []string
	}{
		{"another node's id is refused naming it", &wsfleetv1.NodeHello{NodeId: "nb"}, []string{`"nb"`}},
		{"an id the credential never names is refused", &wsfleetv1.NodeHello{NodeId: "ghost-node"}, []string{`"ghost-node"`}},
		{"its own id in a pool outside its set is refused naming the pool", &wsfleetv1.NodeHello{NodeId: "na", Pool: "eu"}, []string{`"na"`, `pool "eu"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := refused(t, nodeA, f.nodes, tt.hello)
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("err = %v, want PermissionDenied", err)
			}
			for _, s := range tt.says {
				if !strings.Contains(status.Convert(err).Message(), s) {
					t.Errorf("message lacks %s: %v", s, err)
				}
			}
		})
	}
	resp, _ := f.r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
	if n := len(resp.GetNodes()); n != 0 {
		t.Fatalf("refused hellos made %d nodes: %v", n, resp.GetNodes())
	}
}

func TestAnotherCredentialCannotTakeAnAttachedNode(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	nodeB := as("node-b", "nb", "default")
	honest := connectAs(t, nodeB, f.nodes, &wsfleetv1.NodeHello{NodeId: "nb"})
	honest.ack(honest.next(time.Second))
	eventually(t, "nb applied 1", func() bool { return status1(t, f.r, "nb").GetAppliedRevision() == 1 })
	connected := status1(t, f.r, "nb").GetConnectTime().AsTime()

	t.Run("a stream of another credential allowed the id is refused", func(t *testing.T) {
		err := refused(t, as("fleet", "*", "*"), f.nodes, &wsfleetv1.NodeHello{NodeId: "nb"})
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), `"nb"`) {
			t.Fatalf("err = %v, want AlreadyExists naming nb", err)
		}
	})
	t.Run("the honest stream goes on and gets the next push", func(t *testing.T) {
		f.r.advance(rev("default", 2))
		m := honest.next(2 * time.Second)
		if m.GetRevision().GetRevision() != 2 {
			t.Fatalf("push %v", m)
		}
		honest.ack(m)
		eventually(t, "nb applied 2", func() bool { return status1(t, f.r, "nb").GetAppliedRevision() == 2 })
		s := status1(t, f.r, "nb")
		if !s.GetConnected() || !s.GetConnectTime().AsTime().Equal(connected) {
			t.Fatalf("nb was reconnected: %v", s)
		}
	})
	t.Run("the same credential replaces its own stream", func(t *testing.T) {
		again := connectAs(t, nodeB, f.nodes, &wsfleetv1.NodeHello{NodeId: "nb", Running: rev("default", 2)})
		select {
		case err := <-honest.done:
			honest.done <- err // for cleanup
			if status.Code(err) != codes.Aborted {
				t.Fatalf("old stream ended with %v, want Aborted", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the old stream was not replaced")
		}
		f.r.advance(rev("default", 3))
		if m := again.next(2 * time.Second); m.GetRevision().GetRevision() != 3 {
			t.Fatalf("push %v", m)
		}
	})
}

func TestNackMemoryIsTheNodesOwn(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	nodeB := as("node-b", "nb", "default")
	n := connectAs(t, nodeB, f.nodes, &wsfleetv1.NodeHello{NodeId: "nb"})
	n.ack(n.next(time.Second))
	f.r.advance(rev("default", 2))
	n.nack(n.next(time.Second), "evil nack")
	eventually(t, "NACK shown", func() bool { return status1(t, f.r, "nb").GetLastNackRevision() == 2 })
	n.cancel()
	eventually(t, "nb disconnected", func() bool { return !status1(t, f.r, "nb").GetConnected() })

	t.Run("the same credential at the old revision is not pushed the NACKed one", func(t *testing.T) {
		again := connectAs(t, nodeB, f.nodes, &wsfleetv1.NodeHello{NodeId: "nb", Running: rev("default", 1)})
		again.none(300 * time.Millisecond)
		if s := status1(t, f.r, "nb"); s.GetLastNackRevision() != 2 {
			t.Fatalf("the NACK is no longer shown: %v", s)
		}
		again.cancel()
		eventually(t, "nb disconnected", func() bool { return !status1(t, f.r, "nb").GetConnected() })
	})
	t.Run("another credential's stream forgets what the last one refused", func(t *testing.T) {
		other := connectAs(t, as("node-b-rotated", "nb", "default"), f.nodes, &wsfleetv1.NodeHello{NodeId: "nb", Running: rev("default", 1)})
		if m := other.next(2 * time.Second); m.GetRevision().GetRevision() != 2 {
			t.Fatalf("push %v, want revision 2", m)
		}
		if s := status1(t, f.r, "nb"); s.GetLastNackRevision() != 0 || s.GetLastNackError() != "" {
			t.Fatalf("another credential's NACK is shown: %v", s)
		}
		other.cancel()
		eventually(t, "nb disconnected", func() bool { return !status1(t, f.r, "nb").GetConnected() })
	})
}

func TestANewerRevisionInTheHelloClearsTheNack(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 2)}})
	n := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n1", Running: rev("default", 1)})
	n.nack(n.next(time.Second), "too big")
	eventually(t, "NACK shown", func() bool { return status1(t, f.r, "n1").GetLastNackRevision() == 2 })
	n.cancel()
	eventually(t, "n1 disconnected", func() bool { return !status1(t, f.r, "n1").GetConnected() })

	// The node got revision 3 elsewhere (another replica) and reconnects.
	connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n1", Running: rev("default", 3)})
	eventually(t, "n1 connected", func() bool { return status1(t, f.r, "n1").GetConnected() })
	if s := status1(t, f.r, "n1"); s.GetLastNackRevision() != 0 || s.GetLastNackError() != "" {
		t.Fatalf("the NACK of 2 is still shown for a node on 3: %v", s)
	}
	f.r.mu.Lock()
	left := f.r.nodes["n1"].nacked
	f.r.mu.Unlock()
	if len(left) != 0 {
		t.Fatalf("NACK memory kept: %v", left)
	}
}

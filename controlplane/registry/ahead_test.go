package registry

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// storeRev is rev(pool, n) as the store storeID issued it.
func storeRev(pool string, n int64, storeID string) *wsfleetv1.PolicyRevision {
	r := rev(pool, n)
	r.StoreId = storeID
	return r
}

func TestANodeAheadOfTheControlPlaneIsShownAndKeepsItsStatus(t *testing.T) {
	// The control plane's store was reset: its head is default@1 of a new
	// store, while the node runs default@81 of the old one.
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{storeRev("default", 1, "bolt-new")}})
	running := storeRev("default", 81, "bolt-old")
	n := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n1", Running: running, AppliedPool: "default", AppliedRevision: 81})
	m := n.next(time.Second)
	if m.GetRevision().GetRevision() != 1 {
		t.Fatalf("push %v", m)
	}
	const why = "revision went backwards: running default@81 from store bolt-old, offered default@1 from store bolt-new"
	n.nack(m, why)
	eventually(t, "NACK recorded", func() bool { return status1(t, f.r, "n1").GetLastNackRevision() == 1 })

	s := status1(t, f.r, "n1")
	if !s.GetConnected() || s.GetAppliedPool() != "default" || s.GetAppliedRevision() != 81 || s.GetAppliedStoreId() != "bolt-old" {
		t.Fatalf("the node's status changed on a refused push: %v", s)
	}
	if !s.GetAhead() || s.GetHeadRevision() != 1 || s.GetLastNackError() != why {
		t.Fatalf("ahead %v, head %d, NACK %q; want ahead of head 1 with the NACK text", s.GetAhead(), s.GetHeadRevision(), s.GetLastNackError())
	}
	reported := f.r.Running()
	if len(reported) != 1 || reported[0].NodeID != "n1" || !reported[0].Connected || !proto.Equal(reported[0].Running, running) {
		t.Fatalf("Running() = %+v", reported)
	}

	// A recovered revision, numbered above what the node runs, is pushed
	// and ACKed: the node is no longer ahead.
	recovered := storeRev("default", 82, "bolt-new")
	f.r.advance(recovered)
	m = n.next(time.Second)
	if m.GetRevision().GetRevision() != 82 {
		t.Fatalf("push %v", m)
	}
	n.ack(m)
	eventually(t, "ACK recorded", func() bool { return status1(t, f.r, "n1").GetAppliedRevision() == 82 })
	s = status1(t, f.r, "n1")
	if s.GetAhead() || s.GetHeadRevision() != 82 || s.GetAppliedStoreId() != "bolt-new" {
		t.Fatalf("after the ACK: %v", s)
	}
	if got := f.r.Running(); len(got) != 1 || !proto.Equal(got[0].Running, recovered) {
		t.Fatalf("Running() after the ACK = %+v", got)
	}
}

func TestAheadIsComputedFromWhatTheNodeRuns(t *testing.T) {
	heads := []*wsfleetv1.PolicyRevision{storeRev("default", 5, "bolt-b"), storeRev("eu", 3, "bolt-b")}
	tests := []struct {
		name      string
		hello     *wsfleetv1.NodeHello
		wantAhead bool
		wantHead  int64
	}{
		{"a node behind the head is not ahead", &wsfleetv1.NodeHello{Running: storeRev("default", 4, "bolt-b")}, false, 5},
		{"a node on the head is not ahead", &wsfleetv1.NodeHello{Running: storeRev("default", 5, "bolt-b")}, false, 5},
		{"a node above the head is ahead", &wsfleetv1.NodeHello{Running: storeRev("default", 9, "bolt-a")}, true, 5},
		{"the head's number from another store is ahead", &wsfleetv1.NodeHello{Running: storeRev("default", 5, "bolt-a")}, true, 5},
		{"a lower number from another store is not ahead", &wsfleetv1.NodeHello{Running: storeRev("default", 2, "bolt-a")}, false, 5},
		{"a pool without a head here is ahead", &wsfleetv1.NodeHello{Pool: "us", Running: storeRev("us", 1, "bolt-a")}, true, 5},
		{"the head is the node's own pool's", &wsfleetv1.NodeHello{Pool: "eu", Running: storeRev("eu", 3, "bolt-b")}, false, 3},
		{"a node that reports no revision is not ahead", &wsfleetv1.NodeHello{}, false, 5},
		{"an older SDK's applied revision is shown but never ahead", &wsfleetv1.NodeHello{AppliedPool: "default", AppliedRevision: 9}, false, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newServed(t, Config{Heads: heads})
			tt.hello.NodeId = "n1"
			connect(t, f.nodes, tt.hello)
			eventually(t, "connected", func() bool {
				resp, _ := f.r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
				return len(resp.GetNodes()) == 1
			})
			s := status1(t, f.r, "n1")
			if s.GetAhead() != tt.wantAhead || s.GetHeadRevision() != tt.wantHead {
				t.Fatalf("ahead %v head %d, want ahead %v head %d (%v)", s.GetAhead(), s.GetHeadRevision(), tt.wantAhead, tt.wantHead, s)
			}
			want := helloKey(tt.hello)
			if s.GetAppliedPool() != want.pool || s.GetAppliedRevision() != want.rev || s.GetAppliedStoreId() != want.store {
				t.Fatalf("applied %s@%d from %q, want %+v", s.GetAppliedPool(), s.GetAppliedRevision(), s.GetAppliedStoreId(), want)
			}
		})
	}
}

func TestANodeOnTheHeadOfAnotherStoreIsPushedTheHead(t *testing.T) {
	// Same number, other store: the node must be offered this store's
	// revision (it ACKs if the content is the same, NACKs if not), never
	// be taken for up to date.
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{storeRev("default", 1, "bolt-new")}})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1", Running: storeRev("default", 1, "bolt-old")})
	m := n.next(time.Second)
	if m.GetRevision().GetStoreId() != "bolt-new" {
		t.Fatalf("push %v", m)
	}
	n.ack(m)
	eventually(t, "ACK", func() bool { return status1(t, r, "n1").GetAppliedStoreId() == "bolt-new" })
	// Already on this store's head: no push after a reconnect.
	n.cancel()
	n2 := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1", Running: storeRev("default", 1, "bolt-new")})
	n2.none(200 * time.Millisecond)
}

func TestANackSplittingACharacterKeepsListNodesWorking(t *testing.T) {
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	n := connect(t, f.nodes, &wsfleetv1.NodeHello{NodeId: "n1"})
	// A two-byte character straddles byte MaxNackBytes: a byte cut would
	// leave half of it, invalid UTF-8 that protobuf refuses to marshal.
	text := strings.Repeat("a", MaxNackBytes-1) + "é and more"
	n.nack(n.next(time.Second), text)
	eventually(t, "NACK recorded", func() bool { return status1(t, f.r, "n1").GetLastNackRevision() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := f.fleet.ListNodes(ctx, &wsfleetv1.ListNodesRequest{})
	if err != nil {
		t.Fatalf("ListNodes over gRPC after the NACK: %v", err)
	}
	got := resp.GetNodes()[0].GetLastNackError()
	if !utf8.ValidString(got) || len(got) > MaxNackBytes || !strings.HasPrefix(got, "aaaa") {
		t.Fatalf("NACK text of %d bytes (valid UTF-8: %v)", len(got), utf8.ValidString(got))
	}
}

func TestARunningRevisionOfAnotherPoolIsRefused(t *testing.T) {
	_, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	tests := []struct {
		name  string
		hello *wsfleetv1.NodeHello
		want  string
	}{
		{"a node may not report another pool's revision", &wsfleetv1.NodeHello{NodeId: "x", Pool: "eu", Running: rev("payments", 3)}, "running.pool"},
		{"a node of default may not report another pool's revision", &wsfleetv1.NodeHello{NodeId: "x", Running: rev("eu", 3)}, "running.pool"},
		{"a running revision numbered 0 is refused", &wsfleetv1.NodeHello{NodeId: "x", Running: rev(policy.DefaultPool, 0)}, "running.revision"},
		{"an overlong store id is refused", &wsfleetv1.NodeHello{NodeId: "x", Running: storeRev(policy.DefaultPool, 1, strings.Repeat("x", 200))}, "running.store_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := c.Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: tt.hello}})
			_, err = st.Recv()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tt.want)
			}
		})
	}
}

func TestRunningLeavesOutForgottenNodes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var clock atomicTime
	clock.set(now)
	r, c := fixture(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}, Now: clock.get, ForgetAfter: time.Hour})
	n := connect(t, c, &wsfleetv1.NodeHello{NodeId: "n1", Running: rev("default", 1)})
	eventually(t, "reported", func() bool { return len(r.Running()) == 1 })
	// A node that runs nothing from a control plane is listed without a
	// revision, so that recovering from it can say so.
	connect(t, c, &wsfleetv1.NodeHello{NodeId: "n2"})
	eventually(t, "n2 listed", func() bool { got := r.Running(); return len(got) == 2 && got[1].Running == nil })
	n.cancel()
	eventually(t, "disconnected", func() bool { return !r.Running()[0].Connected })
	status1(t, r, "n2") // n2 stays connected: only n1 is forgotten below
	r.Shutdown()
	eventually(t, "n2 disconnected", func() bool { return !r.Running()[1].Connected })
	if got := r.Running(); got[0].LastSeen.IsZero() {
		t.Fatalf("Running() = %+v", got)
	}
	clock.set(now.Add(2 * time.Hour))
	if got := r.Running(); len(got) != 0 {
		t.Fatalf("a node gone for longer than ForgetAfter is still reported: %+v", got)
	}
}

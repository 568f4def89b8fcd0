package registry

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// peerRec is a record another replica shares of node id.
func peerRec(replica, id string, present bool, mutate func(*wsfleetv1.NodeStatus)) (PeerRecord, bool) {
	s := &wsfleetv1.NodeStatus{NodeId: id, Pool: "default"}
	if mutate != nil {
		mutate(s)
	}
	return PeerRecord{Replica: replica, NodeID: id, Status: s}, present
}

func putPeer(r *Registry, rec PeerRecord, present bool) {
	r.PutPeer(rec)
	r.SetPeerPresent(rec.Replica, rec.NodeID, present)
}

// listed is ListNodes' answer for node id.
func listed(t *testing.T, r *Registry, id string) *wsfleetv1.NodeStatus {
	t.Helper()
	resp, err := r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range resp.GetNodes() {
		if n.GetNodeId() == id {
			return n
		}
	}
	return nil
}

func TestANodeKnownToSeveralReplicasIsListedOnceAsItsAttachedReplicaHasIt(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	at := func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(clk.Now().Add(-ago)) }
	tests := []struct {
		name string
		// local attaches the node here (and detaches it when attached is false).
		local, attached bool
		peers           func() []PeerRecord
		present         []bool
		want            func(*testing.T, *wsfleetv1.NodeStatus)
	}{
		{"the replica it is attached to speaks for it, not the one it left",
			false, false,
			func() []PeerRecord {
				old, _ := peerRec("r-old", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.ConnectTime, s.LastSeenTime, s.AppliedRevision, s.Address = at(time.Hour), at(time.Minute), 3, "old:1"
				})
				now, _ := peerRec("r-now", "n", true, func(s *wsfleetv1.NodeStatus) {
					s.ConnectTime, s.LastSeenTime, s.AppliedRevision, s.Address = at(30*time.Second), at(30*time.Second), 4, "new:1"
				})
				return []PeerRecord{old, now}
			}, []bool{false, true},
			func(t *testing.T, s *wsfleetv1.NodeStatus) {
				if !s.GetConnected() || s.GetAddress() != "new:1" || s.GetAppliedRevision() != 4 {
					t.Fatalf("%v", s)
				}
				// The latest sighting, whoever had it.
				if !s.GetLastSeenTime().AsTime().Equal(at(30 * time.Second).AsTime()) {
					t.Fatalf("last seen %v", s.GetLastSeenTime().AsTime())
				}
			}},
		{"a stream attached here speaks before a record of another replica",
			true, true,
			func() []PeerRecord {
				old, _ := peerRec("r-old", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.ConnectTime, s.LastSeenTime, s.Address = at(time.Hour), at(time.Minute), "old:1"
				})
				return []PeerRecord{old}
			}, []bool{false},
			func(t *testing.T, s *wsfleetv1.NodeStatus) {
				if !s.GetConnected() || s.GetAddress() != "here:1" {
					t.Fatalf("%v", s)
				}
			}},
		{"a node attached nowhere is shown as the replica that saw it last left it",
			true, false,
			func() []PeerRecord {
				later, _ := peerRec("r-b", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.ConnectTime, s.LastSeenTime, s.Address = at(time.Hour), timestamppb.New(clk.Now().Add(time.Minute)), "b:1"
				})
				return []PeerRecord{later}
			}, []bool{false},
			func(t *testing.T, s *wsfleetv1.NodeStatus) {
				if s.GetConnected() || s.GetAddress() != "b:1" {
					t.Fatalf("%v", s)
				}
			}},
		{"a record with a watch stream speaks before a telemetry-only one seen later",
			false, false,
			func() []PeerRecord {
				watched, _ := peerRec("r-a", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.ConnectTime, s.LastSeenTime, s.Address, s.Pool = at(time.Hour), at(time.Hour), "a:1", "edge"
				})
				reported, _ := peerRec("r-b", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.LastSeenTime, s.Pool = at(time.Second), ""
				})
				return []PeerRecord{watched, reported}
			}, []bool{false, false},
			func(t *testing.T, s *wsfleetv1.NodeStatus) {
				if s.GetPool() != "edge" || s.GetAddress() != "a:1" {
					t.Fatalf("%v", s)
				}
			}},
		{"counters add up every replica's",
			true, true,
			func() []PeerRecord {
				a, _ := peerRec("r-a", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.LastSeenTime, s.Pushes, s.TelemetryEvents, s.TelemetryDropped = at(time.Minute), 2, 10, 1
				})
				b, _ := peerRec("r-b", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.LastSeenTime, s.Pushes, s.TelemetryEvents, s.TelemetryDropped = at(time.Minute), 3, 5, 2
				})
				return []PeerRecord{a, b}
			}, []bool{false, false},
			func(t *testing.T, s *wsfleetv1.NodeStatus) {
				// Here: one telemetry batch of 7 events, 4 drops.
				if s.GetPushes() != 5 || s.GetTelemetryEvents() != 22 || s.GetTelemetryDropped() != 7 {
					t.Fatalf("%v", s)
				}
			}},
		{"a record not seen for ForgetAfter counts for nothing",
			true, true,
			func() []PeerRecord {
				stale, _ := peerRec("r-a", "n", false, func(s *wsfleetv1.NodeStatus) {
					s.LastSeenTime, s.TelemetryEvents, s.ConnectTime = at(25*time.Hour), 100, at(26*time.Hour)
				})
				return []PeerRecord{stale}
			}, []bool{false},
			func(t *testing.T, s *wsfleetv1.NodeStatus) {
				if s.GetTelemetryEvents() != 7 {
					t.Fatalf("%v", s)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t, Config{Shared: true, Now: clk.Now, Heads: []*wsfleetv1.PolicyRevision{rev("default", 4)}})
			if tt.local {
				gen := join(t, r, &wsfleetv1.NodeHello{NodeId: "n", Address: "here:1"})
				r.TelemetryBatch("n", 7, 4)
				if !tt.attached {
					r.detach("n", gen)
				}
			}
			for i, p := range tt.peers() {
				putPeer(r, p, tt.present[i])
			}
			resp, err := r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetNodes()) != 1 {
				t.Fatalf("listed %d nodes, want n once", len(resp.GetNodes()))
			}
			tt.want(t, resp.GetNodes()[0])
		})
	}
}

func TestAheadAndHeadAreThisReplicasForAnotherReplicasNode(t *testing.T) {
	r := newRegistry(t, Config{Shared: true, Heads: []*wsfleetv1.PolicyRevision{storeRev("default", 5, "etcd-a")}})
	on := func(rev int64, store string, running bool) PeerRecord {
		rec, _ := peerRec("r-b", "n", true, func(s *wsfleetv1.NodeStatus) {
			s.AppliedPool, s.AppliedRevision, s.AppliedStoreId = "default", rev, store
		})
		rec.Running = running
		return rec
	}
	for _, tt := range []struct {
		name  string
		rec   PeerRecord
		ahead bool
	}{
		{"on the head", on(5, "etcd-a", true), false},
		{"above the head", on(9, "etcd-a", true), true},
		{"the head's number from another store", on(5, "etcd-b", true), true},
		{"a node that reported no running revision", on(9, "", false), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			putPeer(r, tt.rec, true)
			n := listed(t, r, "n")
			if n.GetAhead() != tt.ahead || n.GetHeadRevision() != 5 {
				t.Fatalf("ahead %v head %d, want ahead %v head 5", n.GetAhead(), n.GetHeadRevision(), tt.ahead)
			}
		})
	}
}

func TestAFullReadReplacesTheOtherReplicasRecords(t *testing.T) {
	r := newRegistry(t, Config{Shared: true})
	putPeer(r, mustPeer("r-a", "kept"), true)
	putPeer(r, mustPeer("r-a", "gone"), true)
	putPeer(r, mustPeer("r-b", "detached"), true)

	r.BeginPeerSync()
	r.PutPeer(mustPeer("r-a", "kept"))
	r.SetPeerPresent("r-a", "kept", true)
	r.PutPeer(mustPeer("r-b", "detached")) // its presence key is gone
	r.PutPeer(mustPeer("r-c", "new"))
	r.EndPeerSync()

	if got := ids(t, r); got != "detached,kept,new" {
		t.Fatalf("listed %s", got)
	}
	if listed(t, r, "detached").GetConnected() || !listed(t, r, "kept").GetConnected() {
		t.Fatal("presence not taken from the read")
	}
	r.DeletePeer("r-c", "new")
	r.SetPeerPresent("r-a", "kept", false)
	if got := ids(t, r); got != "detached,kept" || listed(t, r, "kept").GetConnected() {
		t.Fatalf("listed %s", got)
	}
}

func mustPeer(replica, id string) PeerRecord {
	rec, _ := peerRec(replica, id, true, func(s *wsfleetv1.NodeStatus) { s.LastSeenTime = timestamppb.Now() })
	return rec
}

func TestOtherReplicasRecordsAreBoundedWithThisOnesNodes(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, Config{Shared: true, MaxNodes: 3, Now: clk.Now})
	join(t, r, &wsfleetv1.NodeHello{NodeId: "local"})
	for _, id := range []string{"old", "newer"} {
		rec, _ := peerRec("r-b", id, false, func(s *wsfleetv1.NodeStatus) { s.LastSeenTime = timestamppb.New(clk.Now()) })
		putPeer(r, rec, false)
		clk.advance(time.Minute)
	}
	// Full: a new record makes the registry forget the disconnected entry
	// seen longest ago.
	rec, _ := peerRec("r-b", "attached", true, func(s *wsfleetv1.NodeStatus) { s.LastSeenTime = timestamppb.New(clk.Now()) })
	putPeer(r, rec, true)
	if got := ids(t, r); got != "attached,local,newer" {
		t.Fatalf("listed %s, want old forgotten", got)
	}
	resp, err := r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
	if err != nil || resp.GetDegraded() != "" {
		t.Fatalf("%v %q", err, resp.GetDegraded())
	}
	// Every entry attached: a new record is not kept, and the view says so.
	r.SetPeerPresent("r-b", "newer", true)
	rec, _ = peerRec("r-c", "one-too-many", true, nil)
	putPeer(r, rec, true)
	if got := ids(t, r); got != "attached,local,newer" {
		t.Fatalf("listed %s", got)
	}
	resp, _ = r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{})
	if !strings.Contains(resp.GetDegraded(), "--max-nodes") {
		t.Fatalf("degraded = %q", resp.GetDegraded())
	}
	// A new node of this replica is refused as before.
	if _, err := attachHello(r, &wsfleetv1.NodeHello{NodeId: "local-2"}); err == nil {
		t.Fatal("a fourth entry was admitted")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peerCount != 2 || len(r.nodes) != 1 || r.bytes <= 0 {
		t.Fatalf("%d records, %d nodes, %d bytes", r.peerCount, len(r.nodes), r.bytes)
	}
}

func TestTheChangesToShareAreEveryStatusChangeOfThisReplicasNodes(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, Config{Shared: true, Now: clk.Now, ForgetAfter: time.Hour})
	take := func() string {
		got := r.TakeDirty()
		slices.Sort(got)
		return strings.Join(got, ",")
	}
	gen := join(t, r, &wsfleetv1.NodeHello{NodeId: "a", Running: rev("default", 1)})
	r.TelemetryBatch("b", 1, 0)
	select {
	case <-r.Dirty():
	default:
		t.Fatal("no news of the changes")
	}
	if got := take(); got != "a,b" {
		t.Fatalf("changed %s", got)
	}
	if got := take(); got != "" {
		t.Fatalf("changed again: %s", got)
	}
	rec, ok := r.Local("a")
	if !ok || !rec.Status.GetConnected() || !rec.Running || rec.Status.GetAppliedRevision() != 1 {
		t.Fatalf("local a: %v %v", rec, ok)
	}
	r.update("a", gen, func(s *wsfleetv1.NodeStatus, _ *node) { s.Pushes++ })
	r.detach("a", gen)
	if got := take(); got != "a" {
		t.Fatalf("changed %s", got)
	}
	if rec, _ := r.Local("a"); rec.Status.GetConnected() {
		t.Fatal("a detached but shared as connected")
	}
	// Forgotten: to be deleted where it was shared.
	clk.advance(2 * time.Hour)
	r.ForgetExpired()
	if got := take(); got != "a,b" {
		t.Fatalf("forgotten %s", got)
	}
	if _, ok := r.Local("a"); ok {
		t.Fatal("a still known")
	}
}

func TestWithoutSharingNothingIsNoted(t *testing.T) {
	r := newRegistry(t, Config{})
	join(t, r, &wsfleetv1.NodeHello{NodeId: "a"})
	if got := r.TakeDirty(); len(got) != 0 {
		t.Fatalf("noted %v", got)
	}
}

package controlplane

// The push follows the store: whatever commits a revision to the store,
// the store's watch carries it to the registry and on to the nodes.

import (
	"context"
	"strings"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

// watcher is a node's watch stream, as a test reads it.
type watcher struct {
	t      *testing.T
	stream wsfleetv1.NodeService_WatchClient
	pushes chan *wsfleetv1.WatchResponse
	done   chan error
}

// watchAs opens a watch stream on srv as node id of pool; it ends with
// the test.
func watchAs(t *testing.T, srv *Server, id, pool string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := wsfleetv1.NewNodeServiceClient(dial(t, srv)).Watch(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{NodeId: id, Pool: pool}}}); err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &watcher{t: t, stream: st, pushes: make(chan *wsfleetv1.WatchResponse, 16), done: make(chan error, 1)}
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				w.done <- err
				return
			}
			w.pushes <- m
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// ackNext waits for the next push, ACKs it and returns its revision.
func (w *watcher) ackNext() *wsfleetv1.PolicyRevision {
	w.t.Helper()
	select {
	case m := <-w.pushes:
		if err := w.stream.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Ack{Ack: &wsfleetv1.PolicyAck{Nonce: m.GetNonce()}}}); err != nil {
			w.t.Fatal(err)
		}
		return m.GetRevision()
	case err := <-w.done:
		w.t.Fatalf("the watch stream ended: %v", err)
	case <-time.After(15 * time.Second):
		w.t.Fatal("nothing pushed within 15s")
	}
	return nil
}

// TestARevisionCommittedStraightToTheStoreIsPushed: a revision that did
// not go through this control plane's policy service (as one committed by
// another replica sharing the store) reaches the nodes all the same, and
// is the pool's revision in /metrics.
func TestARevisionCommittedStraightToTheStoreIsPushed(t *testing.T) {
	srv := startServer(t, nil)
	w := watchAs(t, srv, "n1", "default")
	if r := w.ackNext(); r.GetRevision() != 1 {
		t.Fatalf("first push revision %d, want 1", r.GetRevision())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stored, err := srv.store.Append(ctx, storetest.Revision("default", "not through the policy service"), store.AnyRevision)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.ackNext(); got.GetRevision() != stored.GetRevision() || got.GetMessage() != stored.GetMessage() {
		t.Fatalf("pushed %d %q, want %d %q", got.GetRevision(), got.GetMessage(), stored.GetRevision(), stored.GetMessage())
	}
	if body := httpGet(t, "http://"+srv.HTTPAddr().String()+"/metrics"); !strings.Contains(body, `wsfleet_control_policy_revision{pool="default"} 2`) {
		t.Fatal("/metrics does not show default at revision 2")
	}
}

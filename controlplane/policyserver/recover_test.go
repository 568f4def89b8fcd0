package policyserver

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// recoverFixture is a server over a fresh store (as after a reset: default
// at revision 1) whose fleet is what the test says the nodes report.
type recoverFixture struct {
	*fixture
	storeID string
	mu      sync.Mutex
	nodes   []NodeRevision
}

func newRecoverFixture(t *testing.T, nodes ...NodeRevision) *recoverFixture {
	t.Helper()
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logger, hook := logtest.NewNullLogger()
	f := &recoverFixture{fixture: &fixture{st: st, log: hook, reg: prometheus.NewRegistry()}, storeID: st.ID(), nodes: nodes}
	f.srv, err = New(Config{
		Store:      st,
		Log:        logger,
		Registerer: f.reg,
		Fleet: func() []NodeRevision {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]NodeRevision(nil), f.nodes...)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// ran is a revision of the old, lost store: content told apart by
// max_connections.
func ran(pool string, n int64, maxConns int32) *wsfleetv1.PolicyRevision {
	p := policy.Default()
	p.Origins.Allow = []string{"https://app.example.com"}
	p.Limits.MaxConnections = maxConns
	return &wsfleetv1.PolicyRevision{Pool: pool, Revision: n, StoreId: "bolt-lost", Author: "alice", Message: "old", Policy: p}
}

func node(id, pool string, connected bool, running *wsfleetv1.PolicyRevision) NodeRevision {
	return NodeRevision{NodeID: id, Pool: pool, Connected: connected, LastSeen: time.Unix(1_700_000_000, 0), Running: running}
}

func TestRecoverMakesTheFleetsNewestPolicyTheNextRevision(t *testing.T) {
	newest := ran("default", 81, 8100)
	f := newRecoverFixture(t,
		node("n1", "default", true, ran("default", 80, 8000)),
		node("n2", "eu", true, newest), // a node of a pool without its own policy runs default's
		node("n3", "us", true, ran("us", 200, 20000)),
		node("n4", "default", true, nil),
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	heads, err := f.st.WatchHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := <-heads; h.GetRevision() != 1 {
		t.Fatalf("the watch's first head is %d, want 1", h.GetRevision())
	}
	resp, err := f.srv.RecoverPolicy(as("alice"), &wsfleetv1.RecoverPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.GetRevision()
	if rev.GetPool() != "default" || rev.GetRevision() != 82 || rev.GetAuthor() != "alice" || rev.GetRecoveredFromNode() != "n2" || rev.GetStoreId() != f.storeID {
		t.Fatalf("recovered revision %v", rev)
	}
	if !proto.Equal(rev.GetPolicy(), newest.GetPolicy()) {
		t.Fatalf("recovered content %v, want what n2 runs", rev.GetPolicy())
	}
	for _, want := range []string{"n2", "default@81", "bolt-lost"} {
		if !strings.Contains(rev.GetMessage(), want) {
			t.Errorf("default message %q does not name %s", rev.GetMessage(), want)
		}
	}
	if resp.GetPreviousRevision() != 1 || resp.GetSourceNode() != "n2" || resp.GetSourceRevision() != 81 ||
		resp.GetSourceStoreId() != "bolt-lost" || resp.GetHighestReportedRevision() != 81 {
		t.Fatalf("response %v", resp)
	}
	if len(resp.GetChanges()) == 0 {
		t.Fatal("no changes reported against revision 1")
	}

	head, err := f.srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{})
	if err != nil || !proto.Equal(head.GetRevision(), rev) {
		t.Fatalf("head %v (%v), want the recovered revision", head, err)
	}
	// Pushed like any other commit: the store's watch delivers it.
	select {
	case h := <-heads:
		if !proto.Equal(h, rev) {
			t.Fatalf("the watch delivered %v, want the recovered revision", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the store's watch did not deliver the recovered revision")
	}
	// History has a gap (2..81 never existed in this store), and the
	// audit line says where the revision came from.
	hist, err := f.srv.ListPolicyRevisions(as("x"), &wsfleetv1.ListPolicyRevisionsRequest{})
	if err != nil || len(hist.GetRevisions()) != 2 || hist.GetRevisions()[1].GetRevision() != 1 {
		t.Fatalf("history %v (%v)", hist, err)
	}
	audit := f.log.LastEntry()
	if audit.Data["recovered_from_node"] != "n2" || audit.Data["new_revision"] != int64(82) {
		t.Fatalf("audit line %v", audit.Data)
	}
}

func TestRecoverFromANamedNode(t *testing.T) {
	f := newRecoverFixture(t,
		node("n1", "default", true, ran("default", 80, 8000)),
		node("n2", "default", true, ran("default", 81, 8100)),
	)
	resp, err := f.srv.RecoverPolicy(as("bob"), &wsfleetv1.RecoverPolicyRequest{FromNode: "n1", Message: "n2 ran a bad canary"})
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.GetRevision()
	// Above every revision any node reports, not only above the source's.
	if rev.GetRevision() != 82 || rev.GetMessage() != "n2 ran a bad canary" || rev.GetRecoveredFromNode() != "n1" {
		t.Fatalf("recovered revision %v", rev)
	}
	if rev.GetPolicy().GetLimits().GetMaxConnections() != 8000 {
		t.Fatalf("recovered content is not n1's: %v", rev.GetPolicy())
	}
}

func TestRecoverPicksTheSourceDeterministically(t *testing.T) {
	older := node("a-gone", "default", false, ran("default", 81, 1))
	older.LastSeen = older.LastSeen.Add(-time.Hour)
	tests := []struct {
		name  string
		nodes []NodeRevision
		want  string
	}{
		{"the highest revision wins", []NodeRevision{node("a", "default", true, ran("default", 80, 1)), node("b", "default", false, ran("default", 81, 2))}, "b"},
		{"on a tie a connected node wins", []NodeRevision{node("a", "default", false, ran("default", 81, 1)), node("b", "default", true, ran("default", 81, 2))}, "b"},
		{"then the one seen last", []NodeRevision{older, node("b-gone", "default", false, ran("default", 81, 2))}, "b-gone"},
		{"then the lowest node id", []NodeRevision{node("b", "default", true, ran("default", 81, 2)), node("a", "default", true, ran("default", 81, 1))}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRecoverFixture(t, tt.nodes...)
			resp, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetSourceNode() != tt.want {
				t.Fatalf("source %s, want %s", resp.GetSourceNode(), tt.want)
			}
		})
	}
}

func TestRecoverStoresTheSameContentUnderAHigherNumber(t *testing.T) {
	// The reset store's revision 1 has the content the fleet runs as 81:
	// the nodes still refuse 1, so recovery must store 82 all the same.
	same := ran("default", 81, 0)
	same.Policy = policy.Default()
	f := newRecoverFixture(t, node("n1", "default", true, same))
	resp, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision().GetRevision() != 82 || len(resp.GetChanges()) != 0 {
		t.Fatalf("response %v", resp)
	}
}

func TestRecoverAPoolTheStoreDoesNotHave(t *testing.T) {
	f := newRecoverFixture(t, node("n1", "eu", true, ran("eu", 12, 1200)))
	resp, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{Pool: "eu"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision().GetRevision() != 13 || resp.GetPreviousRevision() != 0 || resp.GetRevision().GetPool() != "eu" {
		t.Fatalf("response %v", resp)
	}
}

func TestRecoverDryRunStoresNothing(t *testing.T) {
	f := newRecoverFixture(t, node("n1", "default", true, ran("default", 81, 8100)))
	commits := f.commits(t)
	resp, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision().GetRevision() != 82 || resp.GetSourceNode() != "n1" {
		t.Fatalf("dry run %v", resp)
	}
	head, _ := f.srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{})
	if head.GetRevision().GetRevision() != 1 || f.commits(t) != commits {
		t.Fatalf("a dry run stored revision %d", head.GetRevision().GetRevision())
	}
}

func TestRecoverWithExpectedRevision(t *testing.T) {
	f := newRecoverFixture(t, node("n1", "default", true, ran("default", 81, 8100)))
	stale := int64(7)
	_, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{ExpectedRevision: &stale})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "is at revision 1, not 7") {
		t.Fatalf("stale expectation: %v", err)
	}
	current := int64(1)
	resp, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{ExpectedRevision: &current})
	if err != nil || resp.GetRevision().GetRevision() != 82 {
		t.Fatalf("recover at the expected revision: %v, %v", resp, err)
	}
}

func TestRecoverRefusals(t *testing.T) {
	invalid := ran("default", 90, 8100)
	invalid.Policy.Heartbeat = nil
	tests := []struct {
		name  string
		nodes []NodeRevision
		req   *wsfleetv1.RecoverPolicyRequest
		code  codes.Code
		text  string
	}{
		{
			name:  "no node reports the pool",
			nodes: []NodeRevision{node("n1", "us", true, ran("us", 3, 1)), node("n2", "default", true, nil)},
			req:   &wsfleetv1.RecoverPolicyRequest{Pool: "eu"},
			code:  codes.FailedPrecondition, text: `no node reports running a policy of pool "eu"`,
		},
		{
			name:  "an unknown node is not found",
			nodes: []NodeRevision{node("n1", "default", true, ran("default", 81, 1))},
			req:   &wsfleetv1.RecoverPolicyRequest{FromNode: "ghost"},
			code:  codes.NotFound, text: `node "ghost" is not known`,
		},
		{
			name:  "a node that runs another pool's policy is refused",
			nodes: []NodeRevision{node("n1", "us", true, ran("us", 81, 1))},
			req:   &wsfleetv1.RecoverPolicyRequest{FromNode: "n1"},
			code:  codes.FailedPrecondition, text: `node "n1" runs pool "us"'s policy`,
		},
		{
			name:  "a node that runs nothing is refused",
			nodes: []NodeRevision{node("n1", "default", true, nil)},
			req:   &wsfleetv1.RecoverPolicyRequest{FromNode: "n1"},
			code:  codes.FailedPrecondition, text: "reports no running policy",
		},
		{
			name:  "a policy that fails today's validation is refused",
			nodes: []NodeRevision{node("n1", "default", true, invalid)},
			req:   &wsfleetv1.RecoverPolicyRequest{},
			code:  codes.InvalidArgument, text: "the policy node n1 runs does not pass validation",
		},
		{
			name:  "a message over 1 KiB is refused",
			nodes: []NodeRevision{node("n1", "default", true, ran("default", 81, 1))},
			req:   &wsfleetv1.RecoverPolicyRequest{Message: strings.Repeat("x", policy.MaxCommitMessageBytes+1)},
			code:  codes.InvalidArgument, text: "message",
		},
		{
			name:  "a negative expected revision is refused",
			nodes: []NodeRevision{node("n1", "default", true, ran("default", 81, 1))},
			req:   &wsfleetv1.RecoverPolicyRequest{ExpectedRevision: proto.Int64(-1)},
			code:  codes.InvalidArgument, text: "expected_revision",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRecoverFixture(t, tt.nodes...)
			_, err := f.srv.RecoverPolicy(as("x"), tt.req)
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.code, tt.text)
			}
			head, _ := f.srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{})
			if head.GetRevision().GetRevision() != 1 {
				t.Fatalf("a refused recovery stored revision %d", head.GetRevision().GetRevision())
			}
		})
	}
}

func TestRecoverRefusesWhatTheStoreAlreadyHas(t *testing.T) {
	f := newRecoverFixture(t)
	if _, err := f.srv.ApplyPolicy(as("x"), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy()}); err != nil {
		t.Fatal(err)
	}
	// The fleet runs this store's revisions: 2 (the head) and 1.
	one, _ := f.srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{Revision: 1})
	two, _ := f.srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{Revision: 2})
	f.nodes = []NodeRevision{node("n1", "default", true, two.GetRevision()), node("n2", "default", true, one.GetRevision())}
	for _, req := range []*wsfleetv1.RecoverPolicyRequest{{}, {FromNode: "n2"}} {
		_, err := f.srv.RecoverPolicy(as("x"), req)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "nothing to recover") {
			t.Fatalf("recover %v: %v, want FailedPrecondition: nothing to recover", req, err)
		}
	}
}

func TestRecoverNeedsAFleet(t *testing.T) {
	f := newFixture(t)
	_, err := f.srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("err = %v, want Unimplemented", err)
	}
}

func TestCommitMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("é", 1500) // 3,000 bytes
	atBound := strings.Repeat("x", policy.MaxCommitMessageBytes)
	tests := []struct {
		name string
		call func(t *testing.T, msg string) (*Server, error)
	}{
		{"apply", func(t *testing.T, msg string) (*Server, error) {
			srv := newFixture(t).srv
			_, err := srv.ApplyPolicy(as("x"), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), Message: msg})
			return srv, err
		}},
		{"rollback", func(t *testing.T, msg string) (*Server, error) {
			srv := newFixture(t).srv
			if _, err := srv.ApplyPolicy(as("x"), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy()}); err != nil {
				t.Fatal(err)
			}
			_, err := srv.RollbackPolicy(as("x"), &wsfleetv1.RollbackPolicyRequest{ToRevision: 1, Message: msg})
			return srv, err
		}},
		{"recover", func(t *testing.T, msg string) (*Server, error) {
			srv := newRecoverFixture(t, node("n1", "default", true, ran("default", 81, 1))).srv
			_, err := srv.RecoverPolicy(as("x"), &wsfleetv1.RecoverPolicyRequest{Message: msg})
			return srv, err
		}},
	}
	for _, tt := range tests {
		t.Run("a 3,000-byte message is refused by "+tt.name, func(t *testing.T) {
			srv, err := tt.call(t, long)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField()+": "+v.GetDescription())
					}
				}
			}
			if len(fields) != 1 || fields[0] != "message: 3000 bytes; at most 1024" {
				t.Fatalf("field violations %q", fields)
			}
			hist, err := srv.ListPolicyRevisions(as("x"), &wsfleetv1.ListPolicyRevisionsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range hist.GetRevisions() {
				if r.GetMessage() == long {
					t.Fatalf("revision %d stored the long message", r.GetRevision())
				}
			}
		})
		t.Run("a message of exactly 1 KiB is kept by "+tt.name, func(t *testing.T) {
			srv, err := tt.call(t, atBound)
			if err != nil {
				t.Fatal(err)
			}
			head, _ := srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{})
			if head.GetRevision().GetMessage() != atBound {
				t.Fatalf("message of %d bytes stored", len(head.GetRevision().GetMessage()))
			}
		})
	}
}

package wsctl

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakeProposals answers the proposal calls with what the test sets and
// records what it was sent.
type fakeProposals struct {
	wsfleetv1.UnimplementedPolicyServiceServer

	proposal *wsfleetv1.Proposal
	list     []*wsfleetv1.Proposal
	revision *wsfleetv1.PolicyRevision

	mu   sync.Mutex
	sent []proto.Message
}

func (f *fakeProposals) record(m proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, proto.Clone(m))
}

func (f *fakeProposals) requests() []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.Message(nil), f.sent...)
}

func (f *fakeProposals) ProposePolicy(_ context.Context, req *wsfleetv1.ProposePolicyRequest) (*wsfleetv1.ProposePolicyResponse, error) {
	f.record(req)
	return &wsfleetv1.ProposePolicyResponse{Proposal: f.proposal}, nil
}

func (f *fakeProposals) ApproveProposal(_ context.Context, req *wsfleetv1.ApproveProposalRequest) (*wsfleetv1.ApproveProposalResponse, error) {
	f.record(req)
	return &wsfleetv1.ApproveProposalResponse{Proposal: f.proposal, Revision: f.revision}, nil
}

func (f *fakeProposals) RejectProposal(_ context.Context, req *wsfleetv1.RejectProposalRequest) (*wsfleetv1.RejectProposalResponse, error) {
	f.record(req)
	return &wsfleetv1.RejectProposalResponse{Proposal: f.proposal}, nil
}

func (f *fakeProposals) ListProposals(_ context.Context, req *wsfleetv1.ListProposalsRequest) (*wsfleetv1.ListProposalsResponse, error) {
	f.record(req)
	return &wsfleetv1.ListProposalsResponse{Proposals: f.list}, nil
}

func (f *fakeProposals) GetProposal(_ context.Context, req *wsfleetv1.GetProposalRequest) (*wsfleetv1.GetProposalResponse, error) {
	f.record(req)
	return &wsfleetv1.GetProposalResponse{Proposal: f.proposal}, nil
}

func proposalHarness(t *testing.T, f *fakeProposals) *harness {
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
	addr := lis.Addr().String()
	return &harness{t: t, addr: addr, env: map[string]string{envAddr: addr, envUser: "tester"}}
}

var proposalTime = timestamppb.New(time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC))

func openProposal() *wsfleetv1.Proposal {
	return &wsfleetv1.Proposal{
		Id: 7, Pool: "edge", BaseRevision: 4, Proposer: "alice", Message: "allow new", CreateTime: proposalTime,
		State:   wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN,
		Changes: []*wsfleetv1.FieldChange{{Field: "origins.allow", Kind: wsfleetv1.FieldChange_KIND_ADDED, NewValue: `"https://new.example.com"`}},
		Impact: &wsfleetv1.PolicyImpact{
			WindowStart: proposalTime, WindowEnd: proposalTime, NodesReporting: 2,
			NewlyRejected: []*wsfleetv1.OriginImpact{{Origin: "https://old.example.com", Handshakes: 12}},
		},
	}
}

func TestProposeSendsTheFileAndPrintsTheProposal(t *testing.T) {
	f := &fakeProposals{proposal: openProposal()}
	h := proposalHarness(t, f)
	file := writeFile(t, "origins: {allow: [\"https://new.example.com\"]}\n")
	r := h.run("policy", "propose", "-f", file, "--pool", "edge", "-m", "allow new", "--expect-revision", "4", "--canary", "zone=a", "--bake", "1m")
	r.want(t, 0)
	assertEqual(t, "stdout", r.stdout, `proposal 7 stored; another admin approves it with 'wsctl policy approve 7'

proposal:       7
state:          open
pool:           edge
base revision:  4
proposer:       alice
time:           2026-01-02T03:04:00Z
message:        allow new

changes against revision 4:
  + origins.allow: "https://new.example.com"

impact on traffic 2026-01-02T03:04:00Z .. 2026-01-02T03:04:00Z (2 nodes reporting):
  newly rejected: https://old.example.com: 12 handshakes
`)
	sent := f.requests()
	if len(sent) != 1 {
		t.Fatalf("sent %d requests, want 1", len(sent))
	}
	req := sent[0].(*wsfleetv1.ProposePolicyRequest)
	if req.GetPool() != "edge" || req.GetMessage() != "allow new" || req.ExpectedRevision == nil || req.GetExpectedRevision() != 4 ||
		req.GetCanary() != "zone=a" || req.GetBake().AsDuration() != time.Minute || req.GetPolicy().GetOrigins().GetAllow()[0] != "https://new.example.com" {
		t.Fatalf("request = %v", req)
	}
}

func TestProposalCommandsCheckTheirArguments(t *testing.T) {
	f := &fakeProposals{proposal: openProposal()}
	h := proposalHarness(t, f)
	file := writeFile(t, "origins: {allow: []}\n")
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"propose without a message is a usage error", []string{"policy", "propose", "-f", file}, "-m/--message is required"},
		{"reject without a message is a usage error", []string{"policy", "reject", "7"}, "-m/--message is required"},
		{"an id that is not a number is a usage error", []string{"policy", "approve", "seven"}, `ID must be a proposal id (1 or more), got "seven"`},
		{"a zero id is a usage error", []string{"policy", "proposal", "0"}, "ID must be a proposal id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(tt.args...)
			r.want(t, exitUsage)
			assertContains(t, "stderr", r.stderr, tt.says)
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests sent for refused commands", n)
	}
}

func TestApproveRejectAndList(t *testing.T) {
	approved := openProposal()
	approved.State, approved.DecidedBy, approved.Revision = wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED, "bob", 5
	stale := openProposal()
	stale.Id, stale.Stale, stale.Message = 8, true, "late"
	f := &fakeProposals{
		proposal: approved,
		revision: &wsfleetv1.PolicyRevision{Pool: "edge", Revision: 5, Author: "alice", ApprovedBy: "bob", ProposalId: 7},
		list:     []*wsfleetv1.Proposal{stale, approved},
	}
	h := proposalHarness(t, f)

	t.Run("approve says the revision, its author and approver", func(t *testing.T) {
		r := h.run("policy", "approve", "7", "-m", "ok")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "proposal 7 approved: pool edge: revision 4 -> 5 (author alice, approved by bob)\n")
	})
	t.Run("reject sends the reason", func(t *testing.T) {
		r := h.run("policy", "reject", "7", "-m", "not now")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "proposal 7 rejected\n")
		sent := f.requests()
		if req, ok := sent[len(sent)-1].(*wsfleetv1.RejectProposalRequest); !ok || req.GetId() != 7 || req.GetMessage() != "not now" {
			t.Fatalf("request = %v", sent[len(sent)-1])
		}
	})
	t.Run("proposals shows a stale one as stale", func(t *testing.T) {
		r := h.run("policy", "proposals", "--open", "--pool", "edge")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, `ID  POOL  STATE     BASE  PROPOSER  CREATED               DECIDED BY  REVISION  MESSAGE
8   edge  stale     4     alice     2026-01-02T03:04:00Z                        late
7   edge  approved  4     alice     2026-01-02T03:04:00Z  bob         5         allow new
`)
		sent := f.requests()
		if req, ok := sent[len(sent)-1].(*wsfleetv1.ListProposalsRequest); !ok || req.GetPool() != "edge" || !req.GetOpenOnly() {
			t.Fatalf("request = %v", sent[len(sent)-1])
		}
	})
}

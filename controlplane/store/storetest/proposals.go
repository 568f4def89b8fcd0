package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// Proposal returns an open-to-be proposal of pool against base carrying
// message; its id and state are 0: the store sets them.
func Proposal(pool string, base int64, message string) *wsfleetv1.Proposal {
	return &wsfleetv1.Proposal{
		Pool:         pool,
		Policy:       Revision(pool, message).GetPolicy(),
		BaseRevision: base,
		Proposer:     "alice@example.com",
		Message:      message,
		CreateTime:   timestamppb.New(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)),
		Changes:      []*wsfleetv1.FieldChange{{Field: "limits.max_connections", Kind: wsfleetv1.FieldChange_KIND_CHANGED, OldValue: "1", NewValue: "2"}},
		Canary:       "zone=a",
	}
}

var decision = store.Decision{By: "bob@example.com", Message: "looks good", Time: time.Date(2025, 3, 15, 9, 0, 0, 0, time.UTC)}

// proposalTests are the proposal sub-tests of Run.
var proposalTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"proposals get store-wide increasing ids and are stored as given", testProposalCreate},
	{"proposals are listed newest first, by pool, open only and limited", testProposalList},
	{"a missing proposal is not found", testProposalMissing},
	{"a pool's open proposals are bounded", testProposalBound},
	{"a rejected proposal is closed and cannot be decided again", testProposalReject},
	{"approve appends the revision and closes the proposal together", testProposalApprove},
	{"approve against a moved head conflicts and changes nothing", testProposalApproveStale},
	{"racing approvals of one proposal have exactly one winner", testProposalApproveRace},
	{"decided proposals beyond the cap are pruned oldest first, ids go on", testProposalPrune},
	{"proposal methods return ErrClosed after close", testProposalClosed},
}

func mustPropose(t *testing.T, s store.Store, p *wsfleetv1.Proposal) *wsfleetv1.Proposal {
	t.Helper()
	out, err := s.CreateProposal(t.Context(), p, store.ProposalLimits{})
	if err != nil {
		t.Fatalf("CreateProposal: %v", err)
	}
	return out
}

func testProposalCreate(t *testing.T, s store.Store) {
	in := Proposal(pool, 0, "first")
	a := mustPropose(t, s, in)
	b := mustPropose(t, s, Proposal("edge", 0, "second"))
	c := mustPropose(t, s, Proposal(pool, 0, "third"))
	if a.GetId() < 1 || b.GetId() <= a.GetId() || c.GetId() <= b.GetId() {
		t.Fatalf("ids %d, %d, %d: want positive and increasing across pools", a.GetId(), b.GetId(), c.GetId())
	}
	want := proto.Clone(in).(*wsfleetv1.Proposal)
	want.Id, want.State = a.GetId(), wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN
	wantEqual(t, "created proposal", a, want)
	got, err := s.GetProposal(t.Context(), a.GetId())
	if err != nil {
		t.Fatalf("GetProposal: %v", err)
	}
	wantEqual(t, "read proposal", got, want)
	in.Message = "scribbled"
	got.Policy.Origins.Allow[0] = "https://evil.example"
	again, err := s.GetProposal(t.Context(), a.GetId())
	if err != nil {
		t.Fatalf("GetProposal: %v", err)
	}
	wantEqual(t, "proposal after its input and a returned copy were changed", again, want)
}

func testProposalList(t *testing.T, s store.Store) {
	var ids []int64
	for i, p := range []string{pool, "edge", pool, pool} {
		ids = append(ids, mustPropose(t, s, Proposal(p, 0, fmt.Sprintf("p%d", i))).GetId())
	}
	if _, err := s.RejectProposal(t.Context(), ids[2], decision, store.ProposalLimits{}); err != nil {
		t.Fatalf("RejectProposal: %v", err)
	}
	cases := []struct {
		name string
		f    store.ProposalFilter
		want []int64
	}{
		{"every proposal, newest first", store.ProposalFilter{}, []int64{ids[3], ids[2], ids[1], ids[0]}},
		{"one pool", store.ProposalFilter{Pool: pool}, []int64{ids[3], ids[2], ids[0]}},
		{"open ones of a pool", store.ProposalFilter{Pool: pool, OpenOnly: true}, []int64{ids[3], ids[0]}},
		{"limited to the newest two", store.ProposalFilter{Limit: 2}, []int64{ids[3], ids[2]}},
		{"a pool without proposals", store.ProposalFilter{Pool: "none"}, nil},
	}
	for _, c := range cases {
		got, err := s.ListProposals(t.Context(), c.f)
		if err != nil {
			t.Fatalf("%s: ListProposals: %v", c.name, err)
		}
		var gotIDs []int64
		for _, p := range got {
			gotIDs = append(gotIDs, p.GetId())
		}
		if fmt.Sprint(gotIDs) != fmt.Sprint(c.want) {
			t.Errorf("%s: ids %v, want %v", c.name, gotIDs, c.want)
		}
	}
}

func testProposalMissing(t *testing.T, s store.Store) {
	_, err := s.GetProposal(t.Context(), 42)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.RejectProposal(t.Context(), 42, decision, store.ProposalLimits{})
	wantErr(t, err, store.ErrNotFound)
	_, _, err = s.ApproveProposal(t.Context(), 42, Revision(pool, "x"), decision, store.ProposalLimits{})
	wantErr(t, err, store.ErrNotFound)
	if _, err := s.Head(t.Context(), pool); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("approving a missing proposal stored a revision (Head: %v)", err)
	}
}

func testProposalBound(t *testing.T, s store.Store) {
	lim := store.ProposalLimits{MaxOpen: 2}
	var ids []int64
	for i := range 2 {
		p, err := s.CreateProposal(t.Context(), Proposal(pool, 0, fmt.Sprint(i)), lim)
		if err != nil {
			t.Fatalf("CreateProposal %d: %v", i, err)
		}
		ids = append(ids, p.GetId())
	}
	_, err := s.CreateProposal(t.Context(), Proposal(pool, 0, "one too many"), lim)
	wantErr(t, err, store.ErrTooManyProposals)
	if _, err := s.CreateProposal(t.Context(), Proposal("edge", 0, "another pool"), lim); err != nil {
		t.Fatalf("CreateProposal in another pool: %v", err)
	}
	if _, err := s.RejectProposal(t.Context(), ids[0], decision, lim); err != nil {
		t.Fatalf("RejectProposal: %v", err)
	}
	if _, err := s.CreateProposal(t.Context(), Proposal(pool, 0, "room again"), lim); err != nil {
		t.Fatalf("CreateProposal after one was rejected: %v", err)
	}
}

func testProposalReject(t *testing.T, s store.Store) {
	p := mustPropose(t, s, Proposal(pool, 0, "no"))
	got, err := s.RejectProposal(t.Context(), p.GetId(), decision, store.ProposalLimits{})
	if err != nil {
		t.Fatalf("RejectProposal: %v", err)
	}
	want := proto.Clone(p).(*wsfleetv1.Proposal)
	want.State = wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED
	want.DecidedBy, want.DecisionMessage, want.DecideTime = decision.By, decision.Message, timestamppb.New(decision.Time)
	wantEqual(t, "rejected proposal", got, want)
	read, err := s.GetProposal(t.Context(), p.GetId())
	if err != nil {
		t.Fatalf("GetProposal: %v", err)
	}
	wantEqual(t, "rejected proposal read back", read, want)

	_, err = s.RejectProposal(t.Context(), p.GetId(), decision, store.ProposalLimits{})
	wantClosed(t, err, p.GetId(), wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED)
	_, _, err = s.ApproveProposal(t.Context(), p.GetId(), Revision(pool, "x"), decision, store.ProposalLimits{})
	wantClosed(t, err, p.GetId(), wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED)
	if _, err := s.Head(t.Context(), pool); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("approving a rejected proposal stored a revision (Head: %v)", err)
	}
}

func wantClosed(t *testing.T, err error, id int64, state wsfleetv1.ProposalState) {
	t.Helper()
	var se *store.ProposalStateError
	if !errors.Is(err, store.ErrProposalClosed) || !errors.As(err, &se) {
		t.Fatalf("error = %v, want a *store.ProposalStateError", err)
	}
	if se.ID != id || se.State != state {
		t.Fatalf("ProposalStateError = %+v, want id %d state %v", *se, id, state)
	}
}

func testProposalApprove(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)
	w := startWatch(t, s)
	w.until(map[string]*wsfleetv1.PolicyRevision{pool: mustHead(t, s, pool)}, 0)
	p := mustPropose(t, s, Proposal(pool, 1, "please"))
	in := Revision(pool, "please")
	in.ProposalId, in.ApprovedBy = p.GetId(), decision.By
	prop, rev, err := s.ApproveProposal(t.Context(), p.GetId(), in, decision, store.ProposalLimits{})
	if err != nil {
		t.Fatalf("ApproveProposal: %v", err)
	}
	wantRev := withRevision(s, in, 2)
	wantEqual(t, "approved revision", rev, wantRev)
	wantEqual(t, "head after approval", mustHead(t, s, pool), wantRev)
	want := proto.Clone(p).(*wsfleetv1.Proposal)
	want.State, want.Revision = wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED, 2
	want.DecidedBy, want.DecisionMessage, want.DecideTime = decision.By, decision.Message, timestamppb.New(decision.Time)
	wantEqual(t, "approved proposal", prop, want)
	read, err := s.GetProposal(t.Context(), p.GetId())
	if err != nil {
		t.Fatalf("GetProposal: %v", err)
	}
	wantEqual(t, "approved proposal read back", read, want)
	w.until(map[string]*wsfleetv1.PolicyRevision{pool: wantRev}, 0)

	_, _, err = s.ApproveProposal(t.Context(), p.GetId(), Revision(pool, "again"), decision, store.ProposalLimits{})
	wantClosed(t, err, p.GetId(), wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED)
	if head := mustHead(t, s, pool).GetRevision(); head != 2 {
		t.Fatalf("head is %d after a second approval, want 2", head)
	}
}

func testProposalApproveStale(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)
	p := mustPropose(t, s, Proposal(pool, 1, "against 1"))
	if _, err := s.Append(t.Context(), Revision(pool, "meanwhile"), 1); err != nil {
		t.Fatalf("Append: %v", err)
	}
	_, _, err := s.ApproveProposal(t.Context(), p.GetId(), Revision(pool, "against 1"), decision, store.ProposalLimits{})
	wantConflict(t, err, pool, 1, 2)
	if head := mustHead(t, s, pool); head.GetRevision() != 2 || head.GetMessage() != "meanwhile" {
		t.Fatalf("head is %d %q after a stale approval, want 2 \"meanwhile\"", head.GetRevision(), head.GetMessage())
	}
	got, err := s.GetProposal(t.Context(), p.GetId())
	if err != nil {
		t.Fatalf("GetProposal: %v", err)
	}
	wantEqual(t, "proposal after a stale approval", got, p)
}

func testProposalApproveRace(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)
	p := mustPropose(t, s, Proposal(pool, 1, "race"))
	const racers = 4
	var (
		wg   sync.WaitGroup
		errs = make([]error, racers)
	)
	for i := range racers {
		wg.Go(func() {
			_, _, errs[i] = s.ApproveProposal(t.Context(), p.GetId(), Revision(pool, fmt.Sprint("racer ", i)), decision, store.ProposalLimits{})
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrProposalClosed), errors.Is(err, store.ErrConflict):
		default:
			t.Errorf("racer %d: %v, want success, ErrProposalClosed or ErrConflict", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d approvals won, want exactly 1", wins)
	}
	if head := mustHead(t, s, pool).GetRevision(); head != 2 {
		t.Fatalf("head is %d, want 2", head)
	}
}

func testProposalPrune(t *testing.T, s store.Store) {
	lim := store.ProposalLimits{KeepClosed: 2}
	var ids []int64
	for i := range 4 {
		ids = append(ids, mustPropose(t, s, Proposal(pool, 0, fmt.Sprint(i))).GetId())
	}
	open := mustPropose(t, s, Proposal(pool, 0, "stays open"))
	for _, id := range ids {
		if _, err := s.RejectProposal(t.Context(), id, decision, lim); err != nil {
			t.Fatalf("RejectProposal %d: %v", id, err)
		}
	}
	for _, id := range ids[:2] {
		_, err := s.GetProposal(t.Context(), id)
		wantErr(t, err, store.ErrNotFound)
	}
	for _, id := range append(ids[2:], open.GetId()) {
		if _, err := s.GetProposal(t.Context(), id); err != nil {
			t.Fatalf("GetProposal %d (kept): %v", id, err)
		}
	}
	next := mustPropose(t, s, Proposal(pool, 0, "after pruning"))
	if next.GetId() <= open.GetId() {
		t.Fatalf("id after pruning is %d, want above %d: ids are never reused", next.GetId(), open.GetId())
	}
}

func testProposalClosed(t *testing.T, s store.Store) {
	p := mustPropose(t, s, Proposal(pool, 0, "before close"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateProposal", func() error {
			_, err := s.CreateProposal(ctx, Proposal(pool, 0, "late"), store.ProposalLimits{})
			return err
		}},
		{"GetProposal", func() error { _, err := s.GetProposal(ctx, p.GetId()); return err }},
		{"ListProposals", func() error { _, err := s.ListProposals(ctx, store.ProposalFilter{}); return err }},
		{"RejectProposal", func() error { _, err := s.RejectProposal(ctx, p.GetId(), decision, store.ProposalLimits{}); return err }},
		{"ApproveProposal", func() error {
			_, _, err := s.ApproveProposal(ctx, p.GetId(), Revision(pool, "late"), decision, store.ProposalLimits{})
			return err
		}},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", c.name, err)
		}
	}
}

// DamagedProposal checks that a damaged proposal record stays local to
// itself (see store.Proposals). s holds the intact proposal 1 of pool
// "default" and one damaged record planted by the caller: damagedID is the
// id its key names (0 when its key names none), corrupt the store's
// ErrCorrupt, and want what that error must say. Afterwards the damaged
// record is still in the store (the caller may check it byte for byte).
func DamagedProposal(t *testing.T, s store.Store, damagedID int64, corrupt error, want ...string) {
	t.Helper()
	ctx := t.Context()
	keep := store.ProposalLimits{KeepClosed: 1} // every decision prunes
	ids := func(f store.ProposalFilter) []int64 {
		t.Helper()
		got, err := s.ListProposals(ctx, f)
		if err != nil {
			t.Fatalf("ListProposals(%+v) with a damaged record: %v", f, err)
		}
		var out []int64
		for _, p := range got {
			out = append(out, p.GetId())
		}
		return out
	}
	if got := ids(store.ProposalFilter{}); fmt.Sprint(got) != "[1]" {
		t.Fatalf("ListProposals with a damaged record: ids %v, want [1]", got)
	}
	next, err := s.CreateProposal(ctx, Proposal(pool, 0, "after the damage"), store.ProposalLimits{MaxOpen: 2})
	if err != nil {
		t.Fatalf("CreateProposal with a damaged record: %v", err)
	}
	if next.GetId() <= 1 || next.GetId() == damagedID {
		t.Fatalf("CreateProposal gave id %d, want above 1 and not the damaged %d", next.GetId(), damagedID)
	}
	if got := ids(store.ProposalFilter{Pool: pool, OpenOnly: true}); fmt.Sprint(got) != fmt.Sprint([]int64{next.GetId(), 1}) {
		t.Fatalf("open proposals: ids %v, want [%d 1]", got, next.GetId())
	}
	if _, err := s.RejectProposal(ctx, 1, decision, keep); err != nil {
		t.Fatalf("RejectProposal of the intact proposal 1: %v", err)
	}
	if _, _, err := s.ApproveProposal(ctx, next.GetId(), Revision(pool, "after the damage"), decision, keep); err != nil {
		t.Fatalf("ApproveProposal of proposal %d: %v", next.GetId(), err)
	}
	// Pruning (KeepClosed 1) deleted proposal 1, not the damaged record.
	if _, err := s.GetProposal(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetProposal(1) after pruning: %v, want ErrNotFound", err)
	}
	if damagedID > 0 {
		calls := []struct {
			name string
			call func() error
		}{
			{"GetProposal", func() error { _, err := s.GetProposal(ctx, damagedID); return err }},
			{"RejectProposal", func() error { _, err := s.RejectProposal(ctx, damagedID, decision, keep); return err }},
			{"ApproveProposal", func() error {
				_, _, err := s.ApproveProposal(ctx, damagedID, Revision(pool, "damaged"), decision, keep)
				return err
			}},
		}
		for _, c := range calls {
			err := c.call()
			if !errors.Is(err, corrupt) {
				t.Errorf("%s of the damaged proposal %d: error = %v, want ErrCorrupt", c.name, damagedID, err)
				continue
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s of the damaged proposal %d: error %q does not mention %q", c.name, damagedID, err, w)
				}
			}
		}
		if head := mustHead(t, s, pool).GetRevision(); head != 1 {
			t.Fatalf("head is %d after approving the damaged proposal, want 1 (its approval must store nothing)", head)
		}
	}
	if n := s.Stats().DamagedProposals; n != 1 {
		t.Fatalf("Stats().DamagedProposals = %d after several reads of one damaged record, want 1", n)
	}
}

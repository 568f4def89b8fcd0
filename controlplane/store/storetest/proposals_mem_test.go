package storetest_test

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// memProposals is memStore's proposals, oldest first, under memStore.mu.
type memProposals struct {
	seq  int64
	list []*wsfleetv1.Proposal
}

func cloneProposal(p *wsfleetv1.Proposal) *wsfleetv1.Proposal {
	return proto.Clone(p).(*wsfleetv1.Proposal)
}

func (s *memStore) CreateProposal(ctx context.Context, p *wsfleetv1.Proposal, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	lim = lim.WithDefaults()
	open := 0
	for _, q := range s.props.list {
		if q.GetPool() == p.GetPool() && q.GetState() == wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			open++
		}
	}
	if open >= lim.MaxOpen {
		return nil, fmt.Errorf("%w: pool %q", store.ErrTooManyProposals, p.GetPool())
	}
	s.props.seq++
	out := cloneProposal(p)
	out.Id, out.State, out.Stale = s.props.seq, wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN, false
	s.props.list = append(s.props.list, out)
	return cloneProposal(out), nil
}

func (s *memStore) find(id int64) (*wsfleetv1.Proposal, error) {
	for _, q := range s.props.list {
		if q.GetId() == id {
			return q, nil
		}
	}
	return nil, fmt.Errorf("%w: proposal %d", store.ErrNotFound, id)
}

func (s *memStore) GetProposal(ctx context.Context, id int64) (*wsfleetv1.Proposal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	p, err := s.find(id)
	if err != nil {
		return nil, err
	}
	return cloneProposal(p), nil
}

func (s *memStore) ListProposals(ctx context.Context, f store.ProposalFilter) ([]*wsfleetv1.Proposal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	limit := f.Max()
	var out []*wsfleetv1.Proposal
	for _, q := range slices.Backward(s.props.list) {
		if len(out) >= limit {
			break
		}
		if f.Match(q) {
			out = append(out, cloneProposal(q))
		}
	}
	return out, nil
}

func (s *memStore) decide(id int64, state wsfleetv1.ProposalState, d store.Decision, revision int64, lim store.ProposalLimits) *wsfleetv1.Proposal {
	p, _ := s.find(id)
	p.State, p.DecidedBy, p.DecisionMessage, p.DecideTime, p.Revision = state, d.By, d.Message, timestamppb.New(d.Time), revision
	closed := 0
	for _, q := range s.props.list {
		if q.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			closed++
		}
	}
	drop := closed - lim.WithDefaults().KeepClosed
	s.props.list = slices.DeleteFunc(s.props.list, func(q *wsfleetv1.Proposal) bool {
		if drop > 0 && q.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			drop--
			return true
		}
		return false
	})
	return cloneProposal(p)
}

func (s *memStore) openProposal(id int64) (*wsfleetv1.Proposal, error) {
	p, err := s.find(id)
	if err != nil {
		return nil, err
	}
	if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
		return nil, &store.ProposalStateError{ID: id, State: p.GetState()}
	}
	return p, nil
}

func (s *memStore) RejectProposal(ctx context.Context, id int64, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if _, err := s.openProposal(id); err != nil {
		return nil, err
	}
	return s.decide(id, wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED, d, 0, lim), nil
}

func (s *memStore) ApproveProposal(ctx context.Context, id int64, rev *wsfleetv1.PolicyRevision, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, *wsfleetv1.PolicyRevision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	p, err := s.openProposal(id)
	if err != nil {
		return nil, nil, err
	}
	stored, err := s.appendLocked(rev, p.GetBaseRevision())
	if err != nil {
		return nil, nil, err
	}
	return s.decide(id, wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED, d, stored.GetRevision(), lim), stored, nil
}

// Stats implements store.Store: memStore holds no encoded records, so
// nothing in it can be damaged.
func (s *memStore) Stats() store.Stats { return store.Stats{} }

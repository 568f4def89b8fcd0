package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// proposalsBucket holds proposals by id (8-byte big endian, so cursor order
// is id order); its bbolt sequence is the last id given. It is created by
// the first proposal: a file without it has none, which needs no schema
// change for files written before proposals existed.
var proposalsBucket = []byte("proposals")

// CreateProposal implements store.Proposals.
func (s *Store) CreateProposal(ctx context.Context, p *wsfleetv1.Proposal, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if p == nil || p.GetPool() == "" {
		return nil, fmt.Errorf("%w: a proposal needs a pool", ErrInvalidRevision)
	}
	lim = lim.WithDefaults()
	out := proto.Clone(p).(*wsfleetv1.Proposal)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(proposalsBucket)
		if err != nil {
			return fmt.Errorf("create proposals bucket: %w", err)
		}
		all, err := s.proposalsTx(b)
		if err != nil {
			return err
		}
		open := 0
		for _, q := range all {
			if q.GetPool() == out.GetPool() && q.GetState() == wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
				open++
			}
		}
		if open >= lim.MaxOpen {
			return fmt.Errorf("%w: pool %q has %d open proposals, the most allowed; approve or reject some first", store.ErrTooManyProposals, out.GetPool(), open)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		seq, err := b.NextSequence()
		// A damaged record can sit at an id the sequence has not given
		// yet: it is kept for inspection, never written over. Bounded by
		// the records in the bucket.
		for err == nil && b.Get(proposalKey(int64(seq))) != nil {
			seq, err = b.NextSequence()
		}
		if err != nil {
			return fmt.Errorf("next proposal id: %w", err)
		}
		out.Id = int64(seq)
		out.State = wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN
		out.Stale = false
		b.FillPercent = 1.0 // ids only grow
		return putProposal(b, out)
	})
	if err != nil {
		return nil, s.wrap("create proposal", err)
	}
	return out, nil
}

// GetProposal implements store.Proposals.
func (s *Store) GetProposal(ctx context.Context, id int64) (*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	var out *wsfleetv1.Proposal
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = getProposal(tx.Bucket(proposalsBucket), id)
		return err
	})
	return out, s.wrap("get proposal", err)
}

// ListProposals implements store.Proposals.
func (s *Store) ListProposals(ctx context.Context, f store.ProposalFilter) ([]*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	limit := f.Max()
	var out []*wsfleetv1.Proposal
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(proposalsBucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			p, err := decodeProposal(k, v)
			if err != nil {
				s.damage.Skip("proposal", damageKey(k), err)
				continue
			}
			if !f.Match(p) {
				continue
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("list proposals", err)
	}
	return out, nil
}

// RejectProposal implements store.Proposals.
func (s *Store) RejectProposal(ctx context.Context, id int64, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	var out *wsfleetv1.Proposal
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		out, err = s.decideTx(ctx, tx, id, wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED, d, 0, lim)
		return err
	})
	if err != nil {
		return nil, s.wrap("reject proposal", err)
	}
	return out, nil
}

// ApproveProposal implements store.Proposals: the revision and the
// proposal's new state are written in one bbolt transaction.
func (s *Store) ApproveProposal(ctx context.Context, id int64, rev *wsfleetv1.PolicyRevision, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, *wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	if rev == nil || rev.GetPool() == "" {
		return nil, nil, fmt.Errorf("%w: nil or without a pool", ErrInvalidRevision)
	}
	out := proto.Clone(rev).(*wsfleetv1.PolicyRevision)
	var prop *wsfleetv1.Proposal
	err := s.db.Update(func(tx *bolt.Tx) error {
		p, err := getProposal(tx.Bucket(proposalsBucket), id)
		if err != nil {
			return err
		}
		if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			return &store.ProposalStateError{ID: id, State: p.GetState()}
		}
		if p.GetPool() != out.GetPool() {
			return fmt.Errorf("%w: proposal %d is for pool %q, the revision for %q", ErrInvalidRevision, id, p.GetPool(), out.GetPool())
		}
		if err := s.appendTx(ctx, tx, out, rev.GetRevision(), p.GetBaseRevision()); err != nil {
			return err
		}
		prop, err = s.decideTx(ctx, tx, id, wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED, d, out.GetRevision(), lim)
		return err
	})
	if err != nil {
		return nil, nil, s.wrap("approve proposal", err)
	}
	s.notify(out)
	return prop, out, nil
}

// decideTx moves an open proposal to state, then prunes the oldest decided
// proposals beyond lim.KeepClosed.
func (s *Store) decideTx(ctx context.Context, tx *bolt.Tx, id int64, state wsfleetv1.ProposalState, d store.Decision, revision int64, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	b := tx.Bucket(proposalsBucket)
	p, err := getProposal(b, id)
	if err != nil {
		return nil, err
	}
	if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
		return nil, &store.ProposalStateError{ID: id, State: p.GetState()}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.State = state
	p.DecidedBy = d.By
	p.DecisionMessage = d.Message
	p.DecideTime = timestamppb.New(d.Time)
	p.Revision = revision
	if err := putProposal(b, p); err != nil {
		return nil, err
	}
	return p, s.pruneTx(b, lim.WithDefaults().KeepClosed)
}

// pruneTx deletes the oldest decided proposals beyond keep. Deciding is
// rare (an admin's action), so a walk over every proposal is cheap. A
// damaged record is neither counted nor deleted: it is kept for an
// operator to inspect.
func (s *Store) pruneTx(b *bolt.Bucket, keep int) error {
	all, err := s.proposalsTx(b)
	if err != nil {
		return err
	}
	var closed []int64 // oldest first
	for _, p := range all {
		if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			closed = append(closed, p.GetId())
		}
	}
	for _, id := range closed[:max(0, len(closed)-keep)] {
		if err := b.Delete(proposalKey(id)); err != nil {
			return fmt.Errorf("prune proposal %d: %w", id, err)
		}
	}
	return nil
}

// proposalsTx decodes every proposal in b, oldest first (key order),
// skipping (and reporting) damaged records.
func (s *Store) proposalsTx(b *bolt.Bucket) ([]*wsfleetv1.Proposal, error) {
	var out []*wsfleetv1.Proposal
	err := b.ForEach(func(k, v []byte) error {
		p, err := decodeProposal(k, v)
		if err != nil {
			s.damage.Skip("proposal", damageKey(k), err)
			return nil
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

func getProposal(b *bolt.Bucket, id int64) (*wsfleetv1.Proposal, error) {
	var v []byte
	if b != nil && id > 0 {
		v = b.Get(proposalKey(id))
	}
	if v == nil {
		return nil, fmt.Errorf("%w: proposal %d", store.ErrNotFound, id)
	}
	return decodeProposal(proposalKey(id), v)
}

func putProposal(b *bolt.Bucket, p *wsfleetv1.Proposal) error {
	v, err := marshalOptions.Marshal(p)
	if err != nil {
		return fmt.Errorf("marshal proposal %d: %w", p.GetId(), err)
	}
	return b.Put(proposalKey(p.GetId()), v)
}

// damageKey names a proposals key in the log: its id when it is one,
// else its bytes in hex (clipped).
func damageKey(k []byte) string {
	if len(k) == 8 {
		return fmt.Sprintf("proposals/%d", binary.BigEndian.Uint64(k))
	}
	const max = 32
	if len(k) > max {
		return fmt.Sprintf("proposals/%x…", k[:max])
	}
	return fmt.Sprintf("proposals/%x", k)
}

func proposalKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(id))
}

// decodeProposal unmarshals a stored proposal and checks it is the one its
// key says, so damage is reported as ErrCorrupt, never served or panicked on.
func decodeProposal(k, v []byte) (*wsfleetv1.Proposal, error) {
	if len(k) != 8 {
		return nil, fmt.Errorf("%w: proposals have a %d-byte key %x, want an 8-byte id", ErrCorrupt, len(k), k)
	}
	id := int64(binary.BigEndian.Uint64(k))
	if v == nil {
		return nil, fmt.Errorf("%w: proposal %d is a bucket, not a value", ErrCorrupt, id)
	}
	p := &wsfleetv1.Proposal{}
	if err := proto.Unmarshal(v, p); err != nil {
		return nil, fmt.Errorf("%w: proposal %d: %w", ErrCorrupt, id, err)
	}
	if p.GetId() != id || id < 1 || p.GetPool() == "" {
		return nil, fmt.Errorf("%w: proposal %d holds proposal %d of pool %q", ErrCorrupt, id, p.GetId(), p.GetPool())
	}
	return p, nil
}

package store

import (
	"context"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Defaults of ProposalLimits.
const (
	// DefaultMaxOpenProposals bounds the open proposals of one pool: an
	// admin who proposes in a loop fills the store no further.
	DefaultMaxOpenProposals = 100
	// DefaultKeepClosedProposals is how many decided (approved or
	// rejected) proposals are kept, store-wide; older ones are deleted
	// when a proposal is decided. The revision an approval made keeps its
	// proposal id, approver and message in the history forever.
	DefaultKeepClosedProposals = 1000
	// DefaultListProposals is ListProposals' limit when none is given.
	DefaultListProposals = 50
)

// ProposalLimits bound what proposals may hold in a store.
type ProposalLimits struct {
	// MaxOpen is the most open proposals one pool may have;
	// CreateProposal beyond it fails with ErrTooManyProposals. <= 0 means
	// DefaultMaxOpenProposals.
	MaxOpen int
	// KeepClosed is how many decided proposals are kept; deciding one
	// deletes the oldest decided ones beyond it. <= 0 means
	// DefaultKeepClosedProposals.
	KeepClosed int
}

// WithDefaults fills zero fields.
func (l ProposalLimits) WithDefaults() ProposalLimits {
	if l.MaxOpen <= 0 {
		l.MaxOpen = DefaultMaxOpenProposals
	}
	if l.KeepClosed <= 0 {
		l.KeepClosed = DefaultKeepClosedProposals
	}
	return l
}

// ProposalFilter selects proposals for ListProposals.
type ProposalFilter struct {
	// Pool: only this pool's; empty means every pool.
	Pool string
	// OpenOnly: only open ones.
	OpenOnly bool
	// Limit: at most this many, newest first; <= 0 means
	// DefaultListProposals.
	Limit int
}

// Max is f.Limit, or DefaultListProposals when none is given.
func (f ProposalFilter) Max() int {
	if f.Limit <= 0 {
		return DefaultListProposals
	}
	return f.Limit
}

// Match reports whether f selects p.
func (f ProposalFilter) Match(p *wsfleetv1.Proposal) bool {
	return (f.Pool == "" || p.GetPool() == f.Pool) &&
		(!f.OpenOnly || p.GetState() == wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN)
}

// Decision is who decided a proposal, when and why.
type Decision struct {
	By      string
	Message string
	Time    time.Time
}

// Proposals keeps policy changes waiting for a second admin. A proposal's
// id is store-wide and only increases (never reused, also after pruning);
// its state moves once, from OPEN to APPROVED or REJECTED, and only
// through a compare-and-set on that state, so of two admins deciding the
// same proposal at once exactly one wins. Proposal.stale is not stored:
// the caller computes it from the pool's head.
//
// Damage stays local to the record: a record that does not decode (or is
// not the proposal its key names) is skipped by listing, by counting a
// pool's open proposals and by pruning (it is kept, never deleted, for an
// operator to inspect), logged once and counted in Stats.DamagedProposals;
// GetProposal, RejectProposal and ApproveProposal of its id fail with the
// store's ErrCorrupt naming it. Every other proposal works as usual.
type Proposals interface {
	// CreateProposal stores p as a new OPEN proposal and returns it with
	// its id and state set (the rest is stored as given). It fails with
	// ErrTooManyProposals when p's pool already has lim.MaxOpen open ones.
	CreateProposal(ctx context.Context, p *wsfleetv1.Proposal, lim ProposalLimits) (*wsfleetv1.Proposal, error)

	// GetProposal returns one proposal, or an error wrapping ErrNotFound.
	GetProposal(ctx context.Context, id int64) (*wsfleetv1.Proposal, error)

	// ListProposals returns the proposals f selects, newest (highest id)
	// first.
	ListProposals(ctx context.Context, f ProposalFilter) ([]*wsfleetv1.Proposal, error)

	// RejectProposal marks an OPEN proposal REJECTED with d and returns
	// it. A proposal that is not open fails with a *ProposalStateError
	// (errors.Is ErrProposalClosed); a missing one wraps ErrNotFound.
	RejectProposal(ctx context.Context, id int64, d Decision, lim ProposalLimits) (*wsfleetv1.Proposal, error)

	// ApproveProposal appends rev to the proposal's pool and marks the
	// proposal APPROVED with d and the new revision's number, in one
	// transaction: either both happen or neither. rev.Pool must be the
	// proposal's pool. The append is a compare-and-set on the proposal's
	// base_revision, as Append with expected = base_revision (a
	// *ConflictError when the head moved); the proposal must be OPEN
	// (else a *ProposalStateError). Returns the updated proposal and the
	// stored revision, which WatchHeads delivers like any other.
	ApproveProposal(ctx context.Context, id int64, rev *wsfleetv1.PolicyRevision, d Decision, lim ProposalLimits) (*wsfleetv1.Proposal, *wsfleetv1.PolicyRevision, error)
}

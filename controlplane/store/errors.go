package store

import (
	"errors"
	"fmt"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

var (
	// ErrNotFound: the pool or revision does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the pool's head is not the expected revision.
	ErrConflict = errors.New("store: revision conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrOutcomeUnknown: a write failed without an answer and the store
	// could not tell afterwards whether it was committed (a distributed
	// store whose connection broke mid-commit). The caller must read
	// before it retries.
	ErrOutcomeUnknown = errors.New("store: the write's outcome is unknown")
)

// ConflictError reports a failed compare-and-set on a pool's head revision.
type ConflictError struct {
	Pool     string
	Expected int64
	Current  int64 // 0 when the pool has no revision
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: pool %q is at revision %d, expected %d", e.Pool, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

var (
	// ErrTooManyProposals: the pool has as many open proposals as the
	// limit allows.
	ErrTooManyProposals = errors.New("store: too many open proposals")
	// ErrProposalClosed: the proposal was already approved or rejected.
	ErrProposalClosed = errors.New("store: proposal is not open")
)

// ProposalStateError reports a decision on a proposal that is not open.
type ProposalStateError struct {
	ID    int64
	State wsfleetv1.ProposalState
}

func (e *ProposalStateError) Error() string {
	return fmt.Sprintf("store: proposal %d is %s, not open", e.ID, StateName(e.State))
}

// StateName is a proposal state as people say it: "open", "approved",
// "rejected".
func StateName(st wsfleetv1.ProposalState) string {
	switch st {
	case wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN:
		return "open"
	case wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED:
		return "approved"
	case wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED:
		return "rejected"
	}
	return fmt.Sprintf("in state %d", st)
}

// Is makes errors.Is(err, ErrProposalClosed) hold.
func (e *ProposalStateError) Is(target error) bool { return target == ErrProposalClosed }

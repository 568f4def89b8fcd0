package store

import (
	"errors"
	"fmt"
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

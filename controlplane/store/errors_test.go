package store_test

import (
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/controlplane/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConflictError(t *testing.T) {
	conflict := &store.ConflictError{Pool: "edge", Expected: 3, Current: 5}

	tests := []struct {
		name      string
		err       error
		isConfl   bool
		isMissing bool
	}{
		{name: "a conflict is ErrConflict and not ErrNotFound", err: conflict, isConfl: true},
		{name: "a wrapped conflict is still ErrConflict", err: fmt.Errorf("apply: %w", conflict), isConfl: true},
		{name: "ErrNotFound is not a conflict", err: store.ErrNotFound, isMissing: true},
		{name: "ErrClosed is neither", err: store.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, store.ErrConflict); got != tt.isConfl {
				t.Errorf("errors.Is(%v, ErrConflict) = %t, want %t", tt.err, got, tt.isConfl)
			}
			if got := errors.Is(tt.err, store.ErrNotFound); got != tt.isMissing {
				t.Errorf("errors.Is(%v, ErrNotFound) = %t, want %t", tt.err, got, tt.isMissing)
			}
		})
	}
}

func TestConflictErrorCarriesTheHead(t *testing.T) {
	err := fmt.Errorf("apply: %w", &store.ConflictError{Pool: "edge", Expected: 3, Current: 5})

	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("errors.As(%v) found no *ConflictError", err)
	}
	if ce.Pool != "edge" || ce.Expected != 3 || ce.Current != 5 {
		t.Errorf("ConflictError = %+v, want pool edge, expected 3, current 5", *ce)
	}
	const want = `store: pool "edge" is at revision 5, expected 3`
	if got := ce.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

// crashChildEnv, when set to a database path, turns the test binary into the
// writer process that TestKilledWriterLosesNoAcknowledgedRevision kills.
const crashChildEnv = "WSFLEET_BOLTSTORE_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(runCrashChild(path))
	}
	goleak.VerifyTestMain(m)
}

const crashPool = "default"

// runCrashChild appends to crashPool until it is killed, printing each
// revision number only after Append has returned it: every number the
// parent reads is an acknowledged revision.
func runCrashChild(path string) int {
	s, err := boltstore.Open(boltstore.Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	var head int64
	switch r, err := s.Head(ctx, crashPool); {
	case err == nil:
		head = r.GetRevision()
	case !errors.Is(err, store.ErrNotFound):
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		r, err := s.Append(ctx, crashRevision(head+1), head)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		head = r.GetRevision()
		// os.Stdout is unbuffered: the line is in the pipe when this returns.
		if _, err := fmt.Println(head); err != nil {
			return 1
		}
	}
}

// crashRevision is the content the crash child stores as revision n. Its
// origin list makes the value larger than a 4 KiB page, so a torn write
// would have to span pages.
func crashRevision(n int64) *wsfleetv1.PolicyRevision {
	r := storetest.Revision(crashPool, fmt.Sprintf("crash test revision %d", n))
	for i := range 200 {
		r.Policy.Origins.Allow = append(r.Policy.Origins.Allow, fmt.Sprintf("https://tenant-%03d.example.com", i))
	}
	return r
}

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "policy.db")
}

// openStore opens path and closes it at the end of the test; the cleanup
// accepts a store the test already closed.
func openStore(t testing.TB, path string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(boltstore.Config{Path: path})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

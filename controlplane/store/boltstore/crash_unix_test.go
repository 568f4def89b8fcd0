//go:build unix

package boltstore_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// TestKilledWriterLosesNoAcknowledgedRevision kills a writer process with
// SIGKILL in the middle of a stream of appends, several times over the same
// file, and checks after each kill that every revision the writer
// acknowledged is there, numbering is gap-free, and nothing half-written is
// visible.
func TestKilledWriterLosesNoAcknowledgedRevision(t *testing.T) {
	path := dbPath(t)
	var acked []int64
	for round := 1; round <= 3; round++ {
		got := appendUntilKilled(t, path, 40)
		t.Logf("round %d: writer acknowledged revisions %d..%d before SIGKILL", round, got[0], got[len(got)-1])
		acked = append(acked, got...)
		checkAfterCrash(t, path, acked)
	}
}

// appendUntilKilled runs the crash child on path, reads the first lines
// revision numbers it acknowledges, then SIGKILLs it while it is still
// appending.
func appendUntilKilled(t *testing.T, path string, lines int) []int64 {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	var acked []int64
	sc := bufio.NewScanner(stdout)
	for len(acked) < lines && sc.Scan() {
		n, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("child printed %q: %v", sc.Text(), err)
		}
		if len(acked) > 0 && n != acked[len(acked)-1]+1 {
			t.Fatalf("child acknowledged %d after %d", n, acked[len(acked)-1])
		}
		acked = append(acked, n)
	}
	if len(acked) < lines {
		t.Fatalf("child stopped after %d acknowledged revisions (scan error %v); stderr:\n%s", len(acked), sc.Err(), stderr.String())
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waited = true
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("child exit: %v, want death by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want death by SIGKILL; stderr:\n%s", exitErr, stderr.String())
	}
	return acked
}

func checkAfterCrash(t *testing.T, path string, acked []int64) {
	t.Helper()

	// bbolt's own consistency check: no page of a torn transaction is
	// reachable from the meta page it recovered to.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("bolt.Open after SIGKILL: %v", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if cerr := db.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("bbolt consistency check after SIGKILL: %v", err)
	}

	s, err := boltstore.Open(boltstore.Config{Path: path})
	if err != nil {
		t.Fatalf("Open after SIGKILL: %v", err)
	}
	// Closed before returning: the next round's child needs the lock.
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	head, err := s.Head(t.Context(), crashPool)
	if err != nil {
		t.Fatalf("Head after SIGKILL: %v", err)
	}
	h := head.GetRevision()
	if last := acked[len(acked)-1]; h < last {
		t.Fatalf("head is %d after SIGKILL, but revision %d was acknowledged", h, last)
	}

	// Every revision from head down to 1, each decoded and holding exactly
	// what the child wrote under that number.
	hist, err := s.History(t.Context(), crashPool, 0, int(h)+1)
	if err != nil {
		t.Fatalf("History after SIGKILL: %v", err)
	}
	if int64(len(hist)) != h {
		t.Fatalf("history has %d revisions, head is %d: numbering has a gap", len(hist), h)
	}
	for i, r := range hist {
		n := h - int64(i)
		want := crashRevision(n)
		want.Revision = n
		want.StoreId = s.ID()
		if !proto.Equal(r, want) {
			t.Fatalf("revision %d after SIGKILL holds %q (revision %d), want the child's revision %d", n, r.GetMessage(), r.GetRevision(), n)
		}
	}

	for _, n := range acked {
		if _, err := s.Get(t.Context(), crashPool, n); err != nil {
			t.Fatalf("acknowledged revision %d after SIGKILL: %v", n, err)
		}
	}
}

package boltstore_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, dbPath(t))
	})
}

func TestDataSurvivesReopen(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	var want []*wsfleetv1.PolicyRevision
	for _, pool := range []string{"default", "edge", "default"} {
		r, err := s.Append(t.Context(), storetest.Revision(pool, "before close"), store.AnyRevision)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		want = append(want, r)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, path)
	for _, w := range want {
		got, err := s.Get(t.Context(), w.GetPool(), w.GetRevision())
		if err != nil {
			t.Fatalf("Get(%s, %d) after reopen: %v", w.GetPool(), w.GetRevision(), err)
		}
		if !proto.Equal(got, w) {
			t.Fatalf("Get(%s, %d) after reopen = %v, want %v", w.GetPool(), w.GetRevision(), got, w)
		}
	}
	r, err := s.Append(t.Context(), storetest.Revision("default", "after reopen"), 2)
	if err != nil {
		t.Fatalf("Append after reopen with expected 2: %v", err)
	}
	if r.GetRevision() != 3 {
		t.Fatalf("Append after reopen gave revision %d, want 3", r.GetRevision())
	}
}

func TestOpenLockedFileFails(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
	}{
		{"an explicit timeout gives up with the lock error", 200 * time.Millisecond},
		{"a zero timeout gives up after the default with the lock error", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			openStore(t, path)
			// flock locks belong to the open file description, so a second
			// Open in this process contends exactly as another process would.
			s, err := boltstore.Open(boltstore.Config{Path: path, Timeout: tt.timeout})
			if err == nil {
				_ = s.Close()
				t.Fatal("second Open of a locked file succeeded")
			}
			if !errors.Is(err, boltstore.ErrLocked) {
				t.Fatalf("second Open: error = %v, want ErrLocked", err)
			}
			for _, want := range []string{"locked by another process", path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// rawUpdate edits a closed database file directly, to plant what a newer
// build, another program or a disk fault would leave behind.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatalf("bolt Update: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("bolt Close: %v", err)
	}
}

// createdStore makes a valid, closed database file with one revision.
func createdStore(t *testing.T) string {
	t.Helper()
	path := dbPath(t)
	s := openStore(t, path)
	if _, err := s.Append(t.Context(), storetest.Revision("default", "first"), 0); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return path
}

func putSchema(version []byte) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), version)
	}
}

func TestOpenRefusesFilesItCannotRead(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T) string
		wantErr error
		wantMsg []string
		notBolt bool // bbolt itself refuses it, so it cannot be reopened raw either
	}{
		{
			name: "a newer schema version is refused",
			prepare: func(t *testing.T) string {
				path := createdStore(t)
				rawUpdate(t, path, putSchema(binary.BigEndian.AppendUint64(nil, boltstore.SchemaVersion+1)))
				return path
			},
			wantErr: boltstore.ErrSchemaTooNew,
			wantMsg: []string{fmt.Sprintf("schema version %d", boltstore.SchemaVersion+1), fmt.Sprintf("up to %d", boltstore.SchemaVersion)},
		},
		{
			name: "a malformed schema version is corrupt",
			prepare: func(t *testing.T) string {
				path := createdStore(t)
				rawUpdate(t, path, putSchema([]byte{1}))
				return path
			},
			wantErr: boltstore.ErrCorrupt,
		},
		{
			name: "a missing pools bucket is corrupt",
			prepare: func(t *testing.T) string {
				path := createdStore(t)
				rawUpdate(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("pools")) })
				return path
			},
			wantErr: boltstore.ErrCorrupt,
		},
		{
			name: "another program's bbolt file is not adopted",
			prepare: func(t *testing.T) string {
				path := dbPath(t)
				rawUpdate(t, path, func(tx *bolt.Tx) error {
					_, err := tx.CreateBucket([]byte("sessions"))
					return err
				})
				return path
			},
			wantErr: boltstore.ErrNotPolicyDB,
			wantMsg: []string{"sessions"},
		},
		{
			name: "a file that is not bbolt fails without panicking",
			prepare: func(t *testing.T) string {
				path := dbPath(t)
				if err := os.WriteFile(path, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			},
			wantErr: boltstore.ErrNotPolicyDB,
			wantMsg: []string{"not a bbolt database"},
			notBolt: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t)
			s, err := boltstore.Open(boltstore.Config{Path: path})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open: error = %v, want %v", err, tt.wantErr)
			}
			for _, want := range append(tt.wantMsg, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if tt.notBolt {
				return
			}
			// A refused Open must release the file lock.
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("bolt.Open after a refused Open: %v", err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCorruptDataIsReportedNotServed(t *testing.T) {
	revKey := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	tests := []struct {
		name    string
		plant   func(b *bolt.Bucket) error
		badKey  bool // the head key itself is bad, so Append cannot number
		wantMsg []string
	}{
		{
			name:    "a value that is not a protobuf",
			plant:   func(b *bolt.Bucket) error { return b.Put(revKey(2), []byte{0xff, 0xff, 0xff}) },
			wantMsg: []string{`pool "default"`, "revision 2"},
		},
		{
			name: "a value holding another revision",
			plant: func(b *bolt.Bucket) error {
				return b.Put(revKey(2), b.Get(revKey(1)))
			},
			wantMsg: []string{`pool "default"`, "revision 2", "holds"},
		},
		{
			name: "a key that is not 8 bytes",
			plant: func(b *bolt.Bucket) error {
				return b.Put([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte{})
			},
			badKey:  true,
			wantMsg: []string{`pool "default"`, "9-byte key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := createdStore(t)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tt.plant(tx.Bucket([]byte("pools")).Bucket([]byte("default")))
			})
			s := openStore(t, path)

			calls := map[string]func() error{
				"Head":    func() error { _, err := s.Head(t.Context(), "default"); return err },
				"History": func() error { _, err := s.History(t.Context(), "default", 0, 10); return err },
				"Pools":   func() error { _, err := s.Pools(t.Context()); return err },
			}
			if !tt.badKey {
				calls["Get"] = func() error { _, err := s.Get(t.Context(), "default", 2); return err }
			} else {
				calls["Append"] = func() error {
					_, err := s.Append(t.Context(), storetest.Revision("default", "x"), store.AnyRevision)
					return err
				}
			}
			for name, call := range calls {
				err := call()
				if !errors.Is(err, boltstore.ErrCorrupt) {
					t.Errorf("%s: error = %v, want ErrCorrupt", name, err)
					continue
				}
				for _, want := range tt.wantMsg {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %q does not mention %q", name, err, want)
					}
				}
			}
			// The intact revision is still served.
			if _, err := s.Get(t.Context(), "default", 1); err != nil {
				t.Errorf("Get of the intact revision 1: %v", err)
			}
		})
	}
}

func TestOpenValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  boltstore.Config
	}{
		{"an empty path is refused", boltstore.Config{}},
		{"a negative timeout is refused", boltstore.Config{Path: "policy.db", Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := boltstore.Open(tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, boltstore.ErrInvalidConfig) {
				t.Fatalf("Open: error = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestOpenCreatesPrivateDirectoryAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "control")
	path := filepath.Join(dir, "policy.db")
	openStore(t, path)

	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s has mode %v, want %v", c.path, got, c.want)
		}
	}
}

func TestAppendRefusesInvalidRevisions(t *testing.T) {
	tests := []struct {
		name string
		rev  *wsfleetv1.PolicyRevision
	}{
		{"a nil revision is refused", nil},
		{"a revision without a pool is refused", storetest.Revision("", "no pool")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, dbPath(t))
			_, err := s.Append(t.Context(), tt.rev, store.AnyRevision)
			if !errors.Is(err, boltstore.ErrInvalidRevision) {
				t.Fatalf("Append: error = %v, want ErrInvalidRevision", err)
			}
			pools, err := s.Pools(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(pools) != 0 {
				t.Fatalf("Pools = %v after a refused Append, want none", pools)
			}
		})
	}
}

func TestHistoryWithoutLimitReturnsEverythingBelowBefore(t *testing.T) {
	s := openStore(t, dbPath(t))
	for range 5 {
		if _, err := s.Append(t.Context(), storetest.Revision("default", "x"), store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		before int64
		want   []int64
	}{
		{0, []int64{5, 4, 3, 2, 1}},
		{4, []int64{3, 2, 1}},
		{1, nil},
	}
	for _, tt := range tests {
		revs, err := s.History(t.Context(), "default", tt.before, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range revs {
			got = append(got, r.GetRevision())
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("History(before %d, limit 0) = %v, want %v", tt.before, got, tt.want)
		}
	}
}

func TestCloseDuringAppendsKeepsEveryAcknowledgedRevision(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)

	const writers = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		acked  []int64
		other  []error
		landed = make(chan struct{})
		once   sync.Once
	)
	start := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-start
			for {
				r, err := s.Append(t.Context(), storetest.Revision("default", "x"), store.AnyRevision)
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, r.GetRevision())
					if len(acked) == writers {
						once.Do(func() { close(landed) })
					}
				case !errors.Is(err, store.ErrClosed):
					other = append(other, err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	close(start)
	// Let some appends land before closing underneath the writers.
	<-landed
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("appends racing Close failed with %v, want only ErrClosed", other)
	}

	s = openStore(t, path)
	head, err := s.Head(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if int(head.GetRevision()) != len(acked) {
		t.Fatalf("head is %d after reopen, but %d appends were acknowledged", head.GetRevision(), len(acked))
	}
}

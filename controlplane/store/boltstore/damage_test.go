package boltstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

// storeFile makes a closed store file with a few pools and enough history
// to span many pages, some values over a page (overflow pages) and some
// freed pages.
func storeFile(t *testing.T) string {
	t.Helper()
	path := dbPath(t)
	s := openStore(t, path)
	for i := range 30 {
		pool := []string{"default", "edge", "internal"}[i%3]
		r := storetest.Revision(pool, fmt.Sprintf("revision %d", i))
		if i%7 == 0 {
			r = crashRevision(0) // over 4 KiB
			r.Pool = pool
		}
		if _, err := s.Append(t.Context(), r, store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pageKind is what one page of a bbolt file is, as the tests need it.
type pageKind int

const (
	pageFree     pageKind = iota // on the freelist: its bytes are unused
	pageHead                     // first page of a reachable branch, leaf or freelist page
	pageOverflow                 // continuation of a multi-page value: its bytes are a value's
)

// fileLayout returns the page size and the kind of every page from 2 up.
func fileLayout(t *testing.T, path string) (pageSize int, kinds map[int]pageKind) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kinds = map[int]pageKind{}
	err = db.View(func(tx *bolt.Tx) error {
		pageSize = db.Info().PageSize
		pages := int(tx.Size()) / pageSize
		for id := 2; id < pages; {
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			if info.Type == "free" {
				kinds[id] = pageFree
				id++
				continue
			}
			kinds[id] = pageHead
			for i := 1; i <= info.OverflowCount; i++ {
				kinds[id+i] = pageOverflow
			}
			id += 1 + info.OverflowCount
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pageSize, kinds
}

// garbage overwrites n bytes at off with seeded random bytes.
func garbage(t *testing.T, path string, off int64, n int, seed uint64) {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size func(int64) int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size(fi.Size())); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := dbPath(t)
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// refused opens path expecting want, and checks that the refusal left the
// file exactly as it was and released the lock (opening again gives the
// same error, not ErrLocked).
func refused(t *testing.T, path string, want error, wantMsg ...string) {
	t.Helper()
	before, _ := os.ReadFile(path)
	s, err := boltstore.Open(boltstore.Config{Path: path, Timeout: 200 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatalf("Open succeeded, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("Open: error = %v, want %v", err, want)
	}
	for _, w := range append(wantMsg, path) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is more than one line", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("the refused file changed: %d bytes before, %d after", len(before), len(after))
	}
	if _, err := boltstore.Open(boltstore.Config{Path: path, Timeout: 200 * time.Millisecond}); !errors.Is(err, want) {
		t.Errorf("second Open: error = %v, want %v again (the first must release the lock)", err, want)
	}
}

func TestOpenRefusesADamagedFile(t *testing.T) {
	template := storeFile(t)
	pageSize, kinds := fileLayout(t, template)
	ps, pages := int64(pageSize), int64(len(kinds)+2)

	tests := []struct {
		name    string
		damage  func(t *testing.T, path string)
		want    error
		wantMsg []string
	}{
		{
			name:    "an empty file is refused, not initialised",
			damage:  func(t *testing.T, path string) { truncate(t, path, func(int64) int64 { return 0 }) },
			want:    boltstore.ErrEmpty,
			wantMsg: []string{"0 bytes"},
		},
		{
			name:    "a file truncated to half is refused",
			damage:  func(t *testing.T, path string) { truncate(t, path, func(n int64) int64 { return n / 2 }) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"truncated"},
		},
		{
			// bbolt grows the file ahead of use: cutting the unused tail
			// is harmless, cutting the last page in use is not.
			name:    "a file missing its last page in use is refused",
			damage:  func(t *testing.T, path string) { truncate(t, path, func(int64) int64 { return (pages - 1) * ps }) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"truncated"},
		},
		{
			name:    "a file cut inside its first page is refused",
			damage:  func(t *testing.T, path string) { truncate(t, path, func(int64) int64 { return 100 }) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"truncated"},
		},
		{
			name:    "garbage over meta page 0 is refused",
			damage:  func(t *testing.T, path string) { garbage(t, path, 0, pageSize, 1) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"meta page 0"},
		},
		{
			name:    "garbage over meta page 1 is refused",
			damage:  func(t *testing.T, path string) { garbage(t, path, ps, pageSize, 2) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"meta page 1"},
		},
		{
			name:    "a flipped byte in meta page 1 is refused",
			damage:  func(t *testing.T, path string) { garbage(t, path, ps+16+40, 1, 3) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"meta page 1", "checksum"},
		},
		{
			name:    "garbage over both meta pages is refused as damage",
			damage:  func(t *testing.T, path string) { garbage(t, path, 0, 2*pageSize, 4) },
			want:    boltstore.ErrCorrupt,
			wantMsg: []string{"both bbolt meta pages"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyFile(t, template)
			tt.damage(t, path)
			refused(t, path, tt.want, tt.wantMsg...)
		})
	}
}

// TestOpenRefusesGarbageInAnyPage overwrites each page of a store in turn:
// a page the file's tree or freelist uses is refused as ErrCorrupt (never a
// panic or a fault), a free page does not matter. Continuation pages of a
// long value are skipped: their bytes are the value's, and a damaged value
// is reported when it is read (TestCorruptDataIsReportedNotServed).
func TestOpenRefusesGarbageInAnyPage(t *testing.T) {
	template := storeFile(t)
	pageSize, kinds := fileLayout(t, template)
	var heads, frees int
	for id := 2; id < len(kinds)+2; id++ {
		kind := kinds[id]
		if kind == pageOverflow {
			continue
		}
		for _, dmg := range []struct {
			what     string
			from, to int
		}{
			{"the whole page", 0, pageSize},
			{"the page past its header", 16, pageSize},
		} {
			name := fmt.Sprintf("garbage over %s %d", dmg.what, id)
			t.Run(name, func(t *testing.T) {
				path := copyFile(t, template)
				garbage(t, path, int64(id*pageSize+dmg.from), dmg.to-dmg.from, uint64(id))
				if kind == pageHead {
					refused(t, path, boltstore.ErrCorrupt)
					return
				}
				s, err := boltstore.Open(boltstore.Config{Path: path})
				if err != nil {
					t.Fatalf("Open with garbage in free page %d: %v", id, err)
				}
				defer s.Close()
				if _, err := s.Pools(t.Context()); err != nil {
					t.Fatalf("Pools with garbage in free page %d: %v", id, err)
				}
			})
		}
		if kind == pageHead {
			heads++
		} else {
			frees++
		}
	}
	if heads < 5 || frees < 1 {
		t.Fatalf("the store has %d used and %d free pages; the test needs a store with more of both", heads, frees)
	}
}

// TestOpenRunsBboltsConsistencyCheck damages a file in a way every page
// bound still holds (a leaf's first key made the largest), so only bbolt's
// own check can tell.
func TestOpenRunsBboltsConsistencyCheck(t *testing.T) {
	path := storeFile(t)
	pageSize, kinds := fileLayout(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	for id := 2; id < len(kinds)+2; id++ {
		page := b[id*pageSize:]
		// A leaf page (flags 0x02) with two or more plain key/values whose
		// first key is an 8-byte revision number.
		if kinds[id] != pageHead || ne.Uint16(page[8:]) != 0x02 || ne.Uint16(page[10:]) < 2 ||
			ne.Uint32(page[16:]) != 0 || ne.Uint32(page[16+8:]) != 8 {
			continue
		}
		key := 16 + int(ne.Uint32(page[16+4:]))
		copy(page[key:key+8], bytes.Repeat([]byte{0xff}, 8))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		refused(t, path, boltstore.ErrCorrupt, "consistency check", "ffffffffffffffff")
		return
	}
	t.Fatal("no leaf page with two revisions in the store")
}

func TestOpenRefusesFilesOfOtherKinds(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T) string
		want    error
		wantMsg []string
	}{
		{
			name: "a bbolt file with no buckets is not initialised",
			prepare: func(t *testing.T) string {
				path := dbPath(t)
				rawUpdate(t, path, func(*bolt.Tx) error { return nil })
				return path
			},
			want:    boltstore.ErrNotPolicyDB,
			wantMsg: []string{"no buckets"},
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
			want:    boltstore.ErrNotPolicyDB,
			wantMsg: []string{"sessions"},
		},
		{
			name: "a file that is not bbolt is refused",
			prepare: func(t *testing.T) string {
				path := dbPath(t)
				if err := os.WriteFile(path, bytes.Repeat([]byte("SQLite format 3\x00"), 4096), 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			},
			want:    boltstore.ErrNotPolicyDB,
			wantMsg: []string{"not a bbolt database"},
		},
		{
			name: "a short file that is not bbolt is refused",
			prepare: func(t *testing.T) string {
				path := dbPath(t)
				if err := os.WriteFile(path, []byte("hello\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			},
			want:    boltstore.ErrNotPolicyDB,
			wantMsg: []string{"not a bbolt database"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, tt.prepare(t), tt.want, tt.wantMsg...)
		})
	}
}

func TestOpenRefusesPathsThatCannotHoldAStore(t *testing.T) {
	t.Run("a path that is a directory", func(t *testing.T) {
		path := dbPath(t)
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, open := range []func(boltstore.Config) (*boltstore.Store, error){boltstore.Open, boltstore.Create} {
			_, err := open(boltstore.Config{Path: path})
			if !errors.Is(err, boltstore.ErrBadPath) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v, want ErrBadPath naming %s", err, path)
			}
		}
	})
	t.Run("a data directory that is a file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, open := range []func(boltstore.Config) (*boltstore.Store, error){boltstore.Open, boltstore.Create} {
			_, err := open(boltstore.Config{Path: filepath.Join(dir, "policy.db")})
			if !errors.Is(err, boltstore.ErrBadPath) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error = %v, want ErrBadPath naming %s", err, dir)
			}
		}
		if b, _ := os.ReadFile(dir); string(b) != "x" {
			t.Fatalf("the file standing for the data directory now holds %q", b)
		}
	})
	t.Run("a data directory below a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := boltstore.Open(boltstore.Config{Path: filepath.Join(file, "control", "policy.db")})
		if !errors.Is(err, boltstore.ErrBadPath) {
			t.Fatalf("error = %v, want ErrBadPath", err)
		}
	})
}

func TestOpenCreatesAMissingFileAsANewStore(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	if !s.Created() {
		t.Fatal("Created() = false for a file Open created")
	}
	id := s.ID()
	if !strings.HasPrefix(id, "bolt-") {
		t.Fatalf("ID() = %q", id)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "policy.db" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the data directory holds %v, want only policy.db (no temporary file left)", names)
	}

	s = openStore(t, path)
	if s.Created() || s.ID() != id {
		t.Fatalf("reopen: Created() = %v, ID() = %q; want false and %q", s.Created(), s.ID(), id)
	}
}

func TestCreateNeverOverwrites(t *testing.T) {
	t.Run("a missing file is created", func(t *testing.T) {
		path := dbPath(t)
		s, err := boltstore.Create(boltstore.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		id := s.ID()
		if !s.Created() || !strings.HasPrefix(id, "bolt-") {
			t.Fatalf("Created() = %v, ID() = %q", s.Created(), id)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s := openStore(t, path); s.ID() != id {
			t.Fatalf("reopened store has ID %q, want %q", s.ID(), id)
		}
	})
	existing := map[string]func(t *testing.T) string{
		"a store":        createdStore,
		"an empty file":  func(t *testing.T) string { p := dbPath(t); must(t, os.WriteFile(p, nil, 0o600)); return p },
		"a damaged file": func(t *testing.T) string { p := createdStore(t); garbage(t, p, 0, 8192, 9); return p },
	}
	for what, prepare := range existing {
		t.Run(what+" is not overwritten", func(t *testing.T) {
			path := prepare(t)
			before, _ := os.ReadFile(path)
			s, err := boltstore.Create(boltstore.Config{Path: path})
			if err == nil {
				_ = s.Close()
				t.Fatal("Create succeeded over an existing file")
			}
			if !errors.Is(err, boltstore.ErrExists) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Create: error = %v, want ErrExists naming the file", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("Create changed the existing file")
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

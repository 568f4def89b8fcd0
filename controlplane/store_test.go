package controlplane

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

func quietConfig(dataDir string) Config {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dataDir, Dev: true, Log: log}
}

// TestNewFailsWithTheStoreError: a store that cannot be opened makes New
// return that error (with what to do), not panic while cleaning up.
func TestNewFailsWithTheStoreError(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dataDir string)
		want    error
	}{
		{"a store file that is not bbolt", func(t *testing.T, dataDir string) {
			must(t, os.WriteFile(filepath.Join(dataDir, "policy.db"), []byte(strings.Repeat("x", 8192)), 0o600))
		}, boltstore.ErrNotPolicyDB},
		{"an empty store file", func(t *testing.T, dataDir string) {
			must(t, os.WriteFile(filepath.Join(dataDir, "policy.db"), nil, 0o600))
		}, boltstore.ErrEmpty},
		{"a store file that is a directory", func(t *testing.T, dataDir string) {
			must(t, os.Mkdir(filepath.Join(dataDir, "policy.db"), 0o700))
		}, boltstore.ErrBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			tt.prepare(t, dataDir)
			srv, err := New(quietConfig(dataDir))
			if err == nil {
				srv.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), filepath.Join(dataDir, "policy.db")) {
				t.Fatalf("New: error = %v, want %v naming the file", err, tt.want)
			}
		})
	}
}

// TestNewFailsWhenAPoolHeadIsUnreadable: the pools' heads are read at start
// (for metrics and the registry); a store that cannot give them must stop
// the start, not leave the control plane serving without them.
func TestNewFailsWhenAPoolHeadIsUnreadable(t *testing.T) {
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, "policy.db")
	st, err := boltstore.Open(boltstore.Config{Path: path})
	must(t, err)
	must(t, st.Close())
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket([]byte("pools")).CreateBucket([]byte("edge"))
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, 1), []byte{0xff, 0xff, 0xff})
	}))
	must(t, db.Close())

	srv, err := New(quietConfig(dataDir))
	if err == nil {
		srv.Close()
		t.Fatal("New succeeded on a store whose pool edge cannot be read")
	}
	if !errors.Is(err, boltstore.ErrCorrupt) || !strings.Contains(err.Error(), `pool "edge"`) {
		t.Fatalf("New: error = %v, want ErrCorrupt naming pool edge", err)
	}
	// The failed start released the store: it opens again.
	st, err = boltstore.Open(boltstore.Config{Path: path, Timeout: 200 * time.Millisecond})
	must(t, err)
	must(t, st.Close())
}

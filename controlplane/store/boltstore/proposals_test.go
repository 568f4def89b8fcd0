package boltstore_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func TestADamagedProposalIsReportedAndTheOthersStillWork(t *testing.T) {
	idKey := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	tests := []struct {
		name    string
		key     []byte
		plant   func(b *bolt.Bucket) []byte // returns the value planted at key
		id      int64
		wantMsg []string
	}{
		{
			name:    "a value that is not a protobuf",
			key:     idKey(2),
			plant:   func(b *bolt.Bucket) []byte { return []byte{0xff, 0xff, 0xff} },
			id:      2,
			wantMsg: []string{"proposal 2"},
		},
		{
			name:    "a value holding another proposal",
			key:     idKey(2),
			plant:   func(b *bolt.Bucket) []byte { return append([]byte(nil), b.Get(idKey(1))...) },
			id:      2,
			wantMsg: []string{"proposal 2", "holds proposal 1"},
		},
		{
			name:  "a key that is not 8 bytes",
			key:   []byte{1, 2, 3},
			plant: func(b *bolt.Bucket) []byte { return []byte{} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			s := openStore(t, path)
			if _, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "intact"), store.ProposalLimits{}); err != nil {
				t.Fatalf("CreateProposal: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var planted []byte
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("proposals"))
				planted = tt.plant(b)
				return b.Put(tt.key, planted)
			})
			s = openStore(t, path)
			storetest.DamagedProposal(t, s, tt.id, boltstore.ErrCorrupt, tt.wantMsg...)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				if got := tx.Bucket([]byte("proposals")).Get(tt.key); got == nil || !bytes.Equal(got, planted) {
					t.Errorf("the damaged record at %x holds %x after pruning, want it kept as %x", tt.key, got, planted)
				}
				return nil
			})
		})
	}
}

func TestProposalsSurviveReopen(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	p, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "before close"), store.ProposalLimits{})
	if err != nil {
		t.Fatalf("CreateProposal: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, path)
	got, err := s.GetProposal(t.Context(), p.GetId())
	if err != nil {
		t.Fatalf("GetProposal after reopen: %v", err)
	}
	if got.GetMessage() != "before close" {
		t.Fatalf("proposal after reopen says %q", got.GetMessage())
	}
	next, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "after reopen"), store.ProposalLimits{})
	if err != nil {
		t.Fatalf("CreateProposal after reopen: %v", err)
	}
	if next.GetId() <= p.GetId() {
		t.Fatalf("id after reopen %d, want above %d", next.GetId(), p.GetId())
	}
}

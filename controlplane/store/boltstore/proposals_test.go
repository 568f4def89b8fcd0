package boltstore_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func TestDamagedProposalsAreReportedNotServed(t *testing.T) {
	idKey := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	tests := []struct {
		name    string
		plant   func(b *bolt.Bucket) error
		wantMsg []string
	}{
		{
			name:    "a value that is not a protobuf",
			plant:   func(b *bolt.Bucket) error { return b.Put(idKey(2), []byte{0xff, 0xff, 0xff}) },
			wantMsg: []string{"proposal 2"},
		},
		{
			name:    "a value holding another proposal",
			plant:   func(b *bolt.Bucket) error { return b.Put(idKey(2), b.Get(idKey(1))) },
			wantMsg: []string{"proposal 2", "holds proposal 1"},
		},
		{
			name:    "a key that is not 8 bytes",
			plant:   func(b *bolt.Bucket) error { return b.Put([]byte{1, 2, 3}, []byte{}) },
			wantMsg: []string{"3-byte key"},
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
			rawUpdate(t, path, func(tx *bolt.Tx) error { return tt.plant(tx.Bucket([]byte("proposals"))) })
			s = openStore(t, path)

			calls := map[string]func() error{
				"ListProposals": func() error { _, err := s.ListProposals(t.Context(), store.ProposalFilter{}); return err },
				"CreateProposal": func() error {
					_, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "x"), store.ProposalLimits{})
					return err
				},
				"RejectProposal": func() error {
					_, err := s.RejectProposal(t.Context(), 1, store.Decision{By: "bob"}, store.ProposalLimits{})
					return err
				},
			}
			if !strings.Contains(tt.name, "key") {
				calls["GetProposal"] = func() error { _, err := s.GetProposal(t.Context(), 2); return err }
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
			// The intact proposal is still served.
			if _, err := s.GetProposal(t.Context(), 1); err != nil {
				t.Errorf("GetProposal of the intact proposal 1: %v", err)
			}
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

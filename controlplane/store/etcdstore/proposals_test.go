package etcdstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

func TestADamagedProposalIsReportedAndTheOthersStillWork(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	tests := []struct {
		name    string
		key     string // under the prefix
		value   string
		id      int64
		wantMsg string
	}{
		{"a value that is not a protobuf", fmt.Sprintf("proposals/%020d", 2), "\xff\xff\xff", 2, "proposal 2"},
		{"a key that is not an id", "proposals/nope", "", 0, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/damaged-proposals/%d/", i)
			s := openStore(t, e.Endpoint, prefix)
			if _, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "intact"), store.ProposalLimits{}); err != nil {
				t.Fatalf("CreateProposal: %v", err)
			}
			put(t, cli, prefix+tt.key, tt.value)
			var want []string
			if tt.wantMsg != "" {
				want = append(want, tt.wantMsg)
			}
			storetest.DamagedProposal(t, s, tt.id, etcdstore.ErrCorrupt, want...)
			resp, err := cli.Get(t.Context(), prefix+tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != tt.value {
				t.Errorf("the damaged record %s is %v after pruning, want it kept as %q", tt.key, resp.Kvs, tt.value)
			}
		})
	}
}

// The id counter is the store's, not one record's: without it no id can
// be given, so creating fails, while everything else still works.
func TestADamagedProposalIDCounterFailsOnlyCreate(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	prefix := "/damaged-proposal-seq/"
	s := openStore(t, e.Endpoint, prefix)
	if _, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "intact"), store.ProposalLimits{}); err != nil {
		t.Fatalf("CreateProposal: %v", err)
	}
	put(t, cli, prefix+"meta/proposal_seq", "x")
	_, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "x"), store.ProposalLimits{})
	if !errors.Is(err, etcdstore.ErrCorrupt) || !strings.Contains(err.Error(), "proposal_seq") {
		t.Errorf("CreateProposal: error = %v, want ErrCorrupt naming proposal_seq", err)
	}
	if got, err := s.ListProposals(t.Context(), store.ProposalFilter{}); err != nil || len(got) != 1 {
		t.Errorf("ListProposals: %d proposals, %v; want the intact one", len(got), err)
	}
	if _, err := s.RejectProposal(t.Context(), 1, store.Decision{By: "bob"}, store.ProposalLimits{}); err != nil {
		t.Errorf("RejectProposal of the intact proposal 1: %v", err)
	}
}

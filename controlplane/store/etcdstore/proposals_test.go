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

func TestDamagedProposalsAreReportedNotServed(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	tests := []struct {
		name    string
		plant   func(prefix string)
		wantMsg string
	}{
		{"a value that is not a protobuf", func(prefix string) {
			put(t, cli, prefix+fmt.Sprintf("proposals/%020d", 2), "\xff\xff\xff")
		}, "proposal 2"},
		{"a key that is not an id", func(prefix string) {
			put(t, cli, prefix+"proposals/nope", "")
		}, "proposals/nope"},
		{"a proposal id counter that is not a number", func(prefix string) {
			put(t, cli, prefix+"meta/proposal_seq", "x")
		}, "proposal_seq"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/damaged-proposals/%d/", i)
			s := openStore(t, e.Endpoint, prefix)
			if _, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "intact"), store.ProposalLimits{}); err != nil {
				t.Fatalf("CreateProposal: %v", err)
			}
			tt.plant(prefix)
			calls := map[string]func() error{
				"CreateProposal": func() error {
					_, err := s.CreateProposal(t.Context(), storetest.Proposal("default", 0, "x"), store.ProposalLimits{})
					return err
				},
			}
			if !strings.Contains(tt.name, "counter") {
				calls["ListProposals"] = func() error { _, err := s.ListProposals(t.Context(), store.ProposalFilter{}); return err }
				calls["RejectProposal"] = func() error {
					_, err := s.RejectProposal(t.Context(), 1, store.Decision{By: "bob"}, store.ProposalLimits{})
					return err
				}
			}
			for name, call := range calls {
				err := call()
				if !errors.Is(err, etcdstore.ErrCorrupt) {
					t.Errorf("%s: error = %v, want ErrCorrupt", name, err)
					continue
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("%s: error %q does not mention %q", name, err, tt.wantMsg)
				}
			}
			if _, err := s.GetProposal(t.Context(), 1); err != nil {
				t.Errorf("GetProposal of the intact proposal 1: %v", err)
			}
		})
	}
}

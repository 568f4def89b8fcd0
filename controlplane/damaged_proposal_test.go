package controlplane

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// A damaged proposal record in a pool that requires approval: the pool
// still changes through its other proposals, and the damage is counted.
func TestADamagedProposalDoesNotFreezeAnApprovalPool(t *testing.T) {
	dataDir := t.TempDir()
	path := dataDir + "/policy.db"
	st, err := boltstore.Open(boltstore.Config{Path: path})
	must(t, err)
	p := policy.Default()
	p.Approval.Required = true
	_, err = st.Append(t.Context(), &wsfleetv1.PolicyRevision{Pool: policy.DefaultPool, Policy: p, Author: "dev:alice", Message: "approval on", CreateTime: timestamppb.Now()}, 0)
	must(t, err)
	next := policy.Default()
	next.Approval.Required = true
	next.Origins.Allow = []string{"https://app.example.com"}
	_, err = st.CreateProposal(t.Context(), &wsfleetv1.Proposal{
		Pool: policy.DefaultPool, Policy: next, BaseRevision: 1, Proposer: "dev:alice", Message: "allow the app", CreateTime: timestamppb.Now(),
	}, store.ProposalLimits{})
	must(t, err)
	must(t, st.Close())
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("proposals")).Put(binary.BigEndian.AppendUint64(nil, 2), []byte{0xff, 0xff, 0xff})
	}))
	must(t, db.Close())

	srv := startServer(t, func(c *Config) { c.DataDir = dataDir })
	pc := wsfleetv1.NewPolicyServiceClient(dial(t, srv))
	list, err := pc.ListProposals(withToken("bob"), &wsfleetv1.ListProposalsRequest{})
	if err != nil || len(list.GetProposals()) != 1 || list.GetProposals()[0].GetId() != 1 {
		t.Fatalf("ListProposals with a damaged record: %v, %v; want the intact proposal 1", list, err)
	}
	approved, err := pc.ApproveProposal(withToken("bob"), &wsfleetv1.ApproveProposalRequest{Id: 1, Message: "ok"})
	if err != nil || approved.GetRevision().GetRevision() != 2 {
		t.Fatalf("ApproveProposal(1) with a damaged record: %v, %v; want revision 2", approved, err)
	}
	if _, err := pc.GetProposal(withToken("bob"), &wsfleetv1.GetProposalRequest{Id: 2}); err == nil || !strings.Contains(err.Error(), "proposal 2") {
		t.Fatalf("GetProposal(2) of the damaged record: %v, want an error naming proposal 2", err)
	}
	if body := httpGet(t, "http://"+srv.HTTPAddr().String()+"/metrics"); !strings.Contains(body, "wsfleet_control_store_damaged_proposals_total 1\n") {
		t.Fatalf("/metrics does not count the damaged proposal:\n%s", grepLines(body, "damaged"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

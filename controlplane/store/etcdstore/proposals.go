package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// maxPrunePerDecision bounds the deletes one decision's transaction
// carries (etcd refuses a transaction of more than --max-txn-ops, 128 by
// default); more are deleted by later decisions.
const maxPrunePerDecision = 32

func (s *Store) proposalsDir() string { return s.cfg.Prefix + "proposals/" }

func (s *Store) proposalSeqKey() string { return s.cfg.Prefix + "meta/proposal_seq" }

func (s *Store) proposalKey(id int64) string { return fmt.Sprintf("%s%020d", s.proposalsDir(), id) }

// CreateProposal implements store.Proposals. The id comes from a counter
// key that every create compares and bumps in its transaction, so ids are
// store-wide, increasing and never reused, and two replicas creating at
// once cannot both pass the per-pool limit.
func (s *Store) CreateProposal(ctx context.Context, p *wsfleetv1.Proposal, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if p == nil || !validPool(p.GetPool()) {
		return nil, fmt.Errorf("%w: a proposal needs a pool name", ErrInvalidRevision)
	}
	lim = lim.WithDefaults()
	out := proto.Clone(p).(*wsfleetv1.Proposal)
	for attempt := 1; ; attempt++ {
		cctx, cancel := s.call(ctx)
		resp, err := s.cli.Txn(cctx).Then(
			clientv3.OpGet(s.proposalSeqKey()),
			clientv3.OpGet(s.proposalsDir(), clientv3.WithPrefix()),
		).Commit()
		cancel()
		if err != nil {
			return nil, s.wrap(ctx, "create proposal: read", err)
		}
		var seq, seqMod int64
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			seqMod = kvs[0].ModRevision
			if seq, err = strconv.ParseInt(string(kvs[0].Value), 10, 64); err != nil || seq < 0 {
				return nil, fmt.Errorf("%w: %s holds %q, not a proposal id", ErrCorrupt, s.proposalSeqKey(), clipKey(string(kvs[0].Value)))
			}
		}
		kvs := resp.Responses[1].GetResponseRange().GetKvs()
		all := s.decodeProposals(kvs)
		// A damaged record can sit at an id the counter has not given
		// yet: it is kept for inspection, never written over.
		for _, kv := range kvs {
			if id, ok := s.proposalID(kv.Key); ok {
				seq = max(seq, id)
			}
		}
		open := 0
		for _, q := range all {
			if q.GetPool() == out.GetPool() && q.GetState() == wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
				open++
			}
		}
		if open >= lim.MaxOpen {
			return nil, fmt.Errorf("%w: pool %q has %d open proposals, the most allowed; approve or reject some first", store.ErrTooManyProposals, out.GetPool(), open)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("etcdstore: create proposal: %w", err)
		}
		out.Id = seq + 1
		out.State = wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN
		out.Stale = false
		v, err := marshalOptions.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: marshal proposal %d: %w", out.Id, err)
		}
		pk := s.proposalKey(out.Id)
		cctx, cancel = s.call(ctx)
		tr, err := s.cli.Txn(cctx).If(
			clientv3.Compare(clientv3.Value(s.idKey), "=", s.id),
			clientv3.Compare(clientv3.ModRevision(s.proposalSeqKey()), "=", seqMod),
		).Then(
			clientv3.OpPut(s.proposalSeqKey(), strconv.FormatInt(out.Id, 10)),
			clientv3.OpPut(pk, string(v)),
		).Else(
			clientv3.OpGet(s.idKey),
		).Commit()
		cancel()
		if err != nil {
			if err := s.settleProposal(ctx, "create proposal", pk, v, err); err != nil {
				return nil, err
			}
			return out, nil
		}
		if tr.Succeeded {
			return out, nil
		}
		if err := s.checkReplaced(tr.Responses[0]); err != nil {
			return nil, err
		}
		if attempt >= maxAnyAttempts {
			return nil, fmt.Errorf("etcdstore: create proposal lost the race to other writers %d times; retry", attempt)
		}
	}
}

// GetProposal implements store.Proposals.
func (s *Store) GetProposal(ctx context.Context, id int64) (*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if id < 1 {
		return nil, fmt.Errorf("%w: proposal %d", store.ErrNotFound, id)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.proposalKey(id))
	if err != nil {
		return nil, s.wrap(ctx, "get proposal", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: proposal %d", store.ErrNotFound, id)
	}
	return s.decodeProposal(resp.Kvs[0])
}

// ListProposals implements store.Proposals. Proposals are bounded (open
// ones per pool, closed ones store-wide), so they are read in one range
// and filtered here.
func (s *Store) ListProposals(ctx context.Context, f store.ProposalFilter) ([]*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	limit := f.Max()
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.proposalsDir(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if err != nil {
		return nil, s.wrap(ctx, "list proposals", err)
	}
	var out []*wsfleetv1.Proposal
	for _, kv := range resp.Kvs {
		if len(out) >= limit {
			break
		}
		p, err := s.decodeProposal(kv)
		if err != nil {
			s.damage.Skip("proposal", clipKey(string(kv.Key)), err)
			continue
		}
		if !f.Match(p) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// RejectProposal implements store.Proposals.
func (s *Store) RejectProposal(ctx context.Context, id int64, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	p, _, err := s.decide(ctx, id, nil, d, lim)
	return p, err
}

// ApproveProposal implements store.Proposals: one etcd transaction puts
// the revision (and the pool's head) and the approved proposal, compared
// on the head key's and the proposal key's mod revisions.
func (s *Store) ApproveProposal(ctx context.Context, id int64, rev *wsfleetv1.PolicyRevision, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, *wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	if rev == nil || !validPool(rev.GetPool()) {
		return nil, nil, fmt.Errorf("%w: nil or without a pool name", ErrInvalidRevision)
	}
	return s.decide(ctx, id, rev, d, lim)
}

// decide moves an open proposal to approved (rev non-nil: appended in the
// same transaction) or rejected, and prunes the oldest decided proposals
// beyond lim.KeepClosed. A lost compare-and-set is re-read, which reports
// what changed (the proposal decided by another, the head moved).
func (s *Store) decide(ctx context.Context, id int64, rev *wsfleetv1.PolicyRevision, d store.Decision, lim store.ProposalLimits) (*wsfleetv1.Proposal, *wsfleetv1.PolicyRevision, error) {
	lim = lim.WithDefaults()
	op := "reject proposal"
	if rev != nil {
		op = "approve proposal"
	}
	pk := s.proposalKey(id)
	for attempt := 1; ; attempt++ {
		ops := []clientv3.Op{clientv3.OpGet(s.proposalsDir(), clientv3.WithPrefix())}
		if rev != nil {
			ops = append(ops, clientv3.OpGet(s.headKey(rev.GetPool())))
		}
		cctx, cancel := s.call(ctx)
		resp, err := s.cli.Txn(cctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, nil, s.wrap(ctx, op+": read", err)
		}
		var (
			p    *wsfleetv1.Proposal
			pmod int64
		)
		var closed []int64 // decided ones, oldest first
		for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
			q, err := s.decodeProposal(kv)
			switch {
			case err != nil && string(kv.Key) == pk:
				return nil, nil, err
			case err != nil:
				// Neither decided nor pruned: kept for inspection.
				s.damage.Skip("proposal", clipKey(string(kv.Key)), err)
				continue
			case q.GetId() == id:
				p, pmod = q, kv.ModRevision
				continue
			}
			if q.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
				closed = append(closed, q.GetId())
			}
		}
		if p == nil {
			return nil, nil, fmt.Errorf("%w: proposal %d", store.ErrNotFound, id)
		}
		if p.GetState() != wsfleetv1.ProposalState_PROPOSAL_STATE_OPEN {
			return nil, nil, &store.ProposalStateError{ID: id, State: p.GetState()}
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.Value(s.idKey), "=", s.id),
			clientv3.Compare(clientv3.ModRevision(pk), "=", pmod),
		}
		var (
			puts []clientv3.Op
			out  *wsfleetv1.PolicyRevision
		)
		if rev != nil {
			pool := rev.GetPool()
			if p.GetPool() != pool {
				return nil, nil, fmt.Errorf("%w: proposal %d is for pool %q, the revision for %q", ErrInvalidRevision, id, p.GetPool(), pool)
			}
			var head, hmod int64
			if hk := resp.Responses[1].GetResponseRange().GetKvs(); len(hk) > 0 {
				h, err := s.decode(pool, 0, hk[0].Value)
				if err != nil {
					return nil, nil, err
				}
				head, hmod = h.GetRevision(), hk[0].ModRevision
			}
			if head != p.GetBaseRevision() {
				return nil, nil, &store.ConflictError{Pool: pool, Expected: p.GetBaseRevision(), Current: head}
			}
			out = proto.Clone(rev).(*wsfleetv1.PolicyRevision)
			out.Revision = max(head+1, rev.GetRevision())
			out.StoreId = s.id
			v, err := marshalOptions.Marshal(out)
			if err != nil {
				return nil, nil, fmt.Errorf("etcdstore: marshal pool %q revision %d: %w", pool, out.Revision, err)
			}
			rk := s.revKey(pool, out.Revision)
			cmps = append(cmps,
				clientv3.Compare(clientv3.ModRevision(s.headKey(pool)), "=", hmod),
				clientv3.Compare(clientv3.CreateRevision(rk), "=", 0))
			puts = append(puts, clientv3.OpPut(s.headKey(pool), string(v)), clientv3.OpPut(rk, string(v)))
			p.State = wsfleetv1.ProposalState_PROPOSAL_STATE_APPROVED
			p.Revision = out.Revision
		} else {
			p.State = wsfleetv1.ProposalState_PROPOSAL_STATE_REJECTED
		}
		p.DecidedBy, p.DecisionMessage, p.DecideTime = d.By, d.Message, timestamppb.New(d.Time)
		pv, err := marshalOptions.Marshal(p)
		if err != nil {
			return nil, nil, fmt.Errorf("etcdstore: marshal proposal %d: %w", id, err)
		}
		puts = append(puts, clientv3.OpPut(pk, string(pv)))
		// This one is decided now too: it counts towards the kept ones.
		closed = append(closed, id)
		slices.Sort(closed)
		for _, old := range closed[:min(maxPrunePerDecision, max(0, len(closed)-lim.KeepClosed))] {
			puts = append(puts, clientv3.OpDelete(s.proposalKey(old)))
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("etcdstore: %s: %w", op, err)
		}
		cctx, cancel = s.call(ctx)
		tr, err := s.cli.Txn(cctx).If(cmps...).Then(puts...).Else(clientv3.OpGet(s.idKey)).Commit()
		cancel()
		if err != nil {
			if err := s.settleProposal(ctx, op, pk, pv, err); err != nil {
				return nil, nil, err
			}
			return p, out, nil
		}
		if tr.Succeeded {
			return p, out, nil
		}
		if err := s.checkReplaced(tr.Responses[0]); err != nil {
			return nil, nil, err
		}
		if attempt >= maxAnyAttempts {
			return nil, nil, fmt.Errorf("etcdstore: %s %d lost the race to other writers %d times; retry", op, id, attempt)
		}
	}
}

// checkReplaced reads the Else branch's identity get: a store replaced
// under the prefix is ErrReplaced, anything else a lost race to retry.
func (s *Store) checkReplaced(r *etcdserverpb.ResponseOp) error {
	ids := r.GetResponseRange().GetKvs()
	if len(ids) == 0 || string(ids[0].Value) != s.id {
		return fmt.Errorf("%w: %s no longer holds store %s", ErrReplaced, where(s.cfg), s.id)
	}
	return nil
}

// settleProposal decides a proposal write whose transaction failed
// without an answer, like settle does for Append: the proposal key holding
// our bytes means it was committed (with everything else in its
// transaction).
func (s *Store) settleProposal(ctx context.Context, op, key string, v []byte, txnErr error) error {
	if ctx.Err() != nil || s.closed.Load() {
		return s.wrap(ctx, op, txnErr)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, key)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w: %s: %v; whether it was stored is unknown: %v", ErrUnavailable, store.ErrOutcomeUnknown, op, txnErr, err)
	case len(resp.Kvs) > 0 && bytes.Equal(resp.Kvs[0].Value, v):
		return nil
	default:
		return s.wrap(ctx, op, txnErr)
	}
}

// decodeProposals decodes kvs, skipping (and reporting) damaged records.
func (s *Store) decodeProposals(kvs []*mvccpb.KeyValue) []*wsfleetv1.Proposal {
	out := make([]*wsfleetv1.Proposal, 0, len(kvs))
	for _, kv := range kvs {
		p, err := s.decodeProposal(kv)
		if err != nil {
			s.damage.Skip("proposal", clipKey(string(kv.Key)), err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// proposalID is the id a proposals key names, if it names one.
func (s *Store) proposalID(key []byte) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimPrefix(string(key), s.proposalsDir()), 10, 64)
	return id, err == nil && id >= 1
}

// decodeProposal unmarshals a stored proposal and checks it is the one its
// key names, so damage is ErrCorrupt, never served.
func (s *Store) decodeProposal(kv *mvccpb.KeyValue) (*wsfleetv1.Proposal, error) {
	key := string(kv.Key)
	id, ok := s.proposalID(kv.Key)
	if !ok {
		return nil, fmt.Errorf("%w: proposals have key %q", ErrCorrupt, clipKey(key))
	}
	p := &wsfleetv1.Proposal{}
	if err := proto.Unmarshal(kv.Value, p); err != nil {
		return nil, fmt.Errorf("%w: proposal %d: %w", ErrCorrupt, id, err)
	}
	if p.GetId() != id || p.GetPool() == "" {
		return nil, fmt.Errorf("%w: proposal %d holds proposal %d of pool %q", ErrCorrupt, id, p.GetId(), p.GetPool())
	}
	return p, nil
}

package registry

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Shared node status (Config.Shared): the control-plane replicas sharing a
// store each write the status of the nodes attached to them where the
// others read it (package registry/etcdstatus), and every replica lists
// the whole fleet.
//
// The registry is the transport's source and sink, never its caller: it
// notes which of its own nodes changed (Dirty, TakeDirty) and hands their
// status when asked (Local); it keeps what the other replicas share
// (PutPeer, SetPeerPresent, DeletePeer, and BeginPeerSync/EndPeerSync
// around a full read). Nothing here blocks or waits for the transport:
// a watch stream's status change is a map insert and a non-blocking send.
//
// A node may be known to several replicas: the one its watch stream is
// attached to now, the ones it was attached to before, one it reports
// telemetry to. ListNodes shows it once, merged (see merged).

// LocalRecord is the status of one of this replica's nodes, for sharing.
type LocalRecord struct {
	// Status is a copy; Status.Connected says whether its watch stream is
	// attached here now.
	Status *wsfleetv1.NodeStatus
	// Running says the node reported the revision it runs (its applied
	// pool, revision and store id are that revision's): ahead applies.
	Running bool
}

// PeerRecord is a node's status as another replica shares it.
type PeerRecord struct {
	// Replica is the sharing replica's id; NodeID the node's.
	Replica, NodeID string
	// Status is the record's status; its Connected is ignored: whether
	// the node is attached to that replica now is SetPeerPresent's.
	Status  *wsfleetv1.NodeStatus
	Running bool
	// Mod is the record's version in the transport (etcd's ModRevision),
	// handed back by ExpiredPeers so that a record rewritten meanwhile is
	// not deleted.
	Mod int64
}

// peerRecord is a PeerRecord as the registry keeps it.
type peerRecord struct {
	status     *wsfleetv1.NodeStatus
	running    bool
	present    bool
	mod        int64
	gen        uint64 // the full read that last put it
	presentGen uint64 // the full read that last said it present
	bytes      int
}

// peerRecordBytes estimates a peer record's memory, as helloBytes does a
// node entry's.
func peerRecordBytes(s *wsfleetv1.NodeStatus) int {
	return nodeOverhead + proto.Size(s)
}

// markDirty notes that node id's status changed, for the transport. r.mu
// must be held.
func (r *Registry) markDirty(id string) {
	if !r.cfg.Shared {
		return
	}
	r.dirty[id] = struct{}{}
	select {
	case r.dirtyC <- struct{}{}:
	default:
	}
}

// Dirty receives a value when some of this replica's nodes changed since
// the last TakeDirty (one slot: several changes may come as one).
func (r *Registry) Dirty() <-chan struct{} { return r.dirtyC }

// TakeDirty returns the ids of this replica's nodes whose status changed
// (or that were forgotten) since the last call, and forgets them.
func (r *Registry) TakeDirty() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.dirty))
	for id := range r.dirty {
		out = append(out, id)
	}
	clear(r.dirty)
	return out
}

// Local returns the status of this replica's node id; false when it has
// forgotten the node (its shared record is to be deleted).
func (r *Registry) Local(id string) (LocalRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nd := r.nodes[id]
	if nd == nil {
		return LocalRecord{}, false
	}
	return LocalRecord{Status: proto.Clone(nd.status).(*wsfleetv1.NodeStatus), Running: nd.running != nil}, true
}

// ForgetExpired forgets the nodes disconnected for longer than
// ForgetAfter now, rather than at the next ListNodes: their shared records
// are deleted then.
func (r *Registry) ForgetExpired() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forget(r.cfg.Now())
}

// BeginPeerSync says a full read of the other replicas' records begins:
// every record follows through PutPeer and SetPeerPresent, then
// EndPeerSync drops what the read did not find.
func (r *Registry) BeginPeerSync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peerGen++
	r.peersRefused = 0
}

// EndPeerSync ends a full read: a record it did not put is gone, and one
// it did not say present is not.
func (r *Registry) EndPeerSync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, recs := range r.peers {
		for replica, p := range recs {
			switch {
			case p.gen < r.peerGen:
				r.removePeer(id, replica)
			case p.presentGen < r.peerGen:
				p.present = false
			}
		}
	}
}

// PutPeer keeps (or replaces) a record another replica shares. A new one
// is admitted within MaxNodes and MaxNodesBytes like a node of this
// replica's (see admit); when every entry is connected it is not kept, and
// ListNodes says its view is incomplete.
func (r *Registry) PutPeer(rec PeerRecord) {
	size := peerRecordBytes(rec.Status)
	r.mu.Lock()
	defer r.mu.Unlock()
	recs := r.peers[rec.NodeID]
	old := recs[rec.Replica]
	count, bytes := len(r.nodes)+r.peerCount, r.bytes+size
	if old != nil {
		bytes -= old.bytes
	} else {
		count++
	}
	if r.makeRoom(count, bytes, entryKey{node: rec.NodeID, replica: rec.Replica}) != nil {
		r.metrics.nodesRefused.Inc()
		r.peersRefused++
		if old != nil {
			// Better gone than stale.
			r.removePeer(rec.NodeID, rec.Replica)
		}
		return
	}
	// makeRoom may have forgotten other records of this node.
	recs = r.peers[rec.NodeID]
	if recs == nil {
		recs = map[string]*peerRecord{}
		r.peers[rec.NodeID] = recs
	}
	p := recs[rec.Replica]
	if p == nil {
		p = &peerRecord{}
		recs[rec.Replica] = p
		r.peerCount++
		r.index(rec.NodeID)
	} else {
		r.bytes -= p.bytes
	}
	p.status, p.running, p.mod, p.gen, p.bytes = rec.Status, rec.Running, rec.Mod, r.peerGen, size
	r.bytes += size
	r.metrics.nodesKnown.Set(float64(len(r.nodes) + r.peerCount))
}

// SetPeerPresent says whether node id's watch stream is attached to
// replica now. It applies to a record PutPeer kept; others are ignored.
func (r *Registry) SetPeerPresent(replica, id string, present bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.peers[id][replica]; p != nil {
		p.present = present
		if present {
			p.presentGen = r.peerGen
		}
	}
}

// DeletePeer forgets a record another replica shared.
func (r *Registry) DeletePeer(replica, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removePeer(id, replica)
}

// removePeer forgets one record. r.mu must be held.
func (r *Registry) removePeer(id, replica string) {
	p := r.peers[id][replica]
	if p == nil {
		return
	}
	delete(r.peers[id], replica)
	if len(r.peers[id]) == 0 {
		delete(r.peers, id)
	}
	r.peerCount--
	r.bytes -= p.bytes
	r.unindex(id)
	r.metrics.nodesKnown.Set(float64(len(r.nodes) + r.peerCount))
}

// ExpiredPeer names a record to delete from the transport.
type ExpiredPeer struct {
	Replica, NodeID string
	// Mod is the record's version as last read: delete it only if it is
	// still that one.
	Mod int64
}

// ExpiredPeers lists the records of replicas that are gone (alive false)
// whose node has not been seen for ForgetAfter: nobody else deletes them.
// A live replica deletes its own when it forgets the node.
func (r *Registry) ExpiredPeers(alive func(replica string) bool) []ExpiredPeer {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ExpiredPeer
	for id, recs := range r.peers {
		for replica, p := range recs {
			if !p.present && r.expired(p.status, now) && !alive(replica) {
				out = append(out, ExpiredPeer{Replica: replica, NodeID: id, Mod: p.mod})
			}
		}
	}
	return out
}

// expired reports whether a status not attached anywhere was last seen
// more than ForgetAfter ago.
func (r *Registry) expired(s *wsfleetv1.NodeStatus, now time.Time) bool {
	ts := s.GetLastSeenTime()
	return ts != nil && now.Sub(ts.AsTime()) > r.cfg.ForgetAfter
}

// mayBeInPool is a cheap test before merged: whether some entry of node id
// is in pool. r.mu must be held.
func (r *Registry) mayBeInPool(id, pool string) bool {
	if nd := r.nodes[id]; nd != nil && nd.status.GetPool() == pool {
		return true
	}
	for _, p := range r.peers[id] {
		if p.status.GetPool() == pool {
			return true
		}
	}
	return false
}

// merged is node id's status as ListNodes shows it, or nil when there is
// nothing to show (every entry expired). r.mu must be held.
//
// One entry speaks for the node: an attached one (this replica's open
// stream, or a record whose presence key lives) before any other, the
// latest connect first; else the one with a watch stream seen last; else a
// telemetry-only one seen last. Its status is shown, connected if it is
// attached; the counters (pushes, telemetry events and drops) add up
// every replica's, and the last-seen time is the latest. A record not
// attached and not seen for ForgetAfter counts for nothing.
func (r *Registry) merged(id string, now time.Time) *wsfleetv1.NodeStatus {
	type entry struct {
		s                 *wsfleetv1.NodeStatus
		attached, running bool
	}
	var (
		best                    entry
		found                   bool
		pushes, events, dropped uint64
		seen                    time.Time
	)
	consider := func(e entry) {
		if !e.attached && r.expired(e.s, now) {
			return
		}
		pushes += e.s.GetPushes()
		events += e.s.GetTelemetryEvents()
		dropped += e.s.GetTelemetryDropped()
		if ts := e.s.GetLastSeenTime(); ts != nil && ts.AsTime().After(seen) {
			seen = ts.AsTime()
		}
		if !found || better(e.s, e.attached, best.s, best.attached) {
			best, found = e, true
		}
	}
	if nd := r.nodes[id]; nd != nil {
		consider(entry{nd.status, nd.notify != nil, nd.running != nil})
	}
	for _, p := range r.peers[id] {
		consider(entry{p.status, p.present, p.running})
	}
	if !found {
		return nil
	}
	s := proto.Clone(best.s).(*wsfleetv1.NodeStatus)
	s.Connected = best.attached
	s.Pushes, s.TelemetryEvents, s.TelemetryDropped = pushes, events, dropped
	if !seen.IsZero() {
		s.LastSeenTime = timestamppb.New(seen)
	}
	if eff := r.effectiveFor(s.GetPool(), s.GetLabels(), revKey{s.GetAppliedPool(), s.GetAppliedRevision(), s.GetAppliedStoreId()}); eff != nil {
		s.HeadRevision = eff.rev.GetRevision()
	}
	s.Ahead = best.running && r.aheadOf(s.GetAppliedPool(), s.GetAppliedRevision(), s.GetAppliedStoreId())
	return s
}

// better reports whether entry a speaks for a node before entry b (see
// merged).
func better(a *wsfleetv1.NodeStatus, aAttached bool, b *wsfleetv1.NodeStatus, bAttached bool) bool {
	if aAttached != bAttached {
		return aAttached
	}
	aWatched, bWatched := a.GetConnectTime() != nil, b.GetConnectTime() != nil
	if aAttached {
		return a.GetConnectTime().AsTime().After(b.GetConnectTime().AsTime())
	}
	if aWatched != bWatched {
		return aWatched
	}
	return a.GetLastSeenTime().AsTime().After(b.GetLastSeenTime().AsTime())
}

package registry

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Caps on a hello, in bytes unless said otherwise. Nodes are ours: a hello
// over a cap is a misconfiguration (or not one of our nodes) and is
// refused with InvalidArgument naming the field, never cut silently.
const (
	// MaxAddressBytes: host:port, a DNS name at most 253 bytes.
	MaxAddressBytes = 256
	// MaxBuildBytes: a version string.
	MaxBuildBytes = 128
	// MaxLabelKeyBytes and MaxLabelValueBytes bound one label.
	MaxLabelKeyBytes   = 128
	MaxLabelValueBytes = 256
	// MaxLabelsBytes bounds the keys and values of all labels together.
	MaxLabelsBytes = 4 << 10
	// MaxRunningBytes bounds the running revision a hello carries (its
	// encoded size): room for a valid policy at its largest (1000 origins
	// of 512 bytes) and its metadata.
	MaxRunningBytes = 1 << 20
)

// Defaults of the registry's capacity (Config).
const (
	// DefaultMaxNodes bounds the nodes known at once.
	DefaultMaxNodes = 50_000
	// DefaultMaxNodesBytes bounds their estimated memory.
	DefaultMaxNodesBytes = 256 << 20
	// DefaultPageSize is ListNodes' page size when none is asked for;
	// MaxPageSize caps the ones asked for.
	DefaultPageSize = 500
	MaxPageSize     = 1000
	// MaxPageBytes bounds a ListNodes page in encoded bytes, well under
	// gRPC's default 4 MiB receive limit: a page ends early rather than
	// exceed it, whatever the nodes' labels.
	MaxPageBytes = 2 << 20
)

// nodeOverhead estimates a node entry's memory besides its strings, labels
// and running revision: the status message and its timestamps, the node
// struct, its channels and maps, the index entry, and room for the NACK
// text (MaxNackBytes) it may gain later.
const nodeOverhead = 1024 + MaxNackBytes

// labelOverhead estimates a label's map entry besides its key and value.
const labelOverhead = 64

// helloViolations lists what of h is over its caps.
func helloViolations(h *wsfleetv1.NodeHello) []string {
	var bad []string
	if n := len(h.GetAddress()); n > MaxAddressBytes {
		bad = append(bad, fmt.Sprintf("address: %d bytes, at most %d", n, MaxAddressBytes))
	}
	if n := len(h.GetBuild()); n > MaxBuildBytes {
		bad = append(bad, fmt.Sprintf("build: %d bytes, at most %d", n, MaxBuildBytes))
	}
	if p := h.GetAppliedPool(); p != "" && policy.ValidatePoolName(p) != nil {
		bad = append(bad, fmt.Sprintf("applied_pool: %q is not a DNS label", clipForError(p)))
	}
	total := 0
	// Sorted, so that the answer names the same label every time.
	for _, k := range slices.Sorted(maps.Keys(h.GetLabels())) {
		v := h.GetLabels()[k]
		total += len(k) + len(v)
		switch {
		case len(k) == 0:
			bad = append(bad, "labels: an empty key")
		case len(k) > MaxLabelKeyBytes:
			bad = append(bad, fmt.Sprintf("labels: key %q: %d bytes, at most %d", clipForError(k), len(k), MaxLabelKeyBytes))
		case len(v) > MaxLabelValueBytes:
			bad = append(bad, fmt.Sprintf("labels[%s]: value of %d bytes, at most %d", clipForError(k), len(v), MaxLabelValueBytes))
		}
	}
	if total > MaxLabelsBytes {
		bad = append(bad, fmt.Sprintf("labels: %d bytes of keys and values, at most %d", total, MaxLabelsBytes))
	}
	if run := h.GetRunning(); run != nil {
		if n := proto.Size(run); n > MaxRunningBytes {
			bad = append(bad, fmt.Sprintf("running: %d bytes, at most %d", n, MaxRunningBytes))
		}
	}
	return bad
}

// clipForError keeps an offending value short in an error message.
func clipForError(s string) string {
	const n = 32
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// helloBytes estimates the memory a node entry made from h holds; running
// is the revision the entry keeps (shared with a head, it costs nothing).
func helloBytes(h *wsfleetv1.NodeHello, running *wsfleetv1.PolicyRevision) int {
	n := nodeOverhead + len(h.GetNodeId()) + len(h.GetPool()) + len(h.GetAddress()) + len(h.GetBuild()) + len(h.GetAppliedPool())
	for k, v := range h.GetLabels() {
		n += len(k) + len(v) + labelOverhead
	}
	if running != nil && running == h.GetRunning() {
		n += proto.Size(running)
	}
	return n
}

// shareRunning returns the head revision instead of run when they are the
// same revision of the same store with the same content, so that a fleet
// on the head keeps one copy of it rather than one per node. r.mu must be
// held.
func (r *Registry) shareRunning(run *wsfleetv1.PolicyRevision) *wsfleetv1.PolicyRevision {
	if run == nil {
		return nil
	}
	if h := r.heads[run.GetPool()]; h != nil && keyOf(h.rev) == keyOf(run) && proto.Equal(h.rev.GetPolicy(), run.GetPolicy()) {
		return h.rev
	}
	return run
}

// admit makes room for the entry of node id at size estimated bytes, the
// entry replacing id's current one if there is one: while the registry
// would hold more than MaxNodes entries or MaxNodesBytes, it forgets the
// disconnected entry seen longest ago (never id's own). Entries are this
// replica's nodes and, with shared status, the records other replicas
// share (see shared.go). When only connected entries are left to forget
// it refuses with ResourceExhausted, having changed nothing but the
// forgetting. On success the caller stores the entry with insert (a new
// id) or keeps it (a known one); admit has accounted its size. r.mu must
// be held.
func (r *Registry) admit(id string, size int) error {
	old, known := r.nodes[id]
	count, bytes := len(r.nodes)+r.peerCount, r.bytes+size
	if known {
		bytes -= old.bytes
	} else {
		count++
	}
	if err := r.makeRoom(count, bytes, entryKey{node: id}); err != nil {
		r.metrics.nodesRefused.Inc()
		return status.Errorf(codes.ResourceExhausted,
			"the control plane knows %d nodes (%d bytes), at most %d (%d bytes), all connected: node %q not admitted",
			len(r.nodes)+r.peerCount, r.bytes, r.cfg.MaxNodes, r.cfg.MaxNodesBytes, clipForError(id))
	}
	if known {
		r.bytes += size - old.bytes
		old.bytes = size
	} else {
		r.bytes += size
	}
	return nil
}

// errFull: every entry that could be forgotten is connected.
var errFull = errors.New("registry full")

// makeRoom forgets the disconnected entry seen longest ago, other than
// except, while count entries of bytes would be over a bound; errFull when
// only connected ones are left. r.mu must be held.
func (r *Registry) makeRoom(count, bytes int, except entryKey) error {
	for count > r.cfg.MaxNodes || bytes > r.cfg.MaxNodesBytes {
		victim, size, ok := r.oldestDisconnected(except)
		if !ok {
			return errFull
		}
		bytes -= size
		count--
		if victim.replica == "" {
			r.remove(victim.node)
		} else {
			r.removePeer(victim.node, victim.replica)
		}
		r.metrics.nodesEvicted.Inc()
	}
	return nil
}

// entryKey names an entry: a node of this replica (replica empty), or a
// node's record shared by another replica.
type entryKey struct{ node, replica string }

// oldestDisconnected is the disconnected entry other than except seen
// longest ago, and its size. A scan: it runs only when the registry is
// full. r.mu must be held.
func (r *Registry) oldestDisconnected(except entryKey) (entryKey, int, bool) {
	var (
		oldest     entryKey
		oldestSeen time.Time
		size       int
		found      bool
	)
	consider := func(k entryKey, s *wsfleetv1.NodeStatus, connected bool, n int) {
		if connected || k == except {
			return
		}
		seen := s.GetLastSeenTime().AsTime()
		if !found || seen.Before(oldestSeen) {
			oldest, oldestSeen, size, found = k, seen, n, true
		}
	}
	for id, nd := range r.nodes {
		consider(entryKey{node: id}, nd.status, nd.status.GetConnected(), nd.bytes)
	}
	for id, recs := range r.peers {
		for replica, p := range recs {
			consider(entryKey{node: id, replica: replica}, p.status, p.present, p.bytes)
		}
	}
	return oldest, size, found
}

// insert adds a new node entry, admitted at size bytes, to the map and the
// sorted index. r.mu must be held.
func (r *Registry) insert(id string, nd *node, size int) {
	nd.bytes = size
	r.nodes[id] = nd
	r.index(id)
	r.metrics.nodesKnown.Set(float64(len(r.nodes) + r.peerCount))
}

// remove forgets a node of this replica: map, index and bytes. With shared
// status the forgetting is shared too (its record is deleted). r.mu must
// be held.
func (r *Registry) remove(id string) {
	nd, ok := r.nodes[id]
	if !ok {
		return
	}
	delete(r.nodes, id)
	r.bytes -= nd.bytes
	r.unindex(id)
	r.markDirty(id)
	r.metrics.nodesKnown.Set(float64(len(r.nodes) + r.peerCount))
}

// index adds id to the sorted index of node ids unless it is there.
// r.mu must be held.
func (r *Registry) index(id string) {
	if i, found := slices.BinarySearch(r.ids, id); !found {
		r.ids = slices.Insert(r.ids, i, id)
	}
}

// unindex takes id out of the sorted index once neither this replica nor
// another has an entry for it. r.mu must be held.
func (r *Registry) unindex(id string) {
	if _, ok := r.nodes[id]; ok || len(r.peers[id]) > 0 {
		return
	}
	if i, found := slices.BinarySearch(r.ids, id); found {
		r.ids = slices.Delete(r.ids, i, i+1)
	}
}

// pageTokenEncoding makes a page token of a node id: opaque to clients, and
// valid in any header or URL should one ever carry it.
var pageTokenEncoding = base64.RawURLEncoding

// pageAfter decodes a page token: the id of the last node of the previous
// page. Listing resumes after it, so nodes that come or go between pages
// neither shift nor repeat the rest.
func pageAfter(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := pageTokenEncoding.DecodeString(token)
	if err != nil || len(b) == 0 || len(b) > maxNodeIDLength {
		return "", status.Error(codes.InvalidArgument, "page_token: not a token from a previous ListNodes answer")
	}
	return string(b), nil
}

// pageSize applies a request's page_size: 0 means DefaultPageSize, more
// than MaxPageSize is capped, negative is refused.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, status.Error(codes.InvalidArgument, "page_size: must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}

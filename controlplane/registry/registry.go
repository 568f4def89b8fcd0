package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// Defaults of Config.
const (
	DefaultHelloTimeout = 10 * time.Second
	DefaultBaseTimeout  = 10 * time.Second
	DefaultBaseRetry    = 2 * time.Second
	DefaultForgetAfter  = 24 * time.Hour
	maxNodeIDLength     = 128
	maxLabels           = 64
	// maxStoreIDLength bounds the store identity a node reports; stores
	// make short ones ("bolt-" and 16 hex digits).
	maxStoreIDLength = 128
	// MaxNackBytes bounds the NACK text kept per node and shown in
	// ListNodes; longer texts are cut on a UTF-8 boundary and marked.
	MaxNackBytes = 1024
)

// Config configures a Registry.
type Config struct {
	// Heads are the pools' current revisions at start (store.Pools), so
	// that nodes attaching before Follow's first head are served; Follow
	// keeps them current.
	Heads []*wsfleetv1.PolicyRevision
	// HelloTimeout bounds the wait for a stream's first message. Default 10s.
	HelloTimeout time.Duration
	// ForgetAfter drops a disconnected node from ListNodes. Default 24h.
	ForgetAfter time.Duration
	// MaxNodes bounds the nodes known at once, connected or not. A new node
	// beyond it makes the registry forget the disconnected node seen
	// longest ago; when every known node is connected the new one is
	// refused with ResourceExhausted. Default 50,000.
	MaxNodes int
	// MaxNodesBytes bounds the known nodes' estimated memory the same way
	// (an entry costs about 2 KiB plus its hello's strings and labels, at
	// most MaxLabelsBytes, and its running revision unless it is the
	// head's, at most MaxRunningBytes). Default 256 MiB.
	MaxNodesBytes int
	// Shared makes the registry keep the fleet's node status as the
	// control-plane replicas sharing a store share it (package
	// registry/etcdstatus): it tracks which of its own nodes changed
	// (Dirty, TakeDirty, Local) and keeps the records the other replicas
	// share (PutPeer and the rest), so that ListNodes answers for the
	// whole fleet. See shared.go.
	Shared bool
	// Revision reads one revision of a pool from the store: while a pool's
	// head is a baking canary (it carries a rollout), the nodes its
	// selector does not match are pushed the rollout's base revision,
	// which the registry reads through it when the head arrives (in
	// Follow's goroutine, never under its lock) and keeps with the head.
	// Without it those nodes are pushed nothing until the rollout ends;
	// when the read fails (a store that was briefly unreachable) it is
	// tried again every BaseRetry (default 2s) while a node waits for the
	// base, and meanwhile they are pushed nothing. BaseTimeout bounds a
	// read (default 10s).
	Revision    func(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error)
	BaseTimeout time.Duration
	BaseRetry   time.Duration
	// Registerer receives the registry's metrics; optional.
	Registerer prometheus.Registerer
	Log        logrus.FieldLogger
	Now        func() time.Time
}

// Registry tracks nodes and pushes policy to them.
type Registry struct {
	cfg     Config
	log     logrus.FieldLogger
	metrics *metrics
	nonceID string
	nonces  atomic.Uint64

	mu     sync.Mutex
	heads  map[string]*head // pool → current revision
	nodes  map[string]*node // node id → node
	ids    []string         // the ids of nodes and peers, sorted: ListNodes pages through it
	bytes  int              // the entries' estimated memory (node.bytes and peerRecord.bytes summed)
	closed bool

	// With Config.Shared: this replica's nodes whose status changed since
	// the last TakeDirty (bounded by the nodes known), and a one-slot
	// channel saying there are some.
	dirty  map[string]struct{}
	dirtyC chan struct{}
	// peers are the records other replicas share: node id → replica id →
	// record; peerCount counts them. peerGen is the current full read of
	// them (BeginPeerSync); peersRefused counts the records refused for
	// the bounds since then.
	peers        map[string]map[string]*peerRecord
	peerCount    int
	peerGen      uint64
	peersRefused int
}

type head struct {
	rev       *wsfleetv1.PolicyRevision
	committed time.Time // when the store's watch delivered it here, for propagation latency
	// With rev a baking canary (rev.Rollout set): the nodes sel matches
	// run rev, every other one base (nil when it could not be read).
	sel   policy.Selector
	selOK bool
	base  *head
	// A base that could not be read is read again (readBase), one read
	// at a time, at most every Config.BaseRetry; r.mu guards both.
	baseTried   time.Time
	baseReading bool
}

type node struct {
	status *wsfleetv1.NodeStatus
	gen    uint64        // increases with each stream for this node id
	notify chan struct{} // one slot, latest wins; nil while disconnected
	stop   chan struct{} // closed when a newer stream replaces this one
	// nacked is the highest revision per pool the node refused.
	nacked map[string]int64
	// nackedPool is the pool of the revision in status.LastNackRevision.
	nackedPool string
	// cred is the credential (auth.Identity.Credential) of the node's
	// latest stream: only a stream with the same one may replace it, and
	// the NACK memory is forgotten when another one attaches.
	cred string
	// running is the revision the node runs, whole: from its hello, then
	// each revision it ACKs. Nil when it reported none (a node without a
	// policy from a control plane, or an SDK older than the field).
	running *wsfleetv1.PolicyRevision
	// bytes is the entry's estimated memory, as admitted (see admit).
	bytes int
}

// Reported is the revision one node reports running, as RecoverPolicy
// reads the fleet.
type Reported struct {
	NodeID string
	// Pool is the node's own pool; Running.Pool is the pool whose policy
	// it runs (its own, or default's).
	Pool      string
	Connected bool
	// LastSeen is when the node last said anything.
	LastSeen time.Time
	Running  *wsfleetv1.PolicyRevision
}

// New returns a Registry.
func New(cfg Config) (*Registry, error) {
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = DefaultForgetAfter
	}
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	if cfg.MaxNodesBytes <= 0 {
		cfg.MaxNodesBytes = DefaultMaxNodesBytes
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BaseTimeout <= 0 {
		cfg.BaseTimeout = DefaultBaseTimeout
	}
	if cfg.BaseRetry <= 0 {
		cfg.BaseRetry = DefaultBaseRetry
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &Registry{
		cfg:     cfg,
		log:     cfg.Log,
		metrics: newMetrics(cfg.Registerer),
		nonceID: hex.EncodeToString(b[:]),
		heads:   map[string]*head{},
		nodes:   map[string]*node{},
		dirty:   map[string]struct{}{},
		dirtyC:  make(chan struct{}, 1),
		peers:   map[string]map[string]*peerRecord{},
	}
	for _, h := range cfg.Heads {
		r.advance(h)
	}
	return r, nil
}

// Follow pushes the heads the store's watch delivers (store.WatchHeads):
// each newer head of a pool becomes what the registry pushes to the nodes
// it concerns. It returns when heads is closed (the watch ended). The
// heads come from the store, not from this process's writes, so a commit
// made through any control plane sharing the store reaches the nodes
// attached here.
func (r *Registry) Follow(heads <-chan *wsfleetv1.PolicyRevision) {
	for rev := range heads {
		r.advance(rev)
	}
}

// advance makes rev its pool's head unless the registry has one at least
// as new (a watch re-reading the heads after a gap repeats them). It never
// blocks: every stream that may be concerned is nudged through its
// one-slot channel.
func (r *Registry) advance(rev *wsfleetv1.PolicyRevision) {
	nh := &head{rev: rev, committed: r.cfg.Now()}
	if rev.GetRollout() != nil {
		r.canary(nh)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.heads[rev.GetPool()]; h != nil && h.rev.GetRevision() >= rev.GetRevision() {
		return
	}
	r.heads[rev.GetPool()] = nh
	r.metrics.revision.WithLabelValues(rev.GetPool()).Set(float64(rev.GetRevision()))
	r.nudge(rev.GetPool())
}

// nudge wakes every stream the head of pool may concern (its nodes, and
// every node for default's). r.mu must be held.
func (r *Registry) nudge(headPool string) {
	for _, n := range r.nodes {
		if n.notify == nil {
			continue
		}
		pool := n.status.GetPool()
		if pool == headPool || headPool == policy.DefaultPool {
			select {
			case n.notify <- struct{}{}:
			default:
			}
		}
	}
}

// canary prepares the head of a baking canary: its selector, and its base
// revision read from the store (not under r.mu: it may block).
func (r *Registry) canary(h *head) {
	rev := h.rev
	log := r.log.WithFields(logrus.Fields{"pool": rev.GetPool(), "revision": rev.GetRevision(), "base_revision": rev.GetRollout().GetBaseRevision()})
	sel, err := policy.ParseSelector(rev.GetRollout().GetSelector())
	if err != nil {
		// Stored by a control plane that validated it; an unparsable one
		// matches no node, so every node keeps the base.
		log.WithError(err).Error("canary selector does not parse; no node runs the canary")
	} else {
		h.sel, h.selOK = sel, true
	}
	if r.cfg.Revision == nil {
		log.Warn("no store reader: nodes outside the canary are pushed nothing until the rollout ends")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.BaseTimeout)
	defer cancel()
	base, err := r.cfg.Revision(ctx, rev.GetPool(), rev.GetRollout().GetBaseRevision())
	if err != nil {
		h.baseTried = r.cfg.Now()
		log.WithError(err).Error("read the canary's base revision; nodes outside the canary are pushed nothing until a read succeeds")
		return
	}
	h.base = &head{rev: base, committed: h.committed}
}

// missingBase is the head of a baking canary in effect for pool whose
// base could not be read yet, or nil. r.mu must be held.
func (r *Registry) missingBase(pool string) *head {
	h := r.effective(pool)
	if h == nil || h.rev.GetRollout() == nil || h.base != nil || r.cfg.Revision == nil {
		return nil
	}
	return h
}

// readBase reads the base of canary head h again, unless another stream
// is reading it or it was tried less than Config.BaseRetry ago; once read,
// every stream it concerns is nudged. Not under r.mu: it may block.
func (r *Registry) readBase(h *head) {
	r.mu.Lock()
	if h.base != nil || h.baseReading || r.cfg.Now().Sub(h.baseTried) < r.cfg.BaseRetry {
		r.mu.Unlock()
		return
	}
	h.baseReading = true
	r.mu.Unlock()
	rev := h.rev
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.BaseTimeout)
	base, err := r.cfg.Revision(ctx, rev.GetPool(), rev.GetRollout().GetBaseRevision())
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	h.baseReading, h.baseTried = false, r.cfg.Now()
	log := r.log.WithFields(logrus.Fields{"pool": rev.GetPool(), "revision": rev.GetRevision(), "base_revision": rev.GetRollout().GetBaseRevision()})
	if err != nil {
		log.WithError(err).Warn("read the canary's base revision again; still failing")
		return
	}
	h.base = &head{rev: base, committed: h.committed}
	log.Info("read the canary's base revision; pushing it to the nodes outside the canary")
	if r.heads[rev.GetPool()] == h {
		r.nudge(rev.GetPool())
	}
}

// effectiveFor is the head a node of pool with labels, running applied,
// runs: effective's, or, while that is a baking canary the node is not
// part of (its selector does not match, or the node only falls back to
// that pool), the canary's base; nil when there is none. A node that
// already runs the canary revision keeps it whatever its labels say now
// (it restarted from its cache with other labels): its base is a lower
// number, which the node refuses as going backwards, so pushing it would
// only be a NACK; it takes the revision that ends the rollout like every
// node. r.mu must be held.
func (r *Registry) effectiveFor(pool string, labels map[string]string, applied revKey) *head {
	h := r.effective(pool)
	if h == nil || h.rev.GetRollout() == nil {
		return h
	}
	if h.rev.GetPool() == pool && h.selOK && h.sel.Matches(labels) {
		return h
	}
	if applied.pool == h.rev.GetPool() && applied.rev == h.rev.GetRevision() && (applied.store == "" || applied.store == h.rev.GetStoreId()) {
		return h
	}
	return h.base
}

// effective is the head a node of pool runs: its pool's, else default's.
// r.mu must be held.
func (r *Registry) effective(pool string) *head {
	if h := r.heads[pool]; h != nil {
		return h
	}
	return r.heads[policy.DefaultPool]
}

// Watch implements NodeService.Watch.
func (r *Registry) Watch(stream wsfleetv1.NodeService_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	msgs := make(chan *wsfleetv1.WatchRequest, 4)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	hello, err := r.awaitHello(ctx, msgs, recvErr)
	if err != nil {
		return err
	}
	addr := ""
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	who, err := r.authorize(stream.Context(), hello, addr)
	if err != nil {
		return err
	}
	pool, gen, notify, stop, err := r.attach(hello, addr, who.Credential)
	if err != nil {
		return err
	}
	defer r.detach(hello.GetNodeId(), gen)
	// Headers tell the node the stream is accepted even when there is
	// nothing to push (it already runs the head).
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	log := r.log.WithFields(logrus.Fields{"node_id": hello.GetNodeId(), "pool": pool, "peer": addr})
	applied := helloKey(hello)
	log.WithFields(logrus.Fields{"applied_pool": applied.pool, "applied_revision": applied.rev, "applied_store_id": applied.store}).Info("node connected")

	var (
		sentNonce string
		sent      *head
	)
	for {
		r.mu.Lock()
		eff := r.effectiveFor(pool, hello.GetLabels(), applied)
		var waiting *head // the canary whose base this node waits for
		if eff == nil {
			waiting = r.missingBase(pool)
		}
		var push bool
		if eff != nil {
			key := keyOf(eff.rev)
			node := r.nodes[hello.GetNodeId()]
			nacked := node != nil && node.gen == gen && node.nacked[eff.rev.GetPool()] >= eff.rev.GetRevision()
			push = key != applied && (sent == nil || keyOf(sent.rev) != key) && !nacked
		}
		r.mu.Unlock()
		if push {
			sentNonce = r.cfg.Now().Format("150405") + "-" + r.nonceID + "-" + strconv.FormatUint(r.nonces.Add(1), 36)
			if err := stream.Send(&wsfleetv1.WatchResponse{Revision: eff.rev, Nonce: sentNonce}); err != nil {
				return err
			}
			sent = eff
			r.update(hello.GetNodeId(), gen, func(s *wsfleetv1.NodeStatus, _ *node) { s.Pushes++ })
			r.metrics.pushes.Inc()
		}
		var retry <-chan time.Time
		if waiting != nil {
			r.readBase(waiting)
			retry = time.After(r.cfg.BaseRetry)
		}
		select {
		case <-notify:
		case <-retry:
		case <-stop:
			if r.isClosed() {
				return errShuttingDown
			}
			log.Info("watch stream replaced by a newer one for the same node id")
			return status.Error(codes.Aborted, "replaced by a newer watch stream for this node id")
		case <-ctx.Done():
			// The node went away (or the server is stopping): a status code
			// (Canceled, DeadlineExceeded), never a bare context error,
			// which gRPC would report as Unknown and log as a server fault.
			log.Info("node disconnected")
			return status.FromContextError(ctx.Err()).Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				log.Info("node disconnected")
				return nil
			}
			log.WithError(err).Info("node disconnected")
			return err
		case m := <-msgs:
			now := r.cfg.Now()
			switch k := m.GetKind().(type) {
			case *wsfleetv1.WatchRequest_Ack:
				if sent == nil || k.Ack.GetNonce() != sentNonce {
					r.metrics.stale.Inc()
					r.update(hello.GetNodeId(), gen, func(s *wsfleetv1.NodeStatus, _ *node) { s.LastSeenTime = timestamppb.New(now) })
					continue
				}
				applied = keyOf(sent.rev)
				r.metrics.acks.Inc()
				r.metrics.propagation.Observe(now.Sub(sent.committed).Seconds())
				r.update(hello.GetNodeId(), gen, func(s *wsfleetv1.NodeStatus, nd *node) {
					nd.running = sent.rev
					s.AppliedPool, s.AppliedRevision, s.AppliedStoreId = sent.rev.GetPool(), sent.rev.GetRevision(), sent.rev.GetStoreId()
					s.LastAckTime = timestamppb.New(now)
					s.LastSeenTime = timestamppb.New(now)
					// A NACK is about a push the node refused; once it
					// applies a later one, the refusal is history (the log
					// and the nacks metric keep it) and "LAST NACK" would
					// only point operators at a problem that is gone.
					s.LastNackRevision, s.LastNackError = 0, ""
					nd.clearNacksUpTo(applied)
				})
				// Debug: one apply reaches every node of a pool, and a line per
				// node would bury the audit line; the metrics and ListNodes
				// carry it.
				log.WithFields(logrus.Fields{"applied_pool": sent.rev.GetPool(), "applied_revision": sent.rev.GetRevision()}).Debug("node applied policy")
			case *wsfleetv1.WatchRequest_Nack:
				if sent == nil || k.Nack.GetNonce() != sentNonce {
					r.metrics.stale.Inc()
					continue
				}
				r.metrics.nacks.Inc()
				// Valid UTF-8 (a node may send anything), cut on a rune
				// boundary: one bad text must not make ListNodes
				// unmarshalable for the whole fleet.
				errText := clip.ValidString(k.Nack.GetError(), MaxNackBytes)
				r.update(hello.GetNodeId(), gen, func(s *wsfleetv1.NodeStatus, nd *node) {
					s.LastNackRevision = sent.rev.GetRevision()
					s.LastNackError = errText
					nd.nackedPool = sent.rev.GetPool()
					s.LastSeenTime = timestamppb.New(now)
					if nd.nacked[sent.rev.GetPool()] < sent.rev.GetRevision() {
						nd.nacked[sent.rev.GetPool()] = sent.rev.GetRevision()
					}
				})
				log.WithFields(logrus.Fields{"revision": sent.rev.GetRevision(), "revision_pool": sent.rev.GetPool(), "error": errText}).Warn("node refused policy")
			default:
				r.update(hello.GetNodeId(), gen, func(s *wsfleetv1.NodeStatus, _ *node) { s.LastSeenTime = timestamppb.New(now) })
			}
		}
	}
}

func (r *Registry) awaitHello(ctx context.Context, msgs <-chan *wsfleetv1.WatchRequest, recvErr <-chan error) (*wsfleetv1.NodeHello, error) {
	t := time.NewTimer(r.cfg.HelloTimeout)
	defer t.Stop()
	select {
	case m := <-msgs:
		h := m.GetHello()
		if h == nil {
			return nil, status.Error(codes.InvalidArgument, "the first message of a watch stream must be a hello")
		}
		if err := validateHello(h); err != nil {
			// Nodes are ours: a hello we refuse is a misconfiguration that
			// must be seen here too, not only on the node.
			r.log.WithField("node_id", clipForError(h.GetNodeId())).WithError(err).Warn("hello refused")
			return nil, err
		}
		return h, nil
	case err := <-recvErr:
		if errors.Is(err, io.EOF) {
			// A bare io.EOF would reach the client as Unknown.
			return nil, status.Error(codes.InvalidArgument, "the watch stream ended before a hello")
		}
		return nil, err
	case <-t.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %s", r.cfg.HelloTimeout)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func validateHello(h *wsfleetv1.NodeHello) error {
	var bad []string
	id := h.GetNodeId()
	switch {
	case id == "":
		bad = append(bad, "node_id: required")
	case len(id) > maxNodeIDLength:
		bad = append(bad, fmt.Sprintf("node_id: longer than %d", maxNodeIDLength))
	default:
		for _, c := range id {
			if !unicode.IsPrint(c) || unicode.IsSpace(c) {
				bad = append(bad, "node_id: only printable characters without spaces")
				break
			}
		}
	}
	if p := h.GetPool(); p != "" {
		if err := policy.ValidatePoolName(p); err != nil {
			bad = append(bad, fmt.Sprintf("pool: %q is not a DNS label", p))
		}
	}
	if len(h.GetLabels()) > maxLabels {
		bad = append(bad, fmt.Sprintf("labels: more than %d", maxLabels))
	}
	bad = append(bad, helloViolations(h)...)
	if run := h.GetRunning(); run != nil {
		pool := h.GetPool()
		if pool == "" {
			pool = policy.DefaultPool
		}
		// A node runs its own pool's policy or default's; what it reports
		// here may become a pool's policy (RecoverPolicy), so it may not
		// speak for any other pool.
		switch rp := run.GetPool(); {
		case rp != pool && rp != policy.DefaultPool:
			bad = append(bad, fmt.Sprintf("running.pool: %q is neither the node's pool %q nor %q", rp, pool, policy.DefaultPool))
		case run.GetRevision() <= 0:
			bad = append(bad, "running.revision: must be positive")
		}
		if id := run.GetStoreId(); len(id) > maxStoreIDLength {
			bad = append(bad, fmt.Sprintf("running.store_id: longer than %d", maxStoreIDLength))
		}
	}
	if len(bad) > 0 {
		// A hello may be wrong in many places (64 labels each too long):
		// the answer names the first few, so that it stays short.
		const shown = 8
		if len(bad) > shown {
			bad = append(bad[:shown], fmt.Sprintf("and %d more", len(bad)-shown))
		}
		return status.Errorf(codes.InvalidArgument, "invalid hello: %v", bad)
	}
	return nil
}

// authorize checks that the stream's credential may act as the node id
// and pool its hello names (auth.AuthorizeNode): PermissionDenied, naming
// both, before anything of the node's status is touched.
func (r *Registry) authorize(ctx context.Context, h *wsfleetv1.NodeHello, addr string) (auth.Identity, error) {
	who, err := auth.AuthorizeNode(ctx, h.GetNodeId(), poolOf(h))
	if err != nil {
		r.metrics.refused.WithLabelValues("not_allowed").Inc()
		r.log.WithFields(logrus.Fields{"node_id": h.GetNodeId(), "pool": poolOf(h), "peer": addr}).WithError(err).Warn("watch refused: the credential may not act as this node")
	}
	return who, err
}

func poolOf(h *wsfleetv1.NodeHello) string {
	if p := h.GetPool(); p != "" {
		return p
	}
	return policy.DefaultPool
}

// attach registers a stream for a node, replacing any previous stream for
// the same node id that came with the same credential (the newest wins: it
// is the node that reconnected). A stream with another credential, while
// one is attached, is refused with AlreadyExists and the attached one goes
// on: two credentials that may both act as an id (overlapping patterns)
// cannot take a node's stream from each other. attach returns an error,
// having changed nothing, then, once Shutdown has begun, and with
// ResourceExhausted when the registry is full (see admit); every stream it
// attaches is counted in the connected gauge until its detach.
func (r *Registry) attach(h *wsfleetv1.NodeHello, addr, cred string) (pool string, gen uint64, notify, stop chan struct{}, err error) {
	now := timestamppb.New(r.cfg.Now())
	pool = poolOf(h)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		// Checked under the lock that Shutdown takes: a stream attached
		// after Shutdown would never be stopped, and one refused here must
		// not be counted (its caller does not detach it).
		return pool, 0, nil, nil, errShuttingDown
	}
	nd := r.nodes[h.GetNodeId()]
	if nd != nil && nd.stop != nil && nd.cred != cred {
		r.metrics.refused.WithLabelValues("other_credential").Inc()
		r.log.WithFields(logrus.Fields{"node_id": h.GetNodeId(), "peer": addr}).Warn("watch refused: the node id is connected with another credential")
		return pool, 0, nil, nil, status.Errorf(codes.AlreadyExists,
			"node %q is connected with another credential; a watch stream may replace it only with the same credential", h.GetNodeId())
	}
	running := r.shareRunning(h.GetRunning())
	size := helloBytes(h, running)
	// admit never forgets the node it admits, so nd stays valid.
	if err := r.admit(h.GetNodeId(), size); err != nil {
		return pool, 0, nil, nil, err
	}
	if nd == nil {
		nd = &node{status: &wsfleetv1.NodeStatus{NodeId: h.GetNodeId()}, nacked: map[string]int64{}}
		r.insert(h.GetNodeId(), nd, size)
	} else if nd.stop != nil {
		close(nd.stop)
	}
	if nd.status.GetPool() != pool || nd.cred != cred {
		// What another credential's stream refused (or a node in another
		// pool) says nothing about this one: NACK memory and the shown
		// NACK are only ever the node's own.
		nd.nacked = map[string]int64{}
		nd.status.LastNackRevision, nd.status.LastNackError = 0, ""
	}
	nd.cred = cred
	nd.clearNacksUpTo(helloKey(h))
	nd.gen++
	nd.notify = make(chan struct{}, 1)
	nd.stop = make(chan struct{})
	s := nd.status
	s.Pool = pool
	s.Labels = h.GetLabels()
	s.Address = h.GetAddress()
	if s.Address == "" {
		s.Address = addr
	}
	s.Build = h.GetBuild()
	s.Connected = true
	nd.running = running
	applied := helloKey(h)
	s.AppliedPool, s.AppliedRevision, s.AppliedStoreId = applied.pool, applied.rev, applied.store
	s.LastSeenTime = now
	s.ConnectTime = now
	r.markDirty(h.GetNodeId())
	r.metrics.connected.Inc()
	return pool, nd.gen, nd.notify, nd.stop, nil
}

// clearNacksUpTo forgets the NACK of a pool once the node runs a newer
// revision of it (reported in its hello or ACKed): the refusal is history,
// and an older NACK must not keep a later push of that pool from it.
func (nd *node) clearNacksUpTo(running revKey) {
	if running.pool == "" {
		return
	}
	if n, ok := nd.nacked[running.pool]; ok && running.rev > n {
		delete(nd.nacked, running.pool)
	}
	if nd.nackedPool == running.pool && running.rev > nd.status.GetLastNackRevision() {
		nd.status.LastNackRevision, nd.status.LastNackError = 0, ""
	}
}

// revKey names a revision: the pool it belongs to, its number and the
// store that issued it. Two stores may issue the same number (one was
// reset): a node running the other store's is pushed this one's, and
// refuses it if the content differs.
type revKey struct {
	pool  string
	rev   int64
	store string
}

func keyOf(rev *wsfleetv1.PolicyRevision) revKey {
	return revKey{rev.GetPool(), rev.GetRevision(), rev.GetStoreId()}
}

// helloKey is the revision a hello says the node runs: running when set,
// else the applied pool and number of an SDK that predates it.
func helloKey(h *wsfleetv1.NodeHello) revKey {
	if run := h.GetRunning(); run != nil {
		return keyOf(run)
	}
	return revKey{pool: h.GetAppliedPool(), rev: h.GetAppliedRevision()}
}

// detach marks the node disconnected unless a newer stream took over.
func (r *Registry) detach(id string, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics.connected.Dec()
	nd := r.nodes[id]
	if nd == nil || nd.gen != gen {
		return
	}
	nd.status.Connected = false
	nd.status.LastSeenTime = timestamppb.New(r.cfg.Now())
	nd.notify = nil
	nd.stop = nil
	r.markDirty(id)
}

func (r *Registry) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// update changes a node's status if the stream (gen) is still current.
func (r *Registry) update(id string, gen uint64, f func(*wsfleetv1.NodeStatus, *node)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if nd := r.nodes[id]; nd != nil && nd.gen == gen {
		f(nd.status, nd)
		r.markDirty(id)
	}
}

// TelemetryBatch counts a node's ingested telemetry (telemetry's OnBatch
// hook). A node that reports without watching is listed too, if the
// registry has room for it (see admit); its telemetry is ingested either
// way.
func (r *Registry) TelemetryBatch(nodeID string, events int, dropped uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nd := r.nodes[nodeID]
	if nd == nil {
		size := nodeOverhead + len(nodeID)
		if r.admit(nodeID, size) != nil {
			return
		}
		nd = &node{status: &wsfleetv1.NodeStatus{NodeId: nodeID}, nacked: map[string]int64{}}
		r.insert(nodeID, nd, size)
	}
	nd.status.TelemetryEvents += uint64(events)
	nd.status.TelemetryDropped += dropped
	if !nd.status.GetConnected() {
		nd.status.LastSeenTime = timestamppb.New(r.cfg.Now())
	}
	r.markDirty(nodeID)
}

// ListNodes implements FleetService.ListNodes: the nodes by id, one page at
// a time. A page holds at most page_size nodes (DefaultPageSize when 0,
// capped at MaxPageSize) and MaxPageBytes encoded, so that it never
// exceeds a client's message limit; next_page_token resumes after its last
// node, so paging works while nodes come and go: a node present
// throughout is listed exactly once. With shared status the nodes are the
// whole fleet's, each once, whichever replicas know it (see merged).
func (r *Registry) ListNodes(_ context.Context, req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := pageAfter(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	now := r.cfg.Now()
	resp := &wsfleetv1.ListNodesResponse{Nodes: make([]*wsfleetv1.NodeStatus, 0, min(size, 64))}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forget(now)
	i, found := slices.BinarySearch(r.ids, after)
	if found {
		i++
	}
	bytes := 0
	for ; i < len(r.ids); i++ {
		if req.GetPool() != "" && !r.mayBeInPool(r.ids[i], req.GetPool()) {
			continue
		}
		if len(resp.Nodes) == size {
			break
		}
		s := r.merged(r.ids[i], now)
		if s == nil || req.GetPool() != "" && s.GetPool() != req.GetPool() {
			continue
		}
		// protowire's bound on a repeated field's tag and length.
		n := proto.Size(s) + 1 + 4
		if bytes+n > MaxPageBytes && len(resp.Nodes) > 0 {
			break
		}
		bytes += n
		resp.Nodes = append(resp.Nodes, s)
	}
	if i < len(r.ids) && len(resp.Nodes) > 0 {
		resp.NextPageToken = pageTokenEncoding.EncodeToString([]byte(resp.Nodes[len(resp.Nodes)-1].GetNodeId()))
	}
	if r.peersRefused > 0 {
		resp.Degraded = fmt.Sprintf("node status records shared by other replicas are not kept here (%d refused): the fleet has more nodes than --max-nodes and --max-nodes-bytes allow", r.peersRefused)
	}
	return resp, nil
}

// aheadOf reports whether a node that runs revision rev of pool from store
// runs a revision this control plane does not have: a higher number than
// the head of that pool, a pool with no head here at all, or the head's
// number from another store. That is what a node looks like after the
// store was reset or replaced while it kept running; RecoverPolicy brings
// the control plane back above it. r.mu must be held.
func (r *Registry) aheadOf(pool string, rev int64, store string) bool {
	h := r.heads[pool]
	if h == nil {
		return true
	}
	head := h.rev
	return rev > head.GetRevision() || rev == head.GetRevision() && store != head.GetStoreId()
}

// forget drops the nodes disconnected for longer than ForgetAfter. r.mu
// must be held.
func (r *Registry) forget(now time.Time) {
	for id, nd := range r.nodes {
		s := nd.status
		if !s.GetConnected() && s.GetLastSeenTime() != nil && now.Sub(s.GetLastSeenTime().AsTime()) > r.cfg.ForgetAfter {
			r.remove(id)
		}
	}
}

// Running returns the revision every known node reports running (connected
// or seen within ForgetAfter), by node id; Running is nil for a node that
// reports none. The revisions are shared and must not be modified.
// RecoverPolicy reads the fleet through it.
func (r *Registry) Running() []Reported {
	now := r.cfg.Now()
	r.mu.Lock()
	r.forget(now)
	out := make([]Reported, 0, len(r.nodes))
	for id, nd := range r.nodes {
		rep := Reported{NodeID: id, Pool: nd.status.GetPool(), Connected: nd.status.GetConnected(), Running: nd.running}
		if ts := nd.status.GetLastSeenTime(); ts != nil {
			rep.LastSeen = ts.AsTime()
		}
		out = append(out, rep)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// errShuttingDown ends the watch streams of a control plane that stops.
var errShuttingDown = status.Error(codes.Unavailable, "control plane shutting down")

// Shutdown ends every watch stream with Unavailable, so nodes reconnect
// (to another replica, or to this one when it is back) instead of holding
// up a graceful stop.
func (r *Registry) Shutdown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, nd := range r.nodes {
		if nd.stop != nil {
			close(nd.stop)
			nd.stop = nil
		}
	}
}

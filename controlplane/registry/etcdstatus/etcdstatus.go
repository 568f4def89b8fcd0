package etcdstatus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/internal/etcdmirror"
	"github.com/wsfleet/wsfleet/controlplane/registry"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
)

// Defaults of Config.
const (
	DefaultWriteInterval  = time.Second
	DefaultSweepInterval  = time.Minute
	DefaultRequestTimeout = 5 * time.Second
)

const (
	// maxBatch bounds the nodes of one write transaction: at most two
	// operations each, within etcd's default limit of 128 per
	// transaction; maxBatchBytes bounds its records' bytes, well within
	// etcd's 1.5 MiB request limit.
	maxBatch      = 64
	maxBatchBytes = 1 << 20
	// maxRecordBytes bounds a record read from etcd. The registry's caps
	// keep ours under about 8 KiB (labels 4 KiB, NACK text 1 KiB, ...).
	maxRecordBytes = 64 << 10
	// maxSweep bounds the records of gone replicas one sweep deletes.
	maxSweep = 1000
	// Failed writes are retried from retryMin to retryMax apart.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// schema is the records' layout version, their first byte.
	schema = 1
	// flagRunning, in a record's second byte: the node reported the
	// revision it runs (registry.LocalRecord.Running).
	flagRunning = 1
)

// Config configures a Sync.
type Config struct {
	// Client is the etcd client (the store's: one per process).
	Client *clientv3.Client
	// Prefix is the store's key prefix, with its trailing "/".
	Prefix string
	// Member is this replica's membership: its id, its lease, and which
	// replicas are alive.
	Member *replicas.Member
	// Registry is this replica's registry, made with Config.Shared.
	Registry *registry.Registry
	// WriteInterval is the least time between two writes of one node's
	// status. A change is written WriteInterval/10 after it is noted at
	// the earliest, so that the changes of a burst (every node ACKing a
	// new revision) share transactions. Default 1s.
	WriteInterval time.Duration
	// SweepInterval is how often forgotten nodes' records are deleted.
	// Default 1m.
	SweepInterval time.Duration
	// RequestTimeout bounds each etcd call. Default 5s.
	RequestTimeout time.Duration
	// Registerer receives the metrics; optional.
	Registerer prometheus.Registerer
	Log        logrus.FieldLogger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Sync shares one replica's node status through etcd; see the package
// documentation.
type Sync struct {
	cfg                  Config
	self                 string
	nodesDir, presentDir string
	metrics              *metrics

	mu          sync.Mutex
	writeErr    error // the last write's error while writes fail
	writeSince  time.Time
	copyErr     error // why the copy is stale, while it is
	copySince   time.Time
	copyInitial bool // the copy has not been read once yet
}

// own is what Run knows of a record it wrote.
type own struct {
	written  time.Time
	presence clientv3.LeaseID // the lease its presence key was put under; 0: none
	attached bool             // the node was attached when last written
}

// NodesDir and PresenceDir are where the records and presence keys live
// under a store's prefix.
func NodesDir(prefix string) string    { return prefix + "fleet/nodes/" }
func PresenceDir(prefix string) string { return prefix + "fleet/presence/" }

// New checks cfg and returns a Sync; Run makes it share.
func New(cfg Config) (*Sync, error) {
	switch {
	case cfg.Client == nil || cfg.Member == nil || cfg.Registry == nil:
		return nil, fmt.Errorf("%w: client, member and registry are required", ErrConfig)
	case cfg.Prefix == "" || !strings.HasSuffix(cfg.Prefix, "/"):
		return nil, fmt.Errorf("%w: prefix %q must end with /", ErrConfig, cfg.Prefix)
	case cfg.WriteInterval < 0 || cfg.SweepInterval < 0 || cfg.RequestTimeout < 0:
		return nil, fmt.Errorf("%w: negative interval or timeout", ErrConfig)
	}
	if cfg.WriteInterval == 0 {
		cfg.WriteInterval = DefaultWriteInterval
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sync{
		cfg:         cfg,
		self:        cfg.Member.ID(),
		nodesDir:    NodesDir(cfg.Prefix),
		presentDir:  PresenceDir(cfg.Prefix),
		metrics:     newMetrics(cfg.Registerer),
		copySince:   cfg.Now(),
		copyErr:     errors.New("not read yet"),
		copyInitial: true,
	}, nil
}

// Degraded says why this replica's view of the fleet may be incomplete or
// stale, or "" when it is whole.
func (s *Sync) Degraded() string {
	var why []string
	if d := s.cfg.Member.Degraded(); d != "" {
		why = append(why, d)
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if s.copyErr != nil {
		what := "the other replicas' nodes are shown as last read"
		if s.copyInitial {
			what = "the other replicas' nodes are not shown"
		}
		why = append(why, fmt.Sprintf("cannot read the fleet's node status from etcd for %s (%v): %s",
			now.Sub(s.copySince).Round(100*time.Millisecond), s.copyErr, what))
	}
	if s.writeErr != nil {
		why = append(why, fmt.Sprintf("cannot write this replica's node status to etcd for %s (%v): the other replicas see its nodes as they were",
			now.Sub(s.writeSince).Round(100*time.Millisecond), s.writeErr))
	}
	s.mu.Unlock()
	return strings.Join(why, "; ")
}

// Run shares the registry's status until ctx ends; then it writes what is
// still waiting (the detaches of a stop) within one RequestTimeout, and
// returns once its copy of the others' records has stopped.
func (s *Sync) Run(ctx context.Context) {
	log := s.cfg.Log.WithField("replica_id", s.self)
	var copies sync.WaitGroup
	copies.Go(func() {
		// The records and the presence keys, one range: "nodes/" sorts
		// before "presence/", and nothing else of ours lies between.
		etcdmirror.Run(ctx, etcdmirror.Config{
			Client: s.cfg.Client, Key: s.nodesDir, End: clientv3.GetPrefixRangeEnd(s.presentDir),
			RequestTimeout: s.cfg.RequestTimeout, What: "node status", Log: log,
		}, (*copyHandler)(s))
	})
	defer copies.Wait()

	w := &writer{s: s, log: log, owned: map[string]*own{}, pending: map[string]time.Time{}}
	w.retry = &backoff.ExponentialBackOff{
		InitialInterval:     retryMin,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         retryMax,
	}
	w.retry.Reset()
	w.run(ctx)
}

// writer is Run's writing half; its state is Run's goroutine's own.
type writer struct {
	s       *Sync
	log     logrus.FieldLogger
	owned   map[string]*own      // node id → what was written of it
	pending map[string]time.Time // node ids to write → when first noted
	retry   backoff.BackOff
	wait    time.Time // no write before this (backoff after a failure)
}

func (w *writer) run(ctx context.Context) {
	reg := w.s.cfg.Registry
	sweep := time.NewTicker(w.s.cfg.SweepInterval)
	defer sweep.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		_, leaseChanged := w.s.cfg.Member.Lease()
		next := w.writeDue(ctx)
		if next.IsZero() {
			next = w.s.cfg.Now().Add(time.Hour)
		}
		timer.Reset(max(next.Sub(w.s.cfg.Now()), time.Millisecond))
		select {
		case <-ctx.Done():
			w.flush()
			return
		case <-reg.Dirty():
			w.take()
		case <-leaseChanged:
			// Presence keys go with a lease: under a new one they are put
			// again.
			now := w.s.cfg.Now()
			for id, o := range w.owned {
				if _, ok := w.pending[id]; o.attached && !ok {
					w.pending[id] = now
				}
			}
		case <-sweep.C:
			w.sweep(ctx)
		case <-timer.C:
		}
	}
}

// take moves the registry's changed nodes to pending.
func (w *writer) take() {
	now := w.s.cfg.Now()
	for _, id := range w.s.cfg.Registry.TakeDirty() {
		if _, ok := w.pending[id]; !ok {
			w.pending[id] = now
		}
	}
	w.s.metrics.pending.Set(float64(len(w.pending)))
}

// writeDue writes the pending nodes whose interval has passed, in batches,
// and returns when the next one is due (zero: none is pending).
func (w *writer) writeDue(ctx context.Context) time.Time {
	for ctx.Err() == nil {
		now := w.s.cfg.Now()
		if now.Before(w.wait) {
			return w.wait
		}
		batch, next := w.due(now)
		if len(batch) == 0 {
			return next
		}
		if err := w.write(ctx, batch); err != nil {
			w.wait = w.s.cfg.Now().Add(w.retry.NextBackOff())
			return w.wait
		}
		w.retry.Reset()
	}
	return time.Time{}
}

// due picks up to maxBatch pending nodes that are due, and says when the
// earliest of the others is. A node is due a tenth of the interval after
// its change was noted (so that a burst's changes share transactions),
// and an interval after its last write.
func (w *writer) due(now time.Time) ([]string, time.Time) {
	var (
		batch []string
		next  time.Time
	)
	gather := w.s.cfg.WriteInterval / 10
	for id, noted := range w.pending {
		at := noted.Add(gather)
		if o := w.owned[id]; o != nil {
			at = later(at, o.written.Add(w.s.cfg.WriteInterval))
		}
		if !at.After(now) {
			if len(batch) < maxBatch {
				batch = append(batch, id)
				continue
			}
			at = now
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return batch, next
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// write writes the status of the nodes of batch in one transaction.
func (w *writer) write(ctx context.Context, batch []string) error {
	lease, _ := w.s.cfg.Member.Lease()
	type change struct {
		id       string
		gone     bool
		attached bool
		presence clientv3.LeaseID
	}
	ops := make([]clientv3.Op, 0, 2*len(batch))
	changes := make([]change, 0, len(batch))
	bytes := 0
	for _, id := range batch {
		if bytes > maxBatchBytes {
			break // the rest stay pending, for the next transaction
		}
		o := w.owned[id]
		rec, ok := w.s.cfg.Registry.Local(id)
		if !ok {
			if o != nil {
				ops = append(ops, clientv3.OpDelete(w.s.nodesDir+w.s.self+"/"+id), clientv3.OpDelete(w.s.presentDir+w.s.self+"/"+id))
			}
			changes = append(changes, change{id: id, gone: true})
			continue
		}
		v, err := encode(rec)
		if err != nil {
			w.log.WithError(err).WithField("node_id", id).Error("a node's status cannot be encoded; not shared")
			delete(w.pending, id)
			continue
		}
		bytes += len(v)
		ops = append(ops, clientv3.OpPut(w.s.nodesDir+w.s.self+"/"+id, string(v)))
		c := change{id: id, attached: rec.Status.GetConnected()}
		if o != nil {
			c.presence = o.presence
		}
		switch {
		case c.attached && lease != 0 && c.presence != lease:
			ops = append(ops, clientv3.OpPut(w.s.presentDir+w.s.self+"/"+id, "", clientv3.WithLease(lease)))
			c.presence = lease
		case !c.attached && c.presence != 0:
			ops = append(ops, clientv3.OpDelete(w.s.presentDir+w.s.self+"/"+id))
			c.presence = 0
		}
		changes = append(changes, c)
	}
	if len(ops) > 0 {
		cctx, cancel := context.WithTimeout(ctx, w.s.cfg.RequestTimeout)
		_, err := w.s.cfg.Client.Txn(cctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			w.s.metrics.writes.WithLabelValues("error").Inc()
			w.s.writeFailed(err)
			w.log.WithError(err).WithField("nodes", len(batch)).Debug("cannot write node status to etcd; retrying")
			return err
		}
		w.s.metrics.writes.WithLabelValues("ok").Inc()
		w.s.writeFailed(nil)
	}
	now := w.s.cfg.Now()
	for _, c := range changes {
		delete(w.pending, c.id)
		if c.gone {
			delete(w.owned, c.id)
			continue
		}
		o := w.owned[c.id]
		if o == nil {
			o = &own{}
			w.owned[c.id] = o
		}
		o.written, o.presence, o.attached = now, c.presence, c.attached
	}
	w.s.metrics.pending.Set(float64(len(w.pending)))
	return nil
}

// flush writes what is pending, whatever the interval, once, within one
// RequestTimeout: the last statuses of a replica that stops. While writes
// fail (etcd away) it does not wait for etcd again: the other replicas
// see this one's nodes disconnected when its lease expires.
func (w *writer) flush() {
	w.take()
	w.s.mu.Lock()
	failing := w.s.writeErr != nil
	w.s.mu.Unlock()
	if failing && len(w.pending) > 0 {
		w.log.WithField("nodes", len(w.pending)).Warn("etcd is away: the last node statuses of this replica are not written")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.s.cfg.RequestTimeout)
	defer cancel()
	for len(w.pending) > 0 && ctx.Err() == nil {
		batch := make([]string, 0, maxBatch)
		for id := range w.pending {
			if len(batch) == maxBatch {
				break
			}
			batch = append(batch, id)
		}
		if err := w.write(ctx, batch); err != nil {
			w.log.WithError(err).WithField("nodes", len(w.pending)).Warn("the last node statuses of this replica were not written to etcd")
			return
		}
	}
}

// sweep deletes the records of forgotten nodes: this replica's own (the
// registry forgets them, which marks them changed), and those of replicas
// that are gone.
func (w *writer) sweep(ctx context.Context) {
	reg := w.s.cfg.Registry
	reg.ForgetExpired()
	expired := reg.ExpiredPeers(w.s.cfg.Member.Alive)
	if len(expired) > maxSweep {
		expired = expired[:maxSweep]
	}
	for _, e := range expired {
		if ctx.Err() != nil {
			return
		}
		key := w.s.nodesDir + e.Replica + "/" + e.NodeID
		cctx, cancel := context.WithTimeout(ctx, w.s.cfg.RequestTimeout)
		// Deleted only if, in etcd itself, it is still the record read,
		// not attached, and its replica is gone: this replica's view of
		// the others may lag.
		_, err := w.s.cfg.Client.Txn(cctx).If(
			clientv3.Compare(clientv3.ModRevision(key), "=", e.Mod),
			clientv3.Compare(clientv3.CreateRevision(w.s.presentDir+e.Replica+"/"+e.NodeID), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(replicas.KeyDir(w.s.cfg.Prefix)+e.Replica), "=", 0),
		).Then(clientv3.OpDelete(key)).Commit()
		cancel()
		if err != nil {
			w.log.WithError(err).Debug("cannot delete a forgotten node's record; next sweep")
			return
		}
	}
}

func (s *Sync) writeFailed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.writeErr = nil
		return
	}
	if s.writeErr == nil {
		s.writeSince = s.cfg.Now()
	}
	s.writeErr = err
}

// encode is a record's value: the layout version, the flags, then the
// status as protobuf (as the store keeps revisions: compact and quick to
// read on every replica).
func encode(rec registry.LocalRecord) ([]byte, error) {
	flags := byte(0)
	if rec.Running {
		flags |= flagRunning
	}
	v, err := proto.MarshalOptions{}.MarshalAppend([]byte{schema, flags}, rec.Status)
	if err != nil {
		return nil, err
	}
	if len(v) > maxRecordBytes {
		return nil, fmt.Errorf("record of %d bytes, at most %d", len(v), maxRecordBytes)
	}
	return v, nil
}

// decode reads a record's value.
func decode(v []byte) (*wsfleetv1.NodeStatus, bool, error) {
	switch {
	case len(v) > maxRecordBytes:
		return nil, false, fmt.Errorf("%d bytes, at most %d", len(v), maxRecordBytes)
	case len(v) < 2:
		return nil, false, errors.New("too short")
	case v[0] != schema:
		return nil, false, fmt.Errorf("layout version %d, this build reads %d", v[0], schema)
	}
	st := &wsfleetv1.NodeStatus{}
	if err := proto.Unmarshal(v[2:], st); err != nil {
		return nil, false, err
	}
	return st, v[1]&flagRunning != 0, nil
}

// copyHandler is the Sync as the handler of its copy of the others'
// records.
type copyHandler Sync

// split parses a key under dir into its replica and node ids.
func split(key, dir string) (replica, node string, ok bool) {
	rest, ok := strings.CutPrefix(key, dir)
	if !ok {
		return "", "", false
	}
	replica, node, ok = strings.Cut(rest, "/")
	return replica, node, ok && replica != "" && node != ""
}

func (c *copyHandler) Reset() { c.cfg.Registry.BeginPeerSync() }

func (c *copyHandler) Put(kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	if replica, node, ok := split(key, c.presentDir); ok {
		if replica != c.self {
			c.cfg.Registry.SetPeerPresent(replica, node, true)
		}
		return
	}
	replica, node, ok := split(key, c.nodesDir)
	if !ok || replica == c.self {
		return
	}
	st, running, err := decode(kv.Value)
	if err == nil && st.GetNodeId() != node {
		err = fmt.Errorf("holds node %q", clip(st.GetNodeId()))
	}
	if err != nil {
		c.cfg.Log.WithError(err).WithField("key", clip(key)).Warn("a node status record in etcd cannot be read; ignored")
		return
	}
	c.cfg.Registry.PutPeer(registry.PeerRecord{Replica: replica, NodeID: node, Status: st, Running: running, Mod: kv.ModRevision})
}

func (c *copyHandler) Delete(k []byte) {
	key := string(k)
	if replica, node, ok := split(key, c.presentDir); ok {
		if replica != c.self {
			c.cfg.Registry.SetPeerPresent(replica, node, false)
		}
		return
	}
	if replica, node, ok := split(key, c.nodesDir); ok && replica != c.self {
		c.cfg.Registry.DeletePeer(replica, node)
	}
}

func (c *copyHandler) Synced() {
	c.cfg.Registry.EndPeerSync()
	c.Resumed()
}

func (c *copyHandler) Broken(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.copyErr == nil {
		c.copySince = c.cfg.Now()
	}
	c.copyErr = err
}

func (c *copyHandler) Resumed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.copyErr, c.copyInitial = nil, false
}

// clip keeps what etcd holds short in a log line.
func clip(s string) string {
	const n = 160
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

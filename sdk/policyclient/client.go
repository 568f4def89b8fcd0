package policyclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/internal/backoff"
)

// Status is a snapshot of a Client for metrics, logs and health checks.
type Status struct {
	// Connected: a watch stream is open and the control plane has answered
	// on it (response headers or a push).
	Connected bool
	// Pool of the applied revision: the node's own or policy.DefaultPool;
	// empty when none.
	Pool string
	// Revision is the applied (last good) revision, 0 if none.
	Revision int64
	// StoreID is the identity of the store that issued Revision; empty
	// when none (or a cache written before stores had identities).
	StoreID string
	// LastError is the last stream or dial error, NACK text or cache write
	// error; it is not cleared by a later success (LastErrorTime says when).
	LastError     string
	LastErrorTime time.Time
	// LastApplyTime is when Apply last succeeded in this process.
	LastApplyTime time.Time
	// Dials counts Watch streams attempted.
	Dials uint64
	// Received counts pushes (WatchResponses) received, including those
	// superseded before they could be applied.
	Received uint64
	// Acks and Nacks count the ACKs and NACKs sent.
	Acks, Nacks uint64
}

// Client watches the control plane for this node's policy. Create it with
// New and start it with Run; see the package doc for its goroutines.
type Client struct {
	cfg    Config
	log    logrus.FieldLogger
	nodes  wsfleetv1.NodeServiceClient
	labels map[string]string
	cached *wsfleetv1.PolicyRevision

	// applied is the last good revision: from the cache, or from the last
	// successful Apply. Written by the apply goroutine, read by the hello.
	applied atomic.Pointer[wsfleetv1.PolicyRevision]
	// slot holds the newest push not yet taken by the apply goroutine. The
	// receive loop empties it before every send, so it never blocks.
	slot    chan push
	running atomic.Bool

	// jitter draws the sleep below a backoff ceiling; tests replace it.
	jitter func(time.Duration) time.Duration

	mu     sync.Mutex
	status Status
}

// push is one WatchResponse and the stream it arrived on, which is where
// its ACK or NACK must go.
type push struct {
	resp   *wsfleetv1.WatchResponse
	stream *watchStream
}

type watchStream struct {
	// ctx is done once the stream is over; a push of a finished stream is
	// not applied (its nonce can no longer be answered, and the next
	// stream's hello brings the current revision again).
	ctx    context.Context
	stream wsfleetv1.NodeService_WatchClient
}

// New validates cfg, fills its defaults and loads the cache file. A cache
// that cannot be used (corrupt, invalid, another pool's) is logged and
// ignored: it must never stop a node from starting.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:    cfg,
		log:    cfg.Log.WithFields(logrus.Fields{"node_id": cfg.NodeID, "pool": cfg.Pool}),
		nodes:  wsfleetv1.NewNodeServiceClient(cfg.Conn),
		labels: maps.Clone(cfg.Labels),
		slot:   make(chan push, 1),
		jitter: backoff.FullJitter,
	}
	if cfg.CacheFile != "" {
		c.loadCache()
	}
	return c, nil
}

func (c *Client) loadCache() {
	log := c.log.WithField("cache_file", c.cfg.CacheFile)
	rev, err := ReadCache(c.cfg.CacheFile, c.cfg.Pool)
	if err != nil {
		log.WithError(err).Warn("policy cache ignored; waiting for the control plane")
		return
	}
	if rev == nil {
		log.Debug("no policy cache yet")
		return
	}
	c.cached = rev
	c.applied.Store(rev)
	c.status.Revision = rev.GetRevision()
	c.status.Pool = rev.GetPool()
	c.status.StoreID = rev.GetStoreId()
	log.WithFields(logrus.Fields{"revision": rev.GetRevision(), "policy_pool": rev.GetPool(), "store_id": rev.GetStoreId()}).Info("loaded cached policy")
}

// Cached returns the revision loaded from the cache file at New, nil if
// none. The embedding code starts with it before the control plane
// answers: the client counts it as applied (Ready, the hello), so it is not
// offered to Apply again unless its content changes.
func (c *Client) Cached() *wsfleetv1.PolicyRevision { return c.cached }

// Ready reports whether a policy is applied, from the control plane or the
// cache. It never blocks.
func (c *Client) Ready() bool { return c.applied.Load() != nil }

// Status returns a snapshot of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Run watches until ctx ends, reconnecting with full-jitter exponential
// backoff, and returns ctx.Err() once its goroutines, including an Apply in
// progress, have stopped. It returns ErrRunning at once if another Run of
// this Client is going.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.applyLoop(ctx)
	}()
	defer func() {
		wg.Wait()
		// A push left by this Run belongs to a finished stream; a later
		// Run must not see it.
		select {
		case <-c.slot:
		default:
		}
	}()

	attempt := 0
	failing := false // a run of failed attempts has been logged once
	for {
		healthy, connected, err := c.watchOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.setError(err)
		if healthy {
			attempt = 0
		}
		sleep := c.jitter(backoff.Ceiling(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt))
		// attempt only matters up to the doubling that reaches MaxBackoff;
		// the bound keeps it from growing for ever during a long outage.
		attempt = min(attempt+1, 64)
		entry := c.log.WithError(err).WithField("retry_in", sleep.Round(time.Millisecond).String())
		switch {
		case connected:
			failing = false
			entry.Info("disconnected from the control plane")
		case !failing:
			failing = true
			entry.Warn("cannot watch the control plane; retrying with backoff")
		default:
			entry.WithField("attempt", attempt).Debug("watch attempt failed")
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// watchOnce runs one Watch stream to its end. healthy: the stream
// delivered a push or lasted longer than MaxBackoff, so the backoff starts
// over. connected: the control plane answered on it.
func (c *Client) watchOnce(ctx context.Context) (healthy, connected bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.status.Dials++
	c.mu.Unlock()
	start := time.Now()
	defer func() {
		if connected {
			c.setConnected(false)
		}
		healthy = healthy || time.Since(start) > c.cfg.MaxBackoff
	}()

	stream, err := c.nodes.Watch(sctx)
	if err != nil {
		return false, false, err
	}
	if err := stream.Send(c.hello()); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream is over; Recv has its status.
			_, err = stream.Recv()
		}
		return false, false, streamErr(err)
	}
	// Header returns once the control plane answers: response headers
	// (a server that accepted the hello sends them at once), a push, or the
	// end of the stream (nil metadata, the status comes from Recv).
	if md, _ := stream.Header(); md != nil {
		connected = true
		c.onConnect()
	}
	ws := &watchStream{ctx: sctx, stream: stream}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return healthy, connected, streamErr(err)
		}
		if !connected {
			connected = true
			c.onConnect()
		}
		healthy = true
		c.mu.Lock()
		c.status.Received++
		c.mu.Unlock()
		// Latest wins: a push not yet taken is superseded (it will never be
		// ACKed; the control plane ignores its nonce from now on).
		select {
		case <-c.slot:
		default:
		}
		c.slot <- push{resp: resp, stream: ws}
	}
}

// streamErr names a clean end of stream, which gRPC reports as io.EOF.
func streamErr(err error) error {
	if errors.Is(err, io.EOF) {
		return ErrStreamEnded
	}
	return err
}

func (c *Client) onConnect() {
	c.setConnected(true)
	entry := c.log
	if cur := c.applied.Load(); cur != nil {
		entry = entry.WithFields(logrus.Fields{"applied_revision": cur.GetRevision(), "applied_pool": cur.GetPool()})
	}
	entry.Info("connected to the control plane")
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.status.Connected = v
	c.mu.Unlock()
}

func (c *Client) setError(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.status.LastError = err.Error()
	c.status.LastErrorTime = time.Now()
	c.mu.Unlock()
}

// hello is the first message of every stream. It carries the revision the
// node runs, whole: the control plane resends nothing the node already
// has, shows a node that runs a revision it does not know (its store was
// reset) as ahead, and can recover the pool's policy from it.
func (c *Client) hello() *wsfleetv1.WatchRequest {
	h := &wsfleetv1.NodeHello{
		NodeId:  c.cfg.NodeID,
		Pool:    c.cfg.Pool,
		Labels:  c.labels,
		Build:   c.cfg.Build,
		Address: c.cfg.Address,
	}
	if cur := c.applied.Load(); cur != nil {
		h.AppliedRevision = cur.GetRevision()
		h.AppliedPool = cur.GetPool()
		h.Running = cur
	}
	return &wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: h}}
}

// check is what a revision must pass before it reaches Apply or is taken
// from the cache: a positive revision of this node's pool or of the default
// pool, whose policy is valid as a whole. Callers wrap its error with
// ErrInvalidPush or ErrCache.
func (c *Client) check(rev *wsfleetv1.PolicyRevision) error { return checkRevision(rev, c.cfg.Pool) }

func checkRevision(rev *wsfleetv1.PolicyRevision, pool string) error {
	switch {
	case rev == nil:
		return errors.New("no revision")
	case rev.GetRevision() <= 0:
		return fmt.Errorf("revision %d is not positive", rev.GetRevision())
	case rev.GetPool() != pool && rev.GetPool() != policy.DefaultPool:
		return fmt.Errorf("revision %d is of pool %q, but this node is in pool %q", rev.GetRevision(), rev.GetPool(), pool)
	}
	if err := policy.Check(rev.GetPolicy()); err != nil {
		return fmt.Errorf("revision %d of pool %q: %w", rev.GetRevision(), rev.GetPool(), err)
	}
	return nil
}

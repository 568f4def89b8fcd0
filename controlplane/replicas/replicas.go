package replicas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wsfleet/wsfleet/controlplane/internal/etcdmirror"
)

// Defaults of Config.
const (
	DefaultLeaseTTL       = 10 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	// MinLeaseTTL is the shortest lease etcd grants as asked (it raises
	// shorter ones to about 1.5 s with its default election timeout).
	MinLeaseTTL = 2 * time.Second
	// maxAddrBytes bounds an advertised address read from etcd.
	maxAddrBytes = 256
)

const (
	// The grants of a new lease while etcd is unreachable back off from
	// retryMin to retryMax.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
)

// Config configures a Member.
type Config struct {
	// Client is the etcd client (the store's: one per process).
	Client *clientv3.Client
	// Prefix is the store's key prefix, with its trailing "/".
	Prefix string
	// ID is this replica's id; New makes a random one when empty.
	ID string
	// Addr is the gRPC address the other replicas dial to reach this one.
	Addr string
	// LeaseTTL is the lease's time to live: a replica that dies is gone
	// from the others' view (and its nodes shown disconnected) within it.
	// Default 10s, at least MinLeaseTTL.
	LeaseTTL time.Duration
	// RequestTimeout bounds each etcd call. Default 5s.
	RequestTimeout time.Duration
	Log            logrus.FieldLogger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Peer is another replica.
type Peer struct {
	// ID is its replica id, Addr the gRPC address it advertises.
	ID, Addr string
}

// Member is one replica's membership; see the package documentation.
type Member struct {
	cfg Config
	key string // P fleet/replicas/<id>

	mu      sync.Mutex
	lease   clientv3.LeaseID // 0 while there is none
	changed chan struct{}    // closed when lease changes
	renewed time.Time        // the lease's last renewal (or grant)
	lostAt  time.Time        // since when there is no lease (zero while there is one)
	lostWhy error
	peers   map[string]Peer // replica id → replica, self included
	loading map[string]Peer // a read of the replicas in progress
	read    bool            // the replicas were read once
}

// KeyDir is where the replicas' keys live under a store's prefix.
func KeyDir(prefix string) string { return prefix + "fleet/replicas/" }

// New checks cfg and returns a Member; Run makes it one.
func New(cfg Config) (*Member, error) {
	switch {
	case cfg.Client == nil:
		return nil, fmt.Errorf("%w: no etcd client", ErrConfig)
	case cfg.Prefix == "" || !strings.HasSuffix(cfg.Prefix, "/"):
		return nil, fmt.Errorf("%w: prefix %q must end with /", ErrConfig, cfg.Prefix)
	case cfg.Addr == "":
		return nil, fmt.Errorf("%w: no advertised address", ErrConfig)
	case cfg.LeaseTTL < 0 || cfg.RequestTimeout < 0:
		return nil, fmt.Errorf("%w: negative lease TTL or request timeout", ErrConfig)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < MinLeaseTTL {
		return nil, fmt.Errorf("%w: lease TTL %s is under %s", ErrConfig, cfg.LeaseTTL, MinLeaseTTL)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.ID == "" {
		cfg.ID = NewID()
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Member{
		cfg:     cfg,
		key:     KeyDir(cfg.Prefix) + cfg.ID,
		changed: make(chan struct{}),
		lostAt:  cfg.Now(),
		lostWhy: fmt.Errorf("not registered yet"),
		peers:   map[string]Peer{},
	}, nil
}

// NewID is a new replica id: "r-" and 16 random hex digits.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "r-" + hex.EncodeToString(b[:])
}

// ID is this replica's id.
func (m *Member) ID() string { return m.cfg.ID }

// Addr is this replica's advertised address.
func (m *Member) Addr() string { return m.cfg.Addr }

// LeaseTTL is the lease's time to live.
func (m *Member) LeaseTTL() time.Duration { return m.cfg.LeaseTTL }

// Lease is the replica's current lease (0 while it has none) and a channel
// closed when that changes: keys bound to the lease must then be put again
// under the new one.
func (m *Member) Lease() (clientv3.LeaseID, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease, m.changed
}

// Peers are the other replicas registered now, by id.
func (m *Member) Peers() []Peer {
	m.mu.Lock()
	out := make([]Peer, 0, len(m.peers))
	for id, p := range m.peers {
		if id != m.cfg.ID {
			out = append(out, p)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Alive reports whether replica id is registered now (its lease lives).
// This replica is alive while it holds a lease. Before the replicas were
// read once, every other one is taken as alive: nothing is known yet to
// say it is gone.
func (m *Member) Alive(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == m.cfg.ID {
		return m.lease != 0
	}
	_, ok := m.peers[id]
	return ok || !m.read
}

// Degraded says why this replica's membership is not sound, or "" when it
// is: without a live lease the other replicas see it, and the nodes
// attached to it, as gone.
func (m *Member) Degraded() string {
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lease == 0 {
		return fmt.Sprintf("no lease in etcd for %s (%v): the other replicas see this one's nodes as disconnected",
			now.Sub(m.lostAt).Round(100*time.Millisecond), m.lostWhy)
	}
	// etcd's client renews every TTL/3: two renewals missed is etcd not
	// answering, well before the lease is lost.
	if late := now.Sub(m.renewed); late > 2*m.cfg.LeaseTTL/3 {
		return fmt.Sprintf("etcd has not renewed this replica's lease for %s (lease TTL %s)", late.Round(100*time.Millisecond), m.cfg.LeaseTTL)
	}
	return ""
}

// Run keeps the replica registered until ctx ends, then revokes its lease.
func (m *Member) Run(ctx context.Context) {
	log := m.cfg.Log.WithField("replica_id", m.cfg.ID)
	// A lessor of its own, closed on return: etcd's client keeps a
	// lessor's goroutines while it lives.
	lessor := clientv3.NewLease(m.cfg.Client)
	defer lessor.Close()

	var copies sync.WaitGroup
	copies.Go(func() {
		dir := KeyDir(m.cfg.Prefix)
		etcdmirror.Run(ctx, etcdmirror.Config{
			Client: m.cfg.Client, Key: dir, End: clientv3.GetPrefixRangeEnd(dir),
			RequestTimeout: m.cfg.RequestTimeout, What: "replicas", Log: log,
		}, (*peerCopy)(m))
	})
	defer copies.Wait()

	retry := &backoff.ExponentialBackOff{
		InitialInterval:     retryMin,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         retryMax,
	}
	retry.Reset()
	for ctx.Err() == nil {
		id, err := m.register(ctx, lessor)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			m.lost(err)
			log.WithError(err).Warn("cannot register this replica in etcd; retrying")
			sleep(ctx, retry.NextBackOff())
			continue
		}
		retry.Reset()
		ka, err := lessor.KeepAlive(ctx, id)
		if err != nil {
			m.lost(err)
			sleep(ctx, retry.NextBackOff())
			continue
		}
		m.granted(id)
		log.WithFields(logrus.Fields{"lease": fmt.Sprintf("%x", int64(id)), "addr": m.cfg.Addr}).Info("replica registered in etcd")
		for range ka {
			m.renew()
		}
		if ctx.Err() != nil {
			break
		}
		m.lost(fmt.Errorf("etcd did not renew lease %x within %s", int64(id), m.cfg.LeaseTTL))
		log.WithField("lease_ttl", m.cfg.LeaseTTL).Warn("this replica's lease in etcd was lost (etcd unreachable?); the other replicas see its nodes as disconnected until it registers again")
	}
	// The lease held, if any (not one etcd let expire meanwhile).
	id, _ := m.Lease()
	m.lost(fmt.Errorf("stopped"))
	if id != 0 {
		// A clean stop is seen by the others at once.
		rctx, cancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
		if _, err := lessor.Revoke(rctx, id); err != nil {
			log.WithError(err).Warn("cannot revoke this replica's lease; the others see it gone within the lease TTL")
		}
		cancel()
	}
}

// register grants a lease and puts the replica's key under it.
func (m *Member) register(ctx context.Context, lessor clientv3.Lease) (clientv3.LeaseID, error) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	ttl := int64((m.cfg.LeaseTTL + time.Second - 1) / time.Second)
	g, err := lessor.Grant(cctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant a lease: %w", err)
	}
	v, _ := json.Marshal(record{Addr: m.cfg.Addr, Started: m.cfg.Now().UTC().Format(time.RFC3339)})
	if _, err := m.cfg.Client.Put(cctx, m.key, string(v), clientv3.WithLease(g.ID)); err != nil {
		// The lease would expire by itself; revoking it spares etcd the wait.
		rctx, rcancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
		_, _ = lessor.Revoke(rctx, g.ID)
		rcancel()
		return 0, fmt.Errorf("put %s: %w", m.key, err)
	}
	return g.ID, nil
}

func (m *Member) granted(id clientv3.LeaseID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lease = id
	m.renewed = m.cfg.Now()
	m.lostAt, m.lostWhy = time.Time{}, nil
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Member) renew() {
	m.mu.Lock()
	m.renewed = m.cfg.Now()
	m.mu.Unlock()
}

func (m *Member) lost(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lease != 0 {
		m.lease = 0
		m.lostAt = m.cfg.Now()
		close(m.changed)
		m.changed = make(chan struct{})
	}
	m.lostWhy = err
}

// record is the value of a replica's key.
type record struct {
	Addr    string `json:"addr"`
	Started string `json:"started,omitempty"`
}

// peerCopy is the Member as the handler of its copy of the replicas' keys.
type peerCopy Member

func (c *peerCopy) parse(kv *mvccpb.KeyValue) (Peer, bool) {
	id := strings.TrimPrefix(string(kv.Key), KeyDir(c.cfg.Prefix))
	var r record
	if id == "" || strings.Contains(id, "/") || json.Unmarshal(kv.Value, &r) != nil || r.Addr == "" || len(r.Addr) > maxAddrBytes {
		c.cfg.Log.WithField("key", clip(string(kv.Key))).Warn("a replica's key in etcd cannot be read; ignored")
		return Peer{}, false
	}
	return Peer{ID: id, Addr: r.Addr}, true
}

func (c *peerCopy) Reset() {
	c.mu.Lock()
	c.loading = map[string]Peer{}
	c.mu.Unlock()
}

func (c *peerCopy) Put(kv *mvccpb.KeyValue) {
	p, ok := c.parse(kv)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading != nil {
		c.loading[p.ID] = p
		return
	}
	c.peers[p.ID] = p
}

func (c *peerCopy) Delete(key []byte) {
	id := strings.TrimPrefix(string(key), KeyDir(c.cfg.Prefix))
	c.mu.Lock()
	delete(c.peers, id)
	c.mu.Unlock()
}

func (c *peerCopy) Synced() {
	c.mu.Lock()
	c.peers, c.loading, c.read = c.loading, nil, true
	c.mu.Unlock()
}

// Broken and Resumed: the copy stays as last read. A replica that joins
// meanwhile is not asked; one that left answers no more, which the
// queries that ask it report.
func (c *peerCopy) Broken(error) {}
func (c *peerCopy) Resumed()     {}

// clip keeps a key from etcd short in a log line: anything may be there.
func clip(s string) string {
	const n = 120
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

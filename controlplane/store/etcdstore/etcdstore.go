package etcdstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/internal/damagelog"
)

// SchemaVersion is the layout this build writes and understands. Bump it
// (and teach Open the old one) whenever the layout in the package comment
// changes, so that an older build refuses the store instead of misreading
// it.
const SchemaVersion = 1

// Defaults of Config.
const (
	DefaultPrefix         = "/wsfleet/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

const (
	// The watch's re-reads while etcd is unreachable back off from
	// watchRetryMin to watchRetryMax between attempts.
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
	// maxAnyAttempts bounds an AnyRevision append that keeps losing the
	// compare-and-set to other writers.
	maxAnyAttempts = 100
	// maxStoreIDBytes bounds the identity read from etcd; ours are 21.
	maxStoreIDBytes = 128
)

// Config configures Open and Create.
type Config struct {
	// Endpoints are the etcd members' client addresses (host:port, or
	// URLs), at least one.
	Endpoints []string
	// Prefix is the key prefix the store lives under; several stores (of
	// several fleets) may share a cluster under different prefixes. A
	// trailing "/" is added when missing. Default "/wsfleet/".
	Prefix string
	// CAFile verifies etcd's server certificates; CertFile and KeyFile are
	// the client certificate etcd may require (both or neither). Any of
	// them turns TLS on.
	CAFile, CertFile, KeyFile string
	// Username and Password authenticate to etcd when its authentication
	// is enabled (both or neither).
	Username, Password string
	// DialTimeout bounds Open and Create: reaching etcd, authenticating
	// and reading (or creating) the store identity. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds every later etcd call (each read, each write
	// attempt). Default 5s.
	RequestTimeout time.Duration
	// Log receives what the watch of pool heads goes through (a broken
	// watch, a compaction, etcd unreachable) and the damaged records the
	// store skips (see store.Proposals). Default logrus's standard logger.
	Log logrus.FieldLogger

	dialOptions []grpc.DialOption // tests: interceptors around etcd calls
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Endpoints) == 0 {
		return c, fmt.Errorf("%w: no endpoints", ErrInvalidConfig)
	}
	eps := make([]string, 0, len(c.Endpoints))
	for _, ep := range c.Endpoints {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			return c, fmt.Errorf("%w: an empty endpoint", ErrInvalidConfig)
		}
		eps = append(eps, ep)
	}
	c.Endpoints = eps
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		// Without it, "/wsfleet" would also cover "/wsfleet2/...".
		c.Prefix += "/"
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 {
		return c, fmt.Errorf("%w: negative timeout (dial %s, request %s)", ErrInvalidConfig, c.DialTimeout, c.RequestTimeout)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, fmt.Errorf("%w: a client certificate needs both its certificate and its key file", ErrInvalidConfig)
	}
	if (c.Username == "") != (c.Password == "") {
		return c, fmt.Errorf("%w: a username needs a password, and a password a username", ErrInvalidConfig)
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	return c, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.CAFile}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: TLS: %w", ErrInvalidConfig, err)
	}
	return tc, nil
}

// Store is a store.Store under one prefix of an etcd cluster. It is safe
// for concurrent use, and any number of Stores (in any number of
// processes) may share a prefix.
type Store struct {
	cfg     Config
	cli     *clientv3.Client
	id      string
	created bool
	closed  atomic.Bool

	idKey, schemaKey, headsDir, revsDir string

	watchMu  sync.Mutex
	closing  context.Context // done once Close has begun: ends every watch
	endAll   context.CancelFunc
	watchers sync.WaitGroup

	damage damagelog.Log // proposal records skipped as damaged
}

var _ store.Store = (*Store)(nil)

// Stats implements store.Store.
func (s *Store) Stats() store.Stats {
	return store.Stats{DamagedProposals: s.damage.Count()}
}

// Open connects to etcd and opens the store under cfg.Prefix. An empty
// prefix becomes a new store (Created then reports true); a prefix that
// holds keys but no store identity is refused (ErrNoIdentity, ErrForeign),
// as is a newer layout (ErrSchemaTooNew). An etcd that does not answer
// within cfg.DialTimeout is ErrUnavailable.
func Open(cfg Config) (*Store, error) { return open(cfg, false) }

// Create makes a new store under cfg.Prefix and opens it. It fails with
// ErrExists if a store is there, and like Open if anything else is.
func Create(cfg Config) (*Store, error) { return open(cfg, true) }

func open(cfg Config, create bool) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		// A dead connection is noticed within seconds, and the watch
		// moves on to another endpoint.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.RequestTimeout,
		TLS:                  tc,
		Username:             cfg.Username,
		Password:             cfg.Password,
		// etcd's client logs through zap on stderr; the control plane
		// says what matters itself, on its own log.
		Logger: zap.NewNop(),
		DialOptions: append([]grpc.DialOption{
			// gRPC's default reconnect backoff grows to 2 minutes: an etcd
			// back from a restart would wait that long for its clients.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           grpcbackoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
				MinConnectTimeout: cfg.DialTimeout,
			}),
		}, cfg.dialOptions...),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, where(cfg), err)
	}
	s := &Store{
		cfg:       cfg,
		cli:       cli,
		idKey:     cfg.Prefix + "meta/store_id",
		schemaKey: cfg.Prefix + "meta/schema_version",
		headsDir:  cfg.Prefix + "heads/",
		revsDir:   cfg.Prefix + "revs/",
	}
	s.damage.Logger = cfg.Log
	s.closing, s.endAll = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout)
	defer cancel()
	if err := s.identify(ctx, create); err != nil {
		s.endAll()
		_ = cli.Close()
		return nil, err
	}
	return s, nil
}

// where names the store in errors: the endpoints and the prefix.
func where(cfg Config) string {
	return fmt.Sprintf("etcd %s prefix %s", strings.Join(cfg.Endpoints, ","), cfg.Prefix)
}

// identify reads the store identity, or creates it when the prefix is
// empty, and checks the layout.
func (s *Store) identify(ctx context.Context, create bool) error {
	for range 2 {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.idKey),
			clientv3.OpGet(s.schemaKey),
			clientv3.OpGet(s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			return s.openError(ctx, err)
		}
		idKVs := resp.Responses[0].GetResponseRange().GetKvs()
		schemaKVs := resp.Responses[1].GetResponseRange().GetKvs()
		first := resp.Responses[2].GetResponseRange().GetKvs()
		switch {
		case len(idKVs) > 0:
			if create {
				return fmt.Errorf("%w: %s holds store %q", ErrExists, where(s.cfg), idKVs[0].Value)
			}
			return s.checkIdentity(idKVs[0].Value, schemaKVs)
		case len(first) > 0:
			key := string(first[0].Key)
			rest := strings.TrimPrefix(key, s.cfg.Prefix)
			for _, ours := range []string{"meta/", "heads/", "revs/", "fleet/", "proposals/"} {
				if strings.HasPrefix(rest, ours) {
					return fmt.Errorf("%w: %s has key %q but no %q", ErrNoIdentity, where(s.cfg), clipKey(key), s.idKey)
				}
			}
			return fmt.Errorf("%w: %s has key %q", ErrForeign, where(s.cfg), clipKey(key))
		}
		// Empty: create it, unless another replica puts a key under the
		// prefix first (then read what it made).
		id := newStoreID()
		tr, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.cfg.Prefix), "=", 0).WithPrefix()).
			Then(clientv3.OpPut(s.idKey, id), clientv3.OpPut(s.schemaKey, strconv.Itoa(SchemaVersion))).
			Commit()
		if err != nil {
			return s.openError(ctx, err)
		}
		if tr.Succeeded {
			s.id, s.created = id, true
			return nil
		}
	}
	return fmt.Errorf("%w: %s: keys keep appearing under the prefix while the store is being created", ErrUnavailable, where(s.cfg))
}

func (s *Store) checkIdentity(id []byte, schema []*mvccpb.KeyValue) error {
	if len(id) == 0 || len(id) > maxStoreIDBytes || !printable(id) {
		return fmt.Errorf("%w: %s: %q is not a store identity", ErrCorrupt, where(s.cfg), clipKey(string(id)))
	}
	if len(schema) == 0 {
		return fmt.Errorf("%w: %s: no %q", ErrCorrupt, where(s.cfg), s.schemaKey)
	}
	v, err := strconv.Atoi(string(schema[0].Value))
	switch {
	case err != nil || v < 1:
		return fmt.Errorf("%w: %s: schema version %q", ErrCorrupt, where(s.cfg), clipKey(string(schema[0].Value)))
	case v > SchemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, this build supports up to %d; upgrade wsfleet-control", ErrSchemaTooNew, where(s.cfg), v, SchemaVersion)
	}
	s.id = string(id)
	return nil
}

// openError is an etcd failure while opening: ErrUnavailable, naming the
// endpoints and saying how long it waited.
func (s *Store) openError(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		// etcd's client waits for a connection until the deadline and then
		// says only that: a TCP dial says why there was none.
		return fmt.Errorf("%w: %s: no answer within %s (%s)", ErrUnavailable, where(s.cfg), s.cfg.DialTimeout, probe(s.cfg.Endpoints))
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, where(s.cfg), err)
}

// probe dials each endpoint once and says what it found: the dial error,
// or that something answers TCP there but no etcd this client can talk to
// (TLS on one side only, a refused client certificate, another service).
func probe(endpoints []string) string {
	var out []string
	for _, ep := range endpoints {
		addr := ep
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			addr = u.Host
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		_ = c.Close()
		out = append(out, addr+" accepts connections but no etcd answered: check TLS (CA, client certificate) and that it is etcd's client port")
	}
	return strings.Join(out, "; ")
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// clipKey keeps a key or value from etcd short and printable in an error
// line: it may be anything another program wrote.
func clipKey(k string) string {
	const max = 80
	if len(k) > max {
		return strings.ToValidUTF8(k[:max], "") + "…"
	}
	return k
}

// newStoreID is a store identity: "etcd-" and 16 random hex digits.
func newStoreID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "etcd-" + hex.EncodeToString(b[:])
}

// ID implements store.Store.
func (s *Store) ID() string { return s.id }

// Created reports whether this Open or Create made the store: a new
// identity under an empty prefix.
func (s *Store) Created() bool { return s.created }

// Prefix is the key prefix the store lives under, with its trailing "/".
func (s *Store) Prefix() string { return s.cfg.Prefix }

// Client is the store's etcd client, for the control plane's other uses of
// etcd (the replicas' membership and shared node status, under Prefix()
// fleet/): one client per process. Close closes it; stop using it first.
func (s *Store) Client() *clientv3.Client { return s.cli }

// RequestTimeout bounds each etcd call (Config.RequestTimeout).
func (s *Store) RequestTimeout() time.Duration { return s.cfg.RequestTimeout }

func (s *Store) headKey(pool string) string { return s.headsDir + pool }

func (s *Store) revsPrefix(pool string) string { return s.revsDir + pool + "/" }

func (s *Store) revKey(pool string, n int64) string {
	return fmt.Sprintf("%s%020d", s.revsPrefix(pool), n)
}

// validPool: a pool name that keys can hold. The control plane only ever
// passes DNS labels; "/" would put one pool's keys under another's.
func validPool(pool string) bool { return pool != "" && !strings.Contains(pool, "/") }

func (s *Store) enter(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("etcdstore: %w", err)
	}
	return nil
}

// call bounds one etcd call by RequestTimeout within the caller's ctx.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// wrap turns an etcd client error into what callers match on: the
// caller's own context error, ErrClosed, or ErrUnavailable (our timeout
// is etcd being unavailable, not the caller's deadline).
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("etcdstore: %s: %w", op, ctx.Err())
	case s.closed.Load():
		return store.ErrClosed
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s: no answer from etcd within %s", ErrUnavailable, op, s.cfg.RequestTimeout)
	default:
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
}

// decode unmarshals a stored revision and checks it is of pool (and
// revision n, unless n is 0: a head), so a value under the wrong key is
// reported, not served.
func (s *Store) decode(pool string, n int64, v []byte) (*wsfleetv1.PolicyRevision, error) {
	r := &wsfleetv1.PolicyRevision{}
	if err := proto.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("%w: pool %q revision %d: %w", ErrCorrupt, pool, n, err)
	}
	if r.GetPool() != pool || r.GetRevision() < 1 || (n != 0 && r.GetRevision() != n) {
		return nil, fmt.Errorf("%w: pool %q revision %d holds pool %q revision %d", ErrCorrupt, pool, n, r.GetPool(), r.GetRevision())
	}
	r.StoreId = s.id
	return r, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, pool string) (*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if !validPool(pool) {
		return nil, fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.headKey(pool))
	if err != nil {
		return nil, s.wrap(ctx, "head", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
	}
	return s.decode(pool, 0, resp.Kvs[0].Value)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if !validPool(pool) || revision < 1 {
		return nil, fmt.Errorf("%w: pool %q revision %d", store.ErrNotFound, pool, revision)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.revKey(pool, revision))
	if err != nil {
		return nil, s.wrap(ctx, "get", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: pool %q revision %d", store.ErrNotFound, pool, revision)
	}
	return s.decode(pool, revision, resp.Kvs[0].Value)
}

// Append implements store.Store. The pool must be a non-empty name
// without "/"; a nil revision or another pool name fails with
// ErrInvalidRevision.
func (s *Store) Append(ctx context.Context, rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if rev == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidRevision)
	}
	pool := rev.GetPool()
	if !validPool(pool) {
		return nil, fmt.Errorf("%w: pool name %q", ErrInvalidRevision, pool)
	}
	// Cloned up front so the caller's message is neither modified nor
	// retained, and the result shares nothing with it.
	out := proto.Clone(rev).(*wsfleetv1.PolicyRevision)
	hk := s.headKey(pool)
	for attempt := 1; ; attempt++ {
		head, mod, err := s.readHead(ctx, pool)
		if err != nil {
			return nil, err
		}
		if expected != store.AnyRevision && expected != head {
			return nil, &store.ConflictError{Pool: pool, Expected: expected, Current: head}
		}
		// The caller may have given up while the head was read: it must
		// not get a write it will never see acknowledged.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("etcdstore: append: %w", err)
		}
		out.Revision = max(head+1, rev.GetRevision())
		out.StoreId = s.id
		v, err := marshalOptions.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: marshal pool %q revision %d: %w", pool, out.Revision, err)
		}
		rk := s.revKey(pool, out.Revision)
		cctx, cancel := s.call(ctx)
		tr, err := s.cli.Txn(cctx).If(
			clientv3.Compare(clientv3.Value(s.idKey), "=", s.id),
			clientv3.Compare(clientv3.ModRevision(hk), "=", mod),
			clientv3.Compare(clientv3.CreateRevision(rk), "=", 0),
		).Then(
			clientv3.OpPut(hk, string(v)),
			clientv3.OpPut(rk, string(v)),
		).Else(
			clientv3.OpGet(s.idKey),
			clientv3.OpGet(hk, clientv3.WithKeysOnly()),
		).Commit()
		cancel()
		if err != nil {
			return s.settle(ctx, out, rk, v, err)
		}
		if tr.Succeeded {
			return out, nil
		}
		ids := tr.Responses[0].GetResponseRange().GetKvs()
		if len(ids) == 0 || string(ids[0].Value) != s.id {
			return nil, fmt.Errorf("%w: %s no longer holds store %s", ErrReplaced, where(s.cfg), s.id)
		}
		if heads := tr.Responses[1].GetResponseRange().GetKvs(); len(heads) > 0 && heads[0].ModRevision == mod || len(heads) == 0 && mod == 0 {
			// The head did not move, so the revision key was in the way:
			// a key above the head that no append of ours wrote.
			return nil, fmt.Errorf("%w: pool %q has %q above its head %d", ErrCorrupt, pool, rk, head)
		}
		// Another writer moved the head: with an expected revision the
		// next read reports the conflict, with AnyRevision it goes after.
		if expected == store.AnyRevision && attempt >= maxAnyAttempts {
			return nil, fmt.Errorf("etcdstore: append to pool %q lost the race to other writers %d times; retry", pool, attempt)
		}
	}
}

// readHead is the pool's head revision number and the head key's
// ModRevision, both 0 when the pool has none.
func (s *Store) readHead(ctx context.Context, pool string) (head, mod int64, err error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.headKey(pool))
	if err != nil {
		return 0, 0, s.wrap(ctx, "append: read head", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0, nil
	}
	r, err := s.decode(pool, 0, resp.Kvs[0].Value)
	if err != nil {
		return 0, 0, err
	}
	return r.GetRevision(), resp.Kvs[0].ModRevision, nil
}

// settle decides a write whose transaction failed without an answer: it
// may have been committed (the answer was lost, or came after our
// timeout). The revision key says: holding our bytes, the write is
// ours and done; absent, nothing was stored. When etcd cannot say either,
// the error says the outcome is unknown.
func (s *Store) settle(ctx context.Context, out *wsfleetv1.PolicyRevision, rk string, v []byte, txnErr error) (*wsfleetv1.PolicyRevision, error) {
	if ctx.Err() != nil || s.closed.Load() {
		return nil, s.wrap(ctx, "append", txnErr)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, rk)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w: append to pool %q: %v; whether revision %d was stored is unknown: %v", ErrUnavailable, store.ErrOutcomeUnknown, out.GetPool(), txnErr, out.GetRevision(), err)
	case len(resp.Kvs) > 0 && bytes.Equal(resp.Kvs[0].Value, v):
		return out, nil
	default:
		return nil, s.wrap(ctx, "append", txnErr)
	}
}

// History implements store.Store. A limit <= 0 returns every revision
// below before.
func (s *Store) History(ctx context.Context, pool string, before int64, limit int) ([]*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if !validPool(pool) {
		return nil, fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
	}
	end := clientv3.GetPrefixRangeEnd(s.revsPrefix(pool))
	if before > 0 {
		end = s.revKey(pool, before)
	}
	opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(limit)))
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	// One transaction: the head and the page are of the same moment.
	resp, err := s.cli.Txn(cctx).Then(
		clientv3.OpGet(s.headKey(pool), clientv3.WithCountOnly()),
		clientv3.OpGet(s.revsPrefix(pool), opts...),
	).Commit()
	if err != nil {
		return nil, s.wrap(ctx, "history", err)
	}
	if resp.Responses[0].GetResponseRange().GetCount() == 0 {
		return nil, fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	out := make([]*wsfleetv1.PolicyRevision, 0, len(kvs))
	for _, kv := range kvs {
		n, err := strconv.ParseInt(strings.TrimPrefix(string(kv.Key), s.revsPrefix(pool)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: pool %q has key %q", ErrCorrupt, pool, clipKey(string(kv.Key)))
		}
		r, err := s.decode(pool, n, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Pools implements store.Store.
func (s *Store) Pools(ctx context.Context) ([]*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	heads, _, err := s.heads(ctx, nil)
	return heads, err
}

// heads reads every pool's head in one range (key order is pool order)
// and the etcd revision it was read at. A head that cannot be decoded is
// an error, unless skip is given: then skip is told and the rest are
// returned (the watch pushes every pool it can).
func (s *Store) heads(ctx context.Context, skip func(error)) ([]*wsfleetv1.PolicyRevision, int64, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.headsDir, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, s.wrap(ctx, "pools", err)
	}
	out := make([]*wsfleetv1.PolicyRevision, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r, err := s.decode(strings.TrimPrefix(string(kv.Key), s.headsDir), 0, kv.Value)
		if err != nil {
			if skip == nil {
				return nil, 0, err
			}
			skip(err)
			continue
		}
		out = append(out, r)
	}
	return out, resp.Header.GetRevision(), nil
}

// Close implements store.Store. It ends every watch (their channels are
// closed when it returns) and closes the etcd client; calls in flight
// fail with ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return store.ErrClosed
	}
	s.watchMu.Lock()
	s.endAll()
	s.watchMu.Unlock()
	s.watchers.Wait()
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcdstore: close: %w", err)
	}
	return nil
}

// Deterministic so that equal revisions are equal bytes: settle compares
// them.
var marshalOptions = proto.MarshalOptions{Deterministic: true}

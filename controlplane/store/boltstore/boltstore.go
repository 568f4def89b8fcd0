package boltstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/internal/damagelog"
	"github.com/wsfleet/wsfleet/controlplane/store/internal/headfeed"
)

// SchemaVersion is the layout this build writes and understands. Bump it
// (and add a migration in Open) whenever the layout described in the package
// comment changes, so an older build refuses the file instead of misreading it.
const SchemaVersion uint64 = 1

// DefaultTimeout is Config.Timeout when left zero.
const DefaultTimeout = time.Second

var (
	metaBucket       = []byte("meta")
	poolsBucket      = []byte("pools")
	schemaVersionKey = []byte("schema_version")
	storeIDKey       = []byte("store_id")

	// Deterministic so that equal revisions are equal bytes, which keeps the
	// file diffable and lets a future replica compare values byte-wise.
	marshalOptions = proto.MarshalOptions{Deterministic: true}
)

// Config configures Open and Create.
type Config struct {
	// Path is the database file, e.g. <data-dir>/policy.db. Its parent
	// directory is created with mode 0700 if missing; the file gets 0600.
	Path string
	// Timeout is how long Open waits for the file lock held by another
	// process before failing with ErrLocked. Zero means DefaultTimeout;
	// negative is invalid (bbolt would otherwise wait forever, and a control
	// plane that hangs at start is worse than one that says why it cannot).
	Timeout time.Duration
	// Log receives damaged records the store skips (see
	// store.Proposals). Default logrus's standard logger.
	Log logrus.FieldLogger
}

func (c Config) withDefaults() (Config, error) {
	if c.Path == "" {
		return c, fmt.Errorf("%w: Path is empty", ErrInvalidConfig)
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("%w: Timeout %s is negative", ErrInvalidConfig, c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c, nil
}

// Store is a store.Store on one bbolt file. It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	id      string
	created bool
	closed  atomic.Bool

	// The watches. The store is one process, so its own commits are all
	// there is to watch: Append offers each to every feed.
	watchMu  sync.Mutex
	feeds    map[*headfeed.Feed]struct{}
	closing  context.Context // done once Close has begun: ends every watch
	endAll   context.CancelFunc
	watchers sync.WaitGroup

	damage damagelog.Log // proposal records skipped as damaged
}

func newStore(db *bolt.DB, id string, log logrus.FieldLogger) *Store {
	s := &Store{db: db, id: id, feeds: map[*headfeed.Feed]struct{}{}}
	s.damage.Logger = log
	s.closing, s.endAll = context.WithCancel(context.Background())
	return s
}

var _ store.Store = (*Store)(nil)

// Stats implements store.Store.
func (s *Store) Stats() store.Stats {
	return store.Stats{DamagedProposals: s.damage.Count()}
}

// errLockTimeout is lockFile's timeout, reported as ErrLocked.
var errLockTimeout = errors.New("timed out waiting for the file lock")

// Open opens the store at cfg.Path. A missing file is created as a new
// store (Created then reports true). An existing file is checked before
// use and never initialised, whatever its size: an empty file fails with
// ErrEmpty, a damaged one with ErrCorrupt, one that is not ours with
// ErrNotPolicyDB, a file another process holds with ErrLocked.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := makeParent(cfg.Path); err != nil {
		return nil, err
	}
	created := false
	switch _, err := os.Lstat(cfg.Path); {
	case errors.Is(err, fs.ErrNotExist):
		switch err := create(cfg); {
		case err == nil:
			created = true
		case errors.Is(err, ErrExists):
			// Another process created it in the meantime: open theirs,
			// which also says ErrLocked while they hold it.
		default:
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	s, err := openExisting(cfg)
	if err != nil {
		return nil, err
	}
	s.created = created
	return s, nil
}

// Create makes a new store at cfg.Path and opens it. It fails with
// ErrExists if anything is at the path: a store is never overwritten.
func Create(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := makeParent(cfg.Path); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(cfg.Path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory, not a database file", ErrBadPath, cfg.Path)
	}
	if _, err := os.Lstat(cfg.Path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, cfg.Path)
	}
	if err := create(cfg); err != nil {
		return nil, err
	}
	s, err := openExisting(cfg)
	if err != nil {
		return nil, err
	}
	s.created = true
	return s, nil
}

// Created reports whether this Open or Create made the file: a new store,
// with a new identity.
func (s *Store) Created() bool { return s.created }

// makeParent creates the directory of path (mode 0700) if it is missing.
func makeParent(path string) error {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrBadPath, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%w: %w", ErrBadPath, err)
		}
		return fmt.Errorf("boltstore: create data directory: %w", err)
	}
	return nil
}

// create writes a new store to cfg.Path, all or nothing: it is built in a
// temporary file next to it and hard-linked into place, so a crash leaves
// either no file (a later start creates one again) or a whole store, never
// an empty or half-initialised file that could pass for a lost store. The
// link fails if a file appeared at the path meanwhile (ErrExists).
func create(cfg Config) (err error) {
	dir := filepath.Dir(cfg.Path)
	tmp, err := os.CreateTemp(dir, filepath.Base(cfg.Path)+".new-*")
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", cfg.Path, err)
	}
	tmpPath := tmp.Name()
	defer func() {
		if rerr := os.Remove(tmpPath); rerr != nil && err == nil {
			err = fmt.Errorf("boltstore: remove %s: %w", tmpPath, rerr)
		}
	}()
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("boltstore: create %s: %w", cfg.Path, err)
	}
	// bbolt initialises an empty file: meta pages, freelist, root, fsync.
	db, err := bolt.Open(tmpPath, 0o600, &bolt.Options{Timeout: cfg.Timeout})
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", cfg.Path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return createSchema(tx, newStoreID()) })
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", cfg.Path, err)
	}
	if err := os.Link(tmpPath, cfg.Path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, cfg.Path)
		}
		return fmt.Errorf("boltstore: create %s: %w", cfg.Path, err)
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("boltstore: sync %s: %w", dir, err)
	}
	defer d.Close()
	// Directories cannot be synced on Windows; elsewhere EINVAL means the
	// filesystem has nothing to sync.
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("boltstore: sync %s: %w", dir, err)
	}
	return nil
}

// openExisting locks and checks the existing file at cfg.Path, then opens
// it with bbolt, runs bbolt's consistency check and checks our layout.
func openExisting(cfg Config) (*Store, error) {
	path := cfg.Path
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory, not a database file", ErrBadPath, path)
	}
	// No O_CREATE: a file removed since it was seen is not made again here.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	// f is closed here until bbolt has taken it over. bbolt closes it on
	// its own error paths too; closing an *os.File twice is harmless.
	owned := true
	defer func() {
		if owned {
			_ = f.Close() // also drops the lock
		}
	}()
	size, err := fileSize(f, path)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f, cfg.Timeout); err != nil {
		if errors.Is(err, errLockTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %s)", ErrLocked, path, cfg.Timeout)
		}
		return nil, fmt.Errorf("boltstore: lock %s: %w", path, err)
	}
	// Re-read the size under the lock: a writer may have grown the file.
	if size, err = fileSize(f, path); err != nil {
		return nil, err
	}
	if err := verifyFile(f, path, size); err != nil {
		return nil, err
	}

	var db *bolt.DB
	err = guard(path, func() (err error) {
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout: cfg.Timeout,
			// bbolt opens (and later closes) the file checked above.
			OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil },
		})
		return err
	})
	if db != nil {
		owned = false
	}
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (waited %s): %w", ErrLocked, path, cfg.Timeout, err)
	case errors.Is(err, ErrCorrupt):
		return nil, err
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, fmt.Errorf("%w: %s: bbolt cannot open it: %w", ErrCorrupt, path, err)
	case err != nil:
		// The file passed verifyFile: this is the system (memory, I/O).
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}

	var id string
	if err := guard(path, func() error {
		if err := consistencyCheck(db, path); err != nil {
			return err
		}
		return db.Update(func(tx *bolt.Tx) (err error) {
			id, err = checkSchema(tx)
			return err
		})
	}); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotPolicyDB) || errors.Is(err, ErrSchemaTooNew) {
			return nil, fmt.Errorf("%w (file %s)", err, path)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return newStore(db, id, cfg.Log), nil
}

// guard runs fn with memory faults turned into panics (bbolt reads the
// file through a memory map, where a damaged file can fault) and any panic
// (a fault, or one of bbolt's assertions about the file) into ErrCorrupt.
// bbolt's check was given a file whose every page lies within it, so a
// panic here is damage that slipped past verifyFile, not a bug to crash on.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		// A fault's panic value says "nil pointer dereference"; say what it is.
		if f, ok := r.(interface{ Addr() uintptr }); ok {
			err = fmt.Errorf("%w: %s: bbolt's memory map of it faulted at %#x: it references data outside the file", ErrCorrupt, path, f.Addr())
			return
		}
		err = fmt.Errorf("%w: %s: bbolt failed reading it: %v", ErrCorrupt, path, r)
	}()
	return fn()
}

// consistencyCheck runs bbolt's own check of the whole file (every page
// reachable once, none both reachable and free, keys in order). It reads
// every page, which at a policy store's size takes milliseconds.
func consistencyCheck(db *bolt.DB, path string) error {
	return db.View(func(tx *bolt.Tx) error {
		var (
			first error
			n     int
		)
		// Check's goroutine sends until it is done: drain it all.
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
			n++
		}
		switch {
		case n == 1:
			return fmt.Errorf("%w: %s: bbolt's consistency check: %v", ErrCorrupt, path, first)
		case n > 1:
			return fmt.Errorf("%w: %s: bbolt's consistency check: %v (and %d more problems)", ErrCorrupt, path, first, n-1)
		}
		return nil
	})
}

// newStoreID is a store identity: "bolt-" and 16 random hex digits.
func newStoreID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "bolt-" + hex.EncodeToString(b[:])
}

// ID implements store.Store.
func (s *Store) ID() string { return s.id }

// createSchema lays out a new file: the meta bucket with the schema version
// and the identity id, and the empty pools bucket.
func createSchema(tx *bolt.Tx, id string) error {
	meta, err := tx.CreateBucket(metaBucket)
	if err != nil {
		return fmt.Errorf("boltstore: create meta bucket: %w", err)
	}
	if err := meta.Put(schemaVersionKey, binary.BigEndian.AppendUint64(nil, SchemaVersion)); err != nil {
		return fmt.Errorf("boltstore: write schema version: %w", err)
	}
	if _, err := tx.CreateBucket(poolsBucket); err != nil {
		return fmt.Errorf("boltstore: create pools bucket: %w", err)
	}
	if err := meta.Put(storeIDKey, []byte(id)); err != nil {
		return fmt.Errorf("boltstore: write store id: %w", err)
	}
	return nil
}

// checkSchema checks that an existing file has a layout this build
// understands and returns the store's identity. A file of schema 1
// written before identities existed gets one now, once. A file without our
// meta bucket is refused even when it holds nothing: only create lays out
// a new store, so an existing file is never adopted or initialised.
func checkSchema(tx *bolt.Tx) (string, error) {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		if foreign, _ := tx.Cursor().First(); foreign != nil {
			return "", fmt.Errorf("%w: it has bucket %q but no %q bucket", ErrNotPolicyDB, foreign, metaBucket)
		}
		return "", fmt.Errorf("%w: it is a bbolt database with no buckets", ErrNotPolicyDB)
	}

	raw := meta.Get(schemaVersionKey)
	if len(raw) != 8 {
		return "", fmt.Errorf("%w: schema version is %d bytes, want 8", ErrCorrupt, len(raw))
	}
	switch v := binary.BigEndian.Uint64(raw); {
	case v > SchemaVersion:
		return "", fmt.Errorf("%w: file has schema version %d, this build supports up to %d; upgrade wsfleet-control", ErrSchemaTooNew, v, SchemaVersion)
	case v < 1:
		return "", fmt.Errorf("%w: schema version %d", ErrCorrupt, v)
	}
	if tx.Bucket(poolsBucket) == nil {
		return "", fmt.Errorf("%w: no %q bucket", ErrCorrupt, poolsBucket)
	}
	id := string(meta.Get(storeIDKey))
	if id == "" {
		id = newStoreID()
		if err := meta.Put(storeIDKey, []byte(id)); err != nil {
			return "", fmt.Errorf("boltstore: write store id: %w", err)
		}
	}
	return id, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, pool string) (*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	var out *wsfleetv1.PolicyRevision
	err := s.db.View(func(tx *bolt.Tx) error {
		b := poolBucket(tx, pool)
		if b == nil {
			return fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
		}
		k, v := b.Cursor().Last()
		if k == nil {
			return fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
		}
		var err error
		out, err = s.decodeEntry(pool, k, v)
		return err
	})
	return out, s.wrap("head", err)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, pool string, revision int64) (*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if revision < 1 {
		return nil, fmt.Errorf("%w: pool %q revision %d", store.ErrNotFound, pool, revision)
	}
	var out *wsfleetv1.PolicyRevision
	err := s.db.View(func(tx *bolt.Tx) error {
		b := poolBucket(tx, pool)
		var v []byte
		if b != nil {
			v = b.Get(revisionKey(revision))
		}
		if v == nil {
			return fmt.Errorf("%w: pool %q revision %d", store.ErrNotFound, pool, revision)
		}
		var err error
		out, err = s.decode(pool, revision, v)
		return err
	})
	return out, s.wrap("get", err)
}

// Append implements store.Store. The pool must be non-empty; a nil revision
// or an empty pool fails with ErrInvalidRevision.
func (s *Store) Append(ctx context.Context, rev *wsfleetv1.PolicyRevision, expected int64) (*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if rev == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidRevision)
	}
	pool := rev.GetPool()
	if pool == "" {
		return nil, fmt.Errorf("%w: empty pool name", ErrInvalidRevision)
	}
	// Cloned up front so the caller's message is neither modified nor
	// retained, and the result shares nothing with it.
	out := proto.Clone(rev).(*wsfleetv1.PolicyRevision)

	err := s.db.Update(func(tx *bolt.Tx) error {
		return s.appendTx(ctx, tx, out, rev.GetRevision(), expected)
	})
	if err != nil {
		return nil, s.wrap("append", err)
	}
	s.notify(out)
	return out, nil
}

// appendTx is Append inside the write transaction tx: it checks the head
// against expected, numbers out (max(head+1, asked)), stamps the store
// identity and puts it.
func (s *Store) appendTx(ctx context.Context, tx *bolt.Tx, out *wsfleetv1.PolicyRevision, asked, expected int64) error {
	pool := out.GetPool()
	pools := tx.Bucket(poolsBucket)
	b := pools.Bucket([]byte(pool))
	var head int64
	if b != nil {
		if k, _ := b.Cursor().Last(); k != nil {
			n, err := decodeKey(pool, k)
			if err != nil {
				return err
			}
			head = n
		}
	}
	if expected != store.AnyRevision && expected != head {
		return &store.ConflictError{Pool: pool, Expected: expected, Current: head}
	}
	// Checked again now that the write lock is held: a caller that gave
	// up while queued behind other writers must not get a write it will
	// never see acknowledged.
	if err := ctx.Err(); err != nil {
		return err
	}
	if b == nil {
		var err error
		if b, err = pools.CreateBucket([]byte(pool)); err != nil {
			return fmt.Errorf("create bucket for pool %q: %w", pool, err)
		}
	}
	// Keys only ever grow, so pages never need room for inserts in the
	// middle; full pages halve the file compared to the default 50%.
	b.FillPercent = 1.0

	out.Revision = max(head+1, asked)
	out.StoreId = s.id
	v, err := marshalOptions.Marshal(out)
	if err != nil {
		return fmt.Errorf("marshal pool %q revision %d: %w", pool, out.Revision, err)
	}
	return b.Put(revisionKey(out.Revision), v)
}

// notify offers a committed revision to every watch, each its own copy.
// Appends to one pool that commit one after the other may notify in the
// other order; the feeds drop the older.
func (s *Store) notify(rev *wsfleetv1.PolicyRevision) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for f := range s.feeds {
		f.Offer(proto.Clone(rev).(*wsfleetv1.PolicyRevision))
	}
}

// WatchHeads implements store.Store. The watch is registered before the
// heads are read, so a commit in between is not missed (the feed keeps
// whichever of the two is newer); it then costs one goroutine until ctx is
// done or the store is closed.
func (s *Store) WatchHeads(ctx context.Context) (<-chan *wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	f := headfeed.New()
	s.watchMu.Lock()
	if s.closed.Load() {
		// Checked under the lock Close takes before it waits for the
		// watchers: a watch added after that would never be ended.
		s.watchMu.Unlock()
		return nil, store.ErrClosed
	}
	s.feeds[f] = struct{}{}
	s.watchers.Add(1)
	s.watchMu.Unlock()

	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.closing, cancel)
	end := func() {
		stop()
		cancel()
		s.watchMu.Lock()
		delete(s.feeds, f)
		s.watchMu.Unlock()
		s.watchers.Done()
	}
	heads, err := s.Pools(ctx)
	if err != nil {
		end()
		return nil, err
	}
	for _, h := range heads {
		f.Offer(h)
	}
	go func() {
		defer end()
		f.Run(wctx)
		f.Close()
	}()
	return f.Out(), nil
}

// History implements store.Store. A limit <= 0 returns every revision below
// before.
func (s *Store) History(ctx context.Context, pool string, before int64, limit int) ([]*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	var out []*wsfleetv1.PolicyRevision
	err := s.db.View(func(tx *bolt.Tx) error {
		b := poolBucket(tx, pool)
		if b == nil {
			return fmt.Errorf("%w: pool %q", store.ErrNotFound, pool)
		}
		c := b.Cursor()
		var k, v []byte
		if before <= 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(revisionKey(before)); k == nil {
			// Nothing at or after before: every revision is below it.
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			r, err := s.decodeEntry(pool, k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("history", err)
	}
	return out, nil
}

// Pools implements store.Store.
func (s *Store) Pools(ctx context.Context) ([]*wsfleetv1.PolicyRevision, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	var out []*wsfleetv1.PolicyRevision
	err := s.db.View(func(tx *bolt.Tx) error {
		pools := tx.Bucket(poolsBucket)
		return pools.ForEachBucket(func(name []byte) error {
			pool := string(name)
			k, v := pools.Bucket(name).Cursor().Last()
			if k == nil {
				// Buckets are created in the same transaction as their
				// first revision, so an empty one is not a pool.
				return nil
			}
			r, err := s.decodeEntry(pool, k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("pools", err)
	}
	return out, nil
}

// Close implements store.Store. It ends every watch (their channels are
// closed when it returns) and waits for in-flight calls to finish.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return store.ErrClosed
	}
	s.watchMu.Lock()
	s.endAll()
	s.watchMu.Unlock()
	s.watchers.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

func (s *Store) enter(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	return nil
}

// wrap turns errors from inside a transaction into what callers match on.
func (s *Store) wrap(op string, err error) error {
	var conflict *store.ConflictError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &conflict):
		return conflict
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		// Close won the race against a call that had already passed enter.
		return store.ErrClosed
	case errors.Is(err, store.ErrNotFound), errors.Is(err, ErrCorrupt),
		errors.Is(err, store.ErrProposalClosed), errors.Is(err, store.ErrTooManyProposals),
		errors.Is(err, ErrInvalidRevision):
		return err
	default:
		return fmt.Errorf("boltstore: %s: %w", op, err)
	}
}

func poolBucket(tx *bolt.Tx, pool string) *bolt.Bucket {
	if pool == "" {
		return nil
	}
	return tx.Bucket(poolsBucket).Bucket([]byte(pool))
}

func revisionKey(n int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(n))
}

func decodeKey(pool string, k []byte) (int64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("%w: pool %q has a %d-byte key %x, want an 8-byte revision", ErrCorrupt, pool, len(k), k)
	}
	n := int64(binary.BigEndian.Uint64(k))
	if n < 1 {
		return 0, fmt.Errorf("%w: pool %q has revision key %d", ErrCorrupt, pool, n)
	}
	return n, nil
}

func (s *Store) decodeEntry(pool string, k, v []byte) (*wsfleetv1.PolicyRevision, error) {
	n, err := decodeKey(pool, k)
	if err != nil {
		return nil, err
	}
	return s.decode(pool, n, v)
}

// decode unmarshals a stored value and checks it is the revision its key
// says, so a value written under the wrong key is reported, not served.
// proto.Unmarshal copies out of v, which is only valid inside the
// transaction; the result is the caller's. Revisions stored before the
// store had an identity get it here: they were issued by this store.
func (s *Store) decode(pool string, n int64, v []byte) (*wsfleetv1.PolicyRevision, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: pool %q revision %d is a bucket, not a value", ErrCorrupt, pool, n)
	}
	r := &wsfleetv1.PolicyRevision{}
	if err := proto.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("%w: pool %q revision %d: %w", ErrCorrupt, pool, n, err)
	}
	if r.GetPool() != pool || r.GetRevision() != n {
		return nil, fmt.Errorf("%w: pool %q revision %d holds pool %q revision %d", ErrCorrupt, pool, n, r.GetPool(), r.GetRevision())
	}
	r.StoreId = s.id
	return r, nil
}

package explain

import (
	"net/netip"
	"sync"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Defaults of Config.
const (
	DefaultWindow     = 60 * time.Second
	DefaultMaxRecords = 65_536
	DefaultMaxBytes   = 16 << 20
)

// recordOverhead is a record's memory besides its trace id: the queue slot,
// the map entry and the record itself, rounded up.
const recordOverhead = 160

// Config bounds a Store.
type Config struct {
	// Window is how long a record is answered. Default 60s.
	Window time.Duration
	// MaxRecords and MaxBytes bound what is kept; over either, the oldest
	// record is dropped. Defaults 65,536 and 16 MiB.
	MaxRecords int
	MaxBytes   int
	// Now is the clock; default time.Now. Tests inject their own.
	Now func() time.Time
}

// Record is what the node decided for one attempt.
type Record struct {
	TraceID string
	// Client is the address the attempt came from (IPv4 unmapped).
	Client netip.Addr
	Class  wsfleetv1.ErrorClass
	// HTTPStatus or CloseCode: what the client was answered (a rejected
	// handshake: the status, or the 4xxx code under reject_with: close; a
	// closed connection: the close code, 1006 when none was sent).
	HTTPStatus int
	CloseCode  int
	// RetryAfterSeconds is the wait the client was told; 0 for none.
	RetryAfterSeconds int
	// at is when it was added, by Config.Now.
	at time.Time
}

// Store is the bounded, short-lived record of attempts. Build it with New.
type Store struct {
	cfg Config

	mu sync.Mutex
	// queue holds records oldest first (Add appends, so insertion order is
	// time order); head is the index of the oldest. Slots before head are
	// reclaimed when the slice is compacted.
	queue []*Record
	head  int
	// byTrace is the newest record of each trace id (an id reused by a
	// retry is answered with its latest attempt).
	byTrace map[string]*Record
	bytes   int
}

// New returns an empty Store; zero fields of cfg take the defaults.
func New(cfg Config) *Store {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, byTrace: make(map[string]*Record)}
}

func size(r *Record) int { return recordOverhead + len(r.TraceID) }

// Add keeps r for Window, dropping the oldest records to stay within the
// bounds. r's empty trace id or invalid address makes it a no-op: nobody
// could ask about it.
func (s *Store) Add(r Record) {
	if r.TraceID == "" || !r.Client.IsValid() {
		return
	}
	r.Client = r.Client.Unmap()
	now := s.cfg.Now()
	r.at = now
	rec := &r
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	for s.len() > 0 && (s.len()+1 > s.cfg.MaxRecords || s.bytes+size(rec) > s.cfg.MaxBytes) {
		s.dropOldestLocked()
	}
	s.queue = append(s.queue, rec)
	s.byTrace[rec.TraceID] = rec
	s.bytes += size(rec)
}

// Lookup returns the newest record of traceID if it is within Window and
// was made from client; ok is false otherwise, whichever the reason.
func (s *Store) Lookup(traceID string, client netip.Addr) (Record, bool) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	rec, ok := s.byTrace[traceID]
	if !ok || rec.Client != client.Unmap() {
		return Record{}, false
	}
	return *rec, true
}

// Len is how many records are kept.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.len()
}

// Bytes is the memory the kept records are counted for.
func (s *Store) Bytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

func (s *Store) len() int { return len(s.queue) - s.head }

// expireLocked drops the records older than Window. A clock that stepped
// back leaves records in place until their time comes again; they are
// still bounded by count and bytes.
func (s *Store) expireLocked(now time.Time) {
	for s.len() > 0 && now.Sub(s.queue[s.head].at) >= s.cfg.Window {
		s.dropOldestLocked()
	}
}

func (s *Store) dropOldestLocked() {
	rec := s.queue[s.head]
	s.queue[s.head] = nil
	s.head++
	s.bytes -= size(rec)
	if s.byTrace[rec.TraceID] == rec {
		delete(s.byTrace, rec.TraceID)
	}
	// Compact once the dead prefix is half the slice, so the slice does
	// not grow for ever under a steady stream of adds.
	if s.head > len(s.queue)/2 && s.head > 64 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
	if s.len() == 0 {
		s.queue = s.queue[:0]
		s.head = 0
	}
}

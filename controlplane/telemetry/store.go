package telemetry

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// scanChunk is how many ring slots a query examines per hold of the lock,
// so that a scan of the whole ring delays ingest by one chunk at a time,
// not by the whole scan.
const scanChunk = 8192

// slot is one raw event in the ring with its time cached as unix
// nanoseconds, so that filtering does not convert timestamps.
type slot struct {
	ev *wsfleetv1.ErrorEvent
	t  int64
}

// subscriber is one live tail.
type subscriber struct {
	m  *matcher
	ch chan *wsfleetv1.ErrorEvent
}

// Store ingests telemetry batches and answers queries over them: raw events
// from a bounded ring, counts from per-minute aggregates. It is safe for
// concurrent use; see the package documentation for what may block.
type Store struct {
	cfg Config

	mu            sync.Mutex
	ring          []slot // len fixed at MaxRaw
	total         uint64 // events ever put; the ring holds positions [total-len(kept), total)
	evicted       bool
	evictedNewest int64 // newest event time (unix ns) ever overwritten in the ring
	agg           *aggregates
	dedup         *dedup
	subs          []*subscriber

	events, batches, duplicates, droppedByNodes, tailDropped uint64
}

// Stats are the store's counters, for metrics.
type Stats struct {
	// Events ingested (in non-duplicate batches), in total.
	Events uint64
	// Batches ingested, duplicates not counted.
	Batches uint64
	// DuplicateBatches were recognised by (reporter_id, sequence) and not
	// counted again.
	DuplicateBatches uint64
	// DroppedByNodes is the sum of the drops nodes reported: events lost
	// in their buffers before they reached the control plane.
	DroppedByNodes uint64
	// RawEvents is how many raw events the ring holds now, out of
	// RawCapacity.
	RawEvents, RawCapacity int
	// RawEvicted is how many raw events were overwritten by newer ones.
	// They are still in the aggregates.
	RawEvicted uint64
	// AggregateMinutes and AggregateKeys size the per-minute counts.
	AggregateMinutes, AggregateKeys int
	// OtherOrigins counts events whose origin was counted as OtherOrigin;
	// OtherKeys those counted under the OtherKey catch-all.
	OtherOrigins, OtherKeys uint64
	// Reporters is how many reporter_ids are remembered for duplicate
	// detection; ReportersEvicted how many were forgotten for the bound.
	Reporters        int
	ReportersEvicted uint64
	// TailSubscribers is the number of live tails; TailDropped the events
	// they lost because they fell behind.
	TailSubscribers int
	TailDropped     uint64
}

// New validates cfg, fills its defaults and returns an empty Store.
func New(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Store{
		cfg:   cfg,
		ring:  make([]slot, cfg.MaxRaw),
		agg:   newAggregates(&cfg),
		dedup: newDedup(cfg.MaxReporters),
	}, nil
}

// tsNanos is ts as unix nanoseconds, saturating instead of overflowing for
// times outside 1678..2262 (a node's clock is not to be trusted).
func tsNanos(ts *timestamppb.Timestamp) int64 {
	const limit = math.MaxInt64/int64(time.Second) - 1
	switch s := ts.GetSeconds(); {
	case s > limit:
		return math.MaxInt64
	case s < -limit:
		return math.MinInt64
	default:
		return s*int64(time.Second) + int64(ts.GetNanos())
	}
}

// Ingest stores one batch unless its (reporter_id, sequence) was ingested
// before, in which case it does nothing and returns false: the node's
// resend is acknowledged but not counted twice. A batch without a
// reporter_id or with sequence 0 is not checked for duplicates (Server
// refuses such batches).
//
// Events with no node id or pool get the batch's (an empty pool is
// "default"); events with no or an invalid time get the arrival time. The
// store keeps the events: the caller must not modify them afterwards, and
// everything the store hands out shares them read-only.
//
// Aggregates count an event in the minute of its time; one older than the
// retention or more than five minutes in the future (a wrong clock) is
// counted in the minute it arrived.
func (s *Store) Ingest(req *wsfleetv1.ReportTelemetryRequest) (fresh bool) {
	now := s.cfg.Now()
	nowNs := now.UnixNano()
	nowMinute := unixMinute(nowNs)
	oldestNs := s.agg.horizon(nowMinute) * int64(time.Minute)
	newestNs := nowNs + int64(maxClockSkew)

	nodeID, pool := req.GetNodeId(), req.GetPool()
	if pool == "" {
		pool = policy.DefaultPool
	}
	var nowTs *timestamppb.Timestamp
	for _, ev := range req.GetEvents() {
		if ev == nil {
			continue
		}
		if ev.NodeId == "" {
			ev.NodeId = nodeID
		}
		if ev.Pool == "" {
			ev.Pool = pool
		}
		if ev.Time == nil || ev.Time.CheckValid() != nil {
			if nowTs == nil {
				nowTs = timestamppb.New(now)
			}
			ev.Time = nowTs
		}
	}

	n := 0
	s.mu.Lock()
	if id, seq := req.GetReporterId(), req.GetSequence(); id != "" && seq != 0 && !s.dedup.fresh(id, seq) {
		s.duplicates++
		s.mu.Unlock()
		return false
	}
	s.agg.prune(nowMinute)
	// A batch's events nearly always share its node and pool: intern them
	// once per change, not once per event. (The empty string needs no
	// interning, so the zero values agree.)
	var rawNode, rawPool, aggNode, aggPool string
	for _, ev := range req.GetEvents() {
		if ev == nil {
			continue
		}
		t := tsNanos(ev.Time)
		s.put(ev, t)
		minute := nowMinute
		if t >= oldestNs && t <= newestNs {
			minute = unixMinute(t)
		}
		if ev.NodeId != rawNode {
			rawNode, aggNode = ev.NodeId, s.agg.intern(ev.NodeId)
		}
		if ev.Pool != rawPool {
			rawPool, aggPool = ev.Pool, s.agg.intern(ev.Pool)
		}
		s.agg.add(minute, aggPool, aggNode, ev)
		for _, sub := range s.subs {
			if sub.m.event(ev, t) {
				select {
				case sub.ch <- ev:
				default:
					s.tailDropped++
				}
			}
		}
		n++
	}
	s.events += uint64(n)
	s.batches++
	s.droppedByNodes += req.GetDropped()
	over := s.agg.takeOverflow()
	s.mu.Unlock()

	if over.origins {
		s.cfg.Log.WithFields(logrus.Fields{"node_id": nodeID, "limit": s.cfg.MaxOriginsPerMinute}).
			Warn("telemetry: more distinct origins in a minute than MaxOriginsPerMinute; the rest are counted as " + OtherOrigin)
	}
	if over.keys {
		s.cfg.Log.WithFields(logrus.Fields{"node_id": nodeID, "limit": s.cfg.MaxKeysPerMinute}).
			Warn("telemetry: more (pool, node, class, origin) combinations in a minute than MaxKeysPerMinute; the rest are counted as " + OtherKey)
	}

	if s.cfg.OnBatch != nil {
		s.cfg.OnBatch(nodeID, n, req.GetDropped())
	}
	return true
}

// put writes one event into the ring, overwriting the oldest when full.
// Called with mu held.
func (s *Store) put(ev *wsfleetv1.ErrorEvent, t int64) {
	size := uint64(len(s.ring))
	i := s.total % size
	if s.total >= size {
		if old := s.ring[i].t; !s.evicted || old > s.evictedNewest {
			s.evictedNewest = old
		}
		s.evicted = true
	}
	s.ring[i] = slot{ev: ev, t: t}
	s.total++
}

// oldest is the ring's oldest position still held. Called with mu held.
func (s *Store) oldest() uint64 {
	if size := uint64(len(s.ring)); s.total > size {
		return s.total - size
	}
	return 0
}

// Query returns raw events matching f from the ring, newest first (by event
// time; the limit picks the most recently ingested matches), at most limit
// of them (limit <= 0: as many as the ring holds). truncated is true when
// the ring has overwritten events that may have fallen in f's time range,
// so the answer may be incomplete however large the limit.
func (s *Store) Query(f *wsfleetv1.EventFilter, limit int) (events []*wsfleetv1.ErrorEvent, truncated bool) {
	m := compile(f, true)
	s.mu.Lock()
	before := s.total
	s.mu.Unlock()
	found, truncated := s.scan(m, limit, before)
	slices.SortStableFunc(found, func(a, b slot) int { return cmpInt64(b.t, a.t) })
	return eventsOf(found), truncated
}

// scan walks the ring from position before-1 towards the oldest event,
// collecting up to limit matches, most recently ingested first. It takes
// the lock one chunk at a time; if ingest overtakes the scan the rest is
// gone, which the truncated flag then reports.
func (s *Store) scan(m *matcher, limit int, before uint64) (found []slot, truncated bool) {
	size := uint64(len(s.ring))
	if limit <= 0 || limit > len(s.ring) {
		limit = len(s.ring)
	}
	pos := before
	for len(found) < limit {
		s.mu.Lock()
		oldest := s.oldest()
		if pos <= oldest {
			s.mu.Unlock()
			break
		}
		for n := 0; n < scanChunk && pos > oldest && len(found) < limit; n++ {
			pos--
			if sl := s.ring[pos%size]; m.event(sl.ev, sl.t) {
				found = append(found, sl)
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	truncated = s.evicted && (!m.hasStart || s.evictedNewest >= m.start)
	s.mu.Unlock()
	return found, truncated
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func eventsOf(found []slot) []*wsfleetv1.ErrorEvent {
	out := make([]*wsfleetv1.ErrorEvent, len(found))
	for i, sl := range found {
		out[i] = sl.ev
	}
	return out
}

// Top counts events matching f (time range, classes, node, pool, origin,
// errors_only; trace_id is not aggregated and is ignored) grouped by one
// dimension, largest first, at most limit groups (limit <= 0: all), with
// the total over all groups. Counts have minute granularity: the range is
// widened to whole minutes (a minute counts when it overlaps the range)
// and clipped to the retention. Origins beyond a minute's cardinality
// bound appear as OtherOrigin.
func (s *Store) Top(f *wsfleetv1.EventFilter, by wsfleetv1.TopErrorsRequest_GroupBy, limit int) *wsfleetv1.TopErrorsResponse {
	m := compile(f, true)
	nowMinute := unixMinute(s.cfg.Now().UnixNano())
	s.mu.Lock()
	s.agg.prune(nowMinute)
	minutes := s.agg.inRange(m, nowMinute)
	s.mu.Unlock()

	groups := make(map[string]*group)
	var total int64
	// One minute per hold of the lock: a day-long query must not stall
	// ingest for its whole duration.
	for _, ma := range minutes {
		s.mu.Lock()
		for k, n := range ma.counts {
			if !m.key(k) {
				continue
			}
			total += n
			gk := groupKey(k, by)
			g := groups[gk]
			if g == nil {
				g = &group{}
				groups[gk] = g
			}
			g.count += n
			c := k.class
			if c < 0 || int(c) >= len(g.byClass) {
				c = wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED
			}
			g.byClass[c] += n
		}
		s.mu.Unlock()
	}
	return topOf(groups, total, limit)
}

// Subscribe starts a live tail of events matching f (its time range is
// ignored). Ingest never waits for the subscriber: when its channel of
// buffer events (<= 0: DefaultTailBuffer) is full, events are lost and
// counted in Stats.TailDropped. cancel ends the tail and closes the
// channel; it is idempotent and must be called to release the
// subscription.
func (s *Store) Subscribe(f *wsfleetv1.EventFilter, buffer int) (ch <-chan *wsfleetv1.ErrorEvent, cancel func()) {
	sub, cancel, _ := s.subscribe(f, buffer)
	return sub.ch, cancel
}

// subscribe registers a tail and returns the ring position it starts at:
// every event at or after it goes to the channel, every one before it is
// backlog.
func (s *Store) subscribe(f *wsfleetv1.EventFilter, buffer int) (*subscriber, func(), uint64) {
	if buffer <= 0 {
		buffer = DefaultTailBuffer
	}
	sub := &subscriber{m: compile(f, false), ch: make(chan *wsfleetv1.ErrorEvent, buffer)}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	pos := s.total
	s.mu.Unlock()
	cancel := sync.OnceFunc(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if i := slices.Index(s.subs, sub); i >= 0 {
			s.subs = slices.Delete(s.subs, i, i+1)
		}
		// Closed under the lock, so Ingest can never send on it afterwards.
		close(sub.ch)
	})
	return sub, cancel, pos
}

// tail is Subscribe with a backlog: up to backlog of the most recent
// matching events, oldest first, and then the channel, with neither a gap
// nor a repeat between the two.
func (s *Store) tail(f *wsfleetv1.EventFilter, backlog, buffer int) (past []*wsfleetv1.ErrorEvent, ch <-chan *wsfleetv1.ErrorEvent, cancel func()) {
	sub, cancel, pos := s.subscribe(f, buffer)
	if backlog > 0 {
		found, _ := s.scan(sub.m, backlog, pos)
		slices.SortStableFunc(found, func(a, b slot) int { return cmpInt64(b.t, a.t) })
		slices.Reverse(found)
		past = eventsOf(found)
	}
	return past, sub.ch, cancel
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Events:           s.events,
		Batches:          s.batches,
		DuplicateBatches: s.duplicates,
		DroppedByNodes:   s.droppedByNodes,
		RawEvents:        int(s.total - s.oldest()),
		RawCapacity:      len(s.ring),
		RawEvicted:       s.oldest(),
		AggregateMinutes: len(s.agg.minutes),
		AggregateKeys:    s.agg.keys,
		OtherOrigins:     s.agg.otherOrigins,
		OtherKeys:        s.agg.otherKeys,
		Reporters:        s.dedup.len(),
		ReportersEvicted: s.dedup.evicted,
		TailSubscribers:  len(s.subs),
		TailDropped:      s.tailDropped,
	}
	return st
}

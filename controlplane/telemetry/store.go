package telemetry

import (
	"fmt"
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
// nanoseconds, so that filtering does not convert timestamps, and its
// estimated size, for the ring's byte bound.
type slot struct {
	ev   *wsfleetv1.ErrorEvent
	t    int64
	size int
}

// subscriber is one live tail.
type subscriber struct {
	m *matcher

	// mu guards sends on ch and its close: Ingest publishes to a tail
	// outside the store's lock, and a close must never precede a send.
	mu      sync.Mutex
	ch      chan *wsfleetv1.ErrorEvent
	closed  bool
	dropped bool // closed because its buffer was full, not cancelled
}

// Tail is a live tail of a Store (see Subscribe).
type Tail struct {
	// C receives the matching events as they are ingested. It is closed by
	// Cancel, or when the tail fell behind (see Dropped).
	C      <-chan *wsfleetv1.ErrorEvent
	sub    *subscriber
	cancel func()
}

// Dropped reports whether the tail was ended because its buffer was full
// when an event arrived: its reader did not keep up. Meaningful once C is
// closed.
func (t *Tail) Dropped() bool {
	t.sub.mu.Lock()
	defer t.sub.mu.Unlock()
	return t.sub.dropped
}

// Cancel ends the tail, closes C if it is still open and frees the tail's
// slot. Idempotent; it must be called.
func (t *Tail) Cancel() { t.cancel() }

// Store ingests telemetry batches and answers queries over them: raw events
// from a bounded ring, counts from per-minute aggregates. It is safe for
// concurrent use; see the package documentation for what may block.
type Store struct {
	cfg Config

	// truncated counts the string fields cut on ingest, per field.
	truncated truncations

	mu            sync.Mutex
	ring          []slot // len fixed at MaxRaw
	first, total  uint64 // positions put ever; the ring holds [first, total)
	rawBytes      int    // sum of the held slots' sizes
	evicted       bool
	evictedNewest int64 // newest event time (unix ns) ever evicted from the ring
	agg           *aggregates
	traffic       *trafficTable
	dedup         *dedup
	// subs are the live tails Ingest publishes to. The slice is never
	// changed in place, only replaced, so Ingest can publish to the
	// snapshot it read under the lock after releasing it.
	subs []*subscriber
	// tails counts the tails not yet cancelled, dropped ones included:
	// what MaxTails bounds.
	tails int

	events, batches, duplicates, droppedByNodes, tailsDropped uint64
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
	// RawEvicted is how many raw events were evicted for newer ones (by
	// either bound). They are still in the aggregates.
	RawEvicted uint64
	// RawBytes is the ring's estimated size, out of RawBytesCapacity.
	RawBytes, RawBytesCapacity int
	// AggregateMinutes and AggregateKeys size the per-minute counts;
	// AggregateBytes is their estimated size.
	AggregateMinutes, AggregateKeys, AggregateBytes int
	// OtherOrigins counts events whose origin was counted as OtherOrigin;
	// OtherKeys those counted under the OtherKey catch-all.
	OtherOrigins, OtherKeys uint64
	// OverBudget counts the events of OtherOrigins and OtherKeys that went
	// there because the aggregates reached MaxAggregateBytes.
	OverBudget uint64
	// Reporters is how many reporter_ids are remembered for duplicate
	// detection; ReportersEvicted how many were forgotten for the bound.
	Reporters        int
	ReportersEvicted uint64
	// TailSubscribers is the number of open tails (dropped ones count
	// until cancelled); TailsDropped how many tails were ended because
	// they fell behind.
	TailSubscribers int
	TailsDropped    uint64
	// Truncated counts the event strings cut to their cap on ingest, by
	// field name (see FieldNames).
	Truncated map[string]uint64
	// TrafficSamples counts the traffic samples ingested; TrafficDropped
	// those refused (minute missing, outside the retention or ahead of
	// the clock, or a policy pool the node does not run).
	TrafficSamples, TrafficDropped uint64
	// TrafficOtherOrigins counts sample origins counted as accepted_other
	// for the per-minute or byte bound; TrafficOtherNodes node peaks
	// folded under OtherKey.
	TrafficOtherOrigins, TrafficOtherNodes uint64
	// TrafficMinutes and TrafficBytes size the traffic table.
	TrafficMinutes, TrafficBytes int
}

// New validates cfg, fills its defaults and returns an empty Store.
func New(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:   cfg,
		ring:  make([]slot, cfg.MaxRaw),
		agg:   newAggregates(&cfg),
		dedup: newDedup(cfg.MaxReporters, cfg.MaxReporterBytes),
	}
	s.traffic = newTrafficTable(&s.cfg)
	return s, nil
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

// timeNanos is t as unix nanoseconds, saturating like tsNanos: a range
// asked for may lie beyond the years an int64 of nanoseconds spans.
func timeNanos(t time.Time) int64 {
	return tsNanos(&timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())})
}

// Ingest stores one batch unless its (reporter_id, sequence) was ingested
// before, in which case it does nothing and returns false: the node's
// resend is acknowledged but not counted twice. A batch without a
// reporter_id or with sequence 0 is not checked for duplicates (Server
// refuses such batches).
//
// Events with no node id or pool get the batch's (an empty pool is
// "default"); events with no or an invalid time get the arrival time.
// Every string is then capped (see MaxOriginBytes and the others) and
// unknown fields are dropped. The store keeps the events: the caller must
// not modify them afterwards, and everything the store hands out shares
// them read-only.
//
// Aggregates count an event max(1, repeat) times (a node folds repeated
// rejections into one event), in the minute of its time; one older than
// the retention or more than five minutes in the future (a wrong clock) is
// counted in the minute it arrived.
//
// Live tails get the batch's matching events after the lock is released
// (see the package documentation).
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
		s.truncated.capEvent(ev)
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
		s.put(ev, t, eventBytes(ev))
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
		n++
	}
	if len(req.GetTraffic()) > 0 {
		s.traffic.prune(nowMinute)
		for _, ts := range req.GetTraffic() {
			s.traffic.add(&s.truncated, nodeID, pool, ts, nowNs)
		}
	}
	s.events += uint64(n)
	s.batches++
	s.droppedByNodes += req.GetDropped()
	over := s.agg.takeOverflow()
	subs := s.subs
	s.mu.Unlock()

	// The snapshot read under the lock: a tail subscribed after this
	// batch was put finds it in its backlog instead, so no event is
	// missed or sent twice.
	if len(subs) > 0 && n > 0 {
		s.publish(subs, req.GetEvents())
	}

	if over.origins {
		s.cfg.Log.WithFields(logrus.Fields{"node_id": nodeID, "limit": s.cfg.MaxOriginsPerMinute}).
			Warn("telemetry: more distinct origins in a minute than MaxOriginsPerMinute; the rest are counted as " + OtherOrigin)
	}
	if over.budget {
		s.cfg.Log.WithFields(logrus.Fields{"node_id": nodeID, "limit_bytes": s.cfg.MaxAggregateBytes}).
			Warn("telemetry: the per-minute counts reached MaxAggregateBytes; new origins and combinations are counted as " + OtherKey + " until old minutes expire")
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

// publish sends events to the live tails that match them, without waiting:
// a tail whose buffer is full is dropped (its channel closed) and removed,
// so that a reader that stopped reading costs ingest nothing more. Called
// without mu: the per-tail work holds only that tail's lock.
func (s *Store) publish(subs []*subscriber, events []*wsfleetv1.ErrorEvent) {
	var dropped []*subscriber
	for _, sub := range subs {
		sub.mu.Lock()
		if sub.closed {
			sub.mu.Unlock()
			continue
		}
		for _, ev := range events {
			if ev == nil || !sub.m.event(ev, tsNanos(ev.Time)) {
				continue
			}
			select {
			case sub.ch <- ev:
				continue
			default:
			}
			sub.dropped, sub.closed = true, true
			close(sub.ch)
			dropped = append(dropped, sub)
			break
		}
		sub.mu.Unlock()
	}
	if len(dropped) > 0 {
		s.mu.Lock()
		for _, sub := range dropped {
			s.removeSub(sub)
		}
		s.tailsDropped += uint64(len(dropped))
		s.mu.Unlock()
	}
}

// removeSub takes sub out of the tails Ingest publishes to, replacing the
// slice (publishers may hold the old one). Called with mu held.
func (s *Store) removeSub(sub *subscriber) {
	if i := slices.Index(s.subs, sub); i >= 0 {
		s.subs = slices.Delete(slices.Clone(s.subs), i, i+1)
	}
}

// put writes one event of the given estimated size into the ring,
// evicting the oldest events first while either bound (MaxRaw events,
// MaxRawBytes) would be exceeded. Called with mu held.
func (s *Store) put(ev *wsfleetv1.ErrorEvent, t int64, size int) {
	capacity := uint64(len(s.ring))
	for s.total-s.first >= capacity || (s.first < s.total && s.rawBytes+size > s.cfg.MaxRawBytes) {
		s.evictOldest()
	}
	s.ring[s.total%capacity] = slot{ev: ev, t: t, size: size}
	s.rawBytes += size
	s.total++
}

// evictOldest drops the ring's oldest event, clearing its slot so that the
// event can be collected. Called with mu held and the ring not empty.
func (s *Store) evictOldest() {
	i := s.first % uint64(len(s.ring))
	old := s.ring[i]
	if !s.evicted || old.t > s.evictedNewest {
		s.evictedNewest = old.t
	}
	s.evicted = true
	s.rawBytes -= old.size
	s.ring[i] = slot{}
	s.first++
}

// oldest is the ring's oldest position still held. Called with mu held.
func (s *Store) oldest() uint64 { return s.first }

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
// errors_only, policy_revision; trace_id is not aggregated and is ignored) grouped by one
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
// ignored), with room for buffer waiting events (<= 0: Config.TailBuffer).
// Ingest never waits for a tail: one whose buffer is full when a matching
// event arrives is dropped — its channel closed, Tail.Dropped true — since
// its reader has stopped keeping up. At most Config.MaxTails tails may be
// open (dropped ones count until cancelled); beyond that Subscribe fails
// with ErrTooManyTails. The Tail must be cancelled.
func (s *Store) Subscribe(f *wsfleetv1.EventFilter, buffer int) (*Tail, error) {
	t, _, err := s.subscribe(f, buffer)
	return t, err
}

// subscribe registers a tail and returns the ring position it starts at:
// every event at or after it goes to the channel, every one before it is
// backlog.
func (s *Store) subscribe(f *wsfleetv1.EventFilter, buffer int) (*Tail, uint64, error) {
	if buffer <= 0 {
		buffer = s.cfg.TailBuffer
	}
	sub := &subscriber{m: compile(f, false), ch: make(chan *wsfleetv1.ErrorEvent, buffer)}
	s.mu.Lock()
	if s.tails >= s.cfg.MaxTails {
		s.mu.Unlock()
		return nil, 0, fmt.Errorf("%w: %d open, at most %d (MaxTails)", ErrTooManyTails, s.cfg.MaxTails, s.cfg.MaxTails)
	}
	s.tails++
	s.subs = append(slices.Clip(s.subs), sub)
	pos := s.total
	s.mu.Unlock()
	cancel := sync.OnceFunc(func() {
		sub.mu.Lock()
		if !sub.closed {
			sub.closed = true
			close(sub.ch)
		}
		sub.mu.Unlock()
		s.mu.Lock()
		s.removeSub(sub)
		s.tails--
		s.mu.Unlock()
	})
	return &Tail{C: sub.ch, sub: sub, cancel: cancel}, pos, nil
}

// tail is Subscribe with a backlog: up to backlog of the most recent
// matching events, oldest first, and then the channel, with neither a gap
// nor a repeat between the two.
func (s *Store) tail(f *wsfleetv1.EventFilter, backlog, buffer int) (past []*wsfleetv1.ErrorEvent, t *Tail, err error) {
	t, pos, err := s.subscribe(f, buffer)
	if err != nil {
		return nil, nil, err
	}
	if backlog > 0 {
		found, _ := s.scan(t.sub.m, backlog, pos)
		slices.SortStableFunc(found, func(a, b slot) int { return cmpInt64(b.t, a.t) })
		slices.Reverse(found)
		past = eventsOf(found)
	}
	return past, t, nil
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
		RawEvents:        int(s.total - s.first),
		RawCapacity:      len(s.ring),
		RawEvicted:       s.first,
		RawBytes:         s.rawBytes,
		RawBytesCapacity: s.cfg.MaxRawBytes,
		AggregateMinutes: len(s.agg.minutes),
		AggregateKeys:    s.agg.keys,
		AggregateBytes:   s.agg.bytes,
		OtherOrigins:     s.agg.otherOrigins,
		OtherKeys:        s.agg.otherKeys,
		OverBudget:       s.agg.overBudget,
		Reporters:        s.dedup.len(),
		ReportersEvicted: s.dedup.evicted,
		TailSubscribers:  s.tails,
		TailsDropped:     s.tailsDropped,
		Truncated:        make(map[string]uint64, numFields),

		TrafficSamples:      s.traffic.samples,
		TrafficDropped:      s.traffic.dropped,
		TrafficOtherOrigins: s.traffic.otherOrigins,
		TrafficOtherNodes:   s.traffic.otherNodes,
		TrafficMinutes:      len(s.traffic.minutes),
		TrafficBytes:        s.traffic.bytes,
	}
	for f := range numFields {
		st.Truncated[fieldNames[f]] = s.truncated[f].Load()
	}
	return st
}

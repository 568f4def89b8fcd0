package telemetry

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Traffic measures, as TrafficSummaryResponse names them.
const (
	MeasureConnections         = "connections"
	MeasureConnectionsPerIP    = "connections_per_ip"
	MeasureHandshakesPerSecond = "handshakes_per_second"
	MeasureMessagesPerSecond   = "messages_per_second"
	MeasureMessageBytes        = "message_bytes"
)

// measures in the order of nodePeaks' array.
var measures = [...]string{MeasureConnections, MeasureConnectionsPerIP, MeasureHandshakesPerSecond, MeasureMessagesPerSecond, MeasureMessageBytes}

// Bounds on what one batch may carry of traffic samples (a node sends at
// most a few per batch; sdk/telemetry's default bound is 10).
const (
	// MaxBatchSamples bounds the traffic samples of one batch; a batch
	// with more is refused.
	MaxBatchSamples = 100
	// MaxSampleOrigins bounds the origins one sample may count (nodes
	// count 256 by default); those beyond count as accepted_other.
	MaxSampleOrigins = 4096
	// MaxSummaryOrigins bounds the origins of a TrafficSummary answer:
	// the largest are listed, the rest added to accepted_other.
	MaxSummaryOrigins = 10_000
	// DefaultTrafficWindow is TrafficSummary's range without a start.
	DefaultTrafficWindow = time.Hour
)

// Estimated heap costs of the traffic table, for MaxTrafficBytes: a
// pool-minute, an origin entry besides its bytes, a node's peaks besides
// its id.
const (
	poolMinuteBytes  = 256
	trafficOrigBytes = 64
	nodePeaksBytes   = 96
)

// nodePeaks are one node's highest values of one minute, per measure.
type nodePeaks [len(measures)]uint32

// poolMinute is one pool's traffic of one minute.
type poolMinute struct {
	origins map[string]uint64
	other   uint64
	nodes   map[string]*nodePeaks
}

// trafficTable keeps the nodes' traffic samples per minute and pool:
// accepted handshakes per origin summed over nodes (bounded per pool-minute
// by MaxTrafficOrigins), and each node's peaks (bounded per pool-minute by
// MaxTrafficNodes; beyond, they fold into node OtherKey). Not safe for
// concurrent use: the Store's lock guards it.
type trafficTable struct {
	cfg              *Config
	retentionMinutes int64
	minutes          map[int64]map[string]*poolMinute
	bytes            int
	// since is the minute the table began in (the Store's creation): the
	// table is in memory only, so before it, what is missing was not
	// seen rather than absent (see summary).
	since int64

	samples, dropped, otherOrigins, otherNodes uint64
}

func newTrafficTable(cfg *Config) *trafficTable {
	return &trafficTable{
		cfg:              cfg,
		retentionMinutes: int64((cfg.TrafficRetention + time.Minute - 1) / time.Minute),
		minutes:          map[int64]map[string]*poolMinute{},
		since:            unixMinute(timeNanos(cfg.Now())),
	}
}

// prune forgets the minutes before the retention.
func (t *trafficTable) prune(nowMinute int64) {
	for m, pools := range t.minutes {
		if m >= nowMinute-t.retentionMinutes {
			continue
		}
		for pool, pm := range pools {
			t.bytes -= len(pool) + pm.size()
		}
		delete(t.minutes, m)
	}
}

func (pm *poolMinute) size() int {
	n := poolMinuteBytes
	for o := range pm.origins {
		n += len(o) + trafficOrigBytes
	}
	for id := range pm.nodes {
		n += len(id) + nodePeaksBytes
	}
	return n
}

// add counts one sample of node (whose batch named pool) ingested at
// nowNs. A sample whose minute is missing, older than the retention or
// ahead of the clock by more than the skew allowed for events, or whose
// policy_pool is neither the node's pool nor default, is dropped and
// counted: a node reports the policy it enforced, which is its pool's or
// default's. Origins are capped like an event's (tr counts the cuts).
func (t *trafficTable) add(tr *truncations, node, pool string, s *wsfleetv1.TrafficSample, nowNs int64) {
	mts := s.GetMinute()
	if mts == nil || mts.CheckValid() != nil {
		t.dropped++
		return
	}
	ns := tsNanos(mts)
	nowMinute := unixMinute(nowNs)
	minute := unixMinute(ns)
	if minute < nowMinute-t.retentionMinutes || ns > nowNs+int64(maxClockSkew) {
		t.dropped++
		return
	}
	pp := s.GetPolicyPool()
	if pp == "" {
		pp = policy.DefaultPool
	}
	if pp != pool && pp != policy.DefaultPool {
		t.dropped++
		return
	}
	pools := t.minutes[minute]
	if pools == nil {
		pools = map[string]*poolMinute{}
		t.minutes[minute] = pools
	}
	pm := pools[pp]
	if pm == nil {
		pm = &poolMinute{origins: map[string]uint64{}, nodes: map[string]*nodePeaks{}}
		pools[pp] = pm
		t.bytes += poolMinuteBytes + len(pp)
	}
	t.samples++
	pm.other = AddCounts(pm.other, s.GetAcceptedOther())
	for i, o := range s.GetAccepted() {
		if i >= MaxSampleOrigins {
			pm.other = AddCounts(pm.other, o.GetCount())
			continue
		}
		origin := tr.capString(fieldOrigin, o.GetOrigin())
		if n, ok := pm.origins[origin]; ok {
			pm.origins[origin] = AddCounts(n, o.GetCount())
			continue
		}
		if len(pm.origins) >= t.cfg.MaxTrafficOrigins || t.bytes >= t.cfg.MaxTrafficBytes {
			pm.other = AddCounts(pm.other, o.GetCount())
			t.otherOrigins++
			continue
		}
		pm.origins[origin] = o.GetCount()
		t.bytes += len(origin) + trafficOrigBytes
	}
	peaks := pm.nodes[node]
	if peaks == nil {
		key := node
		if len(pm.nodes) >= t.cfg.MaxTrafficNodes || t.bytes >= t.cfg.MaxTrafficBytes {
			key = OtherKey
			t.otherNodes++
		}
		if peaks = pm.nodes[key]; peaks == nil {
			peaks = &nodePeaks{}
			pm.nodes[key] = peaks
			t.bytes += len(key) + nodePeaksBytes
		}
	}
	for i, v := range [len(measures)]uint32{s.GetPeakConnections(), s.GetPeakConnectionsPerIp(), s.GetPeakHandshakesPerSecond(), s.GetPeakMessagesPerSecond(), s.GetPeakMessageBytes()} {
		peaks[i] = max(peaks[i], v)
	}
}

// AddCounts adds two counts, saturating at the largest uint64 instead of
// wrapping: a node's counts are not to be trusted, and a wrapped sum would
// tell a dry run that a busy origin saw almost nothing.
func AddCounts(a, b uint64) uint64 {
	sum, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return sum
}

// summary adds up pool's minutes that start in [start, end): origins summed, each
// measure's highest value with its node and minute (the earliest minute,
// then the smallest node id, on a tie). Its start is the start of what
// the table covers: not before the table began (since) unless it holds
// earlier minutes (samples a node kept while the control plane was
// down), so that a control plane restarted ten minutes ago says it saw
// ten minutes, not an hour of nothing.
func (t *trafficTable) summary(pool string, start, end time.Time) *wsfleetv1.TrafficSummaryResponse {
	// The minutes that start in [start, end), in nanoseconds clamped to
	// an int64's years (a range may be asked for beyond them).
	sn, en := timeNanos(start), timeNanos(end)
	first, last := unixMinute(sn), unixMinute(en)
	if sn%int64(time.Minute) != 0 {
		first++
	}
	if en%int64(time.Minute) == 0 {
		last--
	}
	covered := t.since
	origins := map[string]uint64{}
	var other uint64
	nodes := map[string]bool{}
	type best struct {
		v      uint32
		node   string
		minute int64
		set    bool
	}
	var bests [len(measures)]best
	for m, pools := range t.minutes {
		if m >= first && m < covered {
			covered = m
		}
		if m < first || m > last {
			continue
		}
		pm := pools[pool]
		if pm == nil {
			continue
		}
		for o, n := range pm.origins {
			origins[o] = AddCounts(origins[o], n)
		}
		other = AddCounts(other, pm.other)
		for id, p := range pm.nodes {
			nodes[id] = true
			for i, v := range p {
				b := &bests[i]
				if v == 0 {
					continue
				}
				if !b.set || v > b.v || (v == b.v && (m < b.minute || (m == b.minute && id < b.node))) {
					*b = best{v: v, node: id, minute: m, set: true}
				}
			}
		}
	}
	// first*60 is before start only where the nanoseconds were clamped.
	coveredStart := time.Unix(max(covered, first)*60, 0)
	if coveredStart.Before(start) {
		coveredStart = start
	}
	if coveredStart.After(end) {
		coveredStart = end
	}
	resp := &wsfleetv1.TrafficSummaryResponse{
		NodesReporting: int32(len(nodes)),
		StartTime:      timestamppb.New(coveredStart),
		EndTime:        timestamppb.New(end),
	}
	for o, n := range origins {
		resp.Accepted = append(resp.Accepted, &wsfleetv1.OriginCount{Origin: o, Count: n})
	}
	SortOrigins(resp.Accepted)
	if len(resp.Accepted) > MaxSummaryOrigins {
		for _, o := range resp.Accepted[MaxSummaryOrigins:] {
			other = AddCounts(other, o.GetCount())
		}
		resp.Accepted = resp.Accepted[:MaxSummaryOrigins]
	}
	resp.AcceptedOther = int64(min(other, 1<<62))
	for i, b := range bests {
		if b.set {
			resp.Peaks = append(resp.Peaks, &wsfleetv1.TrafficPeak{
				Measure: measures[i], Value: int64(b.v), NodeId: b.node, Minute: timestamppb.New(time.Unix(b.minute*60, 0)),
			})
		}
	}
	return resp
}

// SortOrigins orders origin counts largest first, ties by origin.
func SortOrigins(os []*wsfleetv1.OriginCount) {
	slices.SortFunc(os, func(a, b *wsfleetv1.OriginCount) int {
		return cmp.Or(cmp.Compare(b.GetCount(), a.GetCount()), strings.Compare(a.GetOrigin(), b.GetOrigin()))
	})
}

// TrafficSummary adds up pool's traffic samples over [start, end) (minute
// granularity: a minute counts when it starts in the range); see
// FleetService.TrafficSummary.
func (s *Store) TrafficSummary(pool string, start, end time.Time) *wsfleetv1.TrafficSummaryResponse {
	if pool == "" {
		pool = policy.DefaultPool
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.traffic.prune(unixMinute(s.cfg.Now().UnixNano()))
	return s.traffic.summary(pool, start, end)
}

package telemetry

import (
	"sort"
	"time"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// aggKey is one counted combination within a minute.
type aggKey struct {
	pool, node, origin string
	class              wsfleetv1.ErrorClass
	// rev is the policy revision the node ran (EventFilter.policy_revision:
	// a canary's events against the rest). A node runs one revision at a
	// time, so it adds a key only in the minute a node changes revision.
	// The catch-all keys of a full minute have none.
	rev int64
}

// minuteAgg holds one minute's counts.
type minuteAgg struct {
	minute int64 // unix minutes
	counts map[aggKey]int64
	// origins maps each origin counted this minute to itself, so that all
	// of the minute's keys share one copy of its string.
	origins map[string]string
	// full records which bounds this minute has hit, so each is reported
	// once.
	originsFull, keysFull bool
	// folded counts the minute's events (by weight) whose origin, or whole
	// key, went to "(other)": ErrorSeries reports it, so that a chart
	// filtered by origin says what it cannot show.
	folded int64
	// bytes is the minute's share of aggregates.bytes.
	bytes int
}

// overflow names the bounds a batch hit first in some minute.
type overflow struct {
	origins, keys, budget bool
}

// maxInterned bounds the table of node ids and pools whose strings the
// aggregates share across minutes. Beyond it names are kept uninterned,
// which costs memory, not correctness.
const maxInterned = 10_000

// Estimated heap costs of the aggregates, for MaxAggregateBytes: a key
// (three strings and a class in a map with its count), a minute (its maps
// and header), a distinct origin of a minute besides its bytes, and an
// interned name besides its bytes.
const (
	keyBytes    = 120
	minuteBytes = 512
	originBytes = 64
	nameBytes   = 64
)

// aggregates is the per-minute count table. Not safe for concurrent use;
// the Store's lock guards it.
type aggregates struct {
	maxOrigins, maxKeys, maxBytes int
	retentionMinutes              int64

	minutes   map[int64]*minuteAgg
	keys      int   // sum of len(counts) over minutes
	bytes     int   // estimated size: the minutes' bytes and the names'
	lastPrune int64 // unix minute of the last prune

	// names interns node ids and pools: every event carries its own copy
	// of them, and a day of minutes would otherwise keep thousands.
	names map[string]string

	otherOrigins uint64 // events counted under OtherOrigin
	otherKeys    uint64 // events counted under the OtherKey catch-all
	// overBudget counts the events whose origin or key went to "(other)"
	// because of MaxAggregateBytes rather than a per-minute bound;
	// budgetFull is set from the first of them until pruning frees room.
	overBudget uint64
	budgetFull bool

	// overflowed collects the bounds first hit since the last takeOverflow.
	overflowed overflow
}

// takeOverflow returns and clears the bounds first hit since the last call.
func (a *aggregates) takeOverflow() overflow {
	o := a.overflowed
	a.overflowed = overflow{}
	return o
}

func newAggregates(cfg *Config) *aggregates {
	return &aggregates{
		maxOrigins:       cfg.MaxOriginsPerMinute,
		maxKeys:          cfg.MaxKeysPerMinute,
		maxBytes:         cfg.MaxAggregateBytes,
		retentionMinutes: int64((cfg.Retention + time.Minute - 1) / time.Minute),
		minutes:          make(map[int64]*minuteAgg),
		names:            make(map[string]string),
	}
}

// unixMinute is floor(ns / 1m), also for times before 1970.
func unixMinute(ns int64) int64 {
	const m = int64(time.Minute)
	q := ns / m
	if ns%m < 0 {
		q--
	}
	return q
}

// horizon is the oldest minute kept at nowMinute: the one holding
// now-Retention, so that a query for the whole retention finds it whole.
func (a *aggregates) horizon(nowMinute int64) int64 {
	return nowMinute - a.retentionMinutes
}

// intern returns the shared copy of a node id or pool.
func (a *aggregates) intern(s string) string {
	if v, ok := a.names[s]; ok {
		return v
	}
	if len(a.names) < maxInterned && a.bytes < a.maxBytes {
		a.names[s] = s
		a.bytes += len(s) + nameBytes
	}
	return s
}

// full reports whether the aggregates reached MaxAggregateBytes.
func (a *aggregates) full() bool { return a.bytes >= a.maxBytes }

// weight is how many occurrences an event stands for: a node folds
// repeated rejections into one event with a repeat count.
func weight(ev *wsfleetv1.ErrorEvent) int64 {
	return max(1, int64(ev.GetRepeat()))
}

// add counts one event of the given (interned) pool and node in minute,
// max(1, repeat) times.
func (a *aggregates) add(minute int64, pool, node string, ev *wsfleetv1.ErrorEvent) {
	w := weight(ev)
	ma := a.minutes[minute]
	if ma == nil {
		// A new minute is always made: with the budget spent it holds only
		// catch-all keys, at most one per class.
		ma = &minuteAgg{minute: minute, counts: make(map[aggKey]int64), origins: make(map[string]string), bytes: minuteBytes}
		a.minutes[minute] = ma
		a.bytes += minuteBytes
	}
	origin := ev.GetOrigin()
	if canon, ok := ma.origins[origin]; ok {
		origin = canon
	} else if len(ma.origins) < a.maxOrigins && !a.full() {
		ma.origins[origin] = origin
		a.grow(ma, len(origin)+originBytes)
	} else {
		origin = OtherOrigin
		ma.folded += w
		a.otherOrigins++
		if len(ma.origins) < a.maxOrigins {
			a.spentBudget()
		} else if !ma.originsFull {
			ma.originsFull, a.overflowed.origins = true, true
		}
	}
	k := aggKey{pool: pool, node: node, origin: origin, class: ev.GetClass(), rev: ev.GetPolicyRevision()}
	if _, ok := ma.counts[k]; ok {
		ma.counts[k] += w
		return
	}
	if len(ma.counts) < a.maxKeys && !a.full() {
		ma.counts[k] = w
		a.keys++
		a.grow(ma, keyBytes)
		return
	}
	a.otherKeys++
	if origin != OtherOrigin {
		// Not counted yet as folded by the origin bound above.
		ma.folded += w
	}
	if len(ma.counts) < a.maxKeys {
		a.spentBudget()
	} else if !ma.keysFull {
		ma.keysFull, a.overflowed.keys = true, true
	}
	k = aggKey{pool: OtherKey, node: OtherKey, origin: OtherKey, class: k.class}
	if _, ok := ma.counts[k]; !ok {
		a.keys++
		a.grow(ma, keyBytes)
	}
	ma.counts[k] += w
}

// spentBudget notes an event sent to "(other)" for MaxAggregateBytes,
// reporting the first one after the budget was last reached.
func (a *aggregates) spentBudget() {
	a.overBudget++
	if !a.budgetFull {
		a.budgetFull, a.overflowed.budget = true, true
	}
}

// grow accounts n more bytes to minute ma.
func (a *aggregates) grow(ma *minuteAgg, n int) {
	ma.bytes += n
	a.bytes += n
}

// prune drops minutes older than the retention. It walks the minute map,
// at most once per minute of clock time.
func (a *aggregates) prune(nowMinute int64) {
	if nowMinute == a.lastPrune {
		return
	}
	a.lastPrune = nowMinute
	h := a.horizon(nowMinute)
	for m, ma := range a.minutes {
		if m < h {
			a.keys -= len(ma.counts)
			a.bytes -= ma.bytes
			delete(a.minutes, m)
		}
	}
	if !a.full() {
		a.budgetFull = false
	}
}

// inRange lists the minutes overlapping [m.start, m.end) and not older than
// the retention at nowMinute, oldest first.
func (a *aggregates) inRange(m *matcher, nowMinute int64) []*minuteAgg {
	lo := a.horizon(nowMinute)
	if m.hasStart {
		lo = max(lo, unixMinute(m.start))
	}
	out := make([]*minuteAgg, 0, 16)
	for minute, ma := range a.minutes {
		if minute < lo {
			continue
		}
		// The minute overlaps the range when it starts before the range's
		// end.
		if m.hasEnd && minute*int64(time.Minute) >= m.end {
			continue
		}
		out = append(out, ma)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].minute < out[j].minute })
	return out
}

// group accumulates one TopErrors group.
type group struct {
	count   int64
	byClass [64]int64 // classes outside 0..63 are counted as UNSPECIFIED
}

func groupKey(k aggKey, by wsfleetv1.TopErrorsRequest_GroupBy) string {
	switch by {
	case wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN:
		return k.origin
	case wsfleetv1.TopErrorsRequest_GROUP_BY_NODE:
		return k.node
	case wsfleetv1.TopErrorsRequest_GROUP_BY_POOL:
		return k.pool
	default:
		return errclass.Name(k.class)
	}
}

// topOf turns the accumulated groups into the response, largest first
// (ties by key), at most limit groups when limit > 0.
func topOf(groups map[string]*group, total int64, limit int) *wsfleetv1.TopErrorsResponse {
	resp := &wsfleetv1.TopErrorsResponse{Total: total, Groups: make([]*wsfleetv1.TopErrorsResponse_Group, 0, len(groups))}
	for key, g := range groups {
		top, best := 0, int64(0)
		var classes []*wsfleetv1.TopErrorsResponse_ClassCount
		for c, n := range g.byClass {
			if n == 0 {
				continue
			}
			if n > best {
				top, best = c, n
			}
			classes = append(classes, &wsfleetv1.TopErrorsResponse_ClassCount{Class: wsfleetv1.ErrorClass(c), Count: n})
		}
		// Largest first, ties by class: the class counts are what lets
		// replicas' answers be added up exactly (TopClass alone would not).
		sort.Slice(classes, func(i, j int) bool {
			if classes[i].Count != classes[j].Count {
				return classes[i].Count > classes[j].Count
			}
			return classes[i].Class < classes[j].Class
		})
		resp.Groups = append(resp.Groups, &wsfleetv1.TopErrorsResponse_Group{
			Key:      key,
			Count:    g.count,
			TopClass: wsfleetv1.ErrorClass(top),
			Classes:  classes,
		})
	}
	sort.Slice(resp.Groups, func(i, j int) bool {
		a, b := resp.Groups[i], resp.Groups[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Key < b.Key
	})
	if limit > 0 && len(resp.Groups) > limit {
		resp.Groups = resp.Groups[:limit]
	}
	return resp
}

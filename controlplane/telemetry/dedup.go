package telemetry

import "container/list"

// dedupWindow is how many sequence numbers below a reporter's highest one
// are remembered individually. Batches normally arrive in order; the window
// covers a resend racing a batch on a newer stream. A batch older than the
// window is taken for a duplicate: counting an event twice is the worse
// error, since acks are cumulative and the node only resends what it has
// not seen acknowledged.
const dedupWindow = 64

// reporter is the sequence state of one reporter_id.
type reporter struct {
	id   string
	max  uint64 // highest sequence ingested
	seen uint64 // bit i set: sequence max-i ingested
}

// reporterOverhead estimates an entry's heap cost besides its id: the
// reporter, its list element and its map entry.
const reporterOverhead = 160

// dedup remembers which (reporter_id, sequence) pairs were ingested, for
// at most limit reporters and maxBytes of estimated memory, least recently
// seen evicted first. Not safe for concurrent use; the Store's lock guards
// it.
type dedup struct {
	limit, maxBytes int
	bytes           int
	byID            map[string]*list.Element
	recency         *list.List // front: most recently seen; values *reporter
	evicted         uint64
}

func newDedup(limit, maxBytes int) *dedup {
	return &dedup{limit: limit, maxBytes: maxBytes, byID: make(map[string]*list.Element), recency: list.New()}
}

// fresh records (id, seq) and reports whether it was new. A forgotten
// (evicted) reporter starts over, so its old batches count as new: the
// bound on memory is paid for with a possible double count of a reporter
// idle for longer than limit others were active.
func (d *dedup) fresh(id string, seq uint64) bool {
	var r *reporter
	if e, ok := d.byID[id]; ok {
		d.recency.MoveToFront(e)
		r = e.Value.(*reporter)
	} else {
		cost := len(id) + reporterOverhead
		for d.recency.Len() > 0 && (d.recency.Len() >= d.limit || d.bytes+cost > d.maxBytes) {
			oldest := d.recency.Back()
			d.recency.Remove(oldest)
			old := oldest.Value.(*reporter).id
			delete(d.byID, old)
			d.bytes -= len(old) + reporterOverhead
			d.evicted++
		}
		r = &reporter{id: id}
		d.byID[id] = d.recency.PushFront(r)
		d.bytes += cost
	}
	switch {
	case seq > r.max:
		if shift := seq - r.max; shift >= dedupWindow {
			r.seen = 0
		} else {
			r.seen <<= shift
		}
		r.seen |= 1
		r.max = seq
		return true
	case r.max-seq >= dedupWindow:
		return false
	default:
		bit := uint64(1) << (r.max - seq)
		if r.seen&bit != 0 {
			return false
		}
		r.seen |= bit
		return true
	}
}

func (d *dedup) len() int { return d.recency.Len() }

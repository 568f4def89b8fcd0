package telemetry

import (
	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// nonErrorClasses has a bit set for every class errclass marks as not an
// error (normal, client_going_away, server_shutdown): what errors_only
// leaves out. Classes this build does not know count as errors.
var nonErrorClasses = func() uint64 {
	var m uint64
	for _, info := range errclass.All() {
		if !info.Error && info.Class >= 0 && info.Class < 64 {
			m |= 1 << uint(info.Class)
		}
	}
	return m
}()

// knownClasses has a bit set for every class one may filter by: all that
// errclass knows except UNSPECIFIED.
var knownClasses = func() uint64 {
	var m uint64
	for _, info := range errclass.All() {
		if info.Class > 0 && info.Class < 64 {
			m |= 1 << uint(info.Class)
		}
	}
	return m
}()

func knownClass(c wsfleetv1.ErrorClass) bool {
	return c > 0 && c < 64 && knownClasses&(1<<uint(c)) != 0
}

// matcher is an EventFilter compiled once per query or subscription, so the
// per-event test touches no proto getters and allocates nothing.
type matcher struct {
	hasStart, hasEnd bool
	start, end       int64 // unix nanoseconds; end exclusive

	anyClass   bool
	classMask  uint64                 // classes 0..63
	classExtra []wsfleetv1.ErrorClass // classes outside 0..63
	errorsOnly bool

	node, pool, origin, trace string
	// rev: only events recorded while the node ran this policy revision
	// (0: any).
	rev int64
}

// compile turns f into a matcher. With withTime false the time range is
// ignored (live tails).
func compile(f *wsfleetv1.EventFilter, withTime bool) *matcher {
	m := &matcher{
		anyClass:   len(f.GetClasses()) == 0,
		errorsOnly: f.GetErrorsOnly(),
		node:       f.GetNodeId(),
		pool:       f.GetPool(),
		origin:     f.GetOrigin(),
		trace:      f.GetTraceId(),
		rev:        f.GetPolicyRevision(),
	}
	if withTime {
		if ts := f.GetStartTime(); ts != nil {
			m.hasStart, m.start = true, tsNanos(ts)
		}
		if ts := f.GetEndTime(); ts != nil {
			m.hasEnd, m.end = true, tsNanos(ts)
		}
	}
	for _, c := range f.GetClasses() {
		if c >= 0 && c < 64 {
			m.classMask |= 1 << uint(c)
		} else {
			m.classExtra = append(m.classExtra, c)
		}
	}
	return m
}

func (m *matcher) classOK(c wsfleetv1.ErrorClass) bool {
	inRange := c >= 0 && c < 64
	if m.errorsOnly && inRange && nonErrorClasses&(1<<uint(c)) != 0 {
		return false
	}
	if m.anyClass {
		return true
	}
	if inRange {
		return m.classMask&(1<<uint(c)) != 0
	}
	for _, x := range m.classExtra {
		if x == c {
			return true
		}
	}
	return false
}

func (m *matcher) timeOK(t int64) bool {
	return (!m.hasStart || t >= m.start) && (!m.hasEnd || t < m.end)
}

// event tests a raw event whose time (unix nanoseconds) is t.
func (m *matcher) event(ev *wsfleetv1.ErrorEvent, t int64) bool {
	// The trace id first: trace lookups scan the whole ring.
	return (m.trace == "" || ev.GetTraceId() == m.trace) &&
		m.timeOK(t) &&
		(m.node == "" || ev.GetNodeId() == m.node) &&
		(m.pool == "" || ev.GetPool() == m.pool) &&
		(m.origin == "" || ev.GetOrigin() == m.origin) &&
		(m.rev == 0 || ev.GetPolicyRevision() == m.rev) &&
		m.classOK(ev.GetClass())
}

// key tests an aggregate's key; time is decided per minute by the caller
// and trace ids are not aggregated.
func (m *matcher) key(k aggKey) bool {
	return (m.node == "" || k.node == m.node) &&
		(m.pool == "" || k.pool == m.pool) &&
		(m.origin == "" || k.origin == m.origin) &&
		(m.rev == 0 || k.rev == m.rev) &&
		m.classOK(k.class)
}

package telemetry

import (
	"sync/atomic"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Caps on the strings of an ingested event, in bytes. Most of them come
// from clients (origin, user agent, trace id) or from the network (remote
// address, error text) and nodes cap them too when they make the event;
// the control plane caps them again on ingest because it cannot trust that
// every node does: one node sending 500 KB fields would otherwise fill its
// memory through the raw-event ring. A longer value is cut on a UTF-8
// boundary and ends with clip.Mark; invalid UTF-8 is replaced (protobuf
// refuses to marshal it, which would break every query returning the
// event). Each cut is counted per field (Stats.Truncated).
const (
	// MaxOriginBytes: an origin is scheme://host[:port]; a DNS name has at
	// most 253 bytes.
	MaxOriginBytes = 512
	// MaxUserAgentBytes: real browsers send 100-300 bytes.
	MaxUserAgentBytes = 512
	// MaxErrorBytes: a close reason has at most 123 bytes; network errors
	// a few hundred.
	MaxErrorBytes = 1024
	// MaxTraceIDBytes is the data plane's bound on a client's trace id.
	MaxTraceIDBytes = 128
	// MaxConnIDBytes: nodes make short ones.
	MaxConnIDBytes = 128
	// MaxNodeIDBytes is the registry's bound on a node id.
	MaxNodeIDBytes = 128
	// MaxPoolBytes: a pool name is a DNS label.
	MaxPoolBytes = 63
	// MaxRemoteBytes: an IPv6 address with a zone and a port fits.
	MaxRemoteBytes = 128
	// MaxClientURLBytes: the URL a client reports having tried; nodes
	// clip it to 512 bytes by default (dataplane Config.ClientReportMaxURLBytes).
	MaxClientURLBytes = 1024
	// MaxClientDetailBytes: the browser-visible detail of a client report;
	// nodes clip it to 256 bytes by default.
	MaxClientDetailBytes = 1024
	// MaxReporterIDBytes bounds a batch's reporter_id, which the duplicate
	// table keeps; a longer one is refused, not cut, since cutting could
	// merge two reporters.
	MaxReporterIDBytes = 128
)

// field is one capped string field of ErrorEvent.
type field int

const (
	fieldOrigin field = iota
	fieldUserAgent
	fieldError
	fieldTraceID
	fieldConnID
	fieldNodeID
	fieldPool
	fieldRemote
	fieldClientURL
	fieldClientDetail
	numFields
)

// fieldNames are the fields' names in Stats.Truncated and the metric's
// field label: the proto field names.
var fieldNames = [numFields]string{
	fieldOrigin:       "origin",
	fieldUserAgent:    "user_agent",
	fieldError:        "error",
	fieldTraceID:      "trace_id",
	fieldConnID:       "conn_id",
	fieldNodeID:       "node_id",
	fieldPool:         "pool",
	fieldRemote:       "remote_addr",
	fieldClientURL:    "client_url",
	fieldClientDetail: "client_detail",
}

// FieldNames lists the capped event fields, as Stats.Truncated names them.
func FieldNames() []string { return fieldNames[:] }

// fieldCaps are the fields' caps in bytes.
var fieldCaps = [numFields]int{
	fieldOrigin:       MaxOriginBytes,
	fieldUserAgent:    MaxUserAgentBytes,
	fieldError:        MaxErrorBytes,
	fieldTraceID:      MaxTraceIDBytes,
	fieldConnID:       MaxConnIDBytes,
	fieldNodeID:       MaxNodeIDBytes,
	fieldPool:         MaxPoolBytes,
	fieldRemote:       MaxRemoteBytes,
	fieldClientURL:    MaxClientURLBytes,
	fieldClientDetail: MaxClientDetailBytes,
}

// truncations counts the cuts per field. Atomic: events are capped before
// the store's lock is taken.
type truncations [numFields]atomic.Uint64

// capString returns s within f's cap and valid UTF-8, counting a change.
func (tr *truncations) capString(f field, s string) string {
	n := fieldCaps[f]
	// Only the first n+1 bytes matter (one more than the cap tells the cut
	// it must mark): no need to validate megabytes that are dropped anyway.
	out := clip.ValidString(s[:min(len(s), n+1)], n)
	if out != s {
		tr[f].Add(1)
	}
	return out
}

// capEvent bounds what ev holds: every string within its cap and valid
// UTF-8, and no unknown fields (a node may send anything, and protobuf
// keeps fields it does not know as bytes, which the ring would then hold).
func (tr *truncations) capEvent(ev *wsfleetv1.ErrorEvent) {
	ev.Origin = tr.capString(fieldOrigin, ev.Origin)
	ev.UserAgent = tr.capString(fieldUserAgent, ev.UserAgent)
	ev.Error = tr.capString(fieldError, ev.Error)
	ev.TraceId = tr.capString(fieldTraceID, ev.TraceId)
	ev.ConnId = tr.capString(fieldConnID, ev.ConnId)
	ev.NodeId = tr.capString(fieldNodeID, ev.NodeId)
	ev.Pool = tr.capString(fieldPool, ev.Pool)
	ev.RemoteAddr = tr.capString(fieldRemote, ev.RemoteAddr)
	ev.ClientUrl = tr.capString(fieldClientURL, ev.ClientUrl)
	ev.ClientDetail = tr.capString(fieldClientDetail, ev.ClientDetail)
	ev.ProtoReflect().SetUnknown(nil)
	if ev.OpenTime != nil {
		ev.OpenTime.ProtoReflect().SetUnknown(nil)
	}
	if ev.Time != nil {
		ev.Time.ProtoReflect().SetUnknown(nil)
	}
	if ev.FirstTime != nil {
		ev.FirstTime.ProtoReflect().SetUnknown(nil)
	}
	if ev.Duration != nil {
		ev.Duration.ProtoReflect().SetUnknown(nil)
	}
	if ev.ClientTime != nil {
		ev.ClientTime.ProtoReflect().SetUnknown(nil)
	}
}

// eventOverhead estimates an event's heap cost besides its strings: the
// message (about 290 bytes), up to five timestamps and a duration (48
// bytes each) and allocator rounding.
const eventOverhead = 640

// eventBytes estimates the heap an ingested (capped) event holds.
func eventBytes(ev *wsfleetv1.ErrorEvent) int {
	return eventOverhead + len(ev.Origin) + len(ev.UserAgent) + len(ev.Error) + len(ev.TraceId) +
		len(ev.ConnId) + len(ev.NodeId) + len(ev.Pool) + len(ev.RemoteAddr) + len(ev.ClientUrl) + len(ev.ClientDetail)
}

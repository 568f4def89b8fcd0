package telemetry

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is a minute boundary all tests count from.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Classes used throughout the tests.
const (
	originRejected = wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED
	capacity       = wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY
	heartbeat      = wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT
	normal         = wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL
	goingAway      = wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY
	shutdown       = wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN
)

// ev is a test event; id goes into conn_id so results can be compared by
// name.
type ev struct {
	id     string
	at     time.Duration // after t0
	class  wsfleetv1.ErrorClass
	origin string
	trace  string
	node   string // set on the event itself, overriding the batch's
	rev    int64  // policy revision the node ran
}

func (e ev) proto() *wsfleetv1.ErrorEvent {
	return &wsfleetv1.ErrorEvent{
		Kind:           wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED,
		Class:          e.class,
		ConnId:         e.id,
		Origin:         e.origin,
		TraceId:        e.trace,
		NodeId:         e.node,
		Time:           timestamppb.New(t0.Add(e.at)),
		PolicyRevision: e.rev,
	}
}

// batch builds a ReportTelemetryRequest from node, pool, reporter and
// sequence and the events.
func batch(node, pool, reporter string, seq uint64, evs ...ev) *wsfleetv1.ReportTelemetryRequest {
	req := &wsfleetv1.ReportTelemetryRequest{NodeId: node, Pool: pool, ReporterId: reporter, Sequence: seq}
	for _, e := range evs {
		req.Events = append(req.Events, e.proto())
	}
	return req
}

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ids lists the events' conn ids in order.
func ids(evs []*wsfleetv1.ErrorEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.GetConnId()
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

func timestampAt(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

package dataplane

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// metrics are resolved once. The per-message counters (messages, bytes,
// publishes) are not Prometheus counters at all: see dataCounters.
type metrics struct {
	data       *dataCounters
	active     prometheus.Gauge
	handshakes *prometheus.CounterVec
	closes     *prometheus.CounterVec
	// accepted, rejectedBy and closedBy are handshakes and closes
	// resolved per result and class (indexed by class), so a handshake
	// does not look its series up by label.
	accepted   prometheus.Counter
	rejectedBy []prometheus.Counter
	closedBy   []prometheus.Counter
	breaker    prometheus.Gauge
	revision   prometheus.Gauge
	draining   prometheus.Gauge
	// undelivered is set once, at the end of Shutdown.
	undelivered prometheus.Gauge
	// truncated and invalidUTF8 count client-supplied fields cut to their
	// cap or repaired, per field (indexed by field).
	truncated   [numFields]prometheus.Counter
	invalidUTF8 [numFields]prometheus.Counter
	// folded counts rejections counted into a fold instead of recorded at
	// once, by class; foldOverflow those that went to an overflow key.
	folded       *prometheus.CounterVec
	foldOverflow prometheus.Counter
	// brokerBreaker is the broker breaker's state (a distributed broker
	// only).
	brokerBreaker prometheus.Gauge
	// rejectedByMode counts rejected handshakes by how they were answered
	// (handshake.reject_with).
	rejectedByMode [numRejectModes]prometheus.Counter
	// explains counts /ws/explain requests by result.
	explains [numExplainResults]prometheus.Counter
	// reportsAccepted counts client reports turned into events;
	// reportsRefused counts /ws/client-report requests refused, by reason.
	reportsAccepted prometheus.Counter
	reportsRefused  *prometheus.CounterVec
}

// How a rejected handshake was answered: the label of
// wsfleet_node_handshake_rejections_total.
const (
	rejectModeHTTP = iota
	rejectModeClose
	numRejectModes
)

var rejectModeNames = [numRejectModes]string{"http", "close"}

// The results of an explain request: the label of
// wsfleet_node_explain_requests_total.
const (
	explainFound       = iota // 200
	explainNotFound           // 404: unknown, expired or another client's
	explainBadRequest         // 400: no trace id, or one no node would have made
	explainRateLimited        // 429
	numExplainResults
)

var explainResultNames = [numExplainResults]string{"found", "not_found", "bad_request", "rate_limited"}

// Why a /ws/client-report request was refused: the label of
// wsfleet_node_client_report_requests_refused_total.
const (
	refusedOrigin      = "origin"       // 403: not an origin the pool admits
	refusedMethod      = "method"       // 405
	refusedContentType = "content_type" // 415
	refusedTooLarge    = "too_large"    // 413
	refusedBadJSON     = "bad_json"     // 400
	refusedTooMany     = "too_many"     // 400: more reports than a request may carry
	refusedBadReport   = "bad_report"   // 400: a report's field is wrong (class, trace id, time)
	refusedRateLimited = "rate_limited" // 429
)

var reportRefusalReasons = []string{refusedOrigin, refusedMethod, refusedContentType, refusedTooLarge, refusedBadJSON, refusedTooMany, refusedBadReport, refusedRateLimited}

// The names and help of the per-message counters (dataCounters).
const (
	helpMessages  = "WebSocket data messages, by direction."
	helpBytes     = "WebSocket payload bytes, by direction."
	helpPublishes = "Client publishes by result: ok (handed to the broker), forbidden (the OnPublish hook refused it) or unavailable (the broker refused it: the client got an unavailable error frame), with the broker's reason: breaker_open, not_connected, timeout, unavailable, too_big, closed, canceled, error."
)

// stripe is one cache line of per-message counters. Only integers are
// added, so a uint64 holds them exactly (as Prometheus's own counter does
// for integer adds).
type stripe struct {
	msgsIn, bytesIn, msgsOut, bytesOut, publishOK atomic.Uint64
	_                                             [64 - 5*8]byte
}

// dataCounters are the counters every message moves: messages and bytes in
// and out, and publishes. A Prometheus counter is one atomic word shared by
// every core, and the node added to three of them per message read and two
// per message written: with read loops and writers on several cores, that
// word moved between their caches on every message. Here each connection
// adds to the stripe of its session-set shard (session.shard; shards are
// dealt round-robin), so two cores meet on a stripe only when they serve
// connections of the same shard at the same moment, and a scrape sums the
// stripes. The sums are exact and never go down: nothing is ever
// subtracted, and no count moves between stripes.
type dataCounters struct {
	stripes [numShards]stripe
	// The rare publish results are plain atomics, one per series.
	publishForbidden   atomic.Uint64
	publishUnavailable []atomic.Uint64 // by reason, in the order of reasons
	reasons            []string        // broker.Reasons()

	messages, bytes, publishes *prometheus.Desc
}

var _ prometheus.Collector = (*dataCounters)(nil)

func newDataCounters(labels prometheus.Labels) *dataCounters {
	name := func(n string) string { return prometheus.BuildFQName("wsfleet", "node", n) }
	d := &dataCounters{
		reasons:   broker.Reasons(),
		messages:  prometheus.NewDesc(name("messages_total"), helpMessages, []string{"direction"}, labels),
		bytes:     prometheus.NewDesc(name("bytes_total"), helpBytes, []string{"direction"}, labels),
		publishes: prometheus.NewDesc(name("publishes_total"), helpPublishes, []string{"result", "reason"}, labels),
	}
	d.publishUnavailable = make([]atomic.Uint64, len(d.reasons))
	return d
}

// Describe implements prometheus.Collector.
func (d *dataCounters) Describe(ch chan<- *prometheus.Desc) {
	ch <- d.messages
	ch <- d.bytes
	ch <- d.publishes
}

// Collect implements prometheus.Collector: every series, zero or not, as
// the counter vectors it replaces showed them.
func (d *dataCounters) Collect(ch chan<- prometheus.Metric) {
	var sum stripeSum
	for i := range d.stripes {
		sum.add(&d.stripes[i])
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	counter(d.messages, sum.msgsIn, "in")
	counter(d.messages, sum.msgsOut, "out")
	counter(d.bytes, sum.bytesIn, "in")
	counter(d.bytes, sum.bytesOut, "out")
	counter(d.publishes, sum.publishOK, "ok", "")
	counter(d.publishes, d.publishForbidden.Load(), "forbidden", "hook")
	for i, r := range d.reasons {
		counter(d.publishes, d.publishUnavailable[i].Load(), "unavailable", r)
	}
}

// stripeSum is the stripes added up.
type stripeSum struct{ msgsIn, bytesIn, msgsOut, bytesOut, publishOK uint64 }

func (s *stripeSum) add(st *stripe) {
	s.msgsIn += st.msgsIn.Load()
	s.bytesIn += st.bytesIn.Load()
	s.msgsOut += st.msgsOut.Load()
	s.bytesOut += st.bytesOut.Load()
	s.publishOK += st.publishOK.Load()
}

// publishFailed counts a publish the broker refused, by its reason.
func (d *dataCounters) publishFailed(err error) {
	r := broker.Reason(err)
	for i := range d.reasons {
		if d.reasons[i] == r {
			d.publishUnavailable[i].Add(1)
			return
		}
	}
}

// stripe is the connection's stripe of the node's per-message counters.
func (s *session) stripe() *stripe { return &s.node.metrics.data.stripes[s.shard] }

// countIn counts a message of n bytes read from the client (read loop
// only): in the connection's own counts, for its close event, and in the
// node's.
func (s *session) countIn(n int) {
	s.msgsIn++
	s.bytesIn += int64(n)
	st := s.stripe()
	st.msgsIn.Add(1)
	st.bytesIn.Add(uint64(n))
}

// countOut counts msgs messages of n bytes in all written to the client
// (the writer, once per batch).
func (s *session) countOut(msgs, n int) {
	s.msgsOut.Add(int64(msgs))
	s.bytesOut.Add(int64(n))
	st := s.stripe()
	st.msgsOut.Add(uint64(msgs))
	st.bytesOut.Add(uint64(n))
}

// handshakeRejected counts a rejection of class.
func (m *metrics) handshakeRejected(class wsfleetv1.ErrorClass) {
	if int(class) < len(m.rejectedBy) && m.rejectedBy[class] != nil {
		m.rejectedBy[class].Inc()
		return
	}
	m.handshakes.WithLabelValues(errclass.Name(class)).Inc()
}

// closed counts a connection closed as class.
func (m *metrics) closed(class wsfleetv1.ErrorClass) {
	if int(class) < len(m.closedBy) && m.closedBy[class] != nil {
		m.closedBy[class].Inc()
		return
	}
	m.closes.WithLabelValues(errclass.Name(class)).Inc()
}

func newMetrics(reg prometheus.Registerer, nodeID, pool string) *metrics {
	labels := prometheus.Labels{"node_id": nodeID, "pool": pool}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "wsfleet", Subsystem: "node", Name: name, Help: help, ConstLabels: labels}
	}
	m := &metrics{
		data:       newDataCounters(labels),
		active:     prometheus.NewGauge(prometheus.GaugeOpts(opts("connections_active", "Open WebSocket connections."))),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("handshakes_total", "Handshakes by result: accepted or the rejection's error class.")), []string{"result"}),
		closes:     prometheus.NewCounterVec(prometheus.CounterOpts(opts("closes_total", "Closed connections by error class.")), []string{"class"}),
		breaker:    prometheus.NewGauge(prometheus.GaugeOpts(opts("breaker_state", "Connect-authorization breaker: 0 closed, 1 half-open, 2 open."))),
		revision:   prometheus.NewGauge(prometheus.GaugeOpts(opts("policy_revision", "Applied policy revision."))),
		draining:   prometheus.NewGauge(prometheus.GaugeOpts(opts("draining", "1 while the node shuts down."))),
		undelivered: prometheus.NewGauge(prometheus.GaugeOpts(opts("telemetry_undelivered",
			"Error events the sink could not deliver when the node shut down (set at the end of the drain)."))),
	}
	truncated := prometheus.NewCounterVec(prometheus.CounterOpts(opts("event_fields_truncated_total",
		"Client-supplied strings (origin, user agent, error text, remote address) cut to their cap in an event, a log line or a connection, by field.")), []string{"field"})
	invalidUTF8 := prometheus.NewCounterVec(prometheus.CounterOpts(opts("event_fields_invalid_utf8_total",
		"Client-supplied strings whose invalid UTF-8 was replaced with U+FFFD, by field.")), []string{"field"})
	for f := range numFields {
		m.truncated[f] = truncated.WithLabelValues(f.String())
		m.invalidUTF8[f] = invalidUTF8.WithLabelValues(f.String())
	}
	m.folded = prometheus.NewCounterVec(prometheus.CounterOpts(opts("handshake_rejections_folded_total",
		"Rejected handshakes counted into a folded event (repeat) instead of recorded as their own, by class; wsfleet_node_handshakes_total counts every rejection.")), []string{"class"})
	m.foldOverflow = prometheus.NewCounter(prometheus.CounterOpts(opts("handshake_rejections_fold_overflow_total",
		"Rejected handshakes that went to their class's overflow fold key because the fold table was full (--fold-max-keys).")))
	m.brokerBreaker = prometheus.NewGauge(prometheus.GaugeOpts(opts("broker_breaker_state",
		"Breaker in front of a distributed broker (NATS): 0 closed, 1 half-open, 2 open (publishes refused at once). Always 0 in process.")))
	rejections := prometheus.NewCounterVec(prometheus.CounterOpts(opts("handshake_rejections_total",
		"Rejected handshakes by how they were answered (the pool's handshake.reject_with): http (a 4xx/5xx status) or close (a 101, then a 4xxx close frame).")), []string{"mode"})
	for i, name := range rejectModeNames {
		m.rejectedByMode[i] = rejections.WithLabelValues(name)
	}
	explains := prometheus.NewCounterVec(prometheus.CounterOpts(opts("explain_requests_total",
		"/ws/explain requests by result: found, not_found (unknown, expired or asked from another address), bad_request, rate_limited.")), []string{"result"})
	for i, name := range explainResultNames {
		m.explains[i] = explains.WithLabelValues(name)
	}
	m.reportsAccepted = prometheus.NewCounter(prometheus.CounterOpts(opts("client_reports_accepted_total",
		"Failures reported by clients to /ws/client-report and recorded as events (kind CLIENT_REPORT).")))
	m.reportsRefused = prometheus.NewCounterVec(prometheus.CounterOpts(opts("client_report_requests_refused_total",
		"/ws/client-report requests refused, by reason: origin, method, content_type, too_large, bad_json, too_many, bad_report, rate_limited.")), []string{"reason"})
	for _, r := range reportRefusalReasons {
		m.reportsRefused.WithLabelValues(r)
	}
	reg.MustRegister(rejections, explains, m.reportsAccepted, m.reportsRefused)
	reg.MustRegister(m.active, m.handshakes, m.closes, m.data, m.breaker, m.revision, m.draining, m.undelivered,
		truncated, invalidUTF8, m.folded, m.foldOverflow, m.brokerBreaker)
	// Zero series for every class so dashboards and alerts see them before
	// the first occurrence.
	m.accepted = m.handshakes.WithLabelValues("accepted")
	all := errclass.All()
	m.rejectedBy = make([]prometheus.Counter, len(all)+1)
	m.closedBy = make([]prometheus.Counter, len(all)+1)
	for _, c := range all {
		if int(c.Class) >= len(m.closedBy) {
			continue // not indexable: counted by label
		}
		switch c.Kind {
		case wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED:
			m.rejectedBy[c.Class] = m.handshakes.WithLabelValues(c.Name)
			m.folded.WithLabelValues(c.Name)
		case wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED:
			m.closedBy[c.Class] = m.closes.WithLabelValues(c.Name)
		}
		// Client reports (client_*) are neither: counted by the client
		// report endpoint's own metric.
	}
	return m
}

// registerFoldKeys exports the fold table's size, read at each scrape.
func (m *metrics) registerFoldKeys(reg prometheus.Registerer, nodeID, pool string, keys func() int) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "wsfleet", Subsystem: "node", Name: "handshake_fold_keys",
		Help:        "Keys (class, status, origin, client network) whose rejections are folding now; at most --fold-max-keys plus one overflow key per class and status.",
		ConstLabels: prometheus.Labels{"node_id": nodeID, "pool": pool},
	}, func() float64 { return float64(keys()) }))
}

func registerRuntimeCollectors(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

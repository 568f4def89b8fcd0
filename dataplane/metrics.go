package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wsfleet/wsfleet/api/errclass"
	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// metrics are resolved once; the per-message path only touches
// pre-resolved counters (an atomic add each).
type metrics struct {
	active     prometheus.Gauge
	handshakes *prometheus.CounterVec
	closes     *prometheus.CounterVec
	msgsIn     prometheus.Counter
	msgsOut    prometheus.Counter
	bytesIn    prometheus.Counter
	bytesOut   prometheus.Counter
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
	// publishOK, publishForbidden and publishUnavailable count client
	// publishes by result; the last by the broker's reason (broker.Reason).
	publishOK          prometheus.Counter
	publishForbidden   prometheus.Counter
	publishUnavailable map[string]prometheus.Counter
	// brokerBreaker is the broker breaker's state (a distributed broker
	// only).
	brokerBreaker prometheus.Gauge
}

// publishFailed counts a publish the broker refused, by its reason.
func (m *metrics) publishFailed(err error) {
	m.publishUnavailable[broker.Reason(err)].Inc()
}

func newMetrics(reg prometheus.Registerer, nodeID, pool string) *metrics {
	labels := prometheus.Labels{"node_id": nodeID, "pool": pool}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "wsfleet", Subsystem: "node", Name: name, Help: help, ConstLabels: labels}
	}
	messages := prometheus.NewCounterVec(prometheus.CounterOpts(opts("messages_total", "WebSocket data messages, by direction.")), []string{"direction"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts(opts("bytes_total", "WebSocket payload bytes, by direction.")), []string{"direction"})
	m := &metrics{
		active:     prometheus.NewGauge(prometheus.GaugeOpts(opts("connections_active", "Open WebSocket connections."))),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("handshakes_total", "Handshakes by result: accepted or the rejection's error class.")), []string{"result"}),
		closes:     prometheus.NewCounterVec(prometheus.CounterOpts(opts("closes_total", "Closed connections by error class.")), []string{"class"}),
		msgsIn:     messages.WithLabelValues("in"),
		msgsOut:    messages.WithLabelValues("out"),
		bytesIn:    bytes.WithLabelValues("in"),
		bytesOut:   bytes.WithLabelValues("out"),
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
	publishes := prometheus.NewCounterVec(prometheus.CounterOpts(opts("publishes_total",
		"Client publishes by result: ok (handed to the broker), forbidden (the OnPublish hook refused it) or unavailable (the broker refused it: the client got an unavailable error frame), with the broker's reason: breaker_open, not_connected, timeout, unavailable, too_big, closed, canceled, error.")), []string{"result", "reason"})
	m.publishOK = publishes.WithLabelValues("ok", "")
	m.publishForbidden = publishes.WithLabelValues("forbidden", "hook")
	m.publishUnavailable = make(map[string]prometheus.Counter)
	for _, r := range broker.Reasons() {
		m.publishUnavailable[r] = publishes.WithLabelValues("unavailable", r)
	}
	m.brokerBreaker = prometheus.NewGauge(prometheus.GaugeOpts(opts("broker_breaker_state",
		"Breaker in front of a distributed broker (NATS): 0 closed, 1 half-open, 2 open (publishes refused at once). Always 0 in process.")))
	reg.MustRegister(m.active, m.handshakes, m.closes, messages, bytes, m.breaker, m.revision, m.draining, m.undelivered,
		truncated, invalidUTF8, m.folded, m.foldOverflow, publishes, m.brokerBreaker)
	// Zero series for every class so dashboards and alerts see them before
	// the first occurrence.
	m.handshakes.WithLabelValues("accepted")
	for _, c := range errclass.All() {
		if c.HTTPStatus != 0 {
			m.handshakes.WithLabelValues(c.Name)
			m.folded.WithLabelValues(c.Name)
		} else {
			m.closes.WithLabelValues(c.Name)
		}
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

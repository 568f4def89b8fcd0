package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wsfleet/wsfleet/api/errclass"
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
	reg.MustRegister(m.active, m.handshakes, m.closes, messages, bytes, m.breaker, m.revision, m.draining, m.undelivered)
	// Zero series for every class so dashboards and alerts see them before
	// the first occurrence.
	m.handshakes.WithLabelValues("accepted")
	for _, c := range errclass.All() {
		if c.HTTPStatus != 0 {
			m.handshakes.WithLabelValues(c.Name)
		} else {
			m.closes.WithLabelValues(c.Name)
		}
	}
	return m
}

func registerRuntimeCollectors(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

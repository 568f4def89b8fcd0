package publish

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsfleet/wsfleet/api/channel"
)

type metrics struct {
	reg            prometheus.Registerer
	publishes      *prometheus.CounterVec
	handed         prometheus.Counter
	skipped        prometheus.Counter
	sent           prometheus.Counter
	streams        prometheus.Gauge
	buffered       prometheus.Gauge
	natsReconnects prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, withNATS bool) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "wsfleet", Subsystem: "control", Name: name, Help: help}
	}
	m := &metrics{
		reg: reg,
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("publishes_total",
			`Backend publishes by result: ok, invalid, denied, unauthenticated (HTTP), rate_limited, no_node_attached, node_queues_full, buffer_full, nats_unavailable, unconfirmed, shutting_down, canceled.`)),
			[]string{"result"}),
		handed:         prometheus.NewCounter(prometheus.CounterOpts(opts("publish_queued_total", "Backend messages queued on nodes' delivery streams, once per node."))),
		skipped:        prometheus.NewCounter(prometheus.CounterOpts(opts("publish_skipped_total", "Backend messages a node did not get because its delivery queue was full, once per node."))),
		sent:           prometheus.NewCounter(prometheus.CounterOpts(opts("publish_sent_total", "Backend messages sent on nodes' delivery streams, once per node."))),
		streams:        prometheus.NewGauge(prometheus.GaugeOpts(opts("publish_streams", "Node delivery streams attached (bounded by --max-nodes)."))),
		buffered:       prometheus.NewGauge(prometheus.GaugeOpts(opts("publish_buffered_bytes", "Bytes of backend messages waiting for delivery streams (bounded by --publish-max-buffered-bytes)."))),
		natsReconnects: prometheus.NewCounter(prometheus.CounterOpts(opts("publish_nats_reconnects_total", "Reconnects of the control plane's NATS connection."))),
	}
	if reg == nil {
		return m
	}
	// Every result is exported from the start, so a dashboard's rate() of
	// a failure sees its first occurrence.
	for _, r := range []string{resultOK, resultInvalid, resultDenied, channel.CauseRateLimited, channel.CauseNoNodeAttached, channel.CauseNodeQueuesFull, channel.CauseBufferFull, channel.CauseNATSUnavailable, resultUnconfirmed} {
		m.publishes.WithLabelValues(r)
	}
	reg.MustRegister(m.publishes, m.streams, m.buffered)
	if withNATS {
		reg.MustRegister(m.natsReconnects)
	} else {
		reg.MustRegister(m.handed, m.skipped, m.sent)
	}
	return m
}

// registerNATS exports the NATS connection's state.
func (m *metrics) registerNATS(nc *nats.Conn) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "wsfleet", Subsystem: "control", Name: "publish_nats_connected",
		Help: "1 while the control plane's NATS connection is up.",
	}, func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	}))
}

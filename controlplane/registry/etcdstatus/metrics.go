package etcdstatus

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	writes  *prometheus.CounterVec
	pending prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wsfleet", Subsystem: "control", Name: "node_status_writes_total",
			Help: "etcd transactions writing this replica's node status (up to 32 nodes each), by result (ok, error).",
		}, []string{"result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "wsfleet", Subsystem: "control", Name: "node_status_pending",
			Help: "This replica's nodes whose status changed and is not written to etcd yet.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.writes, m.pending)
	}
	return m
}

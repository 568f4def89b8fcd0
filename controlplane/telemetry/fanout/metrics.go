package fanout

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	calls *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wsfleet", Subsystem: "control", Name: "peer_calls_total",
			Help: "Queries forwarded to other control-plane replicas (and tails opened on them), by method and result (ok, error, timeout).",
		}, []string{"method", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls)
	}
	return m
}

package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// metrics are the control plane's own series; gRPC request counts by method
// and code come from go-grpc-middleware's prometheus provider
// (grpc_server_handled_total).
type metrics struct {
	revision *prometheus.GaugeVec
	commits  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "wsfleet",
			Subsystem: "control",
			Name:      "policy_revision",
			Help:      "Current policy revision per pool.",
		}, []string{"pool"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wsfleet",
			Subsystem: "control",
			Name:      "policy_commits_total",
			Help:      "Policy revisions stored by this process, per pool.",
		}, []string{"pool"}),
	}
	reg.MustRegister(m.revision, m.commits)
	return m
}

// policyCommitted is policyserver's OnCommit hook; it must not block.
func (m *metrics) policyCommitted(rev *wsfleetv1.PolicyRevision) {
	m.observeRevision(rev)
	m.commits.WithLabelValues(rev.GetPool()).Inc()
}

// observeRevision sets a pool's revision gauge, e.g. for pools found at start.
func (m *metrics) observeRevision(rev *wsfleetv1.PolicyRevision) {
	m.revision.WithLabelValues(rev.GetPool()).Set(float64(rev.GetRevision()))
}

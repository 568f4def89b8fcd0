package registry

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	revision    *prometheus.GaugeVec
	connected   prometheus.Gauge
	pushes      prometheus.Counter
	acks        prometheus.Counter
	nacks       prometheus.Counter
	stale       prometheus.Counter
	refused     *prometheus.CounterVec
	propagation prometheus.Histogram
	// The registry's capacity (see admit).
	nodesKnown   prometheus.Gauge
	nodesEvicted prometheus.Counter
	nodesRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "wsfleet", Subsystem: "control", Name: name, Help: help}
	}
	m := &metrics{
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("policy_revision",
			"Current policy revision per pool: the head the registry pushes, as the store's watch delivered it.")), []string{"pool"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts(opts("nodes_connected", "Nodes with an open watch stream."))),
		pushes:    prometheus.NewCounter(prometheus.CounterOpts(opts("policy_pushes_total", "Policy revisions sent to nodes."))),
		acks:      prometheus.NewCounter(prometheus.CounterOpts(opts("policy_acks_total", "Pushes nodes applied."))),
		nacks:     prometheus.NewCounter(prometheus.CounterOpts(opts("policy_nacks_total", "Pushes nodes refused."))),
		stale:     prometheus.NewCounter(prometheus.CounterOpts(opts("policy_stale_responses_total", "ACKs/NACKs quoting an old nonce (ignored)."))),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts(opts("watch_refused_total",
			"Watch streams refused for identity: the credential may not act as the hello's node id or pool (not_allowed), or the id is connected with another credential (other_credential).")),
			[]string{"reason"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "wsfleet", Subsystem: "control", Name: "policy_propagation_seconds",
			Help:    "From this control plane learning of a revision (the store's watch delivering it) to a node's ACK of it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		nodesKnown:   prometheus.NewGauge(prometheus.GaugeOpts(opts("nodes_known", "Node status entries the registry holds, connected or not: its own nodes and, with replicas, the records the other replicas share (bounded by --max-nodes)."))),
		nodesEvicted: prometheus.NewCounter(prometheus.CounterOpts(opts("nodes_evicted_total", "Disconnected nodes forgotten early to make room for new ones."))),
		nodesRefused: prometheus.NewCounter(prometheus.CounterOpts(opts("nodes_refused_total", "New nodes not admitted because every known node was connected and the registry full."))),
	}
	if reg != nil {
		reg.MustRegister(m.revision, m.connected, m.pushes, m.acks, m.nacks, m.stale, m.refused, m.propagation)
		reg.MustRegister(m.nodesKnown, m.nodesEvicted, m.nodesRefused)
	}
	return m
}

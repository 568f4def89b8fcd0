package natsbroker

import "github.com/prometheus/client_golang/prometheus"

// metrics: the per-message ones are pre-resolved counters (an atomic add
// each); the rest are read from the connection at each scrape.
type metrics struct {
	received   prometheus.Counter
	deliveries prometheus.Counter
	invalid    prometheus.Counter
}

func newMetrics(b *Broker, reg prometheus.Registerer, labels prometheus.Labels) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "wsfleet", Subsystem: "node", Name: name, Help: help, ConstLabels: labels}
	}
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts(opts("nats_messages_received_total",
			"Messages received from NATS on the channels this node subscribes to (its own publishes included)."))),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts(opts("nats_deliveries_total",
			"Messages from NATS handed to local subscribers: one per message and subscriber."))),
		invalid: prometheus.NewCounter(prometheus.CounterOpts(opts("nats_messages_invalid_total",
			"Messages from NATS dropped because their payload is not a JSON value in valid UTF-8 (another publisher on the subject)."))),
	}
	if reg == nil {
		return m
	}
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("nats_connected",
		"1 while the node is connected to a NATS server; publishes are answered unavailable while it is 0.")), func() float64 {
		if b.nc.IsConnected() {
			return 1
		}
		return 0
	})
	reconnects := prometheus.NewCounterFunc(prometheus.CounterOpts(opts("nats_reconnects_total",
		"Times the node reconnected to NATS (its channel subscriptions are restored each time).")), func() float64 {
		return float64(b.nc.Stats().Reconnects)
	})
	subs := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("nats_subscriptions",
		"NATS subscriptions of this node: one per channel with a local subscriber.")), func() float64 {
		return float64(b.nsubs.Load())
	})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts(opts("nats_messages_dropped_total",
		"Messages from NATS dropped because the node fell behind: its queue was full (--nats-queue, --nats-queue-bytes).")), func() float64 {
		n := b.dropped.Load() + b.overflow.Load()
		b.subs.Range(func(_, v any) bool {
			if d, err := v.(*natsSub).sub.Dropped(); err == nil {
				n += int64(d)
			}
			return true
		})
		return float64(n)
	})
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("nats_queued_messages",
		"Messages from NATS waiting for local delivery (at most --nats-queue).")), func() float64 {
		return float64(b.queued.Load())
	})
	queuedBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("nats_queued_bytes",
		"Bytes of messages from NATS waiting for local delivery (at most --nats-queue-bytes).")), func() float64 {
		return float64(b.queuedBytes.Load())
	})
	reg.MustRegister(m.received, m.deliveries, m.invalid, connected, reconnects, subs, dropped, queued, queuedBytes)
	return m
}

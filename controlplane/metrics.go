package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// The control plane's own series live with what they count: the policy
// revision per pool with the registry (the head it pushes, from the
// store's watch), commits with policyserver, nodes with the registry;
// gRPC request counts by method and code come from go-grpc-middleware's
// prometheus provider (grpc_server_handled_total).

// registerTelemetryMetrics exports the telemetry store's counters.
func registerTelemetryMetrics(reg prometheus.Registerer, s *telemetry.Store) {
	counter := func(name, help string, f func(telemetry.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsfleet", Subsystem: "control", Name: name, Help: help},
			func() float64 { return float64(f(s.Stats())) })
	}
	gauge := func(name, help string, f func(telemetry.Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsfleet", Subsystem: "control", Name: name, Help: help},
			func() float64 { return float64(f(s.Stats())) })
	}
	reg.MustRegister(
		counter("telemetry_events_total", "Error events ingested from nodes.", func(st telemetry.Stats) uint64 { return st.Events }),
		counter("telemetry_batches_total", "Telemetry batches ingested.", func(st telemetry.Stats) uint64 { return st.Batches }),
		counter("telemetry_duplicate_batches_total", "Resent telemetry batches recognised and not counted again.", func(st telemetry.Stats) uint64 { return st.DuplicateBatches }),
		counter("telemetry_node_dropped_total", "Error events nodes reported dropped before sending.", func(st telemetry.Stats) uint64 { return st.DroppedByNodes }),
		gauge("telemetry_raw_events", "Raw error events held for queries.", func(st telemetry.Stats) int { return st.RawEvents }),
		gauge("telemetry_raw_bytes", "Estimated bytes of the raw error events held (bounded by --telemetry-max-bytes).", func(st telemetry.Stats) int { return st.RawBytes }),
		gauge("telemetry_aggregate_bytes", "Estimated bytes of the per-minute error counts (bounded by --telemetry-max-aggregate-bytes).", func(st telemetry.Stats) int { return st.AggregateBytes }),
		gauge("telemetry_tails", "Open TailEvents streams (bounded by --max-tails).", func(st telemetry.Stats) int { return st.TailSubscribers }),
		counter("telemetry_tails_dropped_total", "TailEvents streams ended because the client read too slowly.", func(st telemetry.Stats) uint64 { return st.TailsDropped }),
		counter("traffic_samples_total", "Node traffic samples (accepted handshakes per origin, peaks) ingested, for dry-run impact.", func(st telemetry.Stats) uint64 { return st.TrafficSamples }),
		counter("traffic_samples_dropped_total", "Node traffic samples refused: minute missing, outside --traffic-retention or ahead of the clock, or a pool the node does not run.", func(st telemetry.Stats) uint64 { return st.TrafficDropped }),
		counter("traffic_other_origins_total", "Sample origins counted as accepted_other because their pool-minute held --traffic-max-origins origins or the table its byte bound.", func(st telemetry.Stats) uint64 { return st.TrafficOtherOrigins }),
		gauge("traffic_bytes", "Estimated bytes of the traffic samples kept (bounded by --traffic-max-bytes).", func(st telemetry.Stats) int { return st.TrafficBytes }),
		counter("telemetry_over_budget_total", `Events counted as "(other)" because the per-minute counts reached --telemetry-max-aggregate-bytes.`, func(st telemetry.Stats) uint64 { return st.OverBudget }),
	)
	// One series per capped field, so a dashboard sees which field nodes
	// (or the clients behind them) overfill.
	for _, field := range telemetry.FieldNames() {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "wsfleet", Subsystem: "control", Name: "telemetry_truncated_total",
			Help:        "Event strings cut to their cap on ingest, by field.",
			ConstLabels: prometheus.Labels{"field": field},
		}, func() float64 { return float64(s.Stats().Truncated[field]) }))
	}
}

// registerStoreMetrics exports what the policy store found damaged and
// skipped (each record logged once, with its key).
func registerStoreMetrics(reg prometheus.Registerer, st store.Store) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "wsfleet", Subsystem: "control", Name: "store_damaged_proposals_total",
		Help: "Damaged proposal records the store skipped when listing, counting and pruning (each counted once; kept for inspection, see the log for their keys).",
	}, func() float64 { return float64(st.Stats().DamagedProposals) }))
}

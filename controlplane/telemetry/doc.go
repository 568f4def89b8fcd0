// Package telemetry is the control plane's side of error telemetry: it
// ingests the batches nodes stream over NodeService.ReportTelemetry, keeps
// per-minute counts and recent raw events, and answers the operators'
// FleetService queries (QueryEvents, TopErrors, TailEvents).
//
// # What is kept
//
//   - Raw events in a ring of Config.MaxRaw (default 100,000): QueryEvents,
//     trace-id lookups (a scan, newest first) and tail backlogs read it.
//     When it has overwritten events that may fall in a query's range the
//     answer says truncated.
//   - Counts per (minute, pool, node, class, origin) for Config.Retention
//     (default 24h), pruned lazily: ingest and TopErrors drop expired
//     minutes at most once per minute of clock time. TopErrors reads them,
//     so its answers have minute granularity. Origins are client-controlled
//     and bounded per minute (MaxOriginsPerMinute, the rest counted as
//     "(other)"), as are the combinations per minute (MaxKeysPerMinute).
//   - (reporter_id, sequence) of the batches seen, for MaxReporters
//     reporters, so that a node's resend after a reconnect is acked but not
//     counted twice.
//
// Everything is bounded; Store.Stats reports the sizes and counters for
// metrics.
//
// # Concurrency: who may block on what
//
// A Store is safe for concurrent use. One mutex guards the ring, the
// aggregates, the duplicate table and the subscriber list. Nothing done
// under it blocks or does I/O:
//
//   - Ingest holds it once per batch, for work linear in the batch's events
//     times the live tails (a map increment and a ring write per event, and
//     a non-blocking channel send per matching tail).
//   - Query (and a tail's backlog) scans the ring in chunks of 8192 slots,
//     releasing the lock between chunks, so a full scan delays ingest by one
//     chunk at a time.
//   - Top holds it for one minute's counts at a time.
//
// Live tails never slow ingest: Ingest sends to a subscriber's buffered
// channel without waiting and counts what does not fit (Stats.TailDropped).
// A subscriber's cancel closes its channel under the lock, so no send can
// follow it.
//
// Config.OnBatch runs on the ingesting goroutine after the lock is
// released; it must not block, or it holds up that node's stream. The one
// log line Ingest may write (a minute first hitting an aggregate bound) is
// also written after the lock is released.
//
// Memory: the ring holds MaxRaw events (a few hundred bytes each); the
// aggregates about 120 bytes per (minute, pool, node, class, origin) seen,
// at most MaxKeysPerMinute per minute (see Config).
//
// Reading: QueryEvents answers come from the ring, ordered by event time;
// TopErrors from the aggregates, with minute granularity.
//
// Events are shared once ingested: the ring, query answers and tails hand
// out the same messages, read-only. Ingest fills in the node id, pool and
// time of the batch's events before storing them, so the caller must not
// touch them afterwards.
//
// # gRPC
//
// Server runs each RPC on the goroutine gRPC gives it. ReportTelemetry
// adds one goroutine per stream that receives batches, so that Shutdown
// can end the stream while the node is idle; it ends with the stream. A
// ReportTelemetry stream blocks only in Send (flow control, bounded by the
// stream's context); a TailEvents stream blocks in Send to its client
// while its tail's buffer absorbs (or drops) new events. Server.Shutdown
// ends every stream with Unavailable so that a graceful stop is not held
// up.
package telemetry

// Package telemetry is the control plane's side of error telemetry: it
// ingests the batches nodes stream over NodeService.ReportTelemetry, keeps
// per-minute counts and recent raw events, and answers the operators'
// FleetService queries (QueryEvents, TopErrors, TailEvents, ErrorSeries).
//
// # What is kept
//
// Every string of an ingested event is capped in bytes first (origin, user
// agent, error, trace id, conn id, node id, pool, remote address: see
// MaxOriginBytes and the others), cut on a UTF-8 boundary, marked with
// clip.Mark and counted per field (Stats.Truncated); unknown fields are
// dropped. Nodes cap the same strings when they make an event; the control
// plane does not rely on it.
//
//   - Raw events in a ring of Config.MaxRaw events (default 100,000) and
//     Config.MaxRawBytes estimated bytes (default 64 MiB), oldest evicted
//     first when either is reached: QueryEvents, trace-id lookups (a scan,
//     newest first) and tail backlogs read it. When it has evicted events
//     that may fall in a query's range the answer says truncated.
//   - Counts per (minute, pool, node, class, origin) for Config.Retention
//     (default 24h), pruned lazily: ingest and TopErrors drop expired
//     minutes at most once per minute of clock time. TopErrors reads them,
//     so its answers have minute granularity. An event counts max(1,
//     repeat) times: a node folds repeated rejections into one event with
//     a count, and the counts stay exact. Origins are client-controlled
//     and bounded per minute (MaxOriginsPerMinute, the rest counted as
//     "(other)"), as are the combinations per minute (MaxKeysPerMinute),
//     which bounds node ids and pools too; all of it together is bounded
//     in estimated bytes (MaxAggregateBytes), beyond which new origins and
//     combinations are counted as "(other)" until old minutes expire.
//     Each minute also counts the events it folded so (ErrorSeries'
//     folded). ErrorSeries reads the same counts per class and step of
//     whole minutes, over at most MaxSeriesRange (24 h): no second copy
//     of the aggregates is kept, so their memory bound (MaxAggregateBytes,
//     about 120 bytes a key) covers it.
//   - (reporter_id, sequence) of the batches seen, for MaxReporters
//     reporters and MaxReporterBytes (reporter ids are at most
//     MaxReporterIDBytes), so that a node's resend after a reconnect is
//     acked but not counted twice.
//   - At most MaxTails live tails, each with a buffer of TailBuffer
//     events.
//
// Everything is bounded in count and in bytes; Store.Stats reports the
// sizes and counters for metrics.
//
// # Concurrency: who may block on what
//
// A Store is safe for concurrent use. One mutex guards the ring, the
// aggregates, the duplicate table and the list of tails. Nothing done
// under it blocks or does I/O, and nothing under it is per tail:
//
//   - Ingest holds it once per batch, for work linear in the batch's
//     events (a map increment and a ring write per event). It reads the
//     list of tails there (a slice that is replaced, never changed in
//     place) and publishes to them after releasing the lock.
//   - Publishing to a tail holds only that tail's own lock, and sends to
//     its buffered channel without waiting. A tail whose buffer is full is
//     dropped: its channel is closed and it is taken off the list, so a
//     reader that stopped reading costs ingest nothing more. A tail's
//     cancel closes its channel under the tail's lock, so no send can
//     follow it. A tail subscribed after a batch was put finds that batch
//     in its backlog, not in its channel: neither a gap nor a repeat.
//     Tails receive each node's events in order; two nodes' batches
//     ingested at once may reach a tail in either order.
//   - Query (and a tail's backlog) scans the ring in chunks of 8192 slots,
//     releasing the lock between chunks, so a full scan delays ingest by one
//     chunk at a time.
//   - Top holds it for one minute's counts at a time.
//
// Config.OnBatch runs on the ingesting goroutine after the lock is
// released; it must not block, or it holds up that node's stream. The one
// log line Ingest may write (a minute first hitting an aggregate bound) is
// also written after the lock is released.
//
// Memory: the ring holds at most MaxRawBytes of events (a capped event is
// estimated at its strings plus 512 bytes: at most about 3 KiB); the
// aggregates at most about MaxAggregateBytes; the duplicate table at most
// MaxReporterBytes; a tail at most TailBuffer pointers to events the ring
// shares.
//
// Reading: QueryEvents answers come from the ring, ordered by event time;
// TopErrors and ErrorSeries from the aggregates, with minute granularity.
//
// Traffic samples (what nodes accepted per minute, for dry-run impact)
// ride in the same batches and are ingested under the same lock and
// duplicate check into a separate table kept TrafficRetention: per pool
// (the policy pool the node enforced: its own or default) and minute,
// accepted handshakes per origin summed over nodes (MaxTrafficOrigins,
// the rest unattributed) and each node's peaks (MaxTrafficNodes, the rest
// under OtherKey), within about MaxTrafficBytes in all. TrafficSummary
// holds the lock while it adds up the range's minutes.
//
// Events are shared once ingested: the ring, query answers and tails hand
// out the same messages, read-only. Ingest fills in the node id, pool and
// time of the batch's events and caps their strings before storing them,
// so the caller must not touch them afterwards.
//
// # gRPC
//
// Server runs each RPC on the goroutine gRPC gives it. ReportTelemetry
// adds one goroutine per stream that receives batches, so that Shutdown
// can end the stream while the node is idle; it ends with the stream. A
// ReportTelemetry stream blocks only in Send (flow control, bounded by the
// stream's context); a TailEvents stream blocks in Send to its client
// while its tail's buffer absorbs new events, and ends with
// ResourceExhausted once the tail was dropped for falling behind (see
// Server.TailEvents for a client that stops reading). Server.Shutdown
// ends every stream with Unavailable so that a graceful stop is not held
// up.
package telemetry

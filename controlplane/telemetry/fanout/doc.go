// Package fanout answers the telemetry queries of FleetService for the
// whole fleet on any control-plane replica: events are ingested by the
// replica a node reports to, and kept there (package telemetry), so a
// query asks every replica and merges the answers.
//
// # Mechanism and cost
//
// A query (QueryEvents: errors tail, trace; TopErrors: errors top) is
// answered from this replica's store and, at the same time, by every
// other replica registered in etcd (package replicas: its advertised
// address), each call bounded by Config.Timeout. Cost per query: one call
// to each of the N-1 other replicas; nothing per event (events are not
// copied between replicas). A tail (TailEvents: errors tail --follow)
// holds one tail stream on each other replica for its lifetime, and one
// tail slot (MaxTails) on each.
//
// Merging: QueryEvents takes the newest events of all answers, newest
// first, within the request's limit and MaxQueryBytes (cut there:
// truncated), and is truncated when any replica's answer is. TopErrors
// asks every replica for up to MaxTopLimit groups with their per-class
// counts and adds them up, so counts and totals are exact sums (a group
// beyond a replica's MaxTopLimit largest misses that replica's part;
// the total does not), then keeps the largest groups within the limit.
// ErrorSeries fixes the range and step first (telemetry.SeriesRange), asks
// every replica for exactly those buckets and adds the counts up per class
// and bucket, and the folded counts. A
// tail's backlog is the newest of every replica's backlogs, oldest first;
// live events follow as each replica ingests them. TrafficSummary (dry-run
// impact) fixes the range once, asks every replica for it, sums the
// accepted handshakes per origin and the unattributed ones, keeps each
// measure's highest peak, and sums nodes_reporting (a node reports to one
// replica at a time: it counts twice only if it moved within the range).
// Every count another replica sends is added saturating, and a negative
// one as nothing: a garbled or hostile answer can neither wrap a sum nor
// subtract from the others'.
//
// # Authentication between replicas
//
// A replica forwards the caller's own credentials (its bearer token; in
// dev mode its user header) with a marker header (ForwardedHeader, naming
// the forwarding replica). The other replica authenticates and authorizes
// the call as it would the caller's own, and answers a marked call from
// its own events alone: a query reaches each replica once and never fans
// out twice. The marker grants nothing: a caller sending it gets one
// replica's part of what it may see anyway. Over TLS the call uses the
// Config.DialOptions' credentials (the peer CA, and with mutual TLS a
// client certificate); a token never crosses the network in plaintext (the
// control plane refuses to start so).
//
// # When a replica does not answer
//
// The answer is partial and says so: QueryEventsResponse,
// TopErrorsResponse and ErrorSeriesResponse list each replica whose part is missing, and why, in
// missing_replicas (no answer within the timeout, refused, unreachable);
// the other replicas' parts are there. A tail sends a message with
// replica_lost when a replica's tail cannot be opened or breaks, and one
// with replica_back once it is open again (it is reopened with backoff
// while the replica is registered); what that replica ingested in between
// is missing. A marked call answers only for its replica and has nothing
// of the kind.
//
// Goroutines: each query runs one goroutine per other replica, all ended
// before it returns. A tail runs one per other replica for its lifetime.
// Connections to the other replicas are kept between calls and closed
// when a replica leaves, and by Close.
package fanout

// Package policy holds the rules every wsfleet policy obeys: the documented
// safe default, whole-policy validation, origin allowlist patterns and their
// matcher, pool names, and the field-by-field diff shown to operators.
//
// It is part of the API contract rather than of either server: the control
// plane validates with it before storing a revision, the data-plane node
// validates cached and pushed policies and matches Origin headers with it,
// and wsctl renders diffs with it. It therefore imports nothing of wsfleet
// but the generated api/wsfleet/v1 package.
//
// # Bounds
//
// A valid policy has every group (origins, heartbeat, limits, breaker) set
// and every field within these bounds (handshake alone is optional):
//
//	origins.allow               at most 1000 entries (MaxOrigins), each at most
//	                            512 characters (MaxOriginLength), no duplicates
//	heartbeat.interval          1s (MinHeartbeatInterval) .. 10m (MaxHeartbeatInterval)
//	heartbeat.timeout           greater than interval, at most 1h (MaxHeartbeatTimeout)
//	limits.max_connections      1 .. 10,000,000 per node (MaxConnections)
//	limits.max_connections_per_ip  1 .. 1,000,000 (MaxConnectionsPerIP)
//	limits.handshakes_per_second   1 .. 1,000,000 (MaxHandshakesPerSecond)
//	limits.handshake_burst      1 .. 1,000,000 (MaxHandshakeBurst)
//	limits.messages_per_second  1 .. 1,000,000 (MaxMessagesPerSecond)
//	limits.message_burst        1 .. 1,000,000 (MaxMessageBurst)
//	limits.max_message_bytes    1 .. 64 MiB (MaxMessageBytes)
//	breaker.failure_ratio       greater than 0, at most 1, not NaN
//	breaker.min_samples         1 .. 1,000,000 (MaxBreakerMinSamples)
//	breaker.window              greater than 0, at most 1h (MaxBreakerWindow)
//	breaker.open_duration       greater than 0, at most 1h (MaxBreakerOpenDuration)
//	breaker.half_open_probes    1 .. 10,000 (MaxHalfOpenProbes)
//	handshake.reject_with       http or close; the group may be left out
//	                            (policies older than the field), which is http
//
// Durations must also be valid google.protobuf.Duration values (seconds and
// nanos in range and of the same sign).
//
// # Origin patterns
//
// An allowlist entry is `scheme://host[:port]` with scheme http or https, a
// host that is a DNS name, an IPv4 address or a bracketed IPv6 literal, and
// no path, query, fragment or userinfo. `https://*.example.com` allows every
// subdomain of example.com at any depth but not example.com itself. `*`
// alone allows every origin, and `null` allows the `Origin: null` that
// sandboxed iframes and file: pages send. See ParseOriginPattern and
// OriginMatcher.
//
// # Concurrency
//
// Everything here is a pure function or an immutable value: an OriginMatcher
// is built once per policy and may be shared by any number of goroutines.
package policy

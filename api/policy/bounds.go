package policy

import "time"

// Documented bounds of a valid policy. They are part of the API contract:
// the control plane refuses a policy outside them, so nodes and SDK users may
// size buffers and timers from a validated policy without rechecking. The
// maxima are far above any sane setting; they exist so that a typo (an extra
// zero or three) is refused instead of pushed to a fleet.
const (
	// MinHeartbeatInterval is the shortest ping interval; faster pings cost
	// more than they detect.
	MinHeartbeatInterval = time.Second
	// MaxHeartbeatInterval is the longest ping interval; longer ones outlive
	// the idle timeouts of most load balancers and NATs.
	MaxHeartbeatInterval = 10 * time.Minute
	// MaxHeartbeatTimeout is the longest a silent peer may be kept.
	MaxHeartbeatTimeout = time.Hour

	// MaxConnections bounds limits.max_connections (per node).
	MaxConnections = 10_000_000
	// MaxConnectionsPerIP bounds limits.max_connections_per_ip.
	MaxConnectionsPerIP = 1_000_000
	// MaxHandshakesPerSecond bounds limits.handshakes_per_second.
	MaxHandshakesPerSecond = 1_000_000
	// MaxHandshakeBurst bounds limits.handshake_burst.
	MaxHandshakeBurst = 1_000_000
	// MaxMessagesPerSecond bounds limits.messages_per_second.
	MaxMessagesPerSecond = 1_000_000
	// MaxMessageBurst bounds limits.message_burst.
	MaxMessageBurst = 1_000_000
	// MaxMessageBytes bounds limits.max_message_bytes: 64 MiB.
	MaxMessageBytes = 64 << 20

	// MaxBreakerMinSamples bounds breaker.min_samples.
	MaxBreakerMinSamples = 1_000_000
	// MaxBreakerWindow bounds breaker.window.
	MaxBreakerWindow = time.Hour
	// MaxBreakerOpenDuration bounds breaker.open_duration.
	MaxBreakerOpenDuration = time.Hour
	// MaxHalfOpenProbes bounds breaker.half_open_probes.
	MaxHalfOpenProbes = 10_000

	// MaxOrigins bounds the number of origins.allow entries.
	MaxOrigins = 1000
	// MaxOriginLength bounds the length in bytes of one origins.allow entry.
	MaxOriginLength = 512
)

// MaxCommitMessageBytes bounds the message of a revision (the "why" given
// with apply, rollback and recover) in bytes: 1 KiB. A message is shown in
// every history listing and audit line; a longer one is refused with
// InvalidArgument naming the field `message`, never cut silently.
const MaxCommitMessageBytes = 1 << 10

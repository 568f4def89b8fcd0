package policy

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// DefaultPool always exists: the control plane creates its revision 1 from
// Default on first start, and a node whose pool has no policy applies it.
const DefaultPool = "default"

// Default returns the documented safe default policy, a fresh copy per call.
//
// No browser origin is allowed until an operator lists one (a gateway that
// admits every page by default is an open relay for cross-site WebSocket
// hijacking); clients without an Origin header (services, CLIs) are admitted.
// The heartbeat pings every 25s, under the 30s-60s idle timeouts common in
// load balancers and NATs, and gives a silent peer 60s. A rejected handshake
// is answered over HTTP (handshake.reject_with: http), as every WebSocket
// client expects.
func Default() *wsfleetv1.Policy {
	return &wsfleetv1.Policy{
		Origins: &wsfleetv1.OriginPolicy{
			Allow:        []string{},
			AllowMissing: true,
		},
		Heartbeat: &wsfleetv1.HeartbeatPolicy{
			Interval: durationpb.New(25 * time.Second),
			Timeout:  durationpb.New(60 * time.Second),
		},
		Limits: &wsfleetv1.LimitsPolicy{
			MaxConnections:      100_000,
			MaxConnectionsPerIp: 1_000,
			HandshakesPerSecond: 1_000,
			HandshakeBurst:      2_000,
			MessagesPerSecond:   100,
			MessageBurst:        200,
			MaxMessageBytes:     64 << 10,
		},
		Breaker: &wsfleetv1.BreakerPolicy{
			FailureRatio:   0.5,
			MinSamples:     20,
			Window:         durationpb.New(10 * time.Second),
			OpenDuration:   durationpb.New(5 * time.Second),
			HalfOpenProbes: 3,
		},
		Handshake: &wsfleetv1.HandshakePolicy{
			RejectWith: wsfleetv1.RejectMode_REJECT_MODE_HTTP,
		},
		Approval: &wsfleetv1.ApprovalPolicy{},
	}
}

package loadgen

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// DefaultOrigin is the only origin the bench policy allows; every bench
// handshake sends it, so the node's origin check runs on each one.
const DefaultOrigin = "http://bench.local"

// BenchPolicy is the node's policy for the bench: the default policy with
// one allowed origin, no missing-Origin clients, and every limit high
// enough that it is checked on each handshake and message but never
// throttles the bench.
func BenchPolicy(origin string) *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins = &wsfleetv1.OriginPolicy{Allow: []string{origin}, AllowMissing: false}
	p.Heartbeat = &wsfleetv1.HeartbeatPolicy{
		Interval: durationpb.New(25 * time.Second),
		Timeout:  durationpb.New(60 * time.Second),
	}
	p.Limits = &wsfleetv1.LimitsPolicy{
		MaxConnections:      1_000_000,
		MaxConnectionsPerIp: 1_000_000,
		HandshakesPerSecond: 1_000_000,
		HandshakeBurst:      1_000_000,
		MessagesPerSecond:   1_000_000,
		MessageBurst:        1_000_000,
		MaxMessageBytes:     64 << 10,
	}
	return p
}

// writePolicyFile writes BenchPolicy(origin) as a policy file in dir and
// returns its path. The policy is validated first, so a bench never starts
// a node that would refuse it.
func writePolicyFile(dir, origin string) (string, error) {
	return writePolicy(dir, "bench-policy.yaml", BenchPolicy(origin))
}

// writePolicy validates p and writes it as the policy file name in dir.
func writePolicy(dir, name string, p *wsfleetv1.Policy) (string, error) {
	if err := policy.Check(p); err != nil {
		return "", fmt.Errorf("%w: bench policy: %v", ErrConfig, err)
	}
	data, err := policyfile.EncodeYAML(p)
	if err != nil {
		return "", fmt.Errorf("%w: bench policy: %v", ErrConfig, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("loadgen: writing the bench policy: %w", err)
	}
	return path, nil
}

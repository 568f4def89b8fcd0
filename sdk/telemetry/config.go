package telemetry

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// Defaults for the zero values of Config.
const (
	DefaultPool          = "default"
	DefaultMaxEvents     = 10_000
	DefaultMaxBytes      = 8 << 20
	DefaultBatchSize     = 500
	DefaultBatchBytes    = 1 << 20
	DefaultMaxInFlight   = 4
	DefaultFlushInterval = time.Second
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	// DefaultMaxTrafficSamples keeps a few minutes of traffic samples
	// through a short outage of the control plane.
	DefaultMaxTrafficSamples = 10
)

// Limits enforced by New.
const (
	// MaxBatchBytesLimit keeps a batch, with its framing, well under gRPC's
	// default 4 MiB message limit on the control plane's side.
	MaxBatchBytesLimit = 3 << 20
	// MinMaxBytes is the smallest byte bound accepted: below it most real
	// events (user agents, error texts) would not fit at all.
	MinMaxBytes = 1 << 10
)

// Config configures a Reporter. Zero values take the defaults above.
//
// The buffer bounds (MaxEvents, MaxBytes) cover everything the Reporter
// holds: events waiting to be put in a batch plus events in batches sent but
// not yet acknowledged. Acknowledged batches are released at once. Only
// events waiting for a batch are ever dropped (oldest first): a batch, once
// cut, is kept and resent until acknowledged, so the control plane's count
// stays exactly "recorded − dropped". At most MaxInFlight batches are
// unacknowledged at a time; a control plane that stops acknowledging thus
// pins at most MaxInFlight×BatchSize events (and ×BatchBytes bytes), and
// further events displace the oldest waiting ones instead of growing the
// buffer. When in-flight batches alone fill a bound, a new event is dropped
// on arrival.
type Config struct {
	// Conn is the connection to the control plane. Required; the caller
	// dials it (sdk/admin.Dial(...).Conn() does TLS and the token) and
	// closes it after Run has returned.
	Conn *grpc.ClientConn
	// NodeID names the reporting node in every batch. Required.
	NodeID string
	// Pool is the node's pool, sent in every batch. Default "default".
	Pool string
	// MaxEvents bounds the events held (waiting plus in flight).
	// Default 10,000.
	MaxEvents int
	// MaxBytes bounds the bytes held, counted as proto.Size of each event.
	// Default 8 MiB, at least MinMaxBytes. An event larger than
	// min(MaxBytes, BatchBytes) can never be sent and is dropped on
	// arrival (and counted).
	MaxBytes int
	// BatchSize is the most events per batch; a batch is sent as soon as
	// this many are waiting. Default min(500, MaxEvents); at most MaxEvents.
	BatchSize int
	// BatchBytes is the most event bytes per batch; a batch is sent as soon
	// as this many are waiting. Default min(1 MiB, MaxBytes); at most
	// MaxBatchBytesLimit.
	BatchBytes int
	// MaxInFlight is the most batches sent and not yet acknowledged.
	// Default 4.
	MaxInFlight int
	// FlushInterval is how long events may wait for a full batch before a
	// partial one is sent. Default 1s.
	FlushInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting after a
	// failed or ended stream: full jitter, the cap doubling from MinBackoff
	// up to MaxBackoff and reset once a stream gets an acknowledgement or
	// stays up for MaxBackoff.
	// Defaults 500ms and 30s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxTrafficSamples bounds the traffic samples (RecordTraffic) waiting
	// for a batch; beyond it the oldest is dropped and counted
	// (Stats.TrafficDropped). Samples ride in the next batch, so a batch
	// holds at most this many; those sent and not yet acknowledged are
	// held with their batch (at most MaxInFlight batches). A sample is at
	// most a few hundred origins (the node's cap), tens of KiB. Default 10.
	MaxTrafficSamples int
	// Log receives stream failures and recoveries. Default logrus's
	// standard logger.
	Log logrus.FieldLogger
}

func (c *Config) setDefaults() {
	if c.Pool == "" {
		c.Pool = DefaultPool
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.BatchSize == 0 {
		c.BatchSize = min(DefaultBatchSize, c.MaxEvents)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = min(DefaultBatchBytes, c.MaxBytes)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxTrafficSamples == 0 {
		c.MaxTrafficSamples = DefaultMaxTrafficSamples
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Conn == nil:
		return fmt.Errorf("%w: Conn is required", ErrConfig)
	case c.NodeID == "":
		return fmt.Errorf("%w: NodeID is required", ErrConfig)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxEvents", int64(c.MaxEvents)},
		{"MaxBytes", int64(c.MaxBytes)},
		{"BatchSize", int64(c.BatchSize)},
		{"BatchBytes", int64(c.BatchBytes)},
		{"MaxInFlight", int64(c.MaxInFlight)},
		{"FlushInterval", int64(c.FlushInterval)},
		{"MinBackoff", int64(c.MinBackoff)},
		{"MaxBackoff", int64(c.MaxBackoff)},
		{"MaxTrafficSamples", int64(c.MaxTrafficSamples)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s must not be negative", ErrConfig, f.name)
		}
	}
	switch {
	case c.MaxBytes < MinMaxBytes:
		return fmt.Errorf("%w: MaxBytes %d is below the minimum %d", ErrConfig, c.MaxBytes, MinMaxBytes)
	case c.BatchSize > c.MaxEvents:
		return fmt.Errorf("%w: BatchSize %d exceeds MaxEvents %d: a full batch could never form", ErrConfig, c.BatchSize, c.MaxEvents)
	case c.BatchBytes > MaxBatchBytesLimit:
		return fmt.Errorf("%w: BatchBytes %d exceeds %d, too close to gRPC's 4 MiB message limit", ErrConfig, c.BatchBytes, MaxBatchBytesLimit)
	case c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("%w: MinBackoff %s exceeds MaxBackoff %s", ErrConfig, c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

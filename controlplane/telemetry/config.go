package telemetry

import (
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of Config.
const (
	DefaultRetention           = 24 * time.Hour
	DefaultMaxRaw              = 100_000
	DefaultMaxOriginsPerMinute = 1000
	DefaultMaxKeysPerMinute    = 10_000
	DefaultMaxReporters        = 100_000
	DefaultTailBuffer          = 1024
	DefaultMaxRawBytes         = 64 << 20
	DefaultMaxReporterBytes    = 32 << 20
	DefaultMaxAggregateBytes   = 1 << 30
	DefaultMaxTails            = 64
	DefaultTrafficRetention    = 70 * time.Minute
	DefaultMaxTrafficOrigins   = 1000
	DefaultMaxTrafficNodes     = 10_000
	DefaultMaxTrafficBytes     = 256 << 20

	// MinTrafficRetention keeps a dry run's hour whole with room for
	// samples that arrive late (a node reconnecting after a short outage).
	MinTrafficRetention = 65 * time.Minute

	// MinMaxRawBytes is the smallest ring byte bound: room for a few
	// hundred events at their largest.
	MinMaxRawBytes = 1 << 20

	// MaxRetention bounds Config.Retention: per-minute counts for longer
	// than a month belong in a metrics system.
	MaxRetention = 31 * 24 * time.Hour
)

// OtherOrigin is the origin the aggregates count an event under once its
// minute already holds Config.MaxOriginsPerMinute distinct origins. Origins
// come from clients' Origin headers, so without this a scanner could grow
// the aggregates without bound. A real origin spelled "(other)" is
// indistinguishable from the overflow.
const OtherOrigin = "(other)"

// OtherKey is the pool, node and origin of the catch-all aggregate an event
// is counted under once its minute already holds Config.MaxKeysPerMinute
// distinct (pool, node, class, origin) combinations. Its class is kept.
const OtherKey = "(other)"

// maxClockSkew is how far in the future an event's time may lie and still
// be counted in its own minute. Node clocks drift; a time further ahead (or
// older than the retention) is counted in the minute it arrived, so that a
// wrong clock can neither create buckets outside the retention window nor
// make events vanish from the counts.
const maxClockSkew = 5 * time.Minute

// Config configures a Store. Zero values mean the defaults.
type Config struct {
	// Retention is how long per-minute aggregates are kept. At least one
	// minute, at most MaxRetention. Default 24h.
	Retention time.Duration
	// MaxRaw is how many recent raw events are kept (a ring buffer) for
	// QueryEvents, trace lookups and tail backlogs. Default 100,000.
	MaxRaw int
	// MaxRawBytes bounds the same ring in bytes, as estimated per event
	// (its strings plus about 512 bytes; a capped event holds at most
	// about 3 KiB): the oldest events are evicted first when either bound
	// is reached. Default 64 MiB, at least MinMaxRawBytes.
	MaxRawBytes int
	// MaxOriginsPerMinute bounds the distinct origins counted per minute;
	// the rest go to OtherOrigin. Default 1000.
	MaxOriginsPerMinute int
	// MaxKeysPerMinute bounds the distinct (pool, node, class, origin)
	// combinations counted per minute; the rest go to OtherKey. A key
	// costs about 120 bytes, so this bound alone would allow about
	// Retention/1m × MaxKeysPerMinute × 120 B (1.7 GB at the defaults);
	// MaxAggregateBytes bounds the whole. 16 nodes × 8 classes × 40
	// origins busy every minute of a day take about 0.6 GB. Default
	// 10,000.
	MaxKeysPerMinute int
	// MaxReporters bounds the reporter_ids whose sequence numbers are
	// remembered for duplicate detection; the least recently seen is
	// forgotten first. Default 100,000.
	MaxReporters int
	// MaxReporterBytes bounds the same table in bytes (an entry costs its
	// reporter_id, at most MaxReporterIDBytes, plus about 160 bytes).
	// Default 32 MiB.
	MaxReporterBytes int
	// MaxAggregateBytes bounds the per-minute counts over the whole
	// retention, as estimated (about 120 bytes a key, plus each minute's
	// distinct origins and the node ids and pools). Once reached, new
	// origins count as OtherOrigin and new combinations under the OtherKey
	// catch-all of their minute (one per class and minute) until pruning
	// frees room: totals stay exact, only the grouping coarsens. Default
	// 1 GiB: a busy fleet's day of counts fits (see MaxKeysPerMinute).
	MaxAggregateBytes int
	// MaxTails bounds the concurrent live tails (TailEvents streams);
	// Subscribe beyond it fails with ErrTooManyTails. A tail holds its slot
	// until it is cancelled, also after it was dropped for falling behind.
	// Default 64.
	MaxTails int
	// TailBuffer is how many events a live tail may have waiting; a tail
	// whose buffer is full when an event arrives is dropped (its channel
	// closed), so that no reader can hold up ingest. Default 1024.
	TailBuffer int
	// TrafficRetention is how long the nodes' traffic samples are kept
	// (dry-run impact looks at the last hour). Default 70m, at least
	// MinTrafficRetention, at most MaxRetention.
	TrafficRetention time.Duration
	// MaxTrafficOrigins bounds the distinct origins counted per pool and
	// minute from traffic samples; the rest count as accepted_other.
	// Default 1000.
	MaxTrafficOrigins int
	// MaxTrafficNodes bounds the nodes whose peaks are kept per pool and
	// minute; the peaks of the rest are folded into node OtherKey.
	// Default 10,000.
	MaxTrafficNodes int
	// MaxTrafficBytes bounds the traffic table in estimated bytes (an
	// origin entry costs about 64 bytes plus the origin, a node's peaks
	// about 96 plus its id); once reached, new origins count as
	// accepted_other and new nodes under OtherKey until old minutes
	// expire. Default 256 MiB: 70 minutes of 100 pools at the origin
	// bound fit.
	MaxTrafficBytes int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnBatch, if set, is told of every ingested (non-duplicate) batch: the
	// batch's node id, the events ingested and the drops it reported. It is
	// called after the store's lock is released, on the ingesting
	// goroutine, and must not block.
	OnBatch func(nodeID string, events int, dropped uint64)
	// Log receives a warning the first time a minute hits an aggregate
	// bound, and is a Server's logger when NewServer gets none. Default
	// logrus's standard logger.
	Log logrus.FieldLogger
}

func (c *Config) setDefaults() {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxRaw == 0 {
		c.MaxRaw = DefaultMaxRaw
	}
	if c.MaxOriginsPerMinute == 0 {
		c.MaxOriginsPerMinute = DefaultMaxOriginsPerMinute
	}
	if c.MaxKeysPerMinute == 0 {
		c.MaxKeysPerMinute = DefaultMaxKeysPerMinute
	}
	if c.MaxReporters == 0 {
		c.MaxReporters = DefaultMaxReporters
	}
	if c.MaxRawBytes == 0 {
		c.MaxRawBytes = DefaultMaxRawBytes
	}
	if c.MaxReporterBytes == 0 {
		c.MaxReporterBytes = DefaultMaxReporterBytes
	}
	if c.MaxAggregateBytes == 0 {
		c.MaxAggregateBytes = DefaultMaxAggregateBytes
	}
	if c.MaxTails == 0 {
		c.MaxTails = DefaultMaxTails
	}
	if c.TailBuffer == 0 {
		c.TailBuffer = DefaultTailBuffer
	}
	if c.TrafficRetention == 0 {
		c.TrafficRetention = DefaultTrafficRetention
	}
	if c.MaxTrafficOrigins == 0 {
		c.MaxTrafficOrigins = DefaultMaxTrafficOrigins
	}
	if c.MaxTrafficNodes == 0 {
		c.MaxTrafficNodes = DefaultMaxTrafficNodes
	}
	if c.MaxTrafficBytes == 0 {
		c.MaxTrafficBytes = DefaultMaxTrafficBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

func (c *Config) validate() error {
	switch {
	case c.Retention < time.Minute:
		return fmt.Errorf("%w: Retention %v is under the one-minute aggregate granularity", ErrConfig, c.Retention)
	case c.Retention > MaxRetention:
		return fmt.Errorf("%w: Retention %v is over %v", ErrConfig, c.Retention, MaxRetention)
	case c.MaxRaw < 0:
		return fmt.Errorf("%w: MaxRaw %d is negative", ErrConfig, c.MaxRaw)
	case c.MaxOriginsPerMinute < 0:
		return fmt.Errorf("%w: MaxOriginsPerMinute %d is negative", ErrConfig, c.MaxOriginsPerMinute)
	case c.MaxKeysPerMinute < 0:
		return fmt.Errorf("%w: MaxKeysPerMinute %d is negative", ErrConfig, c.MaxKeysPerMinute)
	case c.MaxReporters < 0:
		return fmt.Errorf("%w: MaxReporters %d is negative", ErrConfig, c.MaxReporters)
	case c.MaxRawBytes < MinMaxRawBytes:
		return fmt.Errorf("%w: MaxRawBytes %d is under %d", ErrConfig, c.MaxRawBytes, MinMaxRawBytes)
	case c.MaxReporterBytes < 0:
		return fmt.Errorf("%w: MaxReporterBytes %d is negative", ErrConfig, c.MaxReporterBytes)
	case c.MaxAggregateBytes < 0:
		return fmt.Errorf("%w: MaxAggregateBytes %d is negative", ErrConfig, c.MaxAggregateBytes)
	case c.MaxTails < 0:
		return fmt.Errorf("%w: MaxTails %d is negative", ErrConfig, c.MaxTails)
	case c.TrafficRetention < MinTrafficRetention || c.TrafficRetention > MaxRetention:
		return fmt.Errorf("%w: TrafficRetention %v: between %v and %v", ErrConfig, c.TrafficRetention, MinTrafficRetention, MaxRetention)
	case c.MaxTrafficOrigins < 0 || c.MaxTrafficNodes < 0 || c.MaxTrafficBytes < 0:
		return fmt.Errorf("%w: MaxTrafficOrigins, MaxTrafficNodes and MaxTrafficBytes must not be negative", ErrConfig)
	case c.TailBuffer < 0:
		return fmt.Errorf("%w: TailBuffer %d is negative", ErrConfig, c.TailBuffer)
	}
	return nil
}

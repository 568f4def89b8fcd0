package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Mode says how a target answers a published frame.
type Mode int

const (
	// ModeChannel is the node's protocol: each client first subscribes to
	// its own channel and then receives its own publishes as messages.
	ModeChannel Mode = iota
	// ModeEcho is a bare echo server: the frame comes back unchanged and
	// nothing is subscribed. The frames sent are the same as in ModeChannel.
	ModeEcho
)

func (m Mode) String() string {
	switch m {
	case ModeChannel:
		return "channel"
	case ModeEcho:
		return "echo"
	default:
		return "mode(" + strconv.Itoa(int(m)) + ")"
	}
}

// Roundtrip defaults.
const (
	DefaultClients   = 32
	DefaultDuration  = 5 * time.Second
	DefaultDataBytes = 64
	// maxRoundTripsPerClient bounds a client's loop by count as well as by
	// the deadline; far above what loopback reaches in any sane duration.
	maxRoundTripsPerClient = 1 << 30
)

// RoundtripConfig configures Roundtrip. Zero fields take the defaults.
type RoundtripConfig struct {
	Target Target
	Mode   Mode
	// Clients is the number of connections, each driven by its own
	// goroutine with one request outstanding. Default DefaultClients.
	Clients int
	// Duration is the measured phase, after every client has connected and
	// made one unmeasured round trip. Default DefaultDuration.
	Duration time.Duration
	// DataBytes is the approximate size of the JSON data value of each
	// publish. Default DefaultDataBytes.
	DataBytes int
	// ReplyTimeout bounds the wait for one reply. Default
	// DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// CPU, if set, reads the server's CPU time used so far (ReadCPU of
	// its process): once when the measured phase starts and once when
	// every client has finished it, for RoundtripResult.ServerCPU.
	CPU func() (time.Duration, error)
}

func (c *RoundtripConfig) fill() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	if c.Mode != ModeChannel && c.Mode != ModeEcho {
		return fmt.Errorf("%w: unknown mode %v", ErrConfig, c.Mode)
	}
	if c.Clients < 0 || c.Duration < 0 || c.DataBytes < 0 || c.ReplyTimeout < 0 {
		return fmt.Errorf("%w: roundtrip: negative clients, duration, data bytes or reply timeout", ErrConfig)
	}
	c.Clients = withDefault(c.Clients, DefaultClients)
	c.Duration = withDefault(c.Duration, DefaultDuration)
	c.DataBytes = withDefault(c.DataBytes, DefaultDataBytes)
	c.ReplyTimeout = withDefault(c.ReplyTimeout, DefaultReplyTimeout)
	return nil
}

// RoundtripResult is what Roundtrip measured.
type RoundtripResult struct {
	Target     string        `json:"target"`
	Mode       string        `json:"mode"`
	Clients    int           `json:"clients"`
	RoundTrips int64         `json:"round_trips"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	PerSecond  float64       `json:"per_second"`
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP99 time.Duration `json:"latency_p99_ns"`
	// ServerCPU is the server's CPU time over the measured phase (zero
	// without RoundtripConfig.CPU) and CPUPerRoundTrip that over the round
	// trips, in nanoseconds; LoadCPU is this process's over the same
	// phase.
	ServerCPU       time.Duration `json:"server_cpu_ns,omitempty"`
	CPUPerRoundTrip float64       `json:"server_cpu_ns_per_round_trip,omitempty"`
	LoadCPU         time.Duration `json:"load_cpu_ns,omitempty"`

	// hist keeps every latency so that rounds can be merged.
	hist *histogram
}

// Merge adds another run of the same clients against the same target (one
// round of an interleaved comparison) to r: counts and elapsed time add
// up, the rate and latencies are recomputed over both.
func (r *RoundtripResult) Merge(o RoundtripResult) {
	if r.hist == nil {
		r.hist = &histogram{}
	}
	if o.hist != nil {
		r.hist.merge(o.hist)
	}
	r.RoundTrips += o.RoundTrips
	r.Elapsed += o.Elapsed
	r.ServerCPU += o.ServerCPU
	r.LoadCPU += o.LoadCPU
	r.CPUPerRoundTrip = perOp(r.ServerCPU, r.RoundTrips)
	if r.Elapsed > 0 {
		r.PerSecond = float64(r.RoundTrips) / r.Elapsed.Seconds()
	}
	r.LatencyP50 = r.hist.quantile(0.50)
	r.LatencyP99 = r.hist.quantile(0.99)
}

// Roundtrip runs cfg.Clients clients against cfg.Target for cfg.Duration,
// each looping send → wait for the reply carrying the same sequence number
// → send again, and reports round trips per second. The same frames and the
// same loop run in both modes; only the subscribe before the first frame
// differs. Every connection is closed before it returns.
func Roundtrip(ctx context.Context, cfg RoundtripConfig) (RoundtripResult, error) {
	if err := cfg.fill(); err != nil {
		return RoundtripResult{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	set := newConnSet(cancel)
	res, err := roundtrip(ctx, cancel, cfg, set)
	if err != nil {
		err = rootCause(ctx, err)
	}
	if cerr := set.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("roundtrip %s: %w", cfg.Target.Name, err)
	}
	return res, nil
}

// rtClient is one client's state; only its goroutine touches count and
// hist until the coordinator reads them after wg.Wait.
type rtClient struct {
	replies chan int64
	count   int64
	hist    histogram
}

func roundtrip(ctx context.Context, cancel context.CancelCauseFunc, cfg RoundtripConfig, set *connSet) (RoundtripResult, error) {
	res := RoundtripResult{Target: cfg.Target.Name, Mode: cfg.Mode.String(), Clients: cfg.Clients}
	clients := make([]rtClient, cfg.Clients)
	var (
		readyCount atomic.Int64
		allReady   = make(chan struct{})
		start      = make(chan struct{})
		deadline   time.Time // written before start is closed
		wg         sync.WaitGroup
	)
	for i := range clients {
		clients[i].replies = make(chan int64, 4)
		wg.Go(func() {
			err := runRoundtripClient(ctx, cancel, cfg, set, i, &clients[i], func() {
				if readyCount.Add(1) == int64(cfg.Clients) {
					close(allReady)
				}
			}, start, &deadline)
			if err != nil {
				cancel(err)
			}
		})
	}
	var t0 time.Time
	meter := newCPUMeter(cfg.CPU)
	select {
	case <-allReady:
		if err := meter.start(); err != nil {
			cancel(err)
		}
		t0 = time.Now()
		deadline = t0.Add(cfg.Duration)
		close(start)
	case <-ctx.Done():
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(t0)
	var err error
	if res.ServerCPU, res.LoadCPU, err = meter.stop(); err != nil {
		return res, err
	}
	res.hist = &histogram{}
	for i := range clients {
		res.RoundTrips += clients[i].count
		res.hist.merge(&clients[i].hist)
	}
	res.PerSecond = float64(res.RoundTrips) / res.Elapsed.Seconds()
	res.CPUPerRoundTrip = perOp(res.ServerCPU, res.RoundTrips)
	res.LatencyP50 = res.hist.quantile(0.50)
	res.LatencyP99 = res.hist.quantile(0.99)
	return res, nil
}

func runRoundtripClient(ctx context.Context, cancel context.CancelCauseFunc, cfg RoundtripConfig, set *connSet,
	i int, c *rtClient, ready func(), start <-chan struct{}, deadline *time.Time) error {
	channel := "rt." + strconv.Itoa(i)
	h := &handler{
		onMessage: func(b []byte) {
			seq, ok := parseSeq(b)
			if !ok {
				if !isAck(b) && !isWelcome(b) {
					cancel(fmt.Errorf("%w: client %d: %s", ErrReply, i, describeFrame(b)))
				}
				return
			}
			select {
			case c.replies <- seq:
			default:
				cancel(fmt.Errorf("%w: client %d: more replies than requests", ErrReply, i))
			}
		},
		onClose: set.closeHook(),
	}
	conn, err := dial(ctx, cfg.Target, h)
	if err != nil {
		return err
	}
	set.add(conn)
	if cfg.Mode == ModeChannel {
		if err := conn.WriteMessage(gws.OpcodeText, subscribeFrame(channel)); err != nil {
			return fmt.Errorf("%w: subscribe: %v", ErrClosed, err)
		}
	}

	prefix, pad := publishPrefix(channel), padding(cfg.DataBytes)
	var frame []byte
	timer := time.NewTimer(cfg.ReplyTimeout)
	defer timer.Stop()
	exchange := func(seq int64) error {
		frame = publishFrame(frame, prefix, seq, pad)
		// WriteMessage copies the payload into its own (masked) frame
		// before returning, so frame is reused.
		if err := conn.WriteMessage(gws.OpcodeText, frame); err != nil {
			return fmt.Errorf("%w: write: %v", ErrClosed, err)
		}
		timer.Reset(cfg.ReplyTimeout)
		select {
		case got := <-c.replies:
			if got != seq {
				return fmt.Errorf("%w: client %d sent seq %d, got %d", ErrReply, i, seq, got)
			}
			return nil
		case <-timer.C:
			return fmt.Errorf("%w: client %d: no reply to seq %d within %s", ErrStalled, i, seq, cfg.ReplyTimeout)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}

	// The unmeasured first exchange proves the subscription is in place
	// (the node handles one connection's frames in order) and that the
	// target answers at all, so the measured phase starts warm.
	if err := exchange(0); err != nil {
		return err
	}
	ready()
	select {
	case <-start:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	for seq := int64(1); seq <= maxRoundTripsPerClient && time.Now().Before(*deadline); seq++ {
		t := time.Now()
		if err := exchange(seq); err != nil {
			return err
		}
		c.hist.record(time.Since(t))
		c.count++
	}
	return nil
}

// withDefault returns v, or def when v is zero.
func withDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

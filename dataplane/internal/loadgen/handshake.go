package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Handshake defaults.
const (
	// DefaultHandshakes is per server, over --rounds rounds: 4,000 a round
	// at some 15,000/s is a quarter second of server CPU, long enough for
	// /proc's 10 ms ticks to read CPU per handshake within a few percent
	// (at 1,000 a round the tick alone was ±15%); well under the ~28,000
	// ephemeral ports of one source address to one server port.
	DefaultHandshakes = 20_000
	// DefaultHandshakeTimeout bounds the whole handshake scenario.
	DefaultHandshakeTimeout = 2 * time.Minute
)

// HandshakeConfig configures Handshakes. Zero fields take the defaults.
type HandshakeConfig struct {
	Target Target
	// Total is the number of handshakes. Default DefaultHandshakes.
	Total int
	// Workers is the number of concurrent dial loops. Default
	// DefaultClients.
	Workers int
	// Timeout bounds the scenario. Default DefaultHandshakeTimeout.
	Timeout time.Duration
	// CPU, if set, reads the server's CPU time used so far, before the
	// first handshake and after the last, for HandshakeResult.ServerCPU.
	CPU func() (time.Duration, error)
}

func (c *HandshakeConfig) fill() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	if c.Total < 0 || c.Workers < 0 || c.Timeout < 0 {
		return fmt.Errorf("%w: handshake: negative count or duration", ErrConfig)
	}
	c.Total = withDefault(c.Total, DefaultHandshakes)
	c.Workers = withDefault(c.Workers, DefaultClients)
	c.Timeout = withDefault(c.Timeout, DefaultHandshakeTimeout)
	return nil
}

// HandshakeResult is what Handshakes measured.
type HandshakeResult struct {
	Target    string        `json:"target"`
	Total     int           `json:"total"`
	Workers   int           `json:"workers"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"per_second"`
	// ServerCPU is the server's CPU time over the handshakes (zero
	// without HandshakeConfig.CPU), CPUPerHandshake that per handshake in
	// nanoseconds, LoadCPU this process's.
	ServerCPU       time.Duration `json:"server_cpu_ns,omitempty"`
	CPUPerHandshake float64       `json:"server_cpu_ns_per_handshake,omitempty"`
	LoadCPU         time.Duration `json:"load_cpu_ns,omitempty"`
}

// Merge adds another run against the same target (one round of an
// interleaved comparison): counts, time and CPU add up, the rates are
// recomputed over both.
func (r *HandshakeResult) Merge(o HandshakeResult) {
	r.Total += o.Total
	r.Elapsed += o.Elapsed
	r.ServerCPU += o.ServerCPU
	r.LoadCPU += o.LoadCPU
	if r.Elapsed > 0 {
		r.PerSecond = float64(r.Total) / r.Elapsed.Seconds()
	}
	r.CPUPerHandshake = perOp(r.ServerCPU, int64(r.Total))
}

// Handshakes performs cfg.Total complete handshakes (TCP connect, upgrade
// request with the target's Origin, 101) over cfg.Workers concurrent
// workers, closing each connection with 1000 right after the 101, and
// reports handshakes per second. Any failed handshake fails the scenario:
// the bench runs with limits that should never refuse it.
func Handshakes(ctx context.Context, cfg HandshakeConfig) (HandshakeResult, error) {
	if err := cfg.fill(); err != nil {
		return HandshakeResult{}, err
	}
	res := HandshakeResult{Target: cfg.Target.Name, Total: cfg.Total, Workers: cfg.Workers}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout,
		fmt.Errorf("%w: %d handshakes took longer than %s", ErrStalled, cfg.Total, cfg.Timeout))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	// No read loop is started: the connection is closed as soon as it is
	// open, so nothing is read and no goroutine outlives the dial.
	h := &handler{}
	var next atomic.Int64
	var wg sync.WaitGroup
	meter := newCPUMeter(cfg.CPU)
	if err := meter.start(); err != nil {
		return res, fmt.Errorf("handshake %s: %w", cfg.Target.Name, err)
	}
	start := time.Now()
	for range min(cfg.Workers, cfg.Total) {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(cfg.Total) {
				conn, err := dial(ctx, cfg.Target, h)
				if err != nil {
					fail(err)
					return
				}
				closeNow(conn)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return res, fmt.Errorf("handshake %s: %w", cfg.Target.Name, err)
	}
	var err error
	if res.ServerCPU, res.LoadCPU, err = meter.stop(); err != nil {
		return res, fmt.Errorf("handshake %s: %w", cfg.Target.Name, err)
	}
	res.PerSecond = float64(cfg.Total) / res.Elapsed.Seconds()
	res.CPUPerHandshake = perOp(res.ServerCPU, int64(cfg.Total))
	return res, nil
}

// closeNow sends close 1000 and closes the socket of a connection whose
// read loop never ran.
func closeNow(conn *gws.Conn) {
	_ = conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	if err := conn.WriteClose(1000, nil); err != nil {
		_ = conn.NetConn().Close()
	}
}

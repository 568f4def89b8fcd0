package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/lxzan/gws"
)

// Idle defaults.
const (
	DefaultIdleConns = 10_000
	// DefaultSettle is the pause between the last connection opening and
	// the second RSS reading, for the server's post-handshake garbage and
	// goroutine stacks to settle.
	DefaultSettle = 2 * time.Second
)

// IdleConfig configures Idle. Zero fields take the defaults.
type IdleConfig struct {
	Target Target
	// Conns is the number of idle connections held at once. Default
	// DefaultIdleConns. The client process needs that many descriptors.
	Conns int
	// Dialers bounds concurrent handshakes. Default DefaultDialers.
	Dialers int
	// Settle is the wait before the second RSS reading. Default
	// DefaultSettle.
	Settle time.Duration
	// SetupTimeout bounds opening every connection. Default
	// DefaultSetupTimeout.
	SetupTimeout time.Duration
	// RSS reads the server's resident set size in bytes (ReadRSS for a
	// child process). Required.
	RSS func() (int64, error)
	// CPU, if set, reads the server's CPU time used so far, before the
	// first connection opens and after the last, for
	// IdleResult.OpenServerCPU.
	CPU func() (time.Duration, error)
}

func (c *IdleConfig) fill() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	if c.RSS == nil {
		return fmt.Errorf("%w: idle: no RSS reader", ErrConfig)
	}
	if c.Conns < 0 || c.Dialers < 0 || c.Settle < 0 || c.SetupTimeout < 0 {
		return fmt.Errorf("%w: idle: negative count or duration", ErrConfig)
	}
	c.Conns = withDefault(c.Conns, DefaultIdleConns)
	c.Dialers = withDefault(c.Dialers, DefaultDialers)
	c.Settle = withDefault(c.Settle, DefaultSettle)
	c.SetupTimeout = withDefault(c.SetupTimeout, DefaultSetupTimeout)
	return nil
}

// IdleResult is what Idle measured.
type IdleResult struct {
	Target       string        `json:"target"`
	Conns        int           `json:"conns"`
	RSSBefore    int64         `json:"rss_before_bytes"`
	RSSAfter     int64         `json:"rss_after_bytes"`
	BytesPerConn float64       `json:"bytes_per_conn"`
	OpenElapsed  time.Duration `json:"open_elapsed_ns"`
	// OpenServerCPU is the server's CPU time while the connections
	// opened (zero without IdleConfig.CPU), CPUPerConn that per
	// connection in nanoseconds: the handshake and what the server sets
	// up for a connection.
	OpenServerCPU time.Duration `json:"open_server_cpu_ns,omitempty"`
	CPUPerConn    float64       `json:"server_cpu_ns_per_conn,omitempty"`
}

// Idle reads the server's RSS, opens cfg.Conns connections that send
// nothing (they still answer pings), waits cfg.Settle, reads the RSS again
// and reports (after − before) / Conns. The server must keep every
// connection open meanwhile. Every connection is closed before it returns.
func Idle(ctx context.Context, cfg IdleConfig) (IdleResult, error) {
	if err := cfg.fill(); err != nil {
		return IdleResult{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	set := newConnSet(cancel)
	res, err := idle(ctx, cfg, set)
	if err != nil {
		err = rootCause(ctx, err)
	}
	if cerr := set.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("idle %s: %w", cfg.Target.Name, err)
	}
	return res, nil
}

func idle(ctx context.Context, cfg IdleConfig, set *connSet) (IdleResult, error) {
	res := IdleResult{Target: cfg.Target.Name, Conns: cfg.Conns}
	var err error
	if res.RSSBefore, err = cfg.RSS(); err != nil {
		return res, err
	}
	setupCtx, setupCancel := context.WithTimeoutCause(ctx, cfg.SetupTimeout,
		fmt.Errorf("%w: opening %d connections took longer than %s", ErrStalled, cfg.Conns, cfg.SetupTimeout))
	defer setupCancel()
	meter := newCPUMeter(cfg.CPU)
	if err := meter.start(); err != nil {
		return res, err
	}
	start := time.Now()
	// One handler for all: idle connections only ever see pings.
	h := &handler{onClose: set.closeHook()}
	if err := openMany(setupCtx, []Target{cfg.Target}, cfg.Conns, cfg.Dialers, set, func(int) gws.Event { return h }); err != nil {
		return res, err
	}
	res.OpenElapsed = time.Since(start)
	if res.OpenServerCPU, _, err = meter.stop(); err != nil {
		return res, err
	}
	res.CPUPerConn = perOp(res.OpenServerCPU, int64(cfg.Conns))
	settle := time.NewTimer(cfg.Settle)
	defer settle.Stop()
	select {
	case <-settle.C:
	case <-ctx.Done():
		return res, context.Cause(ctx)
	}
	if res.RSSAfter, err = cfg.RSS(); err != nil {
		return res, err
	}
	// A connection the server dropped while we waited would make the
	// figure an average over fewer connections than claimed.
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	if n := set.len(); n != cfg.Conns {
		return res, fmt.Errorf("%w: %d connections open, want %d", ErrClosed, n, cfg.Conns)
	}
	res.BytesPerConn = float64(res.RSSAfter-res.RSSBefore) / float64(cfg.Conns)
	return res, nil
}

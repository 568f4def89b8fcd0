package loadgen

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Fanout defaults.
const (
	DefaultSubscribers = 1000
	DefaultMessages    = 5000
	// DefaultWindow bounds messages published but not yet delivered to
	// every subscriber: enough to keep the node's fan-out busy, far below
	// any sane outgoing queue, so the bench never makes a subscriber look
	// like a slow consumer.
	DefaultWindow = 32
	// DefaultProbes is the number of one-at-a-time messages whose latency
	// is reported apart from the loaded phase's, which mostly measures the
	// pacing queue (Window × Subscribers deliveries ahead of each message).
	DefaultProbes = 100
	// DefaultSetupTimeout bounds connecting and subscribing everyone.
	DefaultSetupTimeout = 30 * time.Second
	// warmupInterval spaces warm-up publishes while subscriptions settle.
	warmupInterval = 20 * time.Millisecond
	// warmupSeq marks a warm-up message: subscribers note it, nobody counts
	// it as a delivery.
	warmupSeq = -1
)

// FanoutConfig configures Fanout. Zero fields take the defaults.
type FanoutConfig struct {
	// Target must speak the node's channel protocol. The publisher
	// connects to it, and so do the subscribers unless SubscriberTargets
	// is set.
	Target Target
	// SubscriberTargets, if set, are where the subscribers connect:
	// subscriber i to SubscriberTargets[i % len]. Nodes sharing channels
	// (through NATS) make the fan-out cross nodes.
	SubscriberTargets []Target
	// Channel all subscribers join. Default "fanout".
	Channel string
	// Subscribers is the number of subscribed connections. Default
	// DefaultSubscribers.
	Subscribers int
	// Messages is the most messages published. Default DefaultMessages.
	Messages int
	// Duration stops publishing early once elapsed (and, separately, the
	// probes). Default DefaultDuration.
	Duration time.Duration
	// Probes is the most messages published one at a time after the
	// loaded phase, for the latency of a message alone (no pacing queue).
	// Default DefaultProbes; negative sends none.
	Probes int
	// Window is the most messages in flight (published, not yet delivered
	// to every subscriber). Default DefaultWindow.
	Window int
	// DataBytes is the approximate size of each message's data value.
	// Default DefaultDataBytes.
	DataBytes int
	// Dialers bounds concurrent handshakes while connecting. Default
	// DefaultDialers.
	Dialers int
	// SetupTimeout bounds connecting, subscribing and the warm-up. Default
	// DefaultSetupTimeout.
	SetupTimeout time.Duration
	// ReplyTimeout bounds the wait for progress of any delivery while
	// publishing and draining. Default DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// CPU, if set, reads the servers' CPU time used so far (see ReadCPU):
	// once right before the first measured message is published and once
	// after the last one is delivered, for FanoutResult.ServerCPU.
	CPU func() (time.Duration, error)
}

func (c *FanoutConfig) fill() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	for _, t := range c.SubscriberTargets {
		if err := t.validate(); err != nil {
			return err
		}
	}
	if len(c.SubscriberTargets) == 0 {
		c.SubscriberTargets = []Target{c.Target}
	}
	if c.Probes < 0 {
		c.Probes = 0
	} else {
		c.Probes = withDefault(c.Probes, DefaultProbes)
	}
	if c.Subscribers < 0 || c.Messages < 0 || c.Duration < 0 || c.Window < 0 || c.DataBytes < 0 ||
		c.Dialers < 0 || c.SetupTimeout < 0 || c.ReplyTimeout < 0 {
		return fmt.Errorf("%w: fanout: negative count or duration", ErrConfig)
	}
	c.Channel = withDefault(c.Channel, "fanout")
	c.Subscribers = withDefault(c.Subscribers, DefaultSubscribers)
	c.Messages = withDefault(c.Messages, DefaultMessages)
	c.Duration = withDefault(c.Duration, DefaultDuration)
	c.Window = withDefault(c.Window, DefaultWindow)
	c.DataBytes = withDefault(c.DataBytes, DefaultDataBytes)
	c.Dialers = withDefault(c.Dialers, DefaultDialers)
	c.SetupTimeout = withDefault(c.SetupTimeout, DefaultSetupTimeout)
	c.ReplyTimeout = withDefault(c.ReplyTimeout, DefaultReplyTimeout)
	return nil
}

// FanoutResult is what Fanout measured. Latency is from writing a publish
// to the last subscriber receiving it: under load (Window messages in
// flight, so it includes waiting behind them) and for probes sent alone.
type FanoutResult struct {
	Target              string        `json:"target"`
	Subscribers         int           `json:"subscribers"`
	Messages            int64         `json:"messages"`
	Deliveries          int64         `json:"deliveries"`
	Window              int           `json:"window"`
	Elapsed             time.Duration `json:"elapsed_ns"`
	DeliveriesPerSecond float64       `json:"deliveries_per_second"`
	LatencyP50          time.Duration `json:"latency_p50_ns"`
	LatencyP99          time.Duration `json:"latency_p99_ns"`
	LatencyMax          time.Duration `json:"latency_max_ns"`
	Probes              int64         `json:"probes"`
	ProbeLatencyP50     time.Duration `json:"probe_latency_p50_ns"`
	ProbeLatencyP99     time.Duration `json:"probe_latency_p99_ns"`
	// ServerCPU is the servers' CPU time (FanoutConfig.CPU) over the loaded
	// phase, from the first measured publish to the last delivery;
	// CPUPerDelivery divides it by the deliveries, in nanoseconds. Zero
	// without a CPU reader.
	ServerCPU      time.Duration `json:"server_cpu_ns,omitempty"`
	CPUPerDelivery float64       `json:"server_cpu_ns_per_delivery,omitempty"`
	// LoadCPU is this process's CPU time over the same phase.
	LoadCPU time.Duration `json:"load_cpu_ns,omitempty"`
}

// fanState is shared by the publisher and every subscriber's read loop;
// everything but t0 (set before any loop starts) is atomic. Times are
// nanoseconds since t0 on the monotonic clock.
type fanState struct {
	t0        time.Time
	remaining []atomic.Int32 // per message: subscribers yet to receive it
	sentAt    []atomic.Int64
	doneAt    []atomic.Int64
	completed atomic.Int64 // messages every subscriber has received
	delivered atomic.Int64
	warmed    atomic.Int64 // subscribers that have seen a warm-up message
	progress  chan struct{}
}

func (s *fanState) signal() {
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

// Fanout connects cfg.Subscribers subscribers to one channel (on
// cfg.SubscriberTargets, else cfg.Target) and one publisher (not
// subscribed) to cfg.Target, then publishes up to cfg.Messages messages,
// keeping at most cfg.Window of them not yet delivered to everyone, and
// reports deliveries (subscribers × messages) per second and the
// publish-to-last-delivery latency; then it publishes up to cfg.Probes
// messages one at a time for the latency of a message alone. Every
// subscriber must receive every message exactly once. Every connection is
// closed before it returns.
func Fanout(ctx context.Context, cfg FanoutConfig) (FanoutResult, error) {
	if err := cfg.fill(); err != nil {
		return FanoutResult{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	set := newConnSet(cancel)
	res, err := fanout(ctx, cancel, cfg, set)
	if err != nil {
		err = rootCause(ctx, err)
	}
	if cerr := set.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("fanout %s: %w", cfg.Target.Name, err)
	}
	return res, nil
}

func fanout(ctx context.Context, cancel context.CancelCauseFunc, cfg FanoutConfig, set *connSet) (FanoutResult, error) {
	res := FanoutResult{Target: cfg.Target.Name, Subscribers: cfg.Subscribers, Window: cfg.Window}
	st := &fanState{
		// t0 is set before any read loop starts, so the loops read it
		// without synchronisation.
		t0:        time.Now(),
		remaining: make([]atomic.Int32, cfg.Messages+cfg.Probes),
		sentAt:    make([]atomic.Int64, cfg.Messages+cfg.Probes),
		doneAt:    make([]atomic.Int64, cfg.Messages+cfg.Probes),
		progress:  make(chan struct{}, 1),
	}
	for i := range st.remaining {
		st.remaining[i].Store(int32(cfg.Subscribers))
	}

	setupCtx, setupCancel := context.WithTimeoutCause(ctx, cfg.SetupTimeout,
		fmt.Errorf("%w: setup took longer than %s", ErrStalled, cfg.SetupTimeout))
	defer setupCancel()
	sub := subscribeFrame(cfg.Channel)
	err := openMany(setupCtx, cfg.SubscriberTargets, cfg.Subscribers, cfg.Dialers, set, func(i int) gws.Event {
		return &handler{onMessage: subscriberHook(cancel, st, cfg.Messages+cfg.Probes, i), onClose: set.closeHook()}
	})
	if err != nil {
		return res, err
	}
	set.mu.Lock()
	subs := set.conns
	set.mu.Unlock()
	for _, c := range subs {
		if err := c.WriteMessage(gws.OpcodeText, sub); err != nil {
			return res, fmt.Errorf("%w: subscribe: %v", ErrClosed, err)
		}
	}
	pub, err := dial(setupCtx, cfg.Target, &handler{onClose: set.closeHook()})
	if err != nil {
		return res, err
	}
	set.add(pub)

	prefix, pad := publishPrefix(cfg.Channel), padding(cfg.DataBytes)
	var frame []byte

	// Warm-up messages are published until every subscriber has seen one:
	// from then on every subscription is live and no measured message can
	// be missed. (The node also acknowledges each subscribe, but the
	// protocol does not promise it, so the bench does not rely on it.)
	ticker := time.NewTicker(warmupInterval)
	defer ticker.Stop()
	for st.warmed.Load() < int64(cfg.Subscribers) {
		frame = publishFrame(frame, prefix, warmupSeq, pad)
		if err := pub.WriteMessage(gws.OpcodeText, frame); err != nil {
			return res, fmt.Errorf("%w: publish: %v", ErrClosed, err)
		}
		select {
		case <-ticker.C:
		case <-setupCtx.Done():
			return res, context.Cause(setupCtx)
		}
	}

	timer := time.NewTimer(cfg.ReplyTimeout)
	defer timer.Stop()
	sent := 0
	waitProgress := func(done func() bool, what string) error {
		for !done() {
			timer.Reset(cfg.ReplyTimeout)
			select {
			case <-st.progress:
			case <-timer.C:
				if done() {
					return nil
				}
				return fmt.Errorf("%w: %s: %d of %d messages delivered to every subscriber, none in %s",
					ErrStalled, what, st.completed.Load(), sent, cfg.ReplyTimeout)
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return nil
	}
	// publish sends messages sent, sent+1, ... while fewer than n of this
	// phase are sent and the phase is younger than cfg.Duration, keeping
	// at most window of them in flight, then waits until every subscriber
	// has all of them.
	publish := func(what string, n, window int) error {
		start, phase := time.Now(), sent
		for sent-phase < n && time.Since(start) < cfg.Duration {
			k := sent
			if err := waitProgress(func() bool { return int64(k)-st.completed.Load() < int64(window) }, what); err != nil {
				return err
			}
			st.sentAt[k].Store(int64(time.Since(st.t0)))
			frame = publishFrame(frame, prefix, int64(k), pad)
			if err := pub.WriteMessage(gws.OpcodeText, frame); err != nil {
				return fmt.Errorf("%w: publish: %v", ErrClosed, err)
			}
			sent++
		}
		return waitProgress(func() bool { return st.completed.Load() == int64(sent) }, what+", draining")
	}

	meter := newCPUMeter(cfg.CPU)
	if err := meter.start(); err != nil {
		return res, err
	}
	if err := publish("publishing", cfg.Messages, cfg.Window); err != nil {
		return res, err
	}
	if res.ServerCPU, res.LoadCPU, err = meter.stop(); err != nil {
		return res, err
	}
	res.Messages = int64(sent)
	res.Deliveries = st.delivered.Load()
	if want := res.Messages * int64(cfg.Subscribers); res.Deliveries != want {
		return res, fmt.Errorf("%w: %d deliveries, want %d", ErrReply, res.Deliveries, want)
	}
	if err := publish("probing", cfg.Probes, 1); err != nil {
		return res, err
	}
	res.Probes = int64(sent) - res.Messages
	if want := int64(sent) * int64(cfg.Subscribers); st.delivered.Load() != want {
		return res, fmt.Errorf("%w: %d deliveries, want %d", ErrReply, st.delivered.Load(), want)
	}
	if err := context.Cause(ctx); err != nil {
		return res, err
	}

	lat := make([]time.Duration, sent)
	for k := range sent {
		lat[k] = time.Duration(st.doneAt[k].Load() - st.sentAt[k].Load())
	}
	if m := int(res.Messages); m > 0 {
		var last int64
		for k := range m {
			last = max(last, st.doneAt[k].Load())
		}
		res.Elapsed = time.Duration(last - st.sentAt[0].Load())
		res.DeliveriesPerSecond = float64(res.Deliveries) / res.Elapsed.Seconds()
		if res.Deliveries > 0 {
			res.CPUPerDelivery = float64(res.ServerCPU) / float64(res.Deliveries)
		}
		sorted := sortedCopy(lat[:m])
		res.LatencyP50 = exactQuantile(sorted, 0.50)
		res.LatencyP99 = exactQuantile(sorted, 0.99)
		res.LatencyMax = sorted[len(sorted)-1]
	}
	if res.Probes > 0 {
		sorted := sortedCopy(lat[res.Messages:])
		res.ProbeLatencyP50 = exactQuantile(sorted, 0.50)
		res.ProbeLatencyP99 = exactQuantile(sorted, 0.99)
	}
	return res, nil
}

// subscriberHook is subscriber i's message callback. It runs on that
// subscriber's read loop only, so warmed needs no synchronisation.
func subscriberHook(cancel context.CancelCauseFunc, st *fanState, messages, i int) func(b []byte) {
	warmed := false
	return func(b []byte) {
		seq, ok := parseSeq(b)
		switch {
		case !ok && (isAck(b) || isWelcome(b)):
		case !ok || seq < warmupSeq || seq >= int64(messages):
			cancel(fmt.Errorf("%w: subscriber %d: %s", ErrReply, i, describeFrame(b)))
		case seq == warmupSeq:
			if !warmed {
				warmed = true
				st.warmed.Add(1)
			}
		default:
			now := int64(time.Since(st.t0))
			st.delivered.Add(1)
			switch left := st.remaining[seq].Add(-1); {
			case left == 0:
				st.doneAt[seq].Store(now)
				st.completed.Add(1)
				st.signal()
			case left < 0:
				cancel(fmt.Errorf("%w: subscriber %d: message %d delivered twice", ErrReply, i, seq))
			}
		}
	}
}

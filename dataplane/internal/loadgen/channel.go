package loadgen

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// Channel defaults.
const (
	DefaultChannelSubscribers = 100_000
	// DefaultChannelOpenTimeout bounds opening every subscriber's
	// connection (100,000 handshakes at a few thousand a second).
	DefaultChannelOpenTimeout = 3 * time.Minute
	// DefaultSubscribeTimeout bounds the subscribe phase: far above the
	// issue's target of 1s, so a slow build is measured, not just failed;
	// a build still running then is reported with how far it got.
	DefaultSubscribeTimeout = time.Minute
	// DefaultDeliveryTimeout bounds one publish reaching every subscriber.
	DefaultDeliveryTimeout = time.Minute
	// channelWriters is how many goroutines send the subscribes, so the
	// server sees them as fast as one load CPU can write them.
	channelWriters = 16
	// portsPerSourceIP keeps each source address under the kernel's
	// ephemeral port range (32768-60999 by default: about 28,000 ports
	// from one address to one server port).
	portsPerSourceIP = 20_000
)

// ChannelConfig configures Channel. Zero fields take the defaults.
type ChannelConfig struct {
	// Target must speak the node's channel protocol and acknowledge each
	// subscribe ({"type":"subscribed"}), as the node does: the build time
	// is taken from the acknowledgements.
	Target Target
	// Channel all subscribers join. Default "channel-bench".
	Channel string
	// Subscribers is the number of connections subscribing. Default
	// DefaultChannelSubscribers. This process needs a descriptor for each
	// (Run raises its limit), and so does the server.
	Subscribers int
	// Dialers bounds concurrent handshakes. Default DefaultDialers.
	Dialers int
	// SourceIPs are the loopback addresses the connections come from,
	// connection i from SourceIPs[i % len]; default as many of
	// 127.0.1.1, 127.0.1.2, ... as keep each under portsPerSourceIP.
	SourceIPs []net.IP
	// Settle is the wait before each RSS reading. Default DefaultSettle.
	Settle time.Duration
	// OpenTimeout, SubscribeTimeout and DeliveryTimeout bound the three
	// phases. Defaults DefaultChannelOpenTimeout, DefaultSubscribeTimeout,
	// DefaultDeliveryTimeout.
	OpenTimeout      time.Duration
	SubscribeTimeout time.Duration
	DeliveryTimeout  time.Duration
	// RSS reads the server's resident set size (ReadRSS of its process).
	// Required.
	RSS func() (int64, error)
	// CPU, if set, reads the server's CPU time used so far.
	CPU func() (time.Duration, error)
}

func (c *ChannelConfig) fill() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	if c.RSS == nil {
		return fmt.Errorf("%w: channel: no RSS reader", ErrConfig)
	}
	if c.Subscribers < 0 || c.Dialers < 0 || c.Settle < 0 || c.OpenTimeout < 0 || c.SubscribeTimeout < 0 || c.DeliveryTimeout < 0 {
		return fmt.Errorf("%w: channel: negative count or duration", ErrConfig)
	}
	c.Channel = withDefault(c.Channel, "channel-bench")
	c.Subscribers = withDefault(c.Subscribers, DefaultChannelSubscribers)
	c.Dialers = withDefault(c.Dialers, DefaultDialers)
	c.Settle = withDefault(c.Settle, DefaultSettle)
	c.OpenTimeout = withDefault(c.OpenTimeout, DefaultChannelOpenTimeout)
	c.SubscribeTimeout = withDefault(c.SubscribeTimeout, DefaultSubscribeTimeout)
	c.DeliveryTimeout = withDefault(c.DeliveryTimeout, DefaultDeliveryTimeout)
	if len(c.SourceIPs) == 0 {
		c.SourceIPs = sourceIPs(c.Subscribers)
	}
	return nil
}

// sourceIPs is 127.0.1.1, 127.0.1.2, ...: enough loopback addresses for n
// connections to one server port (Linux answers the whole of 127/8; the
// bench's other scenarios dial from 127.0.0.1, whose ports may still be in
// TIME_WAIT).
func sourceIPs(n int) []net.IP {
	k := min(max(1, (n+portsPerSourceIP-1)/portsPerSourceIP), 254)
	ips := make([]net.IP, k)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 1, byte(i+1))
	}
	return ips
}

// ChannelResult is what Channel measured. A phase that did not finish
// within its timeout is reported with how far it got (Subscribed,
// Delivered) and the figures after it are zero.
type ChannelResult struct {
	Target      string `json:"target"`
	Subscribers int    `json:"subscribers"`
	// Requested is the number of subscribers asked for, and Limited says
	// why Subscribers is fewer (set by Run, from the descriptor limit).
	Requested   int           `json:"requested,omitempty"`
	Limited     string        `json:"limited,omitempty"`
	OpenElapsed time.Duration `json:"open_elapsed_ns"`
	// RSSOpen is the server's RSS with every connection open and none
	// subscribed; RSSSubscribed with every one subscribed.
	RSSOpen       int64 `json:"rss_open_bytes"`
	RSSSubscribed int64 `json:"rss_subscribed_bytes,omitempty"`
	// Subscribed counts the acknowledgements received; SubscribeElapsed
	// is from the first subscribe written to the last acknowledgement
	// (or to the timeout, when SubscribeComplete is false).
	Subscribed        int64         `json:"subscribed"`
	SubscribeComplete bool          `json:"subscribe_complete"`
	SubscribeElapsed  time.Duration `json:"subscribe_elapsed_ns"`
	// BytesPerSubscription is (RSSSubscribed − RSSOpen) / Subscribers.
	BytesPerSubscription float64 `json:"bytes_per_subscription,omitempty"`
	// SubscribeServerCPU is the server's CPU time over the subscribe
	// phase, CPUPerSubscription per subscription in nanoseconds.
	SubscribeServerCPU time.Duration `json:"subscribe_server_cpu_ns,omitempty"`
	CPUPerSubscription float64       `json:"server_cpu_ns_per_subscription,omitempty"`
	// Delivered counts the subscribers that received the one publish;
	// DeliveryElapsed is from writing it to the last delivery.
	Delivered        int64         `json:"delivered"`
	DeliveryComplete bool          `json:"delivery_complete"`
	DeliveryElapsed  time.Duration `json:"delivery_elapsed_ns,omitempty"`
	// PublishServerCPU is the server's CPU time from the publish to the
	// last delivery, CPUPerDelivery per subscriber in nanoseconds.
	PublishServerCPU time.Duration `json:"publish_server_cpu_ns,omitempty"`
	CPUPerDelivery   float64       `json:"server_cpu_ns_per_delivery,omitempty"`
}

// chanState is shared by every subscriber's read loop (one handler for
// all: 100,000 closures would be memory of the bench's own). Times are
// nanoseconds since t0 on the monotonic clock.
type chanState struct {
	t0          time.Time
	n           int64
	acked       atomic.Int64
	lastAck     atomic.Int64
	delivered   atomic.Int64
	lastDeliver atomic.Int64
	progress    chan struct{}
	fail        context.CancelCauseFunc
}

func (s *chanState) signal() {
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

func (s *chanState) onMessage(b []byte) {
	now := int64(time.Since(s.t0))
	seq, ok := parseSeq(b)
	switch {
	case !ok && isWelcome(b):
	case !ok && isAck(b):
		if s.acked.Add(1) == s.n {
			s.lastAck.Store(now)
			s.signal()
		}
	case !ok || seq != 0:
		s.fail(fmt.Errorf("%w: channel subscriber: %s", ErrReply, describeFrame(b)))
	default:
		switch d := s.delivered.Add(1); {
		case d == s.n:
			s.lastDeliver.Store(now)
			s.signal()
		case d > s.n:
			s.fail(fmt.Errorf("%w: channel: %d deliveries of one publish to %d subscribers", ErrReply, d, s.n))
		}
	}
}

// Channel opens cfg.Subscribers connections (reading the server's RSS
// once they are open and settled), subscribes every one to cfg.Channel at
// once and times the build from the first subscribe written to the last
// acknowledgement (reading the RSS again once settled: the memory of the
// subscriptions alone), then publishes one message from one more
// connection and times it to the last subscriber's delivery. Every
// connection is closed before it returns.
func Channel(ctx context.Context, cfg ChannelConfig) (ChannelResult, error) {
	if err := cfg.fill(); err != nil {
		return ChannelResult{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	set := newConnSet(cancel)
	res, err := channel(ctx, cancel, cfg, set)
	if err != nil {
		err = rootCause(ctx, err)
	}
	if cerr := set.closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("channel %s: %w", cfg.Target.Name, err)
	}
	return res, nil
}

func channel(ctx context.Context, cancel context.CancelCauseFunc, cfg ChannelConfig, set *connSet) (ChannelResult, error) {
	res := ChannelResult{Target: cfg.Target.Name, Subscribers: cfg.Subscribers}
	st := &chanState{t0: time.Now(), n: int64(cfg.Subscribers), progress: make(chan struct{}, 1), fail: cancel}
	h := &handler{onMessage: st.onMessage, onClose: set.closeHook()}
	local := make([]net.Addr, len(cfg.SourceIPs))
	for i, ip := range cfg.SourceIPs {
		local[i] = &net.TCPAddr{IP: ip}
	}

	openCtx, openCancel := context.WithTimeoutCause(ctx, cfg.OpenTimeout,
		fmt.Errorf("%w: opening %d connections took longer than %s", ErrStalled, cfg.Subscribers, cfg.OpenTimeout))
	defer openCancel()
	start := time.Now()
	err := openManyFrom(openCtx, []Target{cfg.Target}, cfg.Subscribers, cfg.Dialers, set,
		func(int) gws.Event { return h }, func(i int) net.Addr { return local[i%len(local)] })
	if err != nil {
		return res, err
	}
	res.OpenElapsed = time.Since(start)
	pub, err := dial(openCtx, cfg.Target, &handler{onClose: set.closeHook()})
	if err != nil {
		return res, err
	}
	set.add(pub)
	set.mu.Lock()
	subs := set.conns[:cfg.Subscribers]
	set.mu.Unlock()
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return res, err
	}
	if res.RSSOpen, err = cfg.RSS(); err != nil {
		return res, err
	}

	// Subscribe: every connection at once, from channelWriters goroutines.
	meter := newCPUMeter(cfg.CPU)
	if err := meter.start(); err != nil {
		return res, err
	}
	frame := subscribeFrame(cfg.Channel)
	sent := time.Now()
	var writers sync.WaitGroup
	for w := range channelWriters {
		writers.Go(func() {
			for i := w; i < len(subs) && ctx.Err() == nil; i += channelWriters {
				if err := subs[i].WriteMessage(gws.OpcodeText, frame); err != nil {
					cancel(fmt.Errorf("%w: subscribe: %v", ErrClosed, err))
					return
				}
			}
		})
	}
	writers.Wait()
	if res.SubscribeComplete, err = waitFor(ctx, st, cfg.SubscribeTimeout, sent, func() bool { return st.acked.Load() >= st.n }); err != nil {
		return res, err
	}
	res.Subscribed = st.acked.Load()
	if !res.SubscribeComplete {
		// The server is still building; what it built so far is the
		// figure. No publish: it would measure a partial channel.
		res.SubscribeElapsed = cfg.SubscribeTimeout
		return res, nil
	}
	res.SubscribeElapsed = time.Duration(st.lastAck.Load()) - sent.Sub(st.t0)
	if res.SubscribeServerCPU, _, err = meter.stop(); err != nil {
		return res, err
	}
	res.CPUPerSubscription = perOp(res.SubscribeServerCPU, st.n)
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return res, err
	}
	if res.RSSSubscribed, err = cfg.RSS(); err != nil {
		return res, err
	}
	res.BytesPerSubscription = float64(res.RSSSubscribed-res.RSSOpen) / float64(cfg.Subscribers)

	// One publish, delivered to everyone.
	if err := meter.start(); err != nil {
		return res, err
	}
	published := time.Now()
	if err := pub.WriteMessage(gws.OpcodeText, publishFrame(nil, publishPrefix(cfg.Channel), 0, padding(DefaultDataBytes))); err != nil {
		return res, fmt.Errorf("%w: publish: %v", ErrClosed, err)
	}
	if res.DeliveryComplete, err = waitFor(ctx, st, cfg.DeliveryTimeout, published, func() bool { return st.delivered.Load() >= st.n }); err != nil {
		return res, err
	}
	res.Delivered = st.delivered.Load()
	if !res.DeliveryComplete {
		res.DeliveryElapsed = cfg.DeliveryTimeout
		return res, nil
	}
	res.DeliveryElapsed = time.Duration(st.lastDeliver.Load()) - published.Sub(st.t0)
	if res.PublishServerCPU, _, err = meter.stop(); err != nil {
		return res, err
	}
	res.CPUPerDelivery = perOp(res.PublishServerCPU, st.n)
	return res, context.Cause(ctx)
}

// waitFor waits until done, reporting false if timeout (from since)
// passes first; an error only when ctx ends.
func waitFor(ctx context.Context, st *chanState, timeout time.Duration, since time.Time, done func() bool) (bool, error) {
	timer := time.NewTimer(time.Until(since.Add(timeout)))
	defer timer.Stop()
	for !done() {
		select {
		case <-st.progress:
		case <-timer.C:
			return done(), nil
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	}
	return true, nil
}

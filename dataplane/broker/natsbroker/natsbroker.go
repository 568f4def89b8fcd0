package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/api/subject"
	"github.com/wsfleet/wsfleet/dataplane/broker"
)

// numShards spreads Subscribe/Unsubscribe over independent mutexes, as in
// broker.InProcess.
const numShards = 64

// closeWait bounds how long Close waits for the client library to report
// the connection closed.
const closeWait = 5 * time.Second

// Broker is the NATS broker; see the package documentation. Its zero value
// is not usable; use New.
type Broker struct {
	cfg   Config
	nc    *nats.Conn
	local *broker.InProcess
	seed  maphash.Seed
	// shards serialize the subscription changes of a channel, so the first
	// local subscriber subscribes on NATS and the last one unsubscribes
	// exactly once.
	shards [numShards]shard
	// subs maps a subject to its *natsSub: written under the channel's
	// shard mutex, read without a lock by the dispatchers.
	subs  sync.Map
	nsubs atomic.Int64
	// dropped accumulates the drops of NATS subscriptions already gone.
	dropped atomic.Int64

	// recv takes every received message from the client library; the
	// pump routes it to the inbox of the channel's dispatcher, within the
	// bounds, and the dispatcher delivers it.
	recv    chan *nats.Msg
	inboxes []*inbox
	// queued and queuedBytes are what the inboxes hold (Config.QueueLen,
	// Config.QueueBytes); overflow counts what the pump dropped over them.
	queued, queuedBytes, overflow atomic.Int64
	stop                          chan struct{}
	workers                       sync.WaitGroup
	// connClosed is closed by the client's closed handler, the last
	// callback it makes.
	connClosed chan struct{}
	closed     atomic.Bool
	// redialErr is the last failed redial's error since the connection was
	// last up: a redial failing for a new reason is logged at warning.
	redialErr atomic.Pointer[error]

	m *metrics
}

func errText(err *error) string {
	if err == nil || *err == nil {
		return ""
	}
	return (*err).Error()
}

type shard struct {
	mu sync.Mutex
	_  [56]byte // one cache line each, as in broker.InProcess
}

// natsSub is the node's one NATS subscription for a channel.
type natsSub struct {
	channel string
	sub     *nats.Subscription
	// ready is closed once the server confirmed the subscription (or
	// confirming it was given up): later local subscribers of the channel
	// wait for it too before their "subscribed".
	ready chan struct{}
}

var _ broker.Broker = (*Broker)(nil)

// New validates cfg, connects to NATS and starts the dispatchers. A server
// that cannot be reached is not an error: the broker keeps dialling in the
// background (publishes get broker.ErrNotConnected meanwhile), so a node
// starts while NATS is down. Bad credentials or TLS files are an error.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:        cfg,
		local:      broker.NewInProcess(),
		seed:       maphash.MakeSeed(),
		stop:       make(chan struct{}),
		connClosed: make(chan struct{}),
		recv:       make(chan *nats.Msg, handOffLen),
		inboxes:    make([]*inbox, cfg.Dispatchers),
	}
	for i := range b.inboxes {
		b.inboxes[i] = newInbox()
	}
	log := cfg.Log
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		// Never give up: a node outlives any NATS outage.
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectJitter(cfg.ReconnectWait, cfg.ReconnectWait),
		nats.PingInterval(cfg.PingInterval),
		nats.MaxPingsOutstanding(cfg.MaxPingsOut),
		// A write to a stalled server holds the client's lock, and with it
		// every publish: bound it, and redial at once when it fails.
		nats.FlusherTimeout(cfg.WriteTimeout),
		nats.ReconnectOnFlusherError(),
		// No buffering while disconnected: a publish either goes to a
		// connected server now or is refused (ErrNotConnected), instead of
		// being held for a reconnect that may come long after the client
		// was told nothing.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.redialErr.Store(nil)
			log.WithField("nats_url", nc.ConnectedUrlRedacted()).Info("NATS connected")
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if b.closed.Load() {
				return
			}
			e := log
			if err != nil {
				e = e.WithError(err)
			}
			e.Warn("NATS disconnected: publishes are answered unavailable until it is back; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.redialErr.Store(nil)
			log.WithFields(logrus.Fields{"nats_url": nc.ConnectedUrlRedacted(), "subscriptions": b.nsubs.Load()}).
				Info("NATS reconnected: channel subscriptions restored")
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// Redials never stop, so each failure is not news; a new
			// reason (refused, then an authorization violation) is.
			if prev := b.redialErr.Swap(&err); errText(prev) != errText(&err) {
				log.WithError(err).Warn("NATS redial failed; retrying")
				return
			}
			log.WithError(err).Debug("NATS redial failed; retrying")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			e := log.WithError(err)
			if sub != nil {
				e = e.WithField("subject", sub.Subject)
			}
			e.Warn("NATS error")
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.connClosed) }),
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.CertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	nc, err := nats.Connect(cfg.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: connect %s: %w", cfg.URLs, err)
	}
	b.nc = nc
	if !nc.IsConnected() {
		log.WithField("nats_urls", cfg.URLs).Warn("NATS not reachable yet: publishes are answered unavailable until it is; dialling")
	}
	b.m = newMetrics(b, cfg.Registerer, cfg.ConstLabels)
	b.workers.Add(1 + len(b.inboxes))
	go b.pump()
	for _, in := range b.inboxes {
		go b.dispatch(in)
	}
	return b, nil
}

func (b *Broker) shard(channel string) *shard {
	return &b.shards[maphash.String(b.seed, channel)%numShards]
}

// Subscribe adds s to channel; see broker.Broker. The channel's first local
// subscriber subscribes the node on NATS and waits (at most
// Config.SubscribeTimeout) for the server to confirm it, so a message
// published anywhere after the client's "subscribed" reaches it. While
// NATS is down the subscription is registered and takes effect when the
// connection is back.
func (b *Broker) Subscribe(channel string, s broker.Subscriber) (bool, error) {
	switch {
	case channel == "":
		return false, broker.ErrEmptyChannel
	case s == nil:
		return false, broker.ErrNilSubscriber
	}
	sh := b.shard(channel)
	sh.mu.Lock()
	// Checked under the shard lock: Close passes through every shard lock
	// after setting the flag.
	if b.closed.Load() {
		sh.mu.Unlock()
		return false, broker.ErrClosed
	}
	added, err := b.local.Subscribe(channel, s)
	if err != nil || !added {
		sh.mu.Unlock()
		return added, err
	}
	subj := subject.Channel(b.cfg.Pool, channel)
	if v, ok := b.subs.Load(subj); ok {
		sh.mu.Unlock()
		b.waitReady(v.(*natsSub))
		return true, nil
	}
	sub, err := b.nc.ChanSubscribe(subj, b.recv)
	if err != nil {
		b.local.Unsubscribe(channel, s)
		sh.mu.Unlock()
		return false, b.subscribeErr(err)
	}
	ns := &natsSub{channel: channel, sub: sub, ready: make(chan struct{})}
	b.subs.Store(subj, ns)
	b.nsubs.Add(1)
	sh.mu.Unlock()
	// Outside the lock: other channels of the shard do not wait for this
	// round trip.
	if b.nc.IsConnected() {
		if err := b.nc.FlushTimeout(b.cfg.SubscribeTimeout); err != nil {
			b.cfg.Log.WithError(err).WithField("subject", subj).Debug("NATS did not confirm a subscription in time; it stays registered")
		}
	}
	close(ns.ready)
	return true, nil
}

func (b *Broker) waitReady(ns *natsSub) {
	select {
	case <-ns.ready:
		return
	default:
	}
	t := time.NewTimer(b.cfg.SubscribeTimeout)
	defer t.Stop()
	select {
	case <-ns.ready:
	case <-t.C:
	}
}

func (b *Broker) subscribeErr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return broker.ErrClosed
	}
	return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
}

// Unsubscribe removes s from channel; see broker.Broker. The channel's last
// local subscriber unsubscribes the node on NATS.
func (b *Broker) Unsubscribe(channel string, s broker.Subscriber) bool {
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !b.local.Unsubscribe(channel, s) {
		return false
	}
	if b.local.Subscribers(channel) > 0 {
		return true
	}
	if v, ok := b.subs.LoadAndDelete(subject.Channel(b.cfg.Pool, channel)); ok {
		b.nsubs.Add(-1)
		b.retire(v.(*natsSub))
	}
	return true
}

// retire unsubscribes on NATS, keeping the subscription's drop count.
func (b *Broker) retire(ns *natsSub) {
	if d, err := ns.sub.Dropped(); err == nil {
		b.dropped.Add(int64(d))
	}
	// Fails only when the connection is closed, which drops it anyway.
	_ = ns.sub.Unsubscribe()
}

// Publish sends data to the channel's subject; see broker.Broker. It
// returns delivered 0: every node, this one included, delivers what NATS
// hands it, so the node's own subscribers get the message exactly once,
// through NATS like everyone else's.
//
// It never waits for a reconnect: while the connection is down it fails at
// once with broker.ErrNotConnected. Connected, it appends to the client's
// buffer; only when that buffer is full does it write to the server
// itself, for at most Config.WriteTimeout (broker.ErrTimeout).
// PublishLocal implements broker.Broker: to this node's subscribers only,
// as a message from NATS would reach them; nothing goes to NATS.
func (b *Broker) PublishLocal(channel string, data []byte) (int, error) {
	return b.local.PublishLocal(channel, data)
}

func (b *Broker) Publish(ctx context.Context, channel string, data []byte) (int, error) {
	if b.closed.Load() {
		return 0, broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !b.nc.IsConnected() {
		return 0, broker.ErrNotConnected
	}
	if err := b.nc.Publish(subject.Channel(b.cfg.Pool, channel), data); err != nil {
		return 0, b.publishErr(err, len(data))
	}
	return 0, nil
}

func (b *Broker) publishErr(err error, size int) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %d bytes; the NATS server takes at most %d", broker.ErrTooBig, size, b.nc.MaxPayload())
	case errors.Is(err, nats.ErrConnectionClosed) && b.closed.Load():
		return broker.ErrClosed
	case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting):
		// The connection went down between the check and the publish.
		return broker.ErrNotConnected
	case errors.Is(err, os.ErrDeadlineExceeded):
		return broker.ErrTimeout
	}
	return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
}

// pump routes every received message to its channel's inbox (one subject,
// one inbox: its messages stay in order) until Close, dropping what is over
// the queue bounds. It is the only writer of queued and queuedBytes' growth,
// so checking and adding need no lock.
func (b *Broker) pump() {
	defer b.workers.Done()
	for {
		select {
		case <-b.stop:
			return
		case m := <-b.recv:
			size := msgSize(m)
			if b.queued.Load() >= int64(b.cfg.QueueLen) || b.queuedBytes.Load()+size > b.cfg.QueueBytes {
				b.overflow.Add(1)
				continue
			}
			b.queued.Add(1)
			b.queuedBytes.Add(size)
			b.inboxes[maphash.String(b.seed, m.Subject)%uint64(len(b.inboxes))].push(m)
		}
	}
}

// dispatch delivers what the pump queues in in until Close.
func (b *Broker) dispatch(in *inbox) {
	defer b.workers.Done()
	var spare []*nats.Msg
	for {
		select {
		case <-b.stop:
			return
		case <-in.wake:
		}
		batch := in.take(spare)
		for i, m := range batch {
			b.deliver(m)
			b.queued.Add(-1)
			b.queuedBytes.Add(-msgSize(m))
			batch[i] = nil
		}
		spare = batch
	}
}

func (b *Broker) deliver(m *nats.Msg) {
	b.m.received.Inc()
	v, ok := b.subs.Load(m.Subject)
	if !ok {
		return // the channel's last local subscriber left meanwhile
	}
	// Anyone allowed to publish on the subject can put anything there
	// (api/subject invites backends to), and the payload goes into text
	// frames where a browser fails the connection on invalid UTF-8.
	if !validData(m.Data) {
		b.m.invalid.Inc()
		return
	}
	defer func() {
		// A Deliver that panics is a node bug; it costs this message, not
		// the dispatcher (and with it the process).
		if p := recover(); p != nil {
			b.cfg.Log.WithField("panic", fmt.Sprint(p)).Error("delivering a NATS message panicked")
		}
	}()
	b.m.deliveries.Add(float64(b.local.Fanout(v.(*natsSub).channel, m.Data)))
}

// validData: a JSON value in valid UTF-8, as a client's "data" is.
func validData(d []byte) bool {
	return utf8.Valid(d) && json.Valid(d)
}

// Close unsubscribes the node from NATS, closes the connection (flushing
// what is buffered) and stops the dispatchers; see broker.Broker.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return broker.ErrClosed
	}
	// Wait out subscription changes that took their shard lock before the
	// flag was set; every later one sees the flag.
	for i := range b.shards {
		b.shards[i].mu.Lock()
		b.shards[i].mu.Unlock() // empty on purpose: a barrier
	}
	b.subs.Range(func(k, v any) bool {
		b.subs.Delete(k)
		b.nsubs.Add(-1)
		if d, err := v.(*natsSub).sub.Dropped(); err == nil {
			b.dropped.Add(int64(d))
		}
		return true
	})
	b.nc.Close()
	select {
	case <-b.connClosed:
	case <-time.After(closeWait):
	}
	close(b.stop)
	b.workers.Wait()
	return b.local.Close()
}

// Connected reports whether the broker is connected to a NATS server now.
func (b *Broker) Connected() bool { return b.nc.IsConnected() }

// Subscriptions is the number of channels the node is subscribed to on
// NATS: one per channel with a local subscriber.
func (b *Broker) Subscriptions() int { return int(b.nsubs.Load()) }

// Subscribers returns how many local subscribers channel has.
func (b *Broker) Subscribers(channel string) int { return b.local.Subscribers(channel) }

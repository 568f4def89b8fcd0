package deliveryclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/internal/backoff"
)

// Backoff defaults, the policy client's.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// Config configures a Client. Conn, NodeID and Deliver are required.
type Config struct {
	// Conn reaches the control plane, with the node's credential
	// (sdk/admin.Dial(...).Conn()); the caller dials and closes it.
	Conn *grpc.ClientConn
	// NodeID and Pool are the node's, as in its watch hello. Pool defaults
	// to policy.DefaultPool.
	NodeID, Pool string
	// Deliver is called with each delivery, one at a time, on Run's
	// goroutine: a valid channel name and one compact JSON value in UTF-8.
	// data is the caller's to keep. It must not block for long (see the
	// package doc).
	Deliver func(channel string, data []byte)
	// MinBackoff and MaxBackoff bound the sleep between attempts.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Log receives a line per connect, disconnect and dropped delivery;
	// retries go to debug. Default: logrus's standard logger.
	Log logrus.FieldLogger
}

// Status is what the client has seen so far.
type Status struct {
	// Connected: a stream is attached now (the control plane answered).
	Connected bool
	// Dials counts the streams attempted.
	Dials uint64
	// Delivered counts deliveries handed to Deliver; Dropped those refused
	// as invalid.
	Delivered, Dropped uint64
	// LastError is why the last stream ended.
	LastError string
}

// Client receives one node's deliveries.
type Client struct {
	cfg     Config
	log     logrus.FieldLogger
	nodes   wsfleetv1.NodeServiceClient
	running atomic.Bool

	mu     sync.Mutex
	status Status
}

// New checks cfg and returns a Client; Run starts it.
func New(cfg Config) (*Client, error) {
	if cfg.Pool == "" {
		cfg.Pool = policy.DefaultPool
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	switch {
	case cfg.Conn == nil:
		return nil, fmt.Errorf("%w: Conn is required", ErrConfig)
	case cfg.NodeID == "":
		return nil, fmt.Errorf("%w: NodeID is required", ErrConfig)
	case cfg.Deliver == nil:
		return nil, fmt.Errorf("%w: Deliver is required", ErrConfig)
	case cfg.MinBackoff < 0 || cfg.MaxBackoff < cfg.MinBackoff:
		return nil, fmt.Errorf("%w: backoff bounds %s..%s", ErrConfig, cfg.MinBackoff, cfg.MaxBackoff)
	}
	if err := policy.ValidatePoolName(cfg.Pool); err != nil {
		return nil, fmt.Errorf("%w: pool: %v", ErrConfig, err)
	}
	return &Client{
		cfg:   cfg,
		log:   cfg.Log.WithFields(logrus.Fields{"node_id": cfg.NodeID, "pool": cfg.Pool}),
		nodes: wsfleetv1.NewNodeServiceClient(cfg.Conn),
	}, nil
}

// Status returns a copy of the client's status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Run receives until ctx ends, reconnecting with backoff, and returns
// ctx.Err(); ErrRunning if another Run of this Client is going.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	attempt := 0
	failing := false
	for {
		healthy, connected, err := c.streamOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.mu.Lock()
		c.status.LastError = err.Error()
		c.mu.Unlock()
		if healthy {
			attempt = 0
		}
		ceiling := backoff.Ceiling(c.cfg.MinBackoff, c.cfg.MaxBackoff, attempt)
		if status.Code(err) == codes.Unimplemented {
			// A control plane older than the node: it will not have the
			// call on the next try either.
			ceiling = c.cfg.MaxBackoff
		}
		sleep := backoff.FullJitter(ceiling)
		attempt = min(attempt+1, 64)
		entry := c.log.WithError(err).WithField("retry_in", sleep.Round(time.Millisecond).String())
		switch {
		case connected:
			failing = false
			entry.Info("delivery stream from the control plane ended")
		case !failing:
			failing = true
			entry.Warn("cannot open the delivery stream; backend publishes do not reach this node until it is back; retrying with backoff")
		default:
			entry.WithField("attempt", attempt).Debug("delivery stream attempt failed")
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// streamOnce runs one stream to its end. healthy: it delivered something
// or lasted longer than MaxBackoff. connected: the control plane attached
// it (headers).
func (c *Client) streamOnce(ctx context.Context) (healthy, connected bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.status.Dials++
	c.mu.Unlock()
	start := time.Now()
	defer func() {
		if connected {
			c.setConnected(false)
		}
		healthy = healthy || time.Since(start) > c.cfg.MaxBackoff
	}()
	st, err := c.nodes.Deliveries(sctx, &wsfleetv1.DeliveriesRequest{NodeId: c.cfg.NodeID, Pool: c.cfg.Pool})
	if err != nil {
		return false, false, err
	}
	// Headers come once the control plane attached the stream; nil
	// metadata means it ended first (Recv has the status).
	if md, _ := st.Header(); md != nil {
		connected = true
		c.setConnected(true)
		c.log.Info("receiving backend publishes from the control plane")
	}
	droppedLogged := false
	for {
		d, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return healthy, connected, ErrStreamEnded
		}
		if err != nil {
			return healthy, connected, err
		}
		healthy = true
		if err := check(d); err != nil {
			c.mu.Lock()
			c.status.Dropped++
			c.mu.Unlock()
			// One line per stream: a control plane that sends garbage
			// must not flood the node's log.
			if !droppedLogged {
				droppedLogged = true
				c.log.WithError(err).Warn("dropped an invalid delivery from the control plane (further ones on this stream are only counted)")
			}
			continue
		}
		c.cfg.Deliver(d.GetChannel(), d.GetData())
		c.mu.Lock()
		c.status.Delivered++
		c.mu.Unlock()
	}
}

func check(d *wsfleetv1.DeliveriesResponse) error {
	if err := channel.ValidateName(d.GetChannel()); err != nil {
		return err
	}
	return channel.CheckData(d.GetData())
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.status.Connected = v
	c.mu.Unlock()
}

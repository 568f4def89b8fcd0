package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/sdk/wsclient"
)

// stormSettle is the wait between the last client connecting and the
// restart: past wsclient's StableAfter, so every client's backoff has
// started over, as in a fleet that has been up a while.
const stormSettle = wsclient.DefaultStableAfter + time.Second

// Reconnect-storm defaults (issue 11).
const (
	// DefaultStormClients is the clients connected when the node restarts.
	DefaultStormClients = 5000
	// DefaultStormRate and DefaultStormBurst are the scenario's policy:
	// limits.handshakes_per_second and handshake_burst. The peak the node
	// sees must stay within their sum.
	DefaultStormRate  = 1000
	DefaultStormBurst = 1000
	// DefaultStormTimeout bounds connecting every client, and again every
	// client coming back after the restart.
	DefaultStormTimeout = 2 * time.Minute
	// stormSample is the window the node's handshake counters are read
	// over: the peak is the most handshakes in one such window, per second.
	stormSample = time.Second
	// stormClosers bounds the goroutines closing the clients at the end.
	stormClosers = 64
	// restartedSuffix is added to the node id of the restarted node, so a
	// client's connected event says which node welcomed it.
	restartedSuffix = "-restarted"
)

// HandshakeCount is a node's handshake counters
// (wsfleet_node_handshakes_total): accepted, and rejected of any class.
type HandshakeCount struct {
	Accepted, Rejected float64
}

// StormConfig configures Storm. Target and Restart are required.
type StormConfig struct {
	// Target is the node the clients connect to (and reconnect to at the
	// same address after the restart).
	Target Target
	// NodeID is the node's id in its welcome frame; the restarted node's
	// is NodeID + "-restarted" (Restart must start it so).
	NodeID string
	// Clients is the number of sdk/wsclient clients. Default
	// DefaultStormClients. This process and the node need a descriptor
	// for each.
	Clients int
	// Rate and Burst are the node's handshake limits, for the report.
	Rate, Burst int
	// MinBackoff and MaxBackoff are the clients'; zero takes wsclient's
	// defaults (500ms, 20s), what an app gets.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds the initial connect and the recovery. Default
	// DefaultStormTimeout.
	Timeout time.Duration
	// Restart kills the node and starts it again at the same address,
	// returning once it serves, with a reader of the new node's handshake
	// counters.
	Restart func(ctx context.Context) (func() (HandshakeCount, error), error)
	// Progress receives a line per phase; nil discards them.
	Progress func(format string, args ...any)
}

func (c *StormConfig) fill() error {
	if err := c.Target.validate(); err != nil {
		return err
	}
	if c.Restart == nil {
		return fmt.Errorf("%w: storm: Restart is required", ErrConfig)
	}
	if c.Clients < 0 || c.Timeout < 0 || c.Rate < 0 || c.Burst < 0 {
		return fmt.Errorf("%w: storm: negative count or duration", ErrConfig)
	}
	c.Clients = withDefault(c.Clients, DefaultStormClients)
	c.Timeout = withDefault(c.Timeout, DefaultStormTimeout)
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
	return nil
}

// StormResult is what Storm measured.
type StormResult struct {
	Clients int `json:"clients"`
	// Rate and Burst are the node's handshake limits; Limit their sum,
	// the most handshakes the node may accept in one second.
	Rate  int `json:"policy_handshakes_per_second"`
	Burst int `json:"policy_handshake_burst"`
	// Connected is how long connecting every client took at the start
	// (the same policy: a cold start is a storm too).
	Connected time.Duration `json:"initial_connect_ns"`
	// Down is from killing the node to the new one serving.
	Down time.Duration `json:"down_ns"`
	// Back counts the clients the restarted node welcomed; AllBack says
	// every client did, BackAfter when the last one did, from the kill.
	Back      int           `json:"back"`
	AllBack   bool          `json:"all_back"`
	BackAfter time.Duration `json:"back_after_ns"`
	// PeakAccepted is the most handshakes per second the restarted node
	// accepted over one window (about a second); PeakAttempts the most it
	// saw (accepted and refused: 429s, 503s). PerSecond is the accepted
	// ones per second, window by window.
	PeakAccepted float64   `json:"peak_accepted_per_second"`
	PeakAttempts float64   `json:"peak_attempts_per_second"`
	PerSecond    []float64 `json:"accepted_per_second"`
	// Rejected counts the handshakes the restarted node refused until
	// every client was back.
	Rejected float64 `json:"rejected"`
	// GaveUp counts clients that stopped reconnecting (a terminal
	// failure); must be 0.
	GaveUp int `json:"gave_up"`
	// Within: no window had more accepted handshakes than the node's
	// token bucket lets through one (Rate per second of it, plus Burst).
	Within bool `json:"within_limit"`
}

// Limit is the most handshakes per second the policy lets through.
func (r *StormResult) Limit() int { return r.Rate + r.Burst }

// stormState is what the clients' event callbacks count (they run on each
// client's own goroutine and must not block).
type stormState struct {
	restarted string
	connected atomic.Int64
	back      atomic.Int64
	gaveUp    atomic.Int64
	// lastBack is when the last client came back, in Unix nanoseconds.
	lastBack atomic.Int64
	progress chan struct{}
}

func (s *stormState) signal() {
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

// Storm connects cfg.Clients sdk/wsclient clients to the node, restarts
// the node (cfg.Restart) once all are connected and measures the recovery:
// how long until every client is back, the peak handshakes per second the
// new node sees, and how many clients gave up. Every client is closed
// before it returns.
func Storm(ctx context.Context, cfg StormConfig) (StormResult, error) {
	if err := cfg.fill(); err != nil {
		return StormResult{}, err
	}
	res := StormResult{Clients: cfg.Clients, Rate: cfg.Rate, Burst: cfg.Burst}
	st := &stormState{restarted: cfg.NodeID + restartedSuffix, progress: make(chan struct{}, 1)}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	clients := make([]*wsclient.Client, 0, cfg.Clients)
	defer func() { closeAll(clients) }()
	for range cfg.Clients {
		var first, back atomic.Bool
		c, err := wsclient.New(wsclient.Config{
			URL: cfg.Target.URL, Origin: cfg.Target.Origin, MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff, Log: log,
			OnEvent: func(ev wsclient.Event) {
				switch {
				case ev.State == wsclient.StateConnected:
					if !first.Swap(true) {
						st.connected.Add(1)
					}
					if ev.NodeID == st.restarted && !back.Swap(true) {
						st.back.Add(1)
						st.lastBack.Store(ev.Time.UnixNano())
					}
					st.signal()
				case ev.State == wsclient.StateClosed && ev.Failure != nil:
					st.gaveUp.Add(1)
					st.signal()
				}
			},
		})
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
	}
	n := int64(cfg.Clients)

	cfg.Progress("storm: connecting %d clients", cfg.Clients)
	start := time.Now()
	for _, c := range clients {
		if err := c.Start(); err != nil {
			return res, err
		}
	}
	if err := st.await(ctx, cfg.Timeout, func() bool { return st.connected.Load()+st.gaveUp.Load() >= n }); err != nil {
		return res, fmt.Errorf("storm: %w: %d of %d clients connected within %s", err, st.connected.Load(), n, cfg.Timeout)
	}
	if g := st.gaveUp.Load(); g > 0 {
		res.GaveUp = int(g)
		return res, fmt.Errorf("%w: storm: %d clients gave up before the restart", ErrReply, g)
	}
	res.Connected = time.Since(start)
	// Let every connection become one that held (wsclient's StableAfter):
	// the storm is that of a fleet of settled clients, whose backoff
	// starts over, not of clients still in their first attempts' backoff.
	cfg.Progress("storm: %d clients connected in %s; waiting %s for them to settle", cfg.Clients, short(res.Connected), short(stormSettle))
	select {
	case <-ctx.Done():
		return res, context.Cause(ctx)
	case <-time.After(stormSettle):
	}

	cfg.Progress("storm: restarting the node")
	killed := time.Now()
	read, err := cfg.Restart(ctx)
	if err != nil {
		return res, err
	}
	res.Down = time.Since(killed)
	samples := make(chan []reading, 1)
	sctx, stopSampling := context.WithCancel(ctx)
	go func() { samples <- sample(sctx, read) }()
	werr := st.await(ctx, cfg.Timeout, func() bool { return st.back.Load()+st.gaveUp.Load() >= n })
	stopSampling()
	counts := <-samples
	res.Back, res.GaveUp = int(st.back.Load()), int(st.gaveUp.Load())
	res.AllBack = int64(res.Back) == n
	if res.Back > 0 {
		res.BackAfter = time.Unix(0, st.lastBack.Load()).Sub(killed)
	}
	// Each window is about stormSample long, a little more when a reading
	// was late: its counts are per second of its own length, and the
	// node's token bucket lets rate·length + burst through it.
	res.Within = true
	for i := 1; i < len(counts); i++ {
		secs := counts[i].at.Sub(counts[i-1].at).Seconds()
		acc := counts[i].Accepted - counts[i-1].Accepted
		att := acc + counts[i].Rejected - counts[i-1].Rejected
		res.PerSecond = append(res.PerSecond, acc/secs)
		res.PeakAccepted = max(res.PeakAccepted, acc/secs)
		res.PeakAttempts = max(res.PeakAttempts, att/secs)
		res.Within = res.Within && acc <= float64(cfg.Rate)*secs+float64(cfg.Burst)
	}
	if len(counts) > 0 {
		res.Rejected = counts[len(counts)-1].Rejected
	}
	if werr != nil {
		return res, fmt.Errorf("storm: %w: %d of %d clients back within %s, %d gave up", werr, res.Back, n, cfg.Timeout, res.GaveUp)
	}
	return res, nil
}

// await waits until done holds, at most timeout.
func (s *stormState) await(ctx context.Context, timeout time.Duration, done func() bool) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for !done() {
		select {
		case <-s.progress:
		case <-t.C:
			return ErrStalled
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// reading is the node's counters and when they were read.
type reading struct {
	HandshakeCount
	at time.Time
}

// sample reads the node's counters at once and then every stormSample
// until ctx ends (and once more then), so that each pair of readings is
// one window. A failed reading is skipped.
func sample(ctx context.Context, read func() (HandshakeCount, error)) []reading {
	var out []reading
	take := func() {
		if c, err := read(); err == nil {
			out = append(out, reading{c, time.Now()})
		}
	}
	take()
	t := time.NewTicker(stormSample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			take()
			return out
		case <-t.C:
			take()
		}
	}
}

// closeAll closes the clients, stormClosers at a time.
func closeAll(clients []*wsclient.Client) {
	var wg sync.WaitGroup
	work := make(chan *wsclient.Client)
	for range min(stormClosers, len(clients)) {
		wg.Go(func() {
			for c := range work {
				_ = c.Close()
			}
		})
	}
	for _, c := range clients {
		work <- c
	}
	close(work)
	wg.Wait()
}

// metricsTimeout bounds one read of a node's /metrics.
const metricsTimeout = 5 * time.Second

// ReadHandshakes reads wsfleet_node_handshakes_total from the node's
// metrics address: result="accepted" and every other result.
func ReadHandshakes(metricsAddr string) (HandshakeCount, error) {
	var hc HandshakeCount
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return hc, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return hc, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return hc, fmt.Errorf("loadgen: %s/metrics: HTTP %d", metricsAddr, resp.StatusCode)
	}
	const name = "wsfleet_node_handshakes_total{"
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return hc, fmt.Errorf("loadgen: metric line %q: %w", line, err)
		}
		found = true
		if strings.Contains(line[:i], `result="accepted"`) {
			hc.Accepted += v
		} else {
			hc.Rejected += v
		}
	}
	if err := sc.Err(); err != nil {
		return hc, err
	}
	if !found {
		return hc, fmt.Errorf("loadgen: %s/metrics has no wsfleet_node_handshakes_total", metricsAddr)
	}
	return hc, nil
}

package loadgen

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/policyclient"
)

// Propagation defaults.
const (
	DefaultPropagationClients = 1000
	// DefaultClientsPerConn is how many policy clients share one gRPC
	// connection. A real fleet has one connection per node; 10,000
	// connections from one process would measure this process's socket
	// handling more than the control plane, and a few hundred streams per
	// HTTP/2 connection is well within what gRPC multiplexes.
	DefaultClientsPerConn = 500
	DefaultApplies        = 20
	// DefaultApplyPause separates one apply's last ACK from the next apply,
	// so the control plane has taken in the ACKs of the previous revision
	// (they are only sent, not yet read, when the last client's Apply runs)
	// and each apply starts from a quiet system, as an operator's would.
	DefaultApplyPause = 100 * time.Millisecond
	// DefaultPropagationSetup bounds starting every client and their
	// applying the initial revision; 10,000 hellos at once take a few
	// seconds on two cores.
	DefaultPropagationSetup = 60 * time.Second
	// DefaultAckTimeout bounds the wait for every client to apply one
	// revision; a client missing after it fails the scenario.
	DefaultAckTimeout = 60 * time.Second
	// DefaultPropagationDuration caps the apply phase: no new apply starts
	// after it, and the result holds the applies done so far.
	DefaultPropagationDuration = 5 * time.Minute
	// rpcTimeout bounds one GetPolicy or ApplyPolicy call.
	rpcTimeout = 30 * time.Second
	// stuckSample is how many lagging clients a stall error describes.
	stuckSample = 3
)

// Target the issue sets for policy propagation.
const (
	// TargetPropagationClients is the fleet size the target applies to.
	TargetPropagationClients = 1000
	// TargetPropagationP99 is the most time from an apply returning to the
	// last client's ACK, at the 99th percentile.
	TargetPropagationP99 = time.Second
)

// PropagationConfig configures Propagation. Zero fields take the defaults.
type PropagationConfig struct {
	// Control is how to reach the control plane (sdk/admin's dial
	// settings: address, token, TLS). Addr is required.
	Control admin.Config
	// Clients is the number of policy clients watching at once, node ids
	// bench-0 ... bench-(Clients-1), all in the default pool. Default
	// DefaultPropagationClients.
	Clients int
	// ClientsPerConn is how many clients share one gRPC connection.
	// Default DefaultClientsPerConn.
	ClientsPerConn int
	// Applies is the number of policy changes measured. Default
	// DefaultApplies.
	Applies int
	// Pause is the wait between one apply's last ACK and the next apply.
	// Default DefaultApplyPause.
	Pause time.Duration
	// SetupTimeout bounds the start: every client on the initial revision.
	// Default DefaultPropagationSetup.
	SetupTimeout time.Duration
	// AckTimeout bounds the wait for every client to apply one revision.
	// Default DefaultAckTimeout.
	AckTimeout time.Duration
	// Duration caps the apply phase (see DefaultPropagationDuration); the
	// whole scenario is bounded by SetupTimeout + Duration + AckTimeout.
	// Default DefaultPropagationDuration.
	Duration time.Duration
	// RSS, if set, reads the control plane's resident set size, before the
	// clients start and once they all watch.
	RSS func() (int64, error)
}

func (c *PropagationConfig) fill() error {
	if c.Control.Addr == "" {
		return fmt.Errorf("%w: propagation: no control plane address", ErrConfig)
	}
	if c.Clients < 0 || c.ClientsPerConn < 0 || c.Applies < 0 || c.Pause < 0 || c.SetupTimeout < 0 ||
		c.AckTimeout < 0 || c.Duration < 0 {
		return fmt.Errorf("%w: propagation: negative count or duration", ErrConfig)
	}
	c.Clients = withDefault(c.Clients, DefaultPropagationClients)
	c.ClientsPerConn = withDefault(c.ClientsPerConn, DefaultClientsPerConn)
	c.Applies = withDefault(c.Applies, DefaultApplies)
	c.Pause = withDefault(c.Pause, DefaultApplyPause)
	c.SetupTimeout = withDefault(c.SetupTimeout, DefaultPropagationSetup)
	c.AckTimeout = withDefault(c.AckTimeout, DefaultAckTimeout)
	c.Duration = withDefault(c.Duration, DefaultPropagationDuration)
	return nil
}

// PropagationResult is what Propagation measured. "ACK" times are the
// moments the clients' Apply was called for the revision: policyclient
// sends the ACK right after Apply returns (the bench's Apply only takes the
// time), so they are the ACK send times, less a few microseconds, and
// exclude the ACK's trip back to the control plane.
type PropagationResult struct {
	Clients int `json:"clients"`
	Conns   int `json:"conns"`
	// Applies is the number of applies measured; fewer than asked when
	// Duration ran out.
	Applies int `json:"applies"`
	// FirstRevision and LastRevision are the default pool's revisions
	// before the first and after the last apply.
	FirstRevision int64 `json:"first_revision"`
	LastRevision  int64 `json:"last_revision"`
	// SetupElapsed is from starting the clients to all of them applying
	// the initial revision.
	SetupElapsed time.Duration `json:"setup_elapsed_ns"`
	// LastAck*: per apply, the time from ApplyPolicy returning to the last
	// client's ACK; quantiles over the applies.
	LastAckP50 time.Duration `json:"last_ack_p50_ns"`
	LastAckP99 time.Duration `json:"last_ack_p99_ns"`
	LastAckMax time.Duration `json:"last_ack_max_ns"`
	// SentLastAck*: the same from ApplyPolicy being called, what an
	// operator running `wsctl policy apply` waits: the call itself slows
	// down when the control plane is busy pushing, which the time from
	// its return does not show.
	SentLastAckP50 time.Duration `json:"sent_last_ack_p50_ns"`
	SentLastAckP99 time.Duration `json:"sent_last_ack_p99_ns"`
	// Client*: the same from every client, quantiles over clients × applies.
	ClientP50 time.Duration `json:"client_p50_ns"`
	ClientP99 time.Duration `json:"client_p99_ns"`
	// EarlyAcks counts client ACKs sent before ApplyPolicy had returned to
	// the bench (the push leaves with the commit, before the response);
	// their latency counts as 0.
	EarlyAcks int `json:"early_acks"`
	// ApplyRPC*: how long ApplyPolicy itself took (commit included).
	ApplyRPCP50 time.Duration `json:"apply_rpc_p50_ns"`
	ApplyRPCP99 time.Duration `json:"apply_rpc_p99_ns"`
	// RSS of the control plane before the clients and with all of them
	// watching; 0 without an RSS reader.
	RSSBefore       int64   `json:"rss_before_bytes,omitempty"`
	RSSWatching     int64   `json:"rss_watching_bytes,omitempty"`
	BytesPerWatcher float64 `json:"bytes_per_watcher,omitempty"`
}

// Propagation measures how fast a policy change reaches a fleet: it starts
// cfg.Clients policy clients (sdk/policyclient, in this process) watching
// the control plane's default pool, waits until all run its current
// revision, then applies cfg.Applies changes of limits.max_connections one
// after the other, each time waiting until every client has applied the
// new revision. Every client is stopped and every connection closed before
// it returns. The control plane must have no other writer to the default
// pool meanwhile: each apply expects the revision before it.
func Propagation(ctx context.Context, cfg PropagationConfig) (PropagationResult, error) {
	if err := cfg.fill(); err != nil {
		return PropagationResult{}, err
	}
	res, err := propagation(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("propagation %d clients: %w", cfg.Clients, err)
	}
	return res, nil
}

func propagation(ctx context.Context, cfg PropagationConfig) (res PropagationResult, err error) {
	res.Clients = cfg.Clients
	res.Conns = (cfg.Clients + cfg.ClientsPerConn - 1) / cfg.ClientsPerConn

	// The admin calls get a connection of their own, so an apply never
	// queues behind the pushes and ACKs of the watch streams.
	adm, err := admin.Dial(cfg.Control)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	conns := []*admin.Client{adm}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range res.Conns {
		c, err := admin.Dial(cfg.Control)
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		conns = append(conns, c)
	}

	head, err := currentHead(ctx, adm)
	if err != nil {
		return res, err
	}
	res.FirstRevision = head.GetRevision()
	if cfg.RSS != nil {
		if res.RSSBefore, err = cfg.RSS(); err != nil {
			return res, err
		}
	}

	fleet, err := newBenchFleet(cfg.Clients, conns[1:], cfg.ClientsPerConn)
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	// Clients stop before the deferred Close of their connections runs.
	defer fleet.stop(stop)

	// The round exists before the clients start: one that applies the
	// current revision at once must find it.
	setup := fleet.expect(head.GetRevision())
	start := time.Now()
	fleet.start(runCtx)
	if err := fleet.await(ctx, setup, cfg.SetupTimeout); err != nil {
		return res, fmt.Errorf("setup: %w", err)
	}
	res.SetupElapsed = time.Since(start)
	if cfg.RSS != nil {
		if res.RSSWatching, err = cfg.RSS(); err != nil {
			return res, err
		}
		res.BytesPerWatcher = float64(res.RSSWatching-res.RSSBefore) / float64(cfg.Clients)
	}

	var (
		lastAcks = make([]time.Duration, 0, cfg.Applies)
		fromSent = make([]time.Duration, 0, cfg.Applies)
		rpcs     = make([]time.Duration, 0, cfg.Applies)
		clients  = make([]time.Duration, 0, cfg.Applies*cfg.Clients)
	)
	deadline := time.Now().Add(cfg.Duration)
	for k := range cfg.Applies {
		if k > 0 {
			if time.Now().After(deadline) {
				break
			}
			if err := sleepCtx(ctx, cfg.Pause); err != nil {
				return res, err
			}
		}
		next := changed(head.GetPolicy())
		round := fleet.expect(head.GetRevision() + 1)
		sent := time.Now()
		resp, err := apply(ctx, adm, next, head.GetRevision(), k)
		t0 := time.Now()
		if err != nil {
			return res, err
		}
		if got := resp.GetRevision().GetRevision(); resp.GetUnchanged() || got != round.rev {
			return res, fmt.Errorf("%w: apply %d: revision %d (unchanged %t), want %d: another writer on pool %q?",
				ErrReply, k, got, resp.GetUnchanged(), round.rev, policy.DefaultPool)
		}
		head = resp.GetRevision()
		if err := fleet.await(ctx, round, cfg.AckTimeout); err != nil {
			return res, fmt.Errorf("apply %d: %w", k, err)
		}
		last, lastAt, early := round.latencies(t0, &clients)
		lastAcks = append(lastAcks, last)
		fromSent = append(fromSent, lastAt.Sub(sent))
		rpcs = append(rpcs, t0.Sub(sent))
		res.EarlyAcks += early
	}
	res.Applies = len(lastAcks)
	res.LastRevision = head.GetRevision()

	sortedLast, sortedSent, sortedRPC := sortedCopy(lastAcks), sortedCopy(fromSent), sortedCopy(rpcs)
	slices.Sort(clients)
	res.LastAckP50, res.LastAckP99 = exactQuantile(sortedLast, 0.50), exactQuantile(sortedLast, 0.99)
	res.LastAckMax = exactQuantile(sortedLast, 1)
	res.SentLastAckP50, res.SentLastAckP99 = exactQuantile(sortedSent, 0.50), exactQuantile(sortedSent, 0.99)
	res.ClientP50, res.ClientP99 = exactQuantile(clients, 0.50), exactQuantile(clients, 0.99)
	res.ApplyRPCP50, res.ApplyRPCP99 = exactQuantile(sortedRPC, 0.50), exactQuantile(sortedRPC, 0.99)
	return res, nil
}

// currentHead reads the default pool's current revision.
func currentHead(ctx context.Context, adm *admin.Client) (*wsfleetv1.PolicyRevision, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := adm.Policy().GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Pool: policy.DefaultPool})
	if err != nil {
		return nil, fmt.Errorf("%w: GetPolicy %s: %v", ErrControl, policy.DefaultPool, err)
	}
	rev := resp.GetRevision()
	if rev.GetRevision() <= 0 || rev.GetPolicy() == nil {
		return nil, fmt.Errorf("%w: pool %q has no policy yet (revision %d)", ErrReply, policy.DefaultPool, rev.GetRevision())
	}
	return rev, nil
}

// apply commits p as the default pool's next revision after prev.
func apply(ctx context.Context, adm *admin.Client, p *wsfleetv1.Policy, prev int64, k int) (*wsfleetv1.ApplyPolicyResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := adm.Policy().ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{
		Pool:             policy.DefaultPool,
		Policy:           p,
		ExpectedRevision: &prev,
		Message:          "wsfleet-bench propagation, apply " + strconv.Itoa(k),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: apply %d: ApplyPolicy: %v", ErrControl, k, err)
	}
	return resp, nil
}

// changed returns a copy of p whose limits.max_connections differs by one,
// staying within the policy's bounds.
func changed(p *wsfleetv1.Policy) *wsfleetv1.Policy {
	next := proto.Clone(p).(*wsfleetv1.Policy)
	if next.Limits == nil {
		next.Limits = policy.Default().GetLimits()
	}
	if next.Limits.MaxConnections < policy.MaxConnections {
		next.Limits.MaxConnections++
	} else {
		next.Limits.MaxConnections--
	}
	return next
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// benchFleet is the clients of one Propagation run and the revision they
// are awaited on.
type benchFleet struct {
	clients []*policyclient.Client
	// round is what the clients' Apply records into; replaced (never
	// reset) for each awaited revision.
	round atomic.Pointer[applyRound]
	wg    sync.WaitGroup
}

// applyRound collects, for one revision, when each client applied it.
type applyRound struct {
	rev  int64
	base time.Time
	// at[i] is client i's Apply time as nanoseconds since base, plus one:
	// zero means not yet.
	at   []atomic.Int64
	left atomic.Int64
	done chan struct{} // closed when left reaches zero
}

// quietLog drops the clients' lines: 10,000 clients log an info line each
// per applied revision. Failures show up as clients missing the deadline,
// and the stall error quotes their status.
var quietLog = func() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.ErrorLevel)
	return l
}()

func newBenchFleet(n int, conns []*admin.Client, perConn int) (*benchFleet, error) {
	f := &benchFleet{clients: make([]*policyclient.Client, n)}
	for i := range n {
		c, err := policyclient.New(policyclient.Config{
			Conn:   conns[i/perConn].Conn(),
			NodeID: "bench-" + strconv.Itoa(i),
			Pool:   policy.DefaultPool,
			Build:  "wsfleet-bench",
			Apply:  f.applyFunc(i),
			Log:    quietLog,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: policy client %d: %v", ErrConfig, i, err)
		}
		f.clients[i] = c
	}
	return f, nil
}

// applyFunc is client i's Apply: it only takes the time, so the client's
// ACK follows at once.
func (f *benchFleet) applyFunc(i int) func(*wsfleetv1.PolicyRevision) error {
	return func(rev *wsfleetv1.PolicyRevision) error {
		now := time.Now()
		if r := f.round.Load(); r != nil && rev.GetRevision() == r.rev && rev.GetPool() == policy.DefaultPool {
			r.record(i, now)
		}
		return nil
	}
}

func (r *applyRound) record(i int, now time.Time) {
	// A client applies a revision once (policyclient ACKs a repeat without
	// calling Apply); the compare-and-swap keeps the count right even so.
	if r.at[i].CompareAndSwap(0, int64(now.Sub(r.base))+1) && r.left.Add(-1) == 0 {
		close(r.done)
	}
}

// expect starts awaiting rev: from now on, Apply calls for rev count.
func (f *benchFleet) expect(rev int64) *applyRound {
	r := &applyRound{rev: rev, base: time.Now(), at: make([]atomic.Int64, len(f.clients)), done: make(chan struct{})}
	r.left.Store(int64(len(f.clients)))
	f.round.Store(r)
	return r
}

func (f *benchFleet) start(ctx context.Context) {
	for _, c := range f.clients {
		f.wg.Go(func() { _ = c.Run(ctx) })
	}
}

// stop cancels the clients' context and waits for every Run to return.
func (f *benchFleet) stop(cancel context.CancelFunc) {
	cancel()
	f.wg.Wait()
}

// await waits until every client has applied r's revision.
func (f *benchFleet) await(ctx context.Context, r *applyRound, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return fmt.Errorf("%w: %d of %d clients not on revision %d after %s%s",
			ErrStalled, r.left.Load(), len(f.clients), r.rev, timeout, f.describeStuck(r))
	}
}

// describeStuck names a few clients that have not applied r's revision,
// with their status.
func (f *benchFleet) describeStuck(r *applyRound) string {
	var out []byte
	n := 0
	for i := range r.at {
		if r.at[i].Load() != 0 {
			continue
		}
		s := f.clients[i].Status()
		out = fmt.Appendf(out, "; bench-%d: connected %t, revision %d, pushes %d, acks %d", i, s.Connected, s.Revision, s.Received, s.Acks)
		if s.LastError != "" {
			out = fmt.Appendf(out, ", last error %q", s.LastError)
		}
		if n++; n == stuckSample {
			break
		}
	}
	return string(out)
}

// latencies appends each client's time from t0 (the apply returning) to
// its ACK to all, clamped at zero, and returns the largest, when the last
// ACK was, and how many were before t0. Call it once r.done is closed.
func (r *applyRound) latencies(t0 time.Time, all *[]time.Duration) (last time.Duration, lastAt time.Time, early int) {
	off := t0.Sub(r.base)
	var latest time.Duration
	for i := range r.at {
		at := time.Duration(r.at[i].Load() - 1)
		latest = max(latest, at)
		d := at - off
		if d < 0 {
			d, early = 0, early+1
		}
		last = max(last, d)
		*all = append(*all, d)
	}
	return last, r.base.Add(latest), early
}

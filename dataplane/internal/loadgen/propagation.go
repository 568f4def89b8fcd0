package loadgen

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
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
	// DefaultApplyPause follows each apply's last client Apply, so the
	// control plane has taken in the ACKs (they are only sent, not yet
	// read, when the last client's Apply runs) before the bench reads when
	// they arrived (ListNodes, which would otherwise compete with them),
	// and the next apply starts from a quiet system, as an operator's
	// would.
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
	// rpcTimeout bounds one GetPolicy or ApplyPolicy call, and one
	// listing of every node.
	rpcTimeout = 30 * time.Second
	// ackPoll spaces ListNodes readings while ACKs are still missing.
	ackPoll = 50 * time.Millisecond
	// listPageSize is the ListNodes page the ACK readings ask for: the
	// control plane's largest, 10 pages for 10,000 clients.
	listPageSize = 1000
	// stuckSample is how many lagging clients a stall error describes.
	stuckSample = 3
)

// Target the issue sets for policy propagation.
const (
	// TargetPropagationClients is the fleet size the target applies to.
	TargetPropagationClients = 1000
	// TargetPropagation is the most time from an ApplyPolicy call to the
	// control plane receiving the last client's ACK, in every apply: the
	// issue's "p99 under a second", since with 20 applies the p99 is their
	// maximum.
	TargetPropagation = time.Second
)

// PropagationConfig configures Propagation. Zero fields take the defaults.
type PropagationConfig struct {
	// Control is how to reach the control plane the applies go to
	// (sdk/admin's dial settings: address, token, TLS). Addr is required.
	Control admin.Config
	// Replicas, if set, are the control-plane replicas (sharing one store)
	// the clients watch: connection k dials Replicas[k % len(Replicas)],
	// so the clients spread evenly over them. Default: Control alone.
	Replicas []admin.Config
	// Clients is the number of policy clients watching at once, node ids
	// bench-0 ... bench-(Clients-1), all in the default pool. Default
	// DefaultPropagationClients.
	Clients int
	// ClientsPerConn is the most clients sharing one gRPC connection (each
	// replica gets as many connections as the others, so a few more may
	// be opened). Default DefaultClientsPerConn.
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
	// RSS, if set, reads the control plane's resident set size (of every
	// replica, added up), before the clients start and once they all
	// watch.
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
	for _, r := range c.Replicas {
		if r.Addr == "" {
			return fmt.Errorf("%w: propagation: a replica without an address", ErrConfig)
		}
	}
	if len(c.Replicas) == 0 {
		c.Replicas = []admin.Config{c.Control}
	}
	return nil
}

// PropagationResult is what Propagation measured. The Received figures
// are the control plane's side: from just before the ApplyPolicy call to
// the moment the replica a client watches received its ACK, which it
// stamps as the node's last_ack_time (ListNodes; nanoseconds, the
// replica's wall clock, which is the bench's: they run on one machine).
// The other ACK figures are the clients' side: the moments their Apply
// was called for the revision (policyclient sends the ACK right after
// Apply returns; the bench's Apply only takes the time), which exclude the
// ACK's trip back.
type PropagationResult struct {
	Clients int `json:"clients"`
	Conns   int `json:"conns"`
	// Replicas is the number of control-plane replicas the clients watch.
	Replicas int `json:"replicas"`
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
	// ReceivedLast*: per apply, from the ApplyPolicy call to the control
	// plane receiving the last client's ACK; p50 and maximum over the
	// applies (with 20 applies a p99 would be the maximum).
	ReceivedLastP50 time.Duration `json:"received_last_ack_p50_ns"`
	ReceivedLastMax time.Duration `json:"received_last_ack_max_ns"`
	// ReceivedEach*: the same for every ACK, quantiles over clients ×
	// applies.
	ReceivedEachP50 time.Duration `json:"received_each_ack_p50_ns"`
	ReceivedEachP99 time.Duration `json:"received_each_ack_p99_ns"`
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
	ApplyRPCMax time.Duration `json:"apply_rpc_max_ns"`
	// RSS of the control plane before the clients and with all of them
	// watching; 0 without an RSS reader.
	RSSBefore       int64   `json:"rss_before_bytes,omitempty"`
	RSSWatching     int64   `json:"rss_watching_bytes,omitempty"`
	BytesPerWatcher float64 `json:"bytes_per_watcher,omitempty"`
}

// Propagation measures how fast a policy change reaches a fleet: it starts
// cfg.Clients policy clients (sdk/policyclient, in this process) watching
// the default pool on the control plane's replicas, waits until all run
// its current revision, then applies cfg.Applies changes of
// limits.max_connections one after the other through cfg.Control, each
// time waiting until every client has applied the new revision and every
// replica's ListNodes shows when its clients' ACKs arrived. Every client
// is stopped and every connection closed before it returns. The control
// plane must have no other writer to the default pool meanwhile: each
// apply expects the revision before it.
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
	res.Conns = ConnCount(cfg.Clients, cfg.ClientsPerConn, len(cfg.Replicas))
	res.Replicas = len(cfg.Replicas)

	// The admin calls get connections of their own (the apply, and one
	// per replica for ListNodes), so they never queue behind the pushes
	// and ACKs of the watch streams.
	var conns []*admin.Client
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	dial := func(cfg admin.Config) (*admin.Client, error) {
		c, err := admin.Dial(cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		conns = append(conns, c)
		return c, nil
	}
	adm, err := dial(cfg.Control)
	if err != nil {
		return res, err
	}
	readers := make([]*admin.Client, len(cfg.Replicas))
	for i, r := range cfg.Replicas {
		if readers[i], err = dial(r); err != nil {
			return res, err
		}
	}
	watchConns := make([]*admin.Client, res.Conns)
	for k := range watchConns {
		if watchConns[k], err = dial(cfg.Replicas[k%len(cfg.Replicas)]); err != nil {
			return res, err
		}
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

	fleet, err := newBenchFleet(cfg.Clients, watchConns)
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
		lastAcks     = make([]time.Duration, 0, cfg.Applies)
		fromSent     = make([]time.Duration, 0, cfg.Applies)
		rpcs         = make([]time.Duration, 0, cfg.Applies)
		clients      = make([]time.Duration, 0, cfg.Applies*cfg.Clients)
		receivedLast = make([]time.Duration, 0, cfg.Applies)
		receivedEach = make([]time.Duration, 0, cfg.Applies*cfg.Clients)
	)
	deadline := time.Now().Add(cfg.Duration)
	for k := range cfg.Applies {
		if k > 0 && time.Now().After(deadline) {
			break
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

		// The ACKs are sent; the control plane takes them in during the
		// pause (so the readings below do not compete with them, and the
		// next apply starts from a quiet system), then says when each
		// arrived.
		if err := sleepCtx(ctx, cfg.Pause); err != nil {
			return res, err
		}
		arrived, err := ackArrivals(ctx, readers, round.rev, cfg.Clients, cfg.AckTimeout)
		if err != nil {
			return res, fmt.Errorf("apply %d: %w", k, err)
		}
		var latest time.Duration
		for i, at := range arrived {
			// at is a wall-clock reading from the control plane, sent one
			// from here: their difference is on the wall clock.
			d := at.Sub(sent)
			if d < 0 {
				return res, fmt.Errorf("%w: apply %d: the control plane stamped bench-%d's ACK of revision %d %s before ApplyPolicy was called: its clock differs from the bench's, or last_ack_time lost precision",
					ErrReply, k, i, round.rev, -d)
			}
			latest = max(latest, d)
			receivedEach = append(receivedEach, d)
		}
		receivedLast = append(receivedLast, latest)
	}
	res.Applies = len(lastAcks)
	res.LastRevision = head.GetRevision()

	sortedLast, sortedSent, sortedRPC := sortedCopy(lastAcks), sortedCopy(fromSent), sortedCopy(rpcs)
	sortedReceived := sortedCopy(receivedLast)
	slices.Sort(clients)
	slices.Sort(receivedEach)
	res.LastAckP50, res.LastAckP99 = exactQuantile(sortedLast, 0.50), exactQuantile(sortedLast, 0.99)
	res.LastAckMax = exactQuantile(sortedLast, 1)
	res.SentLastAckP50, res.SentLastAckP99 = exactQuantile(sortedSent, 0.50), exactQuantile(sortedSent, 0.99)
	res.ClientP50, res.ClientP99 = exactQuantile(clients, 0.50), exactQuantile(clients, 0.99)
	res.ApplyRPCP50, res.ApplyRPCP99 = exactQuantile(sortedRPC, 0.50), exactQuantile(sortedRPC, 0.99)
	res.ApplyRPCMax = exactQuantile(sortedRPC, 1)
	res.ReceivedLastP50, res.ReceivedLastMax = exactQuantile(sortedReceived, 0.50), exactQuantile(sortedReceived, 1)
	res.ReceivedEachP50, res.ReceivedEachP99 = exactQuantile(receivedEach, 0.50), exactQuantile(receivedEach, 0.99)
	return res, nil
}

// ackArrivals reads when the control plane received each bench client's
// ACK of rev: node bench-i's last_ack_time in ListNodes, once it shows
// revision rev applied. Every replica is read; a replica lists at least
// the clients watching it, and where several list a client the earliest
// time is the one its own replica stamped. It reads again until every
// client is there, for at most timeout.
func ackArrivals(ctx context.Context, replicas []*admin.Client, rev int64, n int, timeout time.Duration) ([]time.Time, error) {
	at := make([]time.Time, n)
	missing := n
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range replicas {
			lctx, cancel := context.WithTimeout(ctx, rpcTimeout)
			nodes, err := admin.AllNodes(lctx, r.Fleet(), policy.DefaultPool, listPageSize)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%w: ListNodes: %v", ErrControl, err)
			}
			for _, s := range nodes {
				i, ok := benchIndex(s.GetNodeId(), n)
				if !ok || s.GetAppliedPool() != policy.DefaultPool || s.GetAppliedRevision() != rev || s.GetLastAckTime() == nil {
					continue
				}
				t := s.GetLastAckTime().AsTime()
				if at[i].IsZero() {
					missing--
				} else if !t.Before(at[i]) {
					continue
				}
				at[i] = t
			}
		}
		if missing == 0 {
			return at, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %d of %d clients' ACKs of revision %d not in ListNodes after %s", ErrStalled, missing, n, rev, timeout)
		}
		if err := sleepCtx(ctx, ackPoll); err != nil {
			return nil, err
		}
	}
}

// benchIndex is i for node id bench-i, i < n.
func benchIndex(id string, n int) (int, bool) {
	s, ok := strings.CutPrefix(id, benchNodePrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

// benchNodePrefix starts every bench client's node id.
const benchNodePrefix = "bench-"

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

// ConnCount is the number of gRPC connections Propagation opens for
// clients policy clients, at most perConn to a connection, over replicas:
// a multiple of replicas (each replica takes the same number), at most one
// per client.
func ConnCount(clients, perConn, replicas int) int {
	n := (clients + perConn - 1) / perConn
	if rem := n % replicas; rem != 0 {
		n += replicas - rem
	}
	return min(n, clients)
}

// newBenchFleet makes n clients, client i on conns[i % len(conns)], so
// they spread evenly over the connections and so over the replicas.
func newBenchFleet(n int, conns []*admin.Client) (*benchFleet, error) {
	f := &benchFleet{clients: make([]*policyclient.Client, n)}
	for i := range n {
		c, err := policyclient.New(policyclient.Config{
			Conn:   conns[i%len(conns)].Conn(),
			NodeID: benchNodePrefix + strconv.Itoa(i),
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

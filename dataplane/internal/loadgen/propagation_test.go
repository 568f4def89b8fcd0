package loadgen

import (
	"context"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

func (f *fakeControl) watching() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
}

func TestPropagation(t *testing.T) {
	fake := startFakeControl(t)
	var rssReads atomic.Int64
	res, err := Propagation(context.Background(), PropagationConfig{
		Control: admin.Config{Addr: fake.addr()}, Clients: 20, ClientsPerConn: 7, Applies: 3,
		Pause: 10 * time.Millisecond,
		// 10 MiB before, 10 MiB + 20 KiB once the 20 clients watch.
		RSS: func() (int64, error) { return 10<<20 + (rssReads.Add(1)-1)*20<<10, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 20 || res.Conns != 3 || res.Applies != 3 {
		t.Errorf("clients %d conns %d applies %d, want 20 over 3 connections and 3 applies", res.Clients, res.Conns, res.Applies)
	}
	if res.FirstRevision != 1 || res.LastRevision != 4 || fake.current().GetRevision() != 4 {
		t.Errorf("revisions %d -> %d, control plane head %d; want 1 -> 4 on both sides",
			res.FirstRevision, res.LastRevision, fake.current().GetRevision())
	}
	if got := fake.current().GetPolicy().GetLimits().GetMaxConnections(); got != policy.Default().GetLimits().GetMaxConnections()+3 {
		t.Errorf("max_connections after 3 applies = %d, want the default plus 3", got)
	}
	if !(0 <= res.LastAckP50 && res.LastAckP50 <= res.LastAckP99 && res.LastAckP99 <= res.LastAckMax) {
		t.Errorf("time to last ACK p50 %s p99 %s max %s: want 0 <= p50 <= p99 <= max", res.LastAckP50, res.LastAckP99, res.LastAckMax)
	}
	if !(0 <= res.ClientP50 && res.ClientP50 <= res.ClientP99 && res.ClientP99 <= res.LastAckMax) {
		t.Errorf("per-client p50 %s p99 %s, max of last ACKs %s: want 0 <= p50 <= p99 <= max", res.ClientP50, res.ClientP99, res.LastAckMax)
	}
	if res.SentLastAckP50 < res.LastAckP50 || res.SentLastAckP99 < res.SentLastAckP50 {
		t.Errorf("from the call: p50 %s p99 %s; want p50 >= %s (from the return) and p99 >= p50",
			res.SentLastAckP50, res.SentLastAckP99, res.LastAckP50)
	}
	if res.ApplyRPCP50 <= 0 || res.ApplyRPCP99 < res.ApplyRPCP50 {
		t.Errorf("apply RPC p50 %s p99 %s: want 0 < p50 <= p99", res.ApplyRPCP50, res.ApplyRPCP99)
	}
	if res.EarlyAcks < 0 || res.EarlyAcks > 60 {
		t.Errorf("early ACKs %d, want between 0 and 20 × 3", res.EarlyAcks)
	}
	if res.RSSBefore != 10<<20 || res.RSSWatching != 10<<20+20<<10 || res.BytesPerWatcher != 1024 {
		t.Errorf("RSS %d -> %d, %f B per watcher; want 10 MiB -> +20 KiB, 1024 B each", res.RSSBefore, res.RSSWatching, res.BytesPerWatcher)
	}
	if res.SetupElapsed <= 0 {
		t.Errorf("setup elapsed %s, want positive", res.SetupElapsed)
	}
	// An ACK arrives after the client's Apply call that precedes it, in
	// every apply: so do the quantiles.
	if res.Replicas != 1 || res.ReceivedLastP50 < res.SentLastAckP50 || res.ReceivedLastMax < res.SentLastAckP99 ||
		res.ReceivedEachP50 <= 0 || res.ReceivedEachP99 < res.ReceivedEachP50 || res.ReceivedLastMax < res.ReceivedEachP99 {
		t.Errorf("replicas %d; ACKs received p50 %s max %s, each p50 %s p99 %s; client side p50 %s p99 %s: want 1 replica, "+
			"received after the client side, 0 < each p50 <= p99 <= max", res.Replicas, res.ReceivedLastP50, res.ReceivedLastMax,
			res.ReceivedEachP50, res.ReceivedEachP99, res.SentLastAckP50, res.SentLastAckP99)
	}
	// Each client ACKed the initial revision and the applies; the ACK of
	// the last apply is sent right after the time the scenario takes, and
	// the scenario may stop the client before it leaves, so it may be lost.
	eventually(t, "the control plane has the ACKs", func() bool { n := fake.acks.Load(); return n >= 20*3 && n <= 20*4 })
	eventually(t, "every watch stream has ended", func() bool { return fake.watching() == 0 })
	if n := fake.watches.Load(); n != 20 {
		t.Errorf("%d watch streams, want one per client (no reconnects)", n)
	}
}

func TestPropagationOverReplicasMeasuresTheACKsArrival(t *testing.T) {
	// One store behind three addresses: replicas. The control plane takes
	// 40ms to take an ACK in, which the clients cannot see: only its own
	// stamps show it.
	const ackDelay = 40 * time.Millisecond
	fake := startFakeControl(t, func(f *fakeControl) { f.ackDelay = ackDelay })
	addrs := []string{fake.addr(), fake.listenAlso(t), fake.listenAlso(t)}
	var replicas []admin.Config
	for _, a := range addrs {
		replicas = append(replicas, admin.Config{Addr: a})
	}
	res, err := Propagation(context.Background(), PropagationConfig{
		Control: replicas[0], Replicas: replicas, Clients: 30, ClientsPerConn: 7, Applies: 3, Pause: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replicas != 3 || res.Conns != 6 || res.Applies != 3 {
		t.Errorf("replicas %d conns %d applies %d; want 3 replicas, 6 connections (2 each), 3 applies", res.Replicas, res.Conns, res.Applies)
	}
	for _, a := range addrs {
		if n := fake.watchesAt(a); n != 10 {
			t.Errorf("%d clients watch replica %s, want 10 on each", n, a)
		}
	}
	if res.ReceivedEachP50 < ackDelay || res.ReceivedLastP50 < ackDelay || res.ReceivedLastMax < res.ReceivedLastP50 {
		t.Errorf("ACKs received p50 %s (each) %s (last) max %s: want at least the control plane's %s, p50 <= max",
			res.ReceivedEachP50, res.ReceivedLastP50, res.ReceivedLastMax, ackDelay)
	}
	if res.ClientP99 >= ackDelay {
		t.Errorf("client-side p99 %s: the clients should not see the control plane's delay", res.ClientP99)
	}
}

func TestPropagationFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := closed.Addr().String()
	_ = closed.Close()

	for _, tc := range []struct {
		name      string
		fake      []fakeControlOption
		cfg       PropagationConfig
		want      error
		fragments []string
	}{
		{
			name: "a client the new revision never reaches fails the apply after the ACK timeout",
			fake: []fakeControlOption{func(f *fakeControl) { f.withhold = "bench-5" }},
			cfg:  PropagationConfig{Clients: 10, ClientsPerConn: 4, Applies: 3, AckTimeout: 300 * time.Millisecond},
			want: ErrStalled, fragments: []string{"apply 0", "1 of 10 clients not on revision 2", "bench-5: connected true, revision 1"},
		},
		{
			name: "a control plane that was moved on by another writer is reported, not waited for",
			fake: []fakeControlOption{func(f *fakeControl) { f.applyOffset = 5 }},
			cfg:  PropagationConfig{Clients: 3, Applies: 2},
			want: ErrReply, fragments: []string{"revision 7", "want 2", "another writer"},
		},
		{
			name: "clients that cannot watch fail the setup after its timeout",
			fake: []fakeControlOption{func(f *fakeControl) { f.refuseWatch = true }},
			cfg:  PropagationConfig{Clients: 3, SetupTimeout: 300 * time.Millisecond},
			want: ErrStalled, fragments: []string{"setup", "3 of 3 clients not on revision 1", "connected false", "Unavailable"},
		},
		{
			name: "ACKs the control plane never shows as arrived fail the apply after the ACK timeout",
			fake: []fakeControlOption{func(f *fakeControl) { f.hideAcks = true }},
			cfg:  PropagationConfig{Clients: 4, Applies: 2, AckTimeout: 300 * time.Millisecond},
			want: ErrStalled, fragments: []string{"apply 0", "4 of 4 clients' ACKs of revision 2 not in ListNodes"},
		},
		{
			name: "an ACK stamped before the apply was sent is reported, not counted as zero",
			fake: []fakeControlOption{func(f *fakeControl) { f.ackClockBehind = time.Hour }},
			cfg:  PropagationConfig{Clients: 2, Applies: 1},
			want: ErrReply, fragments: []string{"apply 0", "before ApplyPolicy was called", "clock"},
		},
		{
			name: "a control plane without a default policy is reported",
			fake: []fakeControlOption{func(f *fakeControl) { f.head = &wsfleetv1.PolicyRevision{Pool: policy.DefaultPool} }},
			cfg:  PropagationConfig{Clients: 3},
			want: ErrReply, fragments: []string{`pool "default" has no policy yet`},
		},
		{
			name: "a control plane that is not there fails the first call",
			cfg:  PropagationConfig{Control: admin.Config{Addr: gone}, Clients: 3},
			want: ErrControl, fragments: []string{"GetPolicy"},
		},
		{
			name: "no control plane address is a config error",
			want: ErrConfig, fragments: []string{"no control plane address"},
		},
		{
			name: "a negative count is a config error",
			cfg:  PropagationConfig{Control: admin.Config{Addr: gone}, Clients: -1},
			want: ErrConfig, fragments: []string{"negative"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Control.Addr == "" && tc.want != ErrConfig {
				cfg.Control.Addr = startFakeControl(t, tc.fake...).addr()
			}
			_, err := Propagation(context.Background(), cfg)
			wantErr(t, err, tc.want, tc.fragments...)
		})
	}
}

func TestApplyRoundLatencies(t *testing.T) {
	base := time.Now()
	r := &applyRound{rev: 2, base: base, at: make([]atomic.Int64, 3), done: make(chan struct{})}
	r.left.Store(3)
	r.record(0, base.Add(10*time.Millisecond))
	r.record(1, base.Add(30*time.Millisecond))
	r.record(1, base.Add(99*time.Millisecond)) // a repeat does not count
	select {
	case <-r.done:
		t.Fatal("done after two of three clients")
	default:
	}
	r.record(2, base.Add(5*time.Millisecond))
	select {
	case <-r.done:
	default:
		t.Fatal("not done after all three clients")
	}
	var all []time.Duration
	last, lastAt, early := r.latencies(base.Add(8*time.Millisecond), &all)
	want := []time.Duration{2 * time.Millisecond, 22 * time.Millisecond, 0}
	if last != 22*time.Millisecond || early != 1 || !slices.Equal(all, want) {
		t.Errorf("last %s early %d all %v; want 22ms, 1 (clamped to 0), %v", last, early, all, want)
	}
	if got := lastAt.Sub(base); got != 30*time.Millisecond {
		t.Errorf("last ACK at base + %s, want + 30ms", got)
	}
}

func TestChangedMovesMaxConnectionsByOneWithinBounds(t *testing.T) {
	def := policy.Default()
	atMax := policy.Default()
	atMax.Limits.MaxConnections = policy.MaxConnections
	noLimits := policy.Default()
	noLimits.Limits = nil
	for _, tc := range []struct {
		name string
		in   *wsfleetv1.Policy
		want int32
	}{
		{"the default policy gets one more connection", def, def.GetLimits().GetMaxConnections() + 1},
		{"a policy at the bound gets one fewer", atMax, policy.MaxConnections - 1},
		{"a policy without limits gets the default limits plus one", noLimits, def.GetLimits().GetMaxConnections() + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.in.GetLimits().GetMaxConnections()
			out := changed(tc.in)
			if got := out.GetLimits().GetMaxConnections(); got != tc.want {
				t.Errorf("max_connections %d, want %d", got, tc.want)
			}
			if tc.in.GetLimits().GetMaxConnections() != before {
				t.Error("the input policy was modified")
			}
			if err := policy.Check(out); err != nil {
				t.Errorf("changed policy is invalid: %v", err)
			}
		})
	}
}

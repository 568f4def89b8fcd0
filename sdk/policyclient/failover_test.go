package policyclient

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// fakeReplica is one control-plane replica: a fake NodeService on its own
// loopback port that can be stopped abruptly, as a killed process is.
type fakeReplica struct {
	svc  *fakeNodeService
	addr string
	stop func()
}

func startReplicas(t *testing.T, n int) []*fakeReplica {
	t.Helper()
	rs := make([]*fakeReplica, n)
	for i := range rs {
		rs[i] = startReplica(t, "127.0.0.1:0")
	}
	return rs
}

// startReplica serves a fakeReplica on addr (a port of 0 picks one).
func startReplica(t *testing.T, addr string) *fakeReplica {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeReplica{svc: &fakeNodeService{streams: make(chan *fakeStream, 16)}, addr: lis.Addr().String()}
	srv := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(srv, r.svc)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(lis)
	}()
	// Stop, not GracefulStop: the listener and every connection close at
	// once, streams end with a reset, as when the process is killed.
	r.stop = sync.OnceFunc(func() {
		srv.Stop()
		wg.Wait()
	})
	t.Cleanup(r.stop)
	return r
}

func (r *fakeReplica) nextStream(t *testing.T) *fakeStream {
	t.Helper()
	_, fs := nextStreamOn(t, []*fakeReplica{r}, waitTimeout)
	return fs
}

// nextStreamOn waits up to within for a Watch stream on any replica and
// says which one took it.
func nextStreamOn(t *testing.T, rs []*fakeReplica, within time.Duration) (int, *fakeStream) {
	t.Helper()
	deadline := time.After(within)
	for {
		for i, r := range rs {
			select {
			case fs := <-r.svc.streams:
				return i, fs
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no Watch stream on any replica within %s", within)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestTheWatchFailsOverToAnotherReplica(t *testing.T) {
	rs := startReplicas(t, 3)
	addrs := make([]string, len(rs))
	for i, r := range rs {
		addrs[i] = r.addr
	}
	conn, err := admin.Dial(admin.Config{Addr: strings.Join(addrs, ",")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	const minBackoff = 200 * time.Millisecond
	rec := &recorder{}
	c, err := New(Config{Conn: conn.Conn(), NodeID: "n1", Apply: rec.apply, MinBackoff: minBackoff, MaxBackoff: 2 * time.Second, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, c)

	on, fs := nextStreamOn(t, rs, waitTimeout)
	fs.expectAck(t, fs.push(t, revision("default", 5)))
	stopped := map[int]bool{}
	want := []int64{5}
	for n := int64(6); n <= 7; n++ {
		// The replica the node is attached to dies; meanwhile revision n
		// is the pool's head (applied through a surviving replica).
		rs[on].stop()
		stopped[on] = true
		// The watch is back within the client's backoff (at most
		// minBackoff after a healthy stream) plus a few seconds.
		next, fs := nextStreamOn(t, rs, minBackoff+5*time.Second)
		if stopped[next] {
			t.Fatalf("a stream reached replica %d after it stopped", next)
		}
		h := fs.hello
		if h.GetNodeId() != "n1" || h.GetAppliedRevision() != n-1 || h.GetRunning().GetRevision() != n-1 {
			t.Fatalf("hello on the new replica = %v; want node n1 resuming from revision %d", h, n-1)
		}
		// The new replica pushes its newer head, which the node ACKs.
		fs.expectAck(t, fs.push(t, revision("default", n)))
		want = append(want, n)
		on = next
	}
	if got := rec.got(); !equalRevs(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if s := c.Status(); !s.Connected || s.Revision != 7 {
		t.Fatalf("status %+v; want connected at revision 7", s)
	}
}

func equalRevs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAReplicaThatWasDownIsNotHeldBackByGRPCBackoff(t *testing.T) {
	// b is down when the client starts; a is up. gRPC's own reconnect
	// backoff is set to a minute here: had the failed attempt on b (when
	// the shuffle tried it first) left b backing off, the failover to b
	// below would wait that minute. pick_first drops the other replicas'
	// connection state once one is ready, so it does not.
	a := startReplica(t, "127.0.0.1:0")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bAddr := lis.Addr().String()
	_ = lis.Close()
	conn, err := admin.Dial(admin.Config{Addr: a.addr + "," + bAddr, DialOptions: []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: time.Minute, Multiplier: 1, MaxDelay: time.Minute},
			MinConnectTimeout: 5 * time.Second,
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	const minBackoff = 200 * time.Millisecond
	rec := &recorder{}
	c, err := New(Config{Conn: conn.Conn(), NodeID: "n1", Apply: rec.apply, MinBackoff: minBackoff, MaxBackoff: 2 * time.Second, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, c)
	fs := a.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("default", 1)))

	b := startReplica(t, bAddr)
	a.stop()
	if _, fs := nextStreamOn(t, []*fakeReplica{b}, minBackoff+5*time.Second); fs.hello.GetAppliedRevision() != 1 {
		t.Fatalf("hello on b = %v; want revision 1", fs.hello)
	}
}

package policyclient

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

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
		lis, err := net.Listen("tcp", "127.0.0.1:0")
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
		// Stop, not GracefulStop: the listener and every connection close
		// at once, streams end with a reset, as when the process is killed.
		r.stop = sync.OnceFunc(func() {
			srv.Stop()
			wg.Wait()
		})
		t.Cleanup(r.stop)
		rs[i] = r
	}
	return rs
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

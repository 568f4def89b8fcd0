package publish

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/subject"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// startNATS runs an embedded NATS server on loopback (port 0: a free one,
// or the given port to bring one back where it was).
func startNATS(t *testing.T, port int, maxPayload int32) *server.Server {
	t.Helper()
	if port == 0 {
		port = -1 // nats-server's "any free port"
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// subscribe is a plain nats.go subscriber, as a backend or auditor on NATS
// would be: no wsfleet code on its side.
func subscribe(t *testing.T, url, subj string) *nats.Subscription {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// waitConnected polls until the control plane's NATS connection is in
// the wanted state.
func waitConnected(t *testing.T, h *harness, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for h.srv.nats.nc.IsConnected() != want {
		if time.Now().After(deadline) {
			t.Fatalf("NATS connected = %v, want %v, within 15s", !want, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWithNATSThePayloadOnTheChannelsSubjectIsTheDataByteForByte(t *testing.T) {
	ns := startNATS(t, 0, 0)
	h := newHarness(t, Config{NATS: NATSConfig{URL: ns.ClientURL()}})
	waitConnected(t, h, true)
	sub := subscribe(t, ns.ClientURL(), subject.Channel("shop", "orders.eu:42"))
	all := subscribe(t, ns.ClientURL(), subject.PoolWildcard("shop"))

	data := `{"status":"paid","items":[1,2],"note":"caf\u00e9 ☕"}`
	resp, err := h.pub.Publish(as(shopPublisher), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "orders.eu:42", Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRoute() != wsfleetv1.PublishResponse_ROUTE_NATS {
		t.Fatalf("answer = %v, want ROUTE_NATS", resp)
	}
	for _, s := range []*nats.Subscription{sub, all} {
		msg, err := s.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg.Data) != data {
			t.Fatalf("payload = %q, want %q byte for byte", msg.Data, data)
		}
		if pool, ch, err := subject.Parse(msg.Subject); err != nil || pool != "shop" || ch != "orders.eu:42" {
			t.Fatalf("subject %q parses to %q %q %v", msg.Subject, pool, ch, err)
		}
	}
	if got := testutil.ToFloat64(h.srv.metrics.publishes.WithLabelValues(resultOK)); got != 1 {
		t.Fatalf("ok publishes = %v", got)
	}
}

func TestWithNATSDownPublishesAreRefusedAndResumeWhenItIsBack(t *testing.T) {
	ns := startNATS(t, 0, 0)
	port := ns.Addr().(*net.TCPAddr).Port
	h := newHarness(t, Config{NATS: NATSConfig{URL: ns.ClientURL()}})
	waitConnected(t, h, true)
	req := &wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`1`)}

	ns.Shutdown()
	ns.WaitForShutdown()
	waitConnected(t, h, false)
	_, err := h.pub.Publish(as(shopPublisher), req)
	if status.Code(err) != codes.Unavailable || cause(err) != channel.CauseNATSUnavailable {
		t.Fatalf("err = %v, want Unavailable, NOT_DELIVERED nats_unavailable", err)
	}
	if !strings.Contains(status.Convert(err).Message(), "NATS is not connected") {
		t.Fatalf("message = %q", status.Convert(err).Message())
	}
	if h.published(channel.CauseNATSUnavailable) != 1 {
		t.Fatal("not counted")
	}

	back := startNATS(t, port, 0)
	waitConnected(t, h, true)
	sub := subscribe(t, back.ClientURL(), subject.Channel("shop", "news"))
	if _, err := h.pub.Publish(as(shopPublisher), req); err != nil {
		t.Fatalf("after NATS came back: %v", err)
	}
	if msg, err := sub.NextMsg(10 * time.Second); err != nil || string(msg.Data) != "1" {
		t.Fatalf("after NATS came back: %v %v", msg, err)
	}
}

func TestDataOverTheNATSServersMaxPayloadIsInvalid(t *testing.T) {
	ns := startNATS(t, 0, 100)
	h := newHarness(t, Config{NATS: NATSConfig{URL: ns.ClientURL()}})
	waitConnected(t, h, true)
	_, err := h.pub.Publish(as(shopPublisher), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`"` + strings.Repeat("x", 200) + `"`)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	if v := fieldViolations(err); len(v) != 1 || !strings.Contains(v[0], "data: 202 bytes; the NATS server takes at most 100 (its max_payload)") {
		t.Fatalf("violations = %q", v)
	}
}

// pausable forwards TCP between a client and a server; paused, it stops
// reading from both (like a stopped server process: the connection stays
// up, nothing is answered).
type pausable struct {
	lis    net.Listener
	target string
	paused atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startPausable(t *testing.T, target string) *pausable {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pausable{lis: lis, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	t.Cleanup(func() {
		p.paused.Store(false)
		_ = lis.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *pausable) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		for p.paused.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		n, err := src.Read(buf)
		if n > 0 {
			for p.paused.Load() { // hold what was read until resumed
				time.Sleep(5 * time.Millisecond)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				_ = dst.Close()
			}
			return
		}
	}
}

func TestANATSThatDoesNotAnswerLeavesThePublishUnconfirmed(t *testing.T) {
	ns := startNATS(t, 0, 0)
	proxy := startPausable(t, ns.Addr().String())
	h := newHarness(t, Config{Timeout: 300 * time.Millisecond, NATS: NATSConfig{URL: "nats://" + proxy.lis.Addr().String()}})
	waitConnected(t, h, true)
	sub := subscribe(t, ns.ClientURL(), subject.Channel("shop", "news"))

	proxy.paused.Store(true)
	_, err := h.pub.Publish(as(shopPublisher), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`"late"`)})
	proxy.paused.Store(false)
	if status.Code(err) != codes.Unavailable || cause(err) != "" {
		t.Fatalf("err = %v, want Unavailable without NOT_DELIVERED", err)
	}
	var reason string
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	if reason != channel.ReasonUnconfirmed {
		t.Fatalf("reason = %q, want %s", reason, channel.ReasonUnconfirmed)
	}
	// Unconfirmed is not "not delivered": the message was on its way and
	// arrives once the server reads again.
	if msg, err := sub.NextMsg(10 * time.Second); err != nil || string(msg.Data) != `"late"` {
		t.Fatalf("the unconfirmed message: %v %v", msg, err)
	}
	if h.published(resultUnconfirmed) != 1 {
		t.Fatal("not counted")
	}
}

func TestANATSThatIsNotThereDoesNotStopTheStart(t *testing.T) {
	t.Run("the control plane starts and refuses publishes until it connects", func(t *testing.T) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := lis.Addr().String()
		_ = lis.Close()
		h := newHarness(t, Config{NATS: NATSConfig{URL: "nats://" + addr}})
		_, err = h.pub.Publish(as(shopPublisher), &wsfleetv1.PublishRequest{Pool: "shop", Channel: "news", Data: []byte(`1`)})
		if status.Code(err) != codes.Unavailable || cause(err) != channel.CauseNATSUnavailable {
			t.Fatalf("err = %v, want Unavailable nats_unavailable", err)
		}
	})
	t.Run("a credentials file that cannot be read fails the start", func(t *testing.T) {
		_, err := New(Config{NATS: NATSConfig{URL: "nats://127.0.0.1:4222", Creds: t.TempDir() + "/none.creds"}})
		if !errors.Is(err, ErrNATS) || !strings.Contains(err.Error(), "--nats-creds") {
			t.Fatalf("err = %v, want ErrNATS naming --nats-creds", err)
		}
	})
	t.Run("a URL that is no NATS URL fails the start", func(t *testing.T) {
		_, err := New(Config{NATS: NATSConfig{URL: "nats://[::1"}})
		if !errors.Is(err, ErrNATS) {
			t.Fatalf("err = %v, want ErrNATS", err)
		}
	})
}

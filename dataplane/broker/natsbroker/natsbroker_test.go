package natsbroker_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/api/subject"
	"github.com/wsfleet/wsfleet/dataplane/broker"
	"github.com/wsfleet/wsfleet/dataplane/broker/natsbroker"
	"github.com/wsfleet/wsfleet/dataplane/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Subscriber that keeps the frames it gets.
type recorder struct {
	mu   sync.Mutex
	msgs []string
	cond chan struct{}
}

func newRecorder() *recorder { return &recorder{cond: make(chan struct{}, 1)} }

func (r *recorder) Deliver(msg []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, string(msg))
	r.mu.Unlock()
	select {
	case r.cond <- struct{}{}:
	default:
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitFor waits until the recorder has a frame containing want.
func (r *recorder) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, m := range r.got() {
			if strings.Contains(m, want) {
				return
			}
		}
		select {
		case <-r.cond:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no frame containing %q within 10s; got %q", want, r.got())
		}
	}
}

// count is how many frames contain want.
func (r *recorder) count(want string) int {
	n := 0
	for _, m := range r.got() {
		if strings.Contains(m, want) {
			n++
		}
	}
	return n
}

type testBroker struct {
	*natsbroker.Broker
	reg *prometheus.Registry
}

func newBroker(t *testing.T, url, name string, mutate func(*natsbroker.Config)) *testBroker {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	cfg := natsbroker.Config{
		URLs:          url,
		Pool:          "default",
		Name:          name,
		ReconnectWait: 50 * time.Millisecond,
		PingInterval:  200 * time.Millisecond,
		Log:           logrus.NewEntry(log),
		Registerer:    reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := natsbroker.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &testBroker{Broker: b, reg: reg}
}

func (b *testBroker) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func subscribe(t *testing.T, b broker.Broker, channel string, s broker.Subscriber) {
	t.Helper()
	if added, err := b.Subscribe(channel, s); err != nil || !added {
		t.Fatalf("Subscribe(%q) = %v, %v; want true, nil", channel, added, err)
	}
}

func publish(t *testing.T, b broker.Broker, channel, data string) {
	t.Helper()
	if _, err := b.Publish(context.Background(), channel, []byte(data)); err != nil {
		t.Fatalf("Publish(%q, %s) = %v", channel, data, err)
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAPublishReachesEverySubscriberOfThePoolOnce(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	b := newBroker(t, srv.URL(), "b", nil)
	a1, a2, b1 := newRecorder(), newRecorder(), newRecorder()
	subscribe(t, a, "room:1", a1)
	subscribe(t, a, "room:1", a2)
	subscribe(t, b, "room:1", b1)

	publish(t, a, "room:1", `{"n":1}`)
	publish(t, a, "room:1", `"fence"`)
	want := `{"type":"message","channel":"room:1","data":{"n":1}}`
	for name, r := range map[string]*recorder{"publisher's node": a1, "publisher's node, second": a2, "other node": b1} {
		r.waitFor(t, `"fence"`)
		if got := r.got(); len(got) != 2 || got[0] != want {
			t.Errorf("%s subscriber got %q; want %s once, then the fence", name, got, want)
		}
	}
}

func TestTheSubjectAndPayloadAreTheDocumentedOnes(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	backend, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	raw, err := backend.SubscribeSync(subject.Channel("default", "news.eu"))
	if err != nil {
		t.Fatal(err)
	}
	if err := backend.Flush(); err != nil {
		t.Fatal(err)
	}

	publish(t, a, "news.eu", `{"headline":"é"}`)
	m, err := raw.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("nothing on %s: %v", subject.Channel("default", "news.eu"), err)
	}
	if m.Subject != "wsfleet.default.ch.news~2Eeu" || string(m.Data) != `{"headline":"é"}` {
		t.Fatalf("got %q on %q; want the data byte for byte on wsfleet.default.ch.news~2Eeu", m.Data, m.Subject)
	}

	// And a backend publishing there reaches the node's subscribers.
	r := newRecorder()
	subscribe(t, a, "news.eu", r)
	if err := backend.Publish(subject.Channel("default", "news.eu"), []byte(`{"from":"backend"}`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, `{"type":"message","channel":"news.eu","data":{"from":"backend"}}`)
}

func TestPoolsDoNotShareChannels(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	other := newBroker(t, srv.URL(), "other", func(c *natsbroker.Config) { c.Pool = "edge" })
	mine, theirs := newRecorder(), newRecorder()
	subscribe(t, a, "c", mine)
	subscribe(t, other, "c", theirs)

	publish(t, a, "c", `"default only"`)
	mine.waitFor(t, "default only")
	publish(t, other, "c", `"edge only"`)
	theirs.waitFor(t, "edge only")
	if n := theirs.count("default only") + mine.count("edge only"); n != 0 {
		t.Fatalf("a message crossed pools: default got %q, edge got %q", mine.got(), theirs.got())
	}
}

func TestOneNATSSubscriptionPerChannelPerNode(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	subsOnServer := func() int {
		n, ok := srv.Subscriptions("a")
		if !ok {
			t.Fatal("the broker's connection is not on the server")
		}
		return n
	}
	c1, c2, c3, d1 := newRecorder(), newRecorder(), newRecorder(), newRecorder()
	subscribe(t, a, "c", c1)
	subscribe(t, a, "c", c2)
	subscribe(t, a, "c", c3)
	subscribe(t, a, "d", d1)
	// Subscribe returns once the server confirmed the subscription.
	if n := subsOnServer(); n != 2 {
		t.Fatalf("server holds %d subscriptions for 3 subscribers of c and 1 of d; want 2", n)
	}
	if got := a.metric(t, "wsfleet_node_nats_subscriptions"); got != 2 {
		t.Errorf("wsfleet_node_nats_subscriptions = %v, want 2", got)
	}

	a.Unsubscribe("c", c1)
	a.Unsubscribe("c", c2)
	publish(t, a, "c", `"still"`)
	c3.waitFor(t, "still")
	if n := subsOnServer(); n != 2 {
		t.Fatalf("server holds %d subscriptions with c's last subscriber still there; want 2", n)
	}
	a.Unsubscribe("c", c3)
	eventually(t, 10*time.Second, "the server drops c when its last subscriber leaves", func() bool { return subsOnServer() == 1 })
	a.Unsubscribe("d", d1)
	eventually(t, 10*time.Second, "the server drops d", func() bool { return subsOnServer() == 0 })
	if got := a.Subscriptions(); got != 0 {
		t.Errorf("Subscriptions = %d after everyone left, want 0", got)
	}
	// A channel subscribed again gets a subscription again.
	subscribe(t, a, "c", c1)
	if n := subsOnServer(); n != 1 {
		t.Fatalf("server holds %d subscriptions after c came back; want 1", n)
	}
}

func TestAPublishWhileNATSIsDownIsRefusedAndSubscriptionsComeBack(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	b := newBroker(t, srv.URL(), "b", nil)
	before, during := newRecorder(), newRecorder()
	subscribe(t, a, "live", before)

	srv.Stop()
	eventually(t, 10*time.Second, "the broker notices NATS is gone", func() bool { return !a.Connected() && !b.Connected() })
	if _, err := b.Publish(context.Background(), "live", []byte(`"lost"`)); !errors.Is(err, broker.ErrNotConnected) {
		t.Fatalf("Publish while NATS is down = %v, want ErrNotConnected", err)
	}
	if got := a.metric(t, "wsfleet_node_nats_connected"); got != 0 {
		t.Errorf("wsfleet_node_nats_connected = %v while NATS is down, want 0", got)
	}
	// Subscribing while NATS is down works: the subscription takes effect
	// when it is back.
	subscribe(t, a, "later", during)

	srv.Restart()
	eventually(t, 10*time.Second, "both brokers reconnect by themselves", func() bool { return a.Connected() && b.Connected() })
	// Neither subscription was renewed by anyone: the client library
	// restores them. b's publishes may race a's resubscription, so retry
	// until one lands.
	for ch, r := range map[string]*recorder{"live": before, "later": during} {
		eventually(t, 10*time.Second, "a message on "+ch+" reaches its subscriber, made before the restart", func() bool {
			publish(t, b, ch, `"back"`)
			return r.count("back") > 0
		})
	}
	if got := before.count("lost"); got != 0 {
		t.Errorf("the refused publish was delivered %d times", got)
	}
	if got := a.metric(t, "wsfleet_node_nats_reconnects_total"); got < 1 {
		t.Errorf("wsfleet_node_nats_reconnects_total = %v, want at least 1", got)
	}
	if n, _ := srv.Subscriptions("a"); n != 2 {
		t.Errorf("server holds %d subscriptions for a after the restart, want 2", n)
	}
}

func TestWhatIsNotAJSONValueInValidUTF8IsDroppedAndCounted(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	r := newRecorder()
	subscribe(t, a, "c", r)
	backend, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	subj := subject.Channel("default", "c")
	for _, bad := range [][]byte{[]byte(`not json`), []byte("\"\xff\""), {}, []byte(`{"a":`)} {
		if err := backend.Publish(subj, bad); err != nil {
			t.Fatal(err)
		}
	}
	if err := backend.Publish(subj, []byte(`"good"`)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, `"good"`)
	if got := r.got(); len(got) != 1 {
		t.Fatalf("subscriber got %q; want only the valid message", got)
	}
	if got := a.metric(t, "wsfleet_node_nats_messages_invalid_total"); got != 4 {
		t.Errorf("wsfleet_node_nats_messages_invalid_total = %v, want 4", got)
	}
	// Counted once Deliver has returned, just after the recorder saw it.
	eventually(t, 10*time.Second, "wsfleet_node_nats_deliveries_total is 1", func() bool {
		return a.metric(t, "wsfleet_node_nats_deliveries_total") == 1
	})
}

// stuck is a Subscriber whose first Deliver blocks until released: a node
// whose dispatcher has fallen behind.
type stuck struct {
	release chan struct{}
	once    sync.Once
	n       atomic.Int64
}

func (s *stuck) Deliver([]byte) {
	s.once.Do(func() { <-s.release })
	s.n.Add(1)
}

func TestWhatANodeCannotKeepUpWithIsBoundedInMessagesAndBytes(t *testing.T) {
	srv := natstest.Start(t)
	const queueBytes = 1 << 20
	a := newBroker(t, srv.URL(), "a", func(c *natsbroker.Config) {
		c.QueueBytes = queueBytes
		c.QueueLen = 1000
		c.Dispatchers = 1
	})
	s := &stuck{release: make(chan struct{})}
	subscribe(t, a, "c", s)
	defer close(s.release)
	backend, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	// 40 messages of 100 KB, 4 MB in all, at a dispatcher stuck in its
	// first Deliver: 10 fit in 1 MiB, the rest are dropped.
	big := []byte(`"` + strings.Repeat("x", 100_000) + `"`)
	for range 40 {
		if err := backend.Publish(subject.Channel("default", "c"), big); err != nil {
			t.Fatal(err)
		}
	}
	if err := backend.Flush(); err != nil {
		t.Fatal(err)
	}
	// A message counts as queued until its delivery is done.
	eventually(t, 10*time.Second, "every message is either queued or dropped", func() bool {
		return a.metric(t, "wsfleet_node_nats_messages_dropped_total")+a.metric(t, "wsfleet_node_nats_queued_messages") == 40
	})
	queued, bytes := a.metric(t, "wsfleet_node_nats_queued_messages"), a.metric(t, "wsfleet_node_nats_queued_bytes")
	if bytes > queueBytes || queued != 10 {
		t.Fatalf("%v messages of %v bytes queued; want the 10 that fit in %d bytes", queued, bytes, queueBytes)
	}

	// Once the node catches up, what was queued is delivered and the next
	// message gets through.
	s.release <- struct{}{}
	eventually(t, 10*time.Second, "the queue drains", func() bool { return s.n.Load() == int64(queued) })
	if err := backend.Publish(subject.Channel("default", "c"), []byte(`"next"`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the next message is delivered", func() bool { return s.n.Load() == int64(queued)+1 })
	if got := a.metric(t, "wsfleet_node_nats_queued_bytes"); got != 0 {
		t.Errorf("wsfleet_node_nats_queued_bytes = %v after draining, want 0", got)
	}
}

func TestAMessageOverTheServersMaxPayloadIsTooBig(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	eventually(t, 10*time.Second, "connected", a.Connected)
	big := []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
	if _, err := a.Publish(context.Background(), "c", big); !errors.Is(err, broker.ErrTooBig) {
		t.Fatalf("Publish of 2 MiB = %v, want ErrTooBig (the server's max_payload is 1 MiB)", err)
	}
}

func TestANodeStartsWhileNATSIsDown(t *testing.T) {
	srv := natstest.Start(t)
	url := srv.URL()
	srv.Stop()
	a := newBroker(t, url, "a", nil)
	r := newRecorder()
	subscribe(t, a, "c", r)
	if _, err := a.Publish(context.Background(), "c", []byte(`1`)); !errors.Is(err, broker.ErrNotConnected) {
		t.Fatalf("Publish before NATS was ever reached = %v, want ErrNotConnected", err)
	}
	srv.Restart()
	eventually(t, 10*time.Second, "the broker connects by itself and its subscription works", func() bool {
		_, _ = a.Publish(context.Background(), "c", []byte(`"first"`))
		return r.count("first") > 0
	})
}

func TestCloseLeavesNothingBehind(t *testing.T) {
	srv := natstest.Start(t)
	a := newBroker(t, srv.URL(), "a", nil)
	subscribe(t, a, "c", newRecorder())
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := a.Close(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := a.Publish(context.Background(), "c", []byte(`1`)); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := a.Subscribe("c", newRecorder()); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	eventually(t, 10*time.Second, "the server forgets the connection", func() bool {
		_, ok := srv.Subscriptions("a")
		return !ok
	})
	if got := a.metric(t, "wsfleet_node_nats_subscriptions"); got != 0 {
		t.Errorf("wsfleet_node_nats_subscriptions = %v after Close, want 0", got)
	}
}

// logLines collects a logger's entries.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Levels() []logrus.Level { return logrus.AllLevels }

func (l *logLines) Fire(e *logrus.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := e.Level.String() + " " + e.Message
	if err, ok := e.Data[logrus.ErrorKey].(error); ok {
		line += ": " + err.Error()
	}
	l.lines = append(l.lines, line)
	return nil
}

func (l *logLines) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

func TestCredentialsAreSentAndAWrongOneIsLoggedAndRetried(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.Authorization = "s3cret" })
	good := newBroker(t, srv.URL(), "good", func(c *natsbroker.Config) { c.Token = "s3cret" })
	r := newRecorder()
	subscribe(t, good, "c", r)
	publish(t, good, "c", `"with a token"`)
	r.waitFor(t, "with a token")

	lines := &logLines{}
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(lines)
	bad := newBroker(t, srv.URL(), "bad", func(c *natsbroker.Config) {
		c.Token = "wrong"
		c.Log = logrus.NewEntry(log)
	})
	eventually(t, 10*time.Second, "the authorization violation is logged", func() bool {
		return lines.count("warning NATS redial failed; retrying: nats: Authorization Violation") == 1
	})
	if bad.Connected() {
		t.Fatal("connected with a wrong token")
	}
	// The broker does not give up on an authorization error (the server's
	// side may be fixed while the node runs): once the server takes it, it
	// connects.
	srv.Stop()
	srv.Restart(func(*server.Options) {})
	eventually(t, 10*time.Second, "the broker connects once its token is accepted", bad.Connected)
}

func TestConfigIsCheckedBeforeConnecting(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(creds, []byte("no seed here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*natsbroker.Config)
		want   string
	}{
		{"no URL is refused", func(c *natsbroker.Config) { c.URLs = " " }, "URLs is required"},
		{"an unknown scheme is refused", func(c *natsbroker.Config) { c.URLs = "http://127.0.0.1:4222" }, `scheme "http"`},
		{"no pool is refused", func(c *natsbroker.Config) { c.Pool = "" }, "Pool is required"},
		{"two kinds of credentials are refused", func(c *natsbroker.Config) { c.User, c.Token = "u", "t" }, "one of"},
		{"a password without a user is refused", func(c *natsbroker.Config) { c.Password = "p" }, "needs a user"},
		{"a certificate without its key is refused", func(c *natsbroker.Config) { c.CertFile = "cert.pem" }, "both CertFile and KeyFile"},
		{"a missing credentials file is refused", func(c *natsbroker.Config) { c.CredsFile = filepath.Join(t.TempDir(), "nope") }, "no such file"},
		{"a credentials file without a seed is refused", func(c *natsbroker.Config) { c.CredsFile = creds }, "no user nkey seed"},
		{"a missing CA file is refused", func(c *natsbroker.Config) { c.CAFile = filepath.Join(t.TempDir(), "ca.pem") }, "rootCA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := natsbroker.Config{URLs: "nats://127.0.0.1:1", Pool: "default"}
			tt.mutate(&cfg)
			b, err := natsbroker.New(cfg)
			if err == nil {
				_ = b.Close()
				t.Fatalf("New = nil error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

package policyclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func quietLog() logrus.FieldLogger {
	l, _ := logtest.NewNullLogger()
	return l
}

// newClient builds a client of node "node-1" in pool "edge" on h.
func newClient(t testing.TB, h *harness, rec *recorder, mutate func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Conn:       h.conn,
		NodeID:     "node-1",
		Pool:       "edge",
		Labels:     map[string]string{"zone": "a"},
		Build:      "v1.2.3",
		Address:    "10.0.0.1:8080",
		Apply:      rec.apply,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		Log:        quietLog(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewValidatesConfig(t *testing.T) {
	h := newHarness(t, false)
	apply := func(*wsfleetv1.PolicyRevision) error { return nil }
	dir := t.TempDir()
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr bool
	}{
		{"a complete config is accepted", func(*Config) {}, false},
		{"a config without a connection is refused", func(c *Config) { c.Conn = nil }, true},
		{"a config without a node id is refused", func(c *Config) { c.NodeID = "" }, true},
		{"a config without Apply is refused", func(c *Config) { c.Apply = nil }, true},
		{"an invalid pool name is refused", func(c *Config) { c.Pool = "Not A Pool" }, true},
		{"a negative MinBackoff is refused", func(c *Config) { c.MinBackoff = -time.Second }, true},
		{"a negative MaxBackoff is refused", func(c *Config) { c.MaxBackoff = -time.Second }, true},
		{"MinBackoff above MaxBackoff is refused", func(c *Config) { c.MinBackoff, c.MaxBackoff = 2*time.Second, time.Second }, true},
		{"a cache file in a missing directory is refused", func(c *Config) { c.CacheFile = filepath.Join(dir, "missing", "cache.json") }, true},
		{"a cache file in an existing directory is accepted", func(c *Config) { c.CacheFile = filepath.Join(dir, "cache.json") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Conn: h.conn, NodeID: "n", Apply: apply, Log: quietLog()}
			tt.mutate(&cfg)
			_, err := New(cfg)
			if tt.wantErr != (err != nil) {
				t.Fatalf("New: %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	h := newHarness(t, false)
	c, err := New(Config{Conn: h.conn, NodeID: "n", Apply: func(*wsfleetv1.PolicyRevision) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Pool != policy.DefaultPool || c.cfg.MinBackoff != DefaultMinBackoff || c.cfg.MaxBackoff != DefaultMaxBackoff || c.cfg.Log == nil {
		t.Fatalf("defaults not filled: pool %q, backoff %s..%s, log %v", c.cfg.Pool, c.cfg.MinBackoff, c.cfg.MaxBackoff, c.cfg.Log)
	}
	if c.Ready() || c.Cached() != nil {
		t.Fatal("a client without a cache is ready before any policy")
	}
}

func TestHelloIdentifiesTheNode(t *testing.T) {
	h := newHarness(t, false)
	c := newClient(t, h, &recorder{}, nil)
	runClient(t, c)
	got := h.nextStream(t).hello
	want := &wsfleetv1.NodeHello{NodeId: "node-1", Pool: "edge", Labels: map[string]string{"zone": "a"}, Build: "v1.2.3", Address: "10.0.0.1:8080"}
	if !proto.Equal(got, want) {
		t.Fatalf("hello %v, want %v", got, want)
	}
}

func TestPushIsAppliedAndAcked(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{}
	c := newClient(t, h, rec, nil)
	runClient(t, c)
	fs := h.nextStream(t)
	eventually(t, "connected", func() bool { return c.Status().Connected })
	before := time.Now()
	nonce := fs.push(t, revision("edge", 3))
	fs.expectAck(t, nonce)
	if got := rec.got(); !slices.Equal(got, []int64{3}) {
		t.Fatalf("applied %v, want [3]", got)
	}
	st := c.Status()
	if !st.Connected || st.Revision != 3 || st.Pool != "edge" || st.Acks != 1 || st.Nacks != 0 || st.Received != 1 || st.Dials != 1 {
		t.Fatalf("status %+v", st)
	}
	if st.LastApplyTime.Before(before) {
		t.Fatalf("LastApplyTime %s is before the push", st.LastApplyTime)
	}
	if !c.Ready() {
		t.Fatal("not ready after an applied revision")
	}
}

func TestDefaultPoolRevisionIsApplied(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{}
	c := newClient(t, h, rec, nil)
	runClient(t, c)
	fs := h.nextStream(t)
	nonce := fs.push(t, revision(policy.DefaultPool, 7))
	fs.expectAck(t, nonce)
	if st := c.Status(); st.Pool != policy.DefaultPool || st.Revision != 7 {
		t.Fatalf("status %+v, want default revision 7", st)
	}
}

func TestRefusedPolicyIsNackedAndTheLastGoodOneStays(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{}
	cache := filepath.Join(t.TempDir(), "policy.json")
	c := newClient(t, h, rec, func(cfg *Config) { cfg.CacheFile = cache })
	runClient(t, c)
	fs := h.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("edge", 1)))

	rec.setFail(errors.New("max_message_bytes cannot grow live"))
	nonce := fs.push(t, revision("edge", 2))
	if text := fs.expectNack(t, nonce); text != "max_message_bytes cannot grow live" {
		t.Fatalf("NACK text %q", text)
	}
	st := c.Status()
	if st.Revision != 1 || st.Nacks != 1 || st.Acks != 1 || st.LastError != "max_message_bytes cannot grow live" || st.LastErrorTime.IsZero() {
		t.Fatalf("status %+v", st)
	}
	cached, err := loadCache(cache)
	if err != nil || cached.GetRevision() != 1 {
		t.Fatalf("cache holds %v (%v), want revision 1", cached, err)
	}

	// The next good revision is applied as usual.
	rec.setFail(nil)
	fs.expectAck(t, fs.push(t, revision("edge", 3)))
	if got := rec.got(); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("applied %v, want [1 3]", got)
	}
}

func TestInvalidPushIsNackedWithoutApply(t *testing.T) {
	noHeartbeat := revision("edge", 2)
	noHeartbeat.Policy.Heartbeat = nil
	tests := []struct {
		name     string
		rev      *wsfleetv1.PolicyRevision
		wantText string
	}{
		{"a push without a revision is refused", nil, "no revision"},
		{"a revision numbered 0 is refused", revision("edge", 0), "revision 0 is not positive"},
		{"a revision of another pool is refused", revision("other", 2), `pool "other", but this node is in pool "edge"`},
		{"an invalid policy is refused naming the field", noHeartbeat, "heartbeat: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			rec := &recorder{}
			c := newClient(t, h, rec, nil)
			runClient(t, c)
			fs := h.nextStream(t)
			text := fs.expectNack(t, fs.push(t, tt.rev))
			if !strings.Contains(text, tt.wantText) || !strings.HasPrefix(text, ErrInvalidPush.Error()) {
				t.Fatalf("NACK text %q, want it to start with %q and contain %q", text, ErrInvalidPush, tt.wantText)
			}
			if got := rec.got(); len(got) != 0 {
				t.Fatalf("Apply called with %v", got)
			}
			if st := c.Status(); st.Revision != 0 || st.Nacks != 1 || c.Ready() {
				t.Fatalf("status %+v, ready %v", st, c.Ready())
			}
		})
	}
}

func TestLatestPushWinsWhileApplyIsBlocked(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{gate: make(chan struct{}), entered: make(chan int64, 8)}
	c := newClient(t, h, rec, nil)
	runClient(t, c)
	fs := h.nextStream(t)

	n1 := fs.push(t, revision("edge", 1))
	if got := <-rec.entered; got != 1 {
		t.Fatalf("Apply entered with %d", got)
	}
	fs.push(t, revision("edge", 2))
	fs.push(t, revision("edge", 3))
	n4 := fs.push(t, revision("edge", 4))
	// The receive loop took all three while Apply was blocked.
	eventually(t, "all four pushes received", func() bool { return c.Status().Received == 4 })

	rec.gate <- struct{}{}
	fs.expectAck(t, n1)
	if got := <-rec.entered; got != 4 {
		t.Fatalf("after unblocking, Apply got revision %d, want 4 (latest wins)", got)
	}
	rec.gate <- struct{}{}
	fs.expectAck(t, n4)
	if got := rec.got(); !slices.Equal(got, []int64{1, 4}) {
		t.Fatalf("applied %v, want [1 4]", got)
	}
	select {
	case r := <-fs.replies:
		t.Fatalf("a skipped push was answered: %v", r)
	case <-time.After(100 * time.Millisecond):
	}
	if st := c.Status(); st.Acks != 2 || st.Revision != 4 {
		t.Fatalf("status %+v", st)
	}
}

func TestReconnectResumesFromTheAppliedRevision(t *testing.T) {
	h := newHarness(t, false)
	c := newClient(t, h, &recorder{}, nil)
	runClient(t, c)
	fs := h.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("edge", 5)))

	fs.fail(t, status.Error(codes.Unavailable, "control plane restarting"))
	fs2 := h.nextStream(t)
	if fs2.hello.GetAppliedRevision() != 5 || fs2.hello.GetAppliedPool() != "edge" || fs2.hello.GetNodeId() != "node-1" {
		t.Fatalf("hello after reconnect %v, want applied edge/5", fs2.hello)
	}
	st := c.Status()
	if st.Dials != 2 || !strings.Contains(st.LastError, "control plane restarting") {
		t.Fatalf("status %+v", st)
	}
	// The new stream works as the first did.
	fs2.expectAck(t, fs2.push(t, revision("edge", 6)))
	if c.Status().Revision != 6 {
		t.Fatalf("status %+v", c.Status())
	}
}

func TestPushOfTheAppliedRevisionIsAckedWithoutApply(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{}
	c := newClient(t, h, rec, nil)
	runClient(t, c)
	fs := h.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("edge", 5)))
	fs.expectAck(t, fs.push(t, revision("edge", 5)))
	if got := rec.got(); !slices.Equal(got, []int64{5}) {
		t.Fatalf("applied %v, want [5] once", got)
	}
	// Same number, other content from the same store (no store refuses
	// that; only another store's is refused, see backwards_test.go):
	// applied again.
	changed := revision("edge", 5)
	changed.Policy.Limits.MaxConnections = 42
	fs.expectAck(t, fs.push(t, changed))
	if got := rec.got(); !slices.Equal(got, []int64{5, 5}) {
		t.Fatalf("applied %v, want [5 5]", got)
	}
}

func TestConnectedFollowsTheStream(t *testing.T) {
	t.Run("a server that sends headers reads as connected at once", func(t *testing.T) {
		h := newHarness(t, false)
		// A long backoff keeps the client from reconnecting before the
		// check below.
		c := newClient(t, h, &recorder{}, func(cfg *Config) { cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour })
		runClient(t, c)
		fs := h.nextStream(t)
		eventually(t, "connected", func() bool { return c.Status().Connected })
		fs.fail(t, status.Error(codes.Unavailable, "gone"))
		eventually(t, "disconnected", func() bool { return !c.Status().Connected })
	})
	t.Run("a server that only pushes reads as connected after the first push", func(t *testing.T) {
		h := newHarness(t, true)
		c := newClient(t, h, &recorder{}, nil)
		runClient(t, c)
		fs := h.nextStream(t)
		fs.expectAck(t, fs.push(t, revision("edge", 1)))
		if !c.Status().Connected {
			t.Fatalf("status %+v after a push", c.Status())
		}
	})
}

func TestDialsAreBoundedWhileTheControlPlaneIsDown(t *testing.T) {
	// A port nothing listens on: every attempt is refused at once.
	lis, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	conn := dialConn(t, addr)
	c, err := New(Config{
		Conn: conn, NodeID: "n", Apply: func(*wsfleetv1.PolicyRevision) error { return nil },
		MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Log: quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run returned %v", err)
	}
	st := c.Status()
	t.Logf("%d dials in 3s", st.Dials)
	// Expected about ten: sleeps average 50, 100, 200, 400ms, then 500ms.
	// A tight loop makes thousands; 60 would need sleeps averaging 50ms.
	if st.Dials < 2 || st.Dials > 60 {
		t.Fatalf("%d dials in 3s with backoff 100ms..1s", st.Dials)
	}
	if st.Connected || st.LastError == "" || st.LastErrorTime.IsZero() || c.Ready() {
		t.Fatalf("status %+v", st)
	}
}

func TestBackoffGrowsAndStartsOverAfterAHealthyStream(t *testing.T) {
	h := newHarness(t, false)
	c := newClient(t, h, &recorder{}, func(cfg *Config) {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 200*time.Millisecond
	})
	ceilings := make(chan time.Duration, 32)
	c.jitter = func(d time.Duration) time.Duration {
		ceilings <- d
		return 0
	}
	runClient(t, c)
	fail := func(fs *fakeStream) { fs.fail(t, status.Error(codes.Unavailable, "flaky")) }
	next := func() time.Duration {
		select {
		case d := <-ceilings:
			return d
		case <-time.After(waitTimeout):
			t.Fatal("no backoff drawn")
			return 0
		}
	}
	ms := time.Millisecond
	// Failures without a push: 10, 20, 40ms.
	for _, want := range []time.Duration{10 * ms, 20 * ms, 40 * ms} {
		fail(h.nextStream(t))
		if got := next(); got != want {
			t.Fatalf("backoff ceiling %s, want %s", got, want)
		}
	}
	// A stream that delivered a push was healthy: back to 10ms.
	fs := h.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("edge", 1)))
	fail(fs)
	if got := next(); got != 10*ms {
		t.Fatalf("after a healthy stream, backoff ceiling %s, want 10ms", got)
	}
	fail(h.nextStream(t))
	if got := next(); got != 20*ms {
		t.Fatalf("backoff ceiling %s, want 20ms", got)
	}
	// A stream that lasted longer than MaxBackoff was healthy too.
	fs = h.nextStream(t)
	time.Sleep(250 * ms)
	fail(fs)
	if got := next(); got != 10*ms {
		t.Fatalf("after a long stream, backoff ceiling %s, want 10ms", got)
	}
	h.nextStream(t) // the client is back; its cleanup cancels it
}

func TestRunWaitsForApplyAndStops(t *testing.T) {
	h := newHarness(t, false)
	rec := &recorder{gate: make(chan struct{}), entered: make(chan int64, 1)}
	c := newClient(t, h, rec, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	fs := h.nextStream(t)
	fs.push(t, revision("edge", 1))
	<-rec.entered

	if err := c.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second Run returned %v, want ErrRunning", err)
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while Apply was still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(rec.gate)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after Apply returned")
	}
	// Its stream was gone, so no answer was sent for the push.
	if st := c.Status(); st.Acks != 0 || st.Connected {
		t.Fatalf("status %+v", st)
	}

	// A stopped Client can run again.
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- c.Run(ctx2) }()
	fs2 := h.nextStream(t)
	if fs2.hello.GetAppliedRevision() != 1 {
		t.Fatalf("hello %v, want applied revision 1", fs2.hello)
	}
	cancel2()
	if err := <-done2; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestCacheResumesAfterARestart(t *testing.T) {
	h := newHarness(t, false)
	cache := filepath.Join(t.TempDir(), "policy.json")
	first := newClient(t, h, &recorder{}, func(cfg *Config) { cfg.CacheFile = cache })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	fs := h.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("edge", 9)))
	cancel()
	<-done

	rec := &recorder{}
	second := newClient(t, h, rec, func(cfg *Config) { cfg.CacheFile = cache })
	if !proto.Equal(second.Cached(), revision("edge", 9)) {
		t.Fatalf("Cached() = %v, want revision 9", second.Cached())
	}
	if st := second.Status(); !second.Ready() || st.Revision != 9 || st.Pool != "edge" {
		t.Fatalf("status %+v, ready %v", st, second.Ready())
	}
	runClient(t, second)
	fs2 := h.nextStream(t)
	if fs2.hello.GetAppliedRevision() != 9 || fs2.hello.GetAppliedPool() != "edge" {
		t.Fatalf("hello %v, want applied edge/9", fs2.hello)
	}
	// The cached revision counts as applied.
	fs2.expectAck(t, fs2.push(t, revision("edge", 9)))
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("Apply called with %v for the cached revision", got)
	}
}

func TestUnusableCacheIsIgnoredWithALogLine(t *testing.T) {
	noLimits := revision("edge", 4)
	noLimits.Policy.Limits = nil
	encode := func(rev *wsfleetv1.PolicyRevision) []byte {
		b, err := cacheMarshal.Marshal(rev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		content []byte
		dir     bool
	}{
		{"garbage is ignored", []byte("\x00\x01not json"), false},
		{"an empty file is ignored", nil, false},
		{"a truncated file is ignored", encode(revision("edge", 4))[:40], false},
		{"an invalid policy is ignored", encode(noLimits), false},
		{"another pool's revision is ignored", encode(revision("other", 4)), false},
		{"a file over the size bound is ignored", []byte(strings.Repeat(" ", MaxCacheBytes+1)), false},
		{"a directory in place of the file is ignored", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.json")
			var err error
			if tt.dir {
				err = os.Mkdir(path, 0o755)
			} else {
				err = os.WriteFile(path, tt.content, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			log, hook := logtest.NewNullLogger()
			c, err := New(Config{Conn: dialConn(t, "127.0.0.1:1"), NodeID: "n", Pool: "edge", Apply: func(*wsfleetv1.PolicyRevision) error { return nil }, CacheFile: path, Log: log})
			if err != nil {
				t.Fatalf("New refused to start: %v", err)
			}
			if c.Cached() != nil || c.Ready() || c.Status().Revision != 0 {
				t.Fatalf("unusable cache taken: %v", c.Cached())
			}
			last := hook.LastEntry()
			if last == nil || last.Level != logrus.WarnLevel || !strings.Contains(last.Message, "policy cache ignored") {
				t.Fatalf("log %v, want a warning that the cache was ignored", hook.AllEntries())
			}
			if err, _ := last.Data[logrus.ErrorKey].(error); !errors.Is(err, ErrCache) {
				t.Fatalf("logged error %v does not wrap ErrCache", last.Data[logrus.ErrorKey])
			}
		})
	}
}

func TestDefaultPoolCacheIsTaken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := writeCache(path, revision(policy.DefaultPool, 2)); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Conn: dialConn(t, "127.0.0.1:1"), NodeID: "n", Pool: "edge", Apply: func(*wsfleetv1.PolicyRevision) error { return nil }, CacheFile: path, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cached().GetRevision() != 2 || c.Status().Pool != policy.DefaultPool {
		t.Fatalf("cached %v", c.Cached())
	}
}

func TestCacheWriteFailureStillAcks(t *testing.T) {
	h := newHarness(t, false)
	dir := t.TempDir()
	cache := filepath.Join(dir, "policy.json")
	// A directory where the file should be: the rename fails.
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, h, &recorder{}, func(cfg *Config) { cfg.CacheFile = cache })
	runClient(t, c)
	fs := h.nextStream(t)
	fs.expectAck(t, fs.push(t, revision("edge", 1)))
	st := c.Status()
	if st.Revision != 1 || !strings.Contains(st.LastError, ErrCache.Error()) {
		t.Fatalf("status %+v", st)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %v, want only the cache path (no temporary file left)", entries)
	}
}

package policysource_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/policysource"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// heartbeat returns the default policy with the given ping interval; the
// interval is how tests tell versions apart. 20s..59s encode to the same
// length, for tests where only the content may differ.
func heartbeat(d time.Duration) *wsfleetv1.Policy {
	p := policy.Default()
	p.Heartbeat.Interval = durationpb.New(d)
	return p
}

func yamlOf(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := policyfile.EncodeYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonOf(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := policyfile.EncodeJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// invalidYAML has two violations: an interval under 1s and no connections.
const invalidYAML = `origins:
  allow: []
  allow_missing: true
heartbeat:
  interval: 500ms
  timeout: 60s
limits:
  max_connections: 0
  max_connections_per_ip: 10
  handshakes_per_second: 10
  handshake_burst: 10
  messages_per_second: 10
  message_burst: 10
  max_message_bytes: 1024
breaker:
  failure_ratio: 0.5
  min_samples: 10
  window: 10s
  open_duration: 5s
  half_open_probes: 1
`

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func setMtime(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// recorder is an Apply that keeps what it was given and can refuse.
type recorder struct {
	mu     sync.Mutex
	revs   []*wsfleetv1.PolicyRevision
	refuse func(*wsfleetv1.PolicyRevision) error
	ch     chan *wsfleetv1.PolicyRevision
}

func newRecorder() *recorder {
	return &recorder{ch: make(chan *wsfleetv1.PolicyRevision, 100)}
}

func (r *recorder) apply(rev *wsfleetv1.PolicyRevision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revs = append(r.revs, rev)
	if r.refuse != nil {
		if err := r.refuse(rev); err != nil {
			return err
		}
	}
	r.ch <- rev
	return nil
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.revs)
}

type fixture struct {
	path string
	file *policysource.File
	rec  *recorder
	hook *logtest.Hook
}

// load writes data to a fresh file and opens it with a recorder and a
// captured log.
func load(t *testing.T, data []byte, mtime time.Time) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, path, data)
	if !mtime.IsZero() {
		setMtime(t, path, mtime)
	}
	return open(t, path)
}

func open(t *testing.T, path string) *fixture {
	t.Helper()
	log, hook := logtest.NewNullLogger()
	rec := newRecorder()
	f, err := policysource.NewFile(policysource.FileConfig{
		Path:         path,
		Pool:         "edge",
		PollInterval: 10 * time.Millisecond,
		Log:          log,
		Apply:        rec.apply,
	})
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	return &fixture{path: path, file: f, rec: rec, hook: hook}
}

func (fx *fixture) errorLines() []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range fx.hook.AllEntries() {
		if e.Level == logrus.ErrorLevel {
			out = append(out, e)
		}
	}
	return out
}

func interval(rev *wsfleetv1.PolicyRevision) time.Duration {
	return rev.GetPolicy().GetHeartbeat().GetInterval().AsDuration()
}

func wantRunning(t *testing.T, f *policysource.File, rev int64, iv time.Duration) {
	t.Helper()
	cur := f.Current()
	if cur.GetRevision() != rev || interval(cur) != iv {
		t.Fatalf("running revision %d with interval %s, want revision %d with %s", cur.GetRevision(), interval(cur), rev, iv)
	}
}

func TestNewFileLoads(t *testing.T) {
	p := heartbeat(30 * time.Second)
	rev := &wsfleetv1.PolicyRevision{Pool: "payments", Revision: 7, Author: "ana", Message: "tighten", Policy: p}
	tests := []struct {
		name     string
		data     []byte
		wantPool string
		wantRev  int64
	}{
		{"a bare YAML policy loads as local revision 1 of the node's pool", yamlOf(t, p), "edge", 1},
		{"a bare JSON policy loads as local revision 1 of the node's pool", jsonOf(t, p), "edge", 1},
		{"a YAML revision document keeps its pool and revision", yamlOf(t, rev), "payments", 7},
		{"a JSON revision document keeps its pool and revision", jsonOf(t, rev), "payments", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mtime := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
			fx := load(t, tt.data, mtime)
			if n := fx.rec.calls(); n != 1 {
				t.Fatalf("Apply called %d times, want 1", n)
			}
			got := fx.file.Current()
			if got != <-fx.rec.ch {
				t.Error("Current is not the revision given to Apply")
			}
			if got.GetPool() != tt.wantPool || got.GetRevision() != tt.wantRev {
				t.Errorf("pool %q revision %d, want %q %d", got.GetPool(), got.GetRevision(), tt.wantPool, tt.wantRev)
			}
			if got.GetAuthor() != "file" || got.GetMessage() != "loaded from "+fx.path {
				t.Errorf("author %q message %q, want file and %q", got.GetAuthor(), got.GetMessage(), "loaded from "+fx.path)
			}
			if !got.GetCreateTime().AsTime().Equal(mtime) {
				t.Errorf("create_time %s, want the file's mtime %s", got.GetCreateTime().AsTime(), mtime)
			}
			if !proto.Equal(got.GetPolicy(), p) {
				t.Errorf("policy %v, want %v", got.GetPolicy(), p)
			}
		})
	}
}

func TestNewFileDefaultsPool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	write(t, path, yamlOf(t, policy.Default()))
	log, _ := logtest.NewNullLogger()
	f, err := policysource.NewFile(policysource.FileConfig{Path: path, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Current().GetPool(); got != policy.DefaultPool {
		t.Errorf("pool = %q, want %q", got, policy.DefaultPool)
	}
}

func TestNewFileRefuses(t *testing.T) {
	dir := t.TempDir()
	errNo := errors.New("node says no")
	tests := []struct {
		name   string
		data   string // written to the file unless missing
		path   string // instead of a fresh file
		cfg    func(*policysource.FileConfig)
		want   []error
		naming []string
	}{
		{name: "a missing file is refused", path: filepath.Join(dir, "nope.yaml"),
			want: []error{policysource.ErrRead, os.ErrNotExist}, naming: []string{"nope.yaml"}},
		{name: "a directory is refused", path: dir,
			want: []error{policysource.ErrRead}, naming: []string{"not a regular file"}},
		{name: "an empty file is refused", data: "\n# nothing\n",
			want: []error{policysource.ErrInvalid, policyfile.ErrEmpty}},
		{name: "an oversized file is refused before parsing", data: strings.Repeat("#", policysource.MaxFileBytes+1),
			want: []error{policysource.ErrRead}, naming: []string{"larger than"}},
		{name: "every violation of an invalid policy is named", data: invalidYAML,
			want:   []error{policysource.ErrInvalid, policy.ErrInvalidPolicy},
			naming: []string{"heartbeat.interval", "limits.max_connections"}},
		{name: "every decoding problem is named", data: "origins:\n  allow: []\n  colour: blue\nheartbeat:\n  interval: 10 seconds\n",
			want:   []error{policysource.ErrInvalid, policyfile.ErrUnknownField},
			naming: []string{"origins.colour: unknown field", `heartbeat.interval: invalid duration "10 seconds"`}},
		{name: "a revision document with a bad pool name is refused", data: "pool: Bad_Pool\nrevision: 3\npolicy:\n  limits:\n    max_connections: -1\n",
			want:   []error{policysource.ErrInvalid},
			naming: []string{`pool: policy: invalid pool name "Bad_Pool"`, "limits.max_connections"}},
		{name: "a policy the node refuses is an error", data: "apply-refuses",
			cfg:  func(c *policysource.FileConfig) { c.Apply = func(*wsfleetv1.PolicyRevision) error { return errNo } },
			want: []error{policysource.ErrRefused, errNo}, naming: []string{"node says no"}},
		{name: "an empty path is a config error", path: "-", cfg: func(c *policysource.FileConfig) { c.Path = "" },
			want: []error{policysource.ErrConfig}, naming: []string{"Path"}},
		{name: "a negative poll interval is a config error", data: "valid",
			cfg:  func(c *policysource.FileConfig) { c.PollInterval = -time.Second },
			want: []error{policysource.ErrConfig}, naming: []string{"PollInterval"}},
		{name: "a bad pool name is a config error", data: "valid",
			cfg:  func(c *policysource.FileConfig) { c.Pool = "No Spaces" },
			want: []error{policysource.ErrConfig, policy.ErrInvalidPoolName}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = filepath.Join(dir, strings.Repeat("f", i+1)+".yaml")
				data := []byte(tt.data)
				if tt.data == "valid" || tt.data == "apply-refuses" {
					data = yamlOf(t, policy.Default())
				}
				write(t, path, data)
			}
			log, hook := logtest.NewNullLogger()
			rec := newRecorder()
			cfg := policysource.FileConfig{Path: path, Log: log, Apply: rec.apply}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			f, err := policysource.NewFile(cfg)
			if err == nil {
				t.Fatalf("NewFile = %v, nil; want an error", f)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %v", err, w)
				}
			}
			for _, s := range tt.naming {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
			if rec.calls() != 0 {
				t.Errorf("Apply called %d times for a refused file", rec.calls())
			}
			if n := len(hook.AllEntries()); n != 0 {
				t.Errorf("NewFile logged %d lines; the caller reports its error", n)
			}
		})
	}
}

func TestRunAppliesAnEditWithinAPoll(t *testing.T) {
	fx := load(t, yamlOf(t, heartbeat(25*time.Second)), time.Time{})
	<-fx.rec.ch
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fx.file.Run(ctx) }()
	defer func() { cancel(); <-done }()

	write(t, fx.path, yamlOf(t, heartbeat(40*time.Second)))
	select {
	case rev := <-fx.rec.ch:
		if rev.GetRevision() != 2 || interval(rev) != 40*time.Second {
			t.Errorf("applied revision %d with interval %s, want 2 with 40s", rev.GetRevision(), interval(rev))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the edit was not applied")
	}
	// Current moves on once Apply has returned, a moment after the recorder
	// saw the call.
	deadline := time.Now().Add(5 * time.Second)
	for fx.file.Current().GetRevision() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	wantRunning(t, fx.file, 2, 40*time.Second)
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	fx := load(t, yamlOf(t, policy.Default()), time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fx.file.Run(ctx) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestInvalidEditIsRefusedOnceAndAFixApplies(t *testing.T) {
	fx := load(t, yamlOf(t, heartbeat(25*time.Second)), time.Time{})

	write(t, fx.path, []byte(invalidYAML))
	fx.file.Poll()
	wantRunning(t, fx.file, 1, 25*time.Second)
	lines := fx.errorLines()
	if len(lines) != 1 {
		t.Fatalf("%d error lines for a refused file, want 1", len(lines))
	}
	if got := lines[0].Data["policy_file"]; got != fx.path {
		t.Errorf("policy_file = %v, want %q", got, fx.path)
	}
	msg, _ := lines[0].Data[logrus.ErrorKey].(error)
	for _, s := range []string{"heartbeat.interval", "limits.max_connections"} {
		if msg == nil || !strings.Contains(msg.Error(), s) {
			t.Errorf("logged error %v does not name %s", msg, s)
		}
	}

	// The same content is not logged again: not on the next poll, not
	// after a touch, not on Reload (which still reports it).
	fx.file.Poll()
	setMtime(t, fx.path, time.Now().Add(time.Minute))
	fx.file.Poll()
	if err := fx.file.Reload(); !errors.Is(err, policysource.ErrInvalid) {
		t.Errorf("Reload = %v, want ErrInvalid", err)
	}
	if n := len(fx.errorLines()); n != 1 {
		t.Errorf("%d error lines after polling the same bad content, want 1", n)
	}

	write(t, fx.path, yamlOf(t, heartbeat(45*time.Second)))
	fx.file.Poll()
	wantRunning(t, fx.file, 2, 45*time.Second)

	// Bad again after a good one is news again.
	write(t, fx.path, []byte(invalidYAML))
	fx.file.Poll()
	if n := len(fx.errorLines()); n != 2 {
		t.Errorf("%d error lines after the bad content came back, want 2", n)
	}
	wantRunning(t, fx.file, 2, 45*time.Second)
}

func TestReloadReturnsTheViolations(t *testing.T) {
	fx := load(t, yamlOf(t, heartbeat(25*time.Second)), time.Time{})
	write(t, fx.path, []byte(invalidYAML))
	err := fx.file.Reload()
	if !errors.Is(err, policysource.ErrInvalid) || !errors.Is(err, policy.ErrInvalidPolicy) {
		t.Fatalf("Reload = %v, want ErrInvalid and policy.ErrInvalidPolicy", err)
	}
	for _, s := range []string{fx.path, "heartbeat.interval", "limits.max_connections"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Reload error %q does not name %s", err, s)
		}
	}
	wantRunning(t, fx.file, 1, 25*time.Second)

	write(t, fx.path, yamlOf(t, heartbeat(50*time.Second)))
	if err := fx.file.Reload(); err != nil {
		t.Fatalf("Reload of a fixed file = %v", err)
	}
	wantRunning(t, fx.file, 2, 50*time.Second)
	if err := fx.file.Reload(); err != nil {
		t.Errorf("Reload of unchanged content = %v, want nil", err)
	}
	if n := fx.rec.calls(); n != 2 {
		t.Errorf("Apply called %d times, want 2 (unchanged content is not applied again)", n)
	}
}

func TestApplyErrorKeepsTheRunningPolicy(t *testing.T) {
	errNo := errors.New("cannot apply live")
	fx := load(t, yamlOf(t, heartbeat(25*time.Second)), time.Time{})
	fx.rec.mu.Lock()
	fx.rec.refuse = func(rev *wsfleetv1.PolicyRevision) error {
		if interval(rev) == 40*time.Second {
			return errNo
		}
		return nil
	}
	fx.rec.mu.Unlock()

	write(t, fx.path, yamlOf(t, heartbeat(40*time.Second)))
	err := fx.file.Reload()
	if !errors.Is(err, policysource.ErrRefused) || !errors.Is(err, errNo) {
		t.Fatalf("Reload = %v, want ErrRefused wrapping the Apply error", err)
	}
	wantRunning(t, fx.file, 1, 25*time.Second)
	if n := len(fx.errorLines()); n != 1 {
		t.Errorf("%d error lines for a refused policy, want 1", n)
	}

	// The refused content is not offered again until the file changes.
	if err := fx.file.Reload(); !errors.Is(err, errNo) {
		t.Errorf("second Reload = %v, want the same refusal", err)
	}
	setMtime(t, fx.path, time.Now().Add(time.Minute))
	fx.file.Poll()
	if n := fx.rec.calls(); n != 2 {
		t.Errorf("Apply called %d times, want 2 (the refused content is not retried)", n)
	}

	write(t, fx.path, yamlOf(t, heartbeat(35*time.Second)))
	fx.file.Poll()
	wantRunning(t, fx.file, 2, 35*time.Second)
}

// Size and mtime equal, the file behind the path replaced: the inode tells.
func TestAtomicRenameIsDetected(t *testing.T) {
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	fx := load(t, yamlOf(t, heartbeat(30*time.Second)), old)

	tmp := fx.path + ".tmp"
	write(t, tmp, yamlOf(t, heartbeat(40*time.Second)))
	setMtime(t, tmp, old)
	if err := os.Rename(tmp, fx.path); err != nil {
		t.Fatal(err)
	}
	fx.file.Poll()
	wantRunning(t, fx.file, 2, 40*time.Second)
}

// The layout kubelet gives a ConfigMap volume: policy.yaml -> ..data/policy.yaml,
// ..data -> a timestamped directory, swapped atomically on update.
func TestConfigMapSymlinkSwapIsDetected(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for name, iv := range map[string]time.Duration{"..2026_01_01": 30 * time.Second, "..2026_01_02": 40 * time.Second} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name, "policy.yaml")
		write(t, p, yamlOf(t, heartbeat(iv)))
		setMtime(t, p, old)
	}
	if err := os.Symlink("..2026_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), path); err != nil {
		t.Fatal(err)
	}
	fx := open(t, path)
	wantRunning(t, fx.file, 1, 30*time.Second)

	fx.file.Poll()
	wantRunning(t, fx.file, 1, 30*time.Second)
	if err := os.Symlink("..2026_01_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	fx.file.Poll()
	wantRunning(t, fx.file, 2, 40*time.Second)
}

func TestInPlaceRewriteWithTheSameStat(t *testing.T) {
	t.Run("a recent mtime is not trusted, so the rewrite is seen", func(t *testing.T) {
		// A future mtime stays "recent" however slow the test runs.
		recent := time.Now().Add(time.Hour).Truncate(time.Second)
		fx := load(t, yamlOf(t, heartbeat(30*time.Second)), recent)
		write(t, fx.path, yamlOf(t, heartbeat(40*time.Second)))
		setMtime(t, fx.path, recent)
		fx.file.Poll()
		wantRunning(t, fx.file, 2, 40*time.Second)
	})
	t.Run("an old mtime is trusted by Poll, and Reload reads anyway", func(t *testing.T) {
		old := time.Now().Add(-time.Hour).Truncate(time.Second)
		fx := load(t, yamlOf(t, heartbeat(30*time.Second)), old)
		write(t, fx.path, yamlOf(t, heartbeat(40*time.Second)))
		setMtime(t, fx.path, old)
		fx.file.Poll()
		wantRunning(t, fx.file, 1, 30*time.Second)
		if err := fx.file.Reload(); err != nil {
			t.Fatal(err)
		}
		wantRunning(t, fx.file, 2, 40*time.Second)
	})
}

func TestWatchAppliesWithTheConsumerItIsGivenAndReloadsOnRequest(t *testing.T) {
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, path, yamlOf(t, heartbeat(30*time.Second)))
	setMtime(t, path, old)
	log, _ := logtest.NewNullLogger()
	// No Apply at NewFile: the consumer is built from Current.
	f, err := policysource.NewFile(policysource.FileConfig{Path: path, Pool: "edge", PollInterval: 10 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	wantRunning(t, f, 1, 30*time.Second)

	rec := newRecorder()
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Watch(ctx, rec.apply, reload) }()
	defer func() { cancel(); <-done }()

	// The same size and an old mtime: polls trust the stat and skip it,
	// so only the reload request reads it.
	write(t, path, yamlOf(t, heartbeat(40*time.Second)))
	setMtime(t, path, old)
	reload <- struct{}{}
	select {
	case rev := <-rec.ch:
		if interval(rev) != 40*time.Second {
			t.Fatalf("applied interval %s, want 40s", interval(rev))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reload request did not apply the new content")
	}
	if n := rec.calls(); n != 1 {
		t.Fatalf("apply called %d times, want 1 (the first revision was not the watcher's)", n)
	}
}

func TestTouchWithoutAChangeIsNotApplied(t *testing.T) {
	data := yamlOf(t, heartbeat(30*time.Second))
	fx := load(t, data, time.Time{})
	setMtime(t, fx.path, time.Now().Add(time.Minute))
	fx.file.Poll()
	write(t, fx.path, data)
	fx.file.Poll()
	if err := fx.file.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := fx.rec.calls(); n != 1 {
		t.Errorf("Apply called %d times for unchanged content, want 1", n)
	}
	wantRunning(t, fx.file, 1, 30*time.Second)
}

func TestMissingFileKeepsThePolicy(t *testing.T) {
	fx := load(t, yamlOf(t, heartbeat(30*time.Second)), time.Time{})
	if err := os.Remove(fx.path); err != nil {
		t.Fatal(err)
	}
	fx.file.Poll()
	fx.file.Poll()
	if err := fx.file.Reload(); !errors.Is(err, policysource.ErrRead) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload of a missing file = %v, want ErrRead and os.ErrNotExist", err)
	}
	if n := len(fx.errorLines()); n != 1 {
		t.Errorf("%d error lines while the file is missing, want 1", n)
	}
	wantRunning(t, fx.file, 1, 30*time.Second)

	write(t, fx.path, yamlOf(t, heartbeat(40*time.Second)))
	fx.file.Poll()
	wantRunning(t, fx.file, 2, 40*time.Second)
}

func TestRevisionNumbers(t *testing.T) {
	fx := load(t, yamlOf(t, heartbeat(21*time.Second)), time.Time{})
	steps := []struct {
		name    string
		doc     proto.Message
		wantRev int64
	}{
		{"an edited bare policy counts up", heartbeat(22 * time.Second), 2},
		{"a revision document sets the revision", &wsfleetv1.PolicyRevision{Pool: "edge", Revision: 7, Policy: heartbeat(23 * time.Second)}, 7},
		{"a bare policy after it counts on from it", heartbeat(24 * time.Second), 8},
		{"a revision document without a revision counts on too", &wsfleetv1.PolicyRevision{Policy: heartbeat(25 * time.Second)}, 9},
	}
	for _, s := range steps {
		write(t, fx.path, yamlOf(t, s.doc))
		if err := fx.file.Reload(); err != nil {
			t.Fatalf("%s: Reload = %v", s.name, err)
		}
		if got := fx.file.Current().GetRevision(); got != s.wantRev {
			t.Errorf("%s: revision %d, want %d", s.name, got, s.wantRev)
		}
	}
	if got := fx.file.Current().GetPool(); got != "edge" {
		t.Errorf("pool %q, want the node's pool for a document without one", got)
	}
}

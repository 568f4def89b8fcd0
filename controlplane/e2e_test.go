package controlplane

// End-to-end tests: the real wsfleet-control and wsctl binaries, run as
// processes on loopback, driven the way an operator would.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds wsfleet-control, wsctl and wsfleet-node once per test
// run.
func binaries(t *testing.T) (control, wsctl string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "wsfleet-e2e-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator),
			"github.com/wsfleet/wsfleet/controlplane/cmd/wsfleet-control",
			"github.com/wsfleet/wsfleet/sdk/cmd/wsctl",
			// The node is only run as a process: the control plane never
			// imports the data plane, not even in tests.
			"github.com/wsfleet/wsfleet/dataplane/cmd/wsfleet-node")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "wsfleet-control"), filepath.Join(binDir, "wsctl")
}

func removeBinaries() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
}

// proc is a wsfleet process under test: its stderr (JSON log lines) is
// kept for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	logs bytes.Buffer
}

// startProc runs bin and waits for the JSON log line whose msg is ready,
// returning that line's fields. The process is stopped when the test ends.
func startProc(t *testing.T, name, bin, ready string, args []string) (*proc, map[string]any) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	readyc := make(chan map[string]any, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var entry map[string]any
			if json.Unmarshal(line, &entry) == nil && entry["msg"] == ready {
				readyc <- entry
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case fields := <-readyc:
		return p, fields
	case <-p.done:
		t.Fatalf("%s exited early:\n%s", name, p.logText())
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not start:\n%s", name, p.logText())
	}
	return nil, nil
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// terminate sends SIGTERM and waits; it returns the exit code, or -1 if
// the process had to be killed. A no-op (returning the old code) after
// the process ended.
func (p *proc) terminate(t *testing.T) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s ignored SIGTERM:\n%s", p.name, p.logText())
		return -1
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// controlProc is a wsfleet-control process.
type controlProc struct {
	*proc
	addr string
}

func startControl(t *testing.T, dataDir string, args ...string) *controlProc {
	t.Helper()
	control, _ := binaries(t)
	args = append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, args...)
	p, fields := startProc(t, "control plane", control, "control plane listening", args)
	cp := &controlProc{proc: p, addr: fmt.Sprint(fields["grpc_addr"])}
	t.Cleanup(func() { cp.stop(t) })
	controlProcsMu.Lock()
	controlProcs = append(controlProcs, cp)
	controlProcsMu.Unlock()
	return cp
}

// stop sends SIGTERM and expects a clean exit; a no-op after kill.
func (p *controlProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	if code := p.terminate(t); code != 0 {
		t.Errorf("control plane exited %d after SIGTERM:\n%s", code, p.logText())
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func runWsctl(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	_, wsctl := binaries(t)
	cmd := exec.Command(wsctl, append([]string{"--addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), "USER=e2e", "WSFLEET_TOKEN=", "WSFLEET_ADDR=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func mustWsctl(t *testing.T, addr, stdin string, args ...string) string {
	t.Helper()
	r := runWsctl(t, addr, stdin, args...)
	if r.code != 0 {
		t.Fatalf("wsctl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// jsonRevision is the subset of `wsctl policy get -o json` the tests read.
type jsonRevision struct {
	Pool       string          `json:"pool"`
	Revision   int64           `json:"revision"`
	Author     string          `json:"author"`
	Message    string          `json:"message"`
	RollbackOf int64           `json:"rollback_of"`
	Policy     json.RawMessage `json:"policy"`
}

func getJSON(t *testing.T, addr string, args ...string) jsonRevision {
	t.Helper()
	out := mustWsctl(t, addr, "", append([]string{"policy", "get", "-o", "json"}, args...)...)
	var r jsonRevision
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("policy get -o json: %v\n%s", err, out)
	}
	return r
}

const goodPolicy = `# allow the staging site
origins:
  allow: ["https://app.example.com", "https://staging.example.com"]
  allow_missing: true
heartbeat: {interval: 30s, timeout: 1m}
limits:
  max_connections: 100000
  max_connections_per_ip: 1000
  handshakes_per_second: 1000
  handshake_burst: 2000
  messages_per_second: 100
  message_burst: 200
  max_message_bytes: 65536
breaker: {failure_ratio: 0.5, min_samples: 20, window: 10s, open_duration: 5s, half_open_probes: 3}
`

const badPolicy = `origins:
  allow: ["https://app.example.com", "https://*.*.example.com"]
  allow_missing: true
heartbeat: {interval: 30s, timeout: 30s}
limits:
  max_connections: -1
  max_connections_per_ip: 1000
  handshakes_per_second: 1000
  handshake_burst: 2000
  messages_per_second: 100
  message_burst: 200
  max_message_bytes: 65536
breaker: {failure_ratio: 1.5, min_samples: 20, window: 10s, open_duration: 5s, half_open_probes: 3}
`

func TestOperatorTourWithWsctl(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(goodPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(badPolicy), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("a fresh control plane serves default at revision 1", func(t *testing.T) {
		r := getJSON(t, cp.addr)
		if r.Pool != "default" || r.Revision != 1 {
			t.Fatalf("got pool %q revision %d", r.Pool, r.Revision)
		}
		table := mustWsctl(t, cp.addr, "", "policy", "get")
		if !strings.Contains(table, "default") || !strings.Contains(table, "1") {
			t.Fatalf("table output:\n%s", table)
		}
	})

	t.Run("apply makes revision 2 with author and message", func(t *testing.T) {
		mustWsctl(t, cp.addr, "", "policy", "apply", "-f", good, "-m", "allow staging")
		r := getJSON(t, cp.addr)
		if r.Revision != 2 || r.Message != "allow staging" || r.Author != "dev:e2e" {
			t.Fatalf("head = %+v", r)
		}
		hist := mustWsctl(t, cp.addr, "", "policy", "history")
		if !strings.Contains(hist, "allow staging") || !strings.Contains(hist, "dev:e2e") {
			t.Fatalf("history lacks revision 2:\n%s", hist)
		}
	})

	t.Run("diff 1 2 shows exactly the changed fields", func(t *testing.T) {
		out := mustWsctl(t, cp.addr, "", "policy", "diff", "1", "2")
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		want := []string{
			`+ origins.allow: "https://app.example.com"`,
			`+ origins.allow: "https://staging.example.com"`,
			`~ heartbeat.interval: "25s" -> "30s"`,
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("diff:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
		}
	})

	t.Run("rollback to 1 makes revision 3 with revision 1's content", func(t *testing.T) {
		mustWsctl(t, cp.addr, "", "policy", "rollback", "--to", "1", "-m", "back out")
		r3 := getJSON(t, cp.addr, "--revision", "3")
		r1 := getJSON(t, cp.addr, "--revision", "1")
		if r3.RollbackOf != 1 || r3.Message != "back out" {
			t.Fatalf("revision 3 = %+v", r3)
		}
		if !jsonEqual(t, r1.Policy, r3.Policy) {
			t.Fatalf("revision 3 policy %s differs from revision 1 %s", r3.Policy, r1.Policy)
		}
	})

	t.Run("a file with four violations is refused with all four named", func(t *testing.T) {
		r := runWsctl(t, cp.addr, "", "policy", "apply", "-f", bad)
		if r.code == 0 {
			t.Fatalf("bad policy accepted:\n%s", r.stdout)
		}
		for _, want := range []string{
			`origins.allow[1]: "https://*.*.example.com"`,
			"heartbeat.timeout:",
			"limits.max_connections:",
			"breaker.failure_ratio:",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if got := getJSON(t, cp.addr).Revision; got != 3 {
			t.Fatalf("revision moved to %d", got)
		}
		v := runWsctl(t, cp.addr, "", "policy", "validate", "-f", bad)
		if v.code == 0 || !strings.Contains(v.stdout+v.stderr, "breaker.failure_ratio") {
			t.Fatalf("validate: exit %d\n%s%s", v.code, v.stdout, v.stderr)
		}
	})

	t.Run("get -o yaml applies back unchanged", func(t *testing.T) {
		for _, format := range []string{"yaml", "json"} {
			doc := mustWsctl(t, cp.addr, "", "policy", "get", "-o", format)
			out := mustWsctl(t, cp.addr, doc, "policy", "apply", "-f", "-")
			if !strings.Contains(out, "unchanged") {
				t.Fatalf("%s round trip changed the policy:\n%s", format, out)
			}
		}
		if got := getJSON(t, cp.addr).Revision; got != 3 {
			t.Fatalf("round trip made revision %d", got)
		}
	})

	t.Run("two concurrent applies with the same expected revision: one wins", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([]result, 2)
		files := []string{good, filepath.Join(dir, "other.yaml")}
		other := strings.Replace(goodPolicy, "max_connections: 100000", "max_connections: 90000", 1)
		if err := os.WriteFile(files[1], []byte(other), 0o600); err != nil {
			t.Fatal(err)
		}
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = runWsctl(t, cp.addr, "", "policy", "apply", "-f", files[i], "--expect-revision", "3")
			}()
		}
		wg.Wait()
		wins, losers := 0, 0
		for _, r := range results {
			switch {
			case r.code == 0:
				wins++
			case strings.Contains(r.stderr, `pool "default" is at revision 4, not 3`):
				losers++
			default:
				t.Errorf("unexpected result: exit %d\n%s", r.code, r.stderr)
			}
		}
		if wins != 1 || losers != 1 {
			t.Fatalf("wins %d, conflicts %d", wins, losers)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		if r := runWsctl(t, cp.addr, "", "policy", "apply"); r.code != 2 {
			t.Fatalf("apply without -f: exit %d", r.code)
		}
	})
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

// TestSIGKILLDuringAppliesLosesNothing kills the control plane with SIGKILL
// while a client applies as fast as it can, restarts it on the same data
// directory, and checks that every acknowledged revision is there with its
// content, and that history is gap-free with nothing partial.
func TestSIGKILLDuringAppliesLosesNothing(t *testing.T) {
	dataDir := t.TempDir()
	cp := startControl(t, dataDir, "--dev")

	cc, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	pc := wsfleetv1.NewPolicyServiceClient(cc)
	acked := map[int64]*wsfleetv1.Policy{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		p := policy.Default()
		p.Limits.MaxConnections = int32(10_000 + i)
		resp, err := pc.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: p, Message: fmt.Sprint("apply ", i)})
		if err != nil {
			break // the kill below landed
		}
		acked[resp.GetRevision().GetRevision()] = p
		if i == 40 {
			// Kill from another goroutine while applies keep going, so the
			// kill lands in the middle of one.
			go cp.kill()
		}
		if i > 10_000 {
			t.Fatal("applies never failed after SIGKILL")
		}
	}
	_ = cc.Close()
	<-cp.done
	if len(acked) < 40 {
		t.Fatalf("only %d applies acknowledged", len(acked))
	}

	cp2 := startControl(t, dataDir, "--dev")
	cc2, err := grpc.NewClient(cp2.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	pc2 := wsfleetv1.NewPolicyServiceClient(cc2)
	for rev, want := range acked {
		got, err := pc2.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Revision: rev})
		if err != nil {
			t.Fatalf("acknowledged revision %d lost: %v", rev, err)
		}
		if !proto.Equal(got.GetRevision().GetPolicy(), want) {
			t.Fatalf("revision %d content differs", rev)
		}
	}
	head, err := pc2.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for rev := int64(1); rev <= head.GetRevision().GetRevision(); rev++ {
		got, err := pc2.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Revision: rev})
		if err != nil {
			t.Fatalf("gap at revision %d below head %d: %v", rev, head.GetRevision().GetRevision(), err)
		}
		if v := policy.Validate(got.GetRevision().GetPolicy()); len(v) > 0 {
			t.Fatalf("revision %d is partial: %v", rev, v)
		}
	}
}

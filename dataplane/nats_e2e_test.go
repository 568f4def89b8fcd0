package dataplane

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	natsBinOnce sync.Once
	natsBinErr  error
)

// natsServerBinary builds the real nats-server (the module's pinned
// version, from the module cache) next to the node binary, so
// removeBinaries cleans it up too.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(nodeBinary(t))
	natsBinOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = &buildError{err: err, out: string(out)}
		}
	})
	if natsBinErr != nil {
		t.Fatal(natsBinErr)
	}
	return filepath.Join(dir, "nats-server")
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build nats-server: " + e.err.Error() + "\n" + e.out }

// natsProc is a nats-server process on a free loopback port.
type natsProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

var natsListening = regexp.MustCompile(`Listening for client connections on (127\.0\.0\.1:\d+)`)

func startNATSProc(t *testing.T) *natsProc {
	t.Helper()
	cmd := exec.Command(natsServerBinary(t), "-a", "127.0.0.1", "-p", "-1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &natsProc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := natsListening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		// A stopped process does not die of SIGKILL until continued.
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case a := <-addr:
		p.url = "nats://" + a
	case <-p.done:
		t.Fatal("nats-server exited early")
	case <-time.After(20 * time.Second):
		t.Fatal("nats-server did not start")
	}
	return p
}

// The NATS fault, with real processes: the NATS server is stopped
// (SIGSTOP: its sockets stay open, it just stops answering) for 6 seconds
// while a client publishes. Publishes are answered unavailable, the node
// keeps serving everything else, and after SIGCONT it recovers by itself:
// a client subscribed before the stop gets messages again without
// subscribing again.
func TestNATSStoppedForSecondsIsAnsweredUnavailableAndRecoveredFromByItself(t *testing.T) {
	const stopFor = 6 * time.Second
	ns := startNATSProc(t)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicyFile(t, file, natsBreakerPolicy(), 1)
	args := []string{"--policy-file", file, "--broker", ns.url,
		"--nats-ping-interval", "300ms", "--nats-reconnect-wait", "100ms", "--nats-connect-timeout", "500ms"}
	p1 := startNodeProc(t, append(args, "--node-id", "p1")...)
	p2 := startNodeProc(t, append(args, "--node-id", "p2")...)

	dialSubscribed := func(addr, channel string) *client {
		c := mustDial(t, addr, dialOpts{})
		c.send(t, `{"type":"subscribe","channel":"`+channel+`"}`)
		c.expect(t, `"subscribed"`)
		return c
	}
	remote := dialSubscribed(p2.addr, "live")
	publisher := mustDial(t, p1.addr, dialOpts{})
	publisher.send(t, `{"type":"publish","channel":"live","data":"before"}`)
	remote.expect(t, `"before"`)

	if err := ns.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	continued := false
	cont := func() {
		if !continued {
			continued = true
			_ = ns.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer cont()

	// Until the node notices (unanswered pings), publishes are taken and
	// lost, as core NATS allows; then each is answered unavailable.
	var unavailable string
	for unavailable == "" && time.Since(stopped) < stopFor {
		publisher.send(t, `{"type":"publish","channel":"live","data":"during"}`)
		select {
		case m := <-publisher.msgs:
			if strings.Contains(m, `"code":"unavailable"`) {
				unavailable = m
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	if unavailable == "" {
		t.Fatalf("no unavailable frame within %s of stopping NATS:\n%s", stopFor, p1.logText())
	}
	if !strings.HasPrefix(unavailable, errorFrame) {
		t.Errorf("refused publish got %s; want %s…", unavailable, errorFrame)
	}

	// The node serves on: new connections, subscriptions, health, readiness.
	newcomer := dialSubscribed(p1.addr, "other")
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + p1.metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s = %d while NATS is stopped, want 200", path, resp.StatusCode)
		}
	}
	metrics := httpBody(t, "http://"+p1.metrics+"/metrics")
	if got := metricValue(t, metrics, "wsfleet_node_publishes_total", `result="unavailable"`, `reason="not_connected"`) +
		metricValue(t, metrics, "wsfleet_node_publishes_total", `result="unavailable"`, `reason="breaker_open"`); got < 1 {
		t.Errorf("no publish counted as unavailable:\n%s", metrics)
	}
	if got := metricValue(t, metrics, "wsfleet_node_nats_connected"); got != 0 {
		t.Errorf("wsfleet_node_nats_connected = %v while NATS is stopped, want 0", got)
	}

	time.Sleep(time.Until(stopped.Add(stopFor)))
	cont()
	eventually(t, 20*time.Second, "a publish on node 1 reaches node 2's subscriber again", func() bool {
		publisher.send(t, `{"type":"publish","channel":"live","data":"after"}`)
		select {
		case m := <-remote.msgs:
			return strings.Contains(m, `"after"`)
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	publisher.send(t, `{"type":"publish","channel":"other","data":"for the newcomer"}`)
	newcomer.expect(t, `"for the newcomer"`)
	metrics = httpBody(t, "http://"+p1.metrics+"/metrics")
	if got := metricValue(t, metrics, "wsfleet_node_nats_reconnects_total"); got < 1 {
		t.Errorf("wsfleet_node_nats_reconnects_total = %v, want at least 1", got)
	}
	if got := metricValue(t, metrics, "wsfleet_node_nats_connected"); got != 1 {
		t.Errorf("wsfleet_node_nats_connected = %v after recovery, want 1", got)
	}
}

func TestTheBrokerFlagsAreChecked(t *testing.T) {
	bin := nodeBinary(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown broker is refused", []string{"--broker", "redis://127.0.0.1:6379"}, `want "inprocess" or nats://`},
		{"a NATS flag without NATS is refused", []string{"--nats-token", "x"}, "--nats-token given without --broker nats://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--metrics-addr", "-"}, tt.args...)...).CombinedOutput()
			var ee *exec.ExitError
			if !asExitError(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output %q does not say %q", out, tt.want)
			}
		})
	}
}

func asExitError(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

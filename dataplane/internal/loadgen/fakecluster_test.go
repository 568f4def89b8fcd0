package loadgen

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The cluster scenarios' children, faked by the test binary: etcd is a
// fake control plane (the store every replica shares), each control-plane
// replica given --etcd-endpoints forwards its connections to it; nats-server
// is a fake node (the channels every node shares), each node given
// --broker forwards its connections to it. So replicas see one state and
// nodes one set of channels, as they would through etcd and NATS.

// pidDirEnv, when set, makes every fake cluster child write an empty file
// named by its pid there, so a test can check they are all gone after Run.
const pidDirEnv = "LOADGEN_TEST_PIDDIR"

func notePid() {
	if dir := os.Getenv(pidDirEnv); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), nil, 0o600)
	}
}

// proxy forwards every connection accepted on a loopback port to target
// until stopped.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func startProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
			p.wg.Go(func() {
				_, _ = io.Copy(pair[0], pair[1])
				_ = pair[0].Close()
				_ = pair[1].Close()
			})
		}
	}
}

func (p *proxy) stop() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// fakeEtcdMain is etcd's command-line contract as Run uses it: the ready
// line naming the client address, and on SIGTERM a clean stop followed by
// dying of SIGTERM, as etcd does.
func fakeEtcdMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("fake-etcd", flag.ContinueOnError)
	for _, name := range []string{"name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
		"initial-advertise-peer-urls", "initial-cluster"} {
		fs.String(name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f, err := newFakeControl("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	notePid()
	line, _ := json.Marshal(map[string]string{"level": "info", "msg": etcdReadyMsg, "address": f.addr()})
	fmt.Fprintf(os.Stderr, "%s\n", line)
	<-ctx.Done()
	f.srv.Stop()
	signal.Reset(syscall.SIGTERM)
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	time.Sleep(time.Minute) // the signal ends the process
	return 1
}

// fakeNATSMain is nats-server's as Run uses it: a text line naming the
// client address.
func fakeNATSMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("fake-nats", flag.ContinueOnError)
	fs.String("a", "", "")
	fs.String("p", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f, err := newFakeNode("127.0.0.1:0", DefaultOrigin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	notePid()
	fmt.Fprintf(os.Stderr, "[%d] 2026/01/01 00:00:00.000000 [INF] Listening for client connections on %s\n", os.Getpid(), f.addr())
	<-ctx.Done()
	f.shutdown()
	return 0
}

// serveProxy runs a proxy to target until ctx ends, after printing the
// ready line msg with the proxy's address as field.
func serveProxy(ctx context.Context, target, msg, field string) int {
	p, err := startProxy(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	notePid()
	line, _ := json.Marshal(map[string]string{"level": "info", "msg": msg, field: p.addr()})
	fmt.Fprintf(os.Stderr, "%s\n", line)
	<-ctx.Done()
	p.stop()
	return 0
}

func TestRunClusterScenarios(t *testing.T) {
	t.Run("fan-out through NATS and propagation over etcd replicas: started, measured, stopped", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		pids := t.TempDir()
		cfg := tinyRun(t)
		cfg.Env = append(cfg.Env, pidDirEnv+"="+pids)
		cfg.ControlBin, cfg.EtcdBin, cfg.NATSBin = exe, exe, exe
		cfg.EchoBin = "/nonexistent/echo" // not needed, nor started
		cfg.Scenarios = []string{ScenarioFanoutNATS, ScenarioPropagationEtcd}
		cfg.PropagationClients, cfg.PropagationApplies, cfg.ClientsPerConn = []int{12}, 2, 5
		var progress strings.Builder
		cfg.Progress = &progress
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() {
			t.Fatalf("run failed:\n%s\nprogress:\n%s", strings.Join(rep.Errors, "\n"), progress.String())
		}

		f := rep.FanoutNATS
		if f == nil || f.InProcess == nil || f.NATS == nil || f.InProcess.Deliveries != 500 || f.NATS.Deliveries != 500 {
			t.Fatalf("fan-out comparison %+v, want 500 deliveries on each side", f)
		}
		if f.NATS.ServerCPU < f.NATSServerCPU || f.NATS.CPUPerDelivery != float64(f.NATS.ServerCPU)/500 {
			t.Errorf("NATS side: server CPU %s (nats-server %s), %f ns per delivery: want nats-server's share within the total, "+
				"the total over the deliveries", f.NATS.ServerCPU, f.NATSServerCPU, f.NATS.CPUPerDelivery)
		}

		p := rep.PropagationEtcd
		if p == nil || p.Setup != "etcd, 3 replicas" || len(p.Runs) != 1 {
			t.Fatalf("propagation over etcd %+v, want one run on 3 replicas", p)
		}
		if r := p.Runs[0]; r.Replicas != 3 || r.Conns != 3 || r.Applies != 2 || r.ReceivedLastMax <= 0 || r.RSSWatching <= 0 {
			t.Errorf("run %+v: want 3 replicas, 3 connections, 2 applies, ACK arrivals and RSS measured", r)
		}
		if rep.Propagation != nil || rep.Settings.Replicas != 3 {
			t.Errorf("bolt propagation %+v, replicas setting %d: want no bolt run and 3 replicas recorded", rep.Propagation, rep.Settings.Replicas)
		}
		for _, want := range []string{"fanout-nats: in-process", "starting nats-server", "split over 2 nodes",
			"propagation-etcd: starting etcd", "starting control plane replica 3 on etcd", "12 policy clients over 3 connections to 3 replicas"} {
			if !strings.Contains(progress.String(), want) {
				t.Errorf("progress lacks %q:\n%s", want, progress.String())
			}
		}
		entries, err := os.ReadDir(pids)
		if err != nil {
			t.Fatal(err)
		}
		// nats-server and two nodes; etcd and three replicas.
		if len(entries) != 7 {
			t.Errorf("%d cluster children wrote their pid, want 7", len(entries))
		}
		for _, e := range entries {
			if pid, _ := strconv.Atoi(e.Name()); !processGone(pid) {
				t.Errorf("child process %d still exists after Run", pid)
			}
		}
	})

	t.Run("without their binaries the cluster scenarios are skipped, naming the flags", func(t *testing.T) {
		cfg := tinyRun(t)
		cfg.ControlBin, _ = os.Executable()
		cfg.Scenarios = []string{ScenarioFanoutNATS, ScenarioPropagationEtcd}
		var progress strings.Builder
		cfg.Progress = &progress
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() || rep.FanoutNATS != nil || rep.PropagationEtcd != nil {
			t.Errorf("want nothing run, got %+v", rep)
		}
		if strings.Contains(progress.String(), "starting") {
			t.Errorf("a child was started for skipped scenarios:\n%s", progress.String())
		}
		if got := strings.Join(rep.Skipped, "\n"); !strings.Contains(got, "fanout-nats: no nats-server binary (--nats-bin)") ||
			!strings.Contains(got, "propagation-etcd: no etcd binary (--etcd-bin)") {
			t.Errorf("skipped:\n%s", got)
		}
	})
}

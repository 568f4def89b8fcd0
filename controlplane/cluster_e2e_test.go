package controlplane

// The whole cluster end to end, as `make run-cluster` runs it: etcd
// (embedded in the test process), a real nats-server process, three
// wsfleet-control replicas on that etcd publishing through that NATS, and
// two wsfleet-node processes given all three replicas and the NATS broker.
// What the tests observe comes from the nodes themselves (their metrics,
// handshakes, WebSocket clients) and from the operating system (which
// replica a node's TCP connection goes to), never from one replica's view
// of the fleet: `nodes list` and `trace` across replicas are tested with
// the fleet-wide view itself.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

var (
	natsBinOnce sync.Once
	natsBinErr  error
)

// natsServerBinary builds the real nats-server (go.mod's version, from the
// module cache) into the binaries' directory, which removeBinaries
// deletes.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	binaries(t)
	natsBinOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsBinErr != nil {
		t.Fatal(natsBinErr)
	}
	return filepath.Join(binDir, "nats-server")
}

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

// cluster is etcd, NATS, three replicas and two nodes.
type cluster struct {
	nats  *natsProc
	cps   []*controlProc
	http  []string // each replica's --http-addr
	nodes []*nodeProc
}

// clusterBackoffMin is the nodes' --control-backoff-min: the failover
// bound is this plus a few seconds.
const clusterBackoffMin = 200 * time.Millisecond

// startCluster starts etcd, NATS, the replicas one after the other (the
// first creates the store) and the nodes, and waits until both nodes run
// revision 1. Everything stops when the test ends, nodes first.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	e := etcdtest.Start(t, nil)
	c := &cluster{nats: startNATSProc(t)}
	var replicas []string
	for range 3 {
		httpAddr := freeAddr(t)
		cp := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--nats-url", c.nats.url, "--http-addr", httpAddr)...)
		c.cps = append(c.cps, cp)
		c.http = append(c.http, httpAddr)
		replicas = append(replicas, cp.addr)
	}
	dir := t.TempDir()
	for i := range 2 {
		id := fmt.Sprint("node-", i+1)
		c.nodes = append(c.nodes, startNodeProc(t, "--node-id", id,
			"--control", strings.Join(replicas, ","), "--broker", c.nats.url,
			"--control-backoff-min", clusterBackoffMin.String(), "--control-backoff-max", "2s",
			// A stopped NATS is noticed within a second, not 6 s.
			"--nats-ping-interval", "300ms", "--nats-reconnect-wait", "100ms", "--nats-connect-timeout", "500ms",
			"--cache-file", filepath.Join(dir, id+".json")))
	}
	c.waitRevision(t, 1, 10*time.Second)
	return c
}

// waitRevision waits until every node runs revision rev of its pool, as
// the node itself reports it.
func (c *cluster) waitRevision(t *testing.T, rev int64, within time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, within, fmt.Sprintf("every node on revision %d", rev), func() bool {
		for _, n := range c.nodes {
			if n.metric(t, "wsfleet_node_policy_revision") != float64(rev) {
				return false
			}
		}
		return true
	})
}

// replicaOf is the index of the replica whose gRPC port node n has an
// established TCP connection to, or -1 while it has none. A node holds
// one connection, to one replica, for its watch, telemetry and delivery
// streams. Read from /proc (the node's socket inodes, then the kernel's
// TCP table), so no control plane's view of the fleet is involved.
func (c *cluster) replicaOf(t *testing.T, n *nodeProc) int {
	t.Helper()
	pid := strconv.Itoa(n.cmd.Process.Pid)
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	ports := map[int]int{}
	for i, cp := range c.cps {
		_, port, _ := strings.Cut(cp.addr, ":")
		p, _ := strconv.Atoi(port)
		ports[p] = i
	}
	found := -1
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile("/proc/" + pid + "/net/" + table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !inodes[f[9]] { // 01: ESTABLISHED
				continue
			}
			_, hexPort, _ := strings.Cut(f[2], ":")
			port, err := strconv.ParseInt(hexPort, 16, 32)
			if err != nil {
				continue
			}
			if i, ok := ports[int(port)]; ok {
				if found >= 0 && found != i {
					t.Fatalf("node %s holds connections to replicas %d and %d", n.ws, found, i)
				}
				found = i
			}
		}
	}
	return found
}

// attached waits until node n holds a connection to a replica other than
// the dead ones, and returns its index.
func (c *cluster) attached(t *testing.T, n *nodeProc, dead map[int]bool, within time.Duration) int {
	t.Helper()
	on := -1
	waitFor(t, within, "the node connected to a live replica", func() bool {
		on = c.replicaOf(t, n)
		return on >= 0 && !dead[on]
	})
	return on
}

func TestAnApplyOnAnyReplicaReachesEveryNodeOfTheCluster(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	for i, cp := range c.cps {
		rev := int64(i + 2)
		origin := fmt.Sprintf("https://applied-on-replica-%d.example.com", i)
		file := policyFile(t, dir, fmt.Sprintf("replica-%d.yaml", i), 65536, origin)
		mustWsctl(t, cp.addr, "", "policy", "apply", "-f", file, "-m", fmt.Sprint("applied on replica ", i))
		took := c.waitRevision(t, rev, 10*time.Second)
		t.Logf("revision %d, applied on replica %d, ran on both nodes %s after apply returned", rev, i, took.Round(time.Millisecond))
		for _, n := range c.nodes {
			if s := handshake(t, n.ws, origin, ""); s != http.StatusSwitchingProtocols {
				t.Fatalf("node %s does not run revision %d: %s gets %d", n.ws, rev, origin, s)
			}
		}
	}
	for _, n := range c.nodes {
		if nacks := n.metric(t, "wsfleet_node_policy_nacks_total"); nacks != 0 {
			t.Errorf("node %s NACKed %v revisions", n.ws, nacks)
		}
	}
}

func TestClusterNodesFailOverWithoutMissingARevision(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	dead := map[int]bool{}
	rev := int64(1)
	// Twice: the replica node-1 is on is killed, and a survivor takes
	// applies while node-1 (and node-2, if it was there too) fails over.
	// The second time a single replica is left.
	for round := range 2 {
		on := c.attached(t, c.nodes[0], dead, 5*time.Second)
		c.cps[on].kill()
		dead[on] = true
		killed := time.Now()
		survivor := -1
		for i := range c.cps {
			if !dead[i] {
				survivor = i
				break
			}
		}
		var origin string
		for k := range 2 {
			rev++
			origin = fmt.Sprintf("https://round-%d-apply-%d.example.com", round, k)
			file := policyFile(t, dir, fmt.Sprintf("r%d-%d.yaml", round, k), 65536, origin)
			mustWsctl(t, c.cps[survivor].addr, "", "policy", "apply", "-f", file, "-m", "while node-1 fails over")
		}
		// Within the backoff and a few seconds of the kill, every node is on
		// a live replica and runs the newest revision.
		bound := clusterBackoffMin + 5*time.Second - time.Since(killed)
		c.waitRevision(t, rev, bound)
		t.Logf("round %d: replica %d killed; both nodes on revision %d %s later", round, on, rev, time.Since(killed).Round(time.Millisecond))
		for _, n := range c.nodes {
			if now := c.attached(t, n, dead, time.Second); dead[now] {
				t.Fatalf("node %s is on dead replica %d", n.ws, now)
			}
			if s := handshake(t, n.ws, origin, ""); s != http.StatusSwitchingProtocols {
				t.Fatalf("node %s does not run revision %d: %s gets %d", n.ws, rev, origin, s)
			}
			if nacks := n.metric(t, "wsfleet_node_policy_nacks_total"); nacks != 0 {
				t.Fatalf("node %s NACKed %v revisions", n.ws, nacks)
			}
		}
	}
}

// postPublish is a backend publish over HTTP (--dev: no token).
func postPublish(t *testing.T, httpAddr, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+httpAddr+"/v1/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestChannelsSpanTheClusterThroughNATS(t *testing.T) {
	c := startCluster(t)
	subs := []*subscriber{
		subscribeTo(t, "subscriber on node-1", c.nodes[0].ws, "news"),
		subscribeTo(t, "subscriber on node-2", c.nodes[1].ws, "news"),
	}
	publisher := dialLive(t, "publisher on node-1", c.nodes[0].ws, "")

	t.Run("a client's publish on node-1 reaches the subscribers of both nodes once", func(t *testing.T) {
		publisher.send(t, `{"type":"publish","channel":"news","data":{"from":"node-1"}}`)
		for _, s := range subs {
			s.expect(t, `{"type":"message","channel":"news","data":{"from":"node-1"}}`)
		}
	})
	t.Run("wsctl publish on any replica reaches them through NATS", func(t *testing.T) {
		for i, cp := range c.cps {
			data := fmt.Sprintf(`{"from":"replica-%d"}`, i)
			out := mustWsctl(t, cp.addr, "", "publish", "news", data)
			if !strings.Contains(out, "through NATS") {
				t.Fatalf("wsctl publish on replica %d: %s", i, out)
			}
			for _, s := range subs {
				s.expect(t, `{"type":"message","channel":"news","data":`+data+`}`)
			}
		}
	})
	t.Run("POST /v1/publish on another replica reaches them too", func(t *testing.T) {
		code, body := postPublish(t, c.http[2], `{"channel":"news","data":[1, 2]}`)
		if code != http.StatusOK || !strings.Contains(body, "ROUTE_NATS") {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		for _, s := range subs {
			s.expect(t, `{"type":"message","channel":"news","data":[1,2]}`)
		}
	})
}

func TestTheClusterKeepsServingWhileNATSIsStoppedAndRecoversByItself(t *testing.T) {
	// The fault: NATS frozen (SIGSTOP: its sockets stay open, it
	// answers nothing) for about ten seconds.
	const stopFor = 10 * time.Second
	c := startCluster(t)
	remote := subscribeTo(t, "subscriber on node-2", c.nodes[1].ws, "live")
	publisher := dialLive(t, "publisher on node-1", c.nodes[0].ws, "")
	publisher.send(t, `{"type":"publish","channel":"live","data":"before"}`)
	remote.expect(t, `{"type":"message","channel":"live","data":"before"}`)

	if err := c.nats.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	continued := false
	cont := func() {
		if !continued {
			continued = true
			_ = c.nats.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer cont()

	// Until node-1 notices (unanswered pings), a publish may be taken and
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
		t.Fatalf("no unavailable frame within %s of stopping NATS:\n%s", stopFor, c.nodes[0].logText())
	}
	t.Logf("%s after the stop: %s", time.Since(stopped).Round(time.Millisecond), unavailable)

	// Everything but channels goes on: handshakes, and a policy applied
	// meanwhile reaches both nodes.
	origin := "https://while-nats-is-stopped.example.com"
	mustWsctl(t, c.cps[0].addr, "", "policy", "apply", "-f", policyFile(t, t.TempDir(), "p.yaml", 65536, origin))
	c.waitRevision(t, 2, 5*time.Second)
	for _, n := range c.nodes {
		if s := handshake(t, n.ws, origin, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("node %s with NATS stopped: handshake %d", n.ws, s)
		}
	}
	// A backend publish does not claim a delivery it cannot know of:
	// unconfirmed (exit 5) or not delivered (exit 6).
	if r := runWsctl(t, c.cps[1].addr, "", "publish", "live", `"during"`); r.code != 5 && r.code != 6 {
		t.Fatalf("wsctl publish with NATS stopped: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if rest := stopFor - time.Since(stopped); rest > 0 {
		time.Sleep(rest)
	}
	cont()
	resumed := time.Now()

	// The node redials and restores its subscription by itself: the
	// client subscribed before the stop gets a publish from node-1 again,
	// without subscribing again. Frames taken before the node noticed the
	// stop may arrive first (NATS had them in its socket buffers).
	waitFor(t, 15*time.Second, "a publish on node-1 delivered on node-2 after SIGCONT", func() bool {
		publisher.send(t, `{"type":"publish","channel":"live","data":"after"}`)
		deadline := time.After(200 * time.Millisecond)
		for {
			select {
			case m := <-remote.msgs:
				if m == `{"type":"message","channel":"live","data":"after"}` {
					return true
				}
			case <-publisher.msgs:
			case <-deadline:
				return false
			}
		}
	})
	t.Logf("delivered again %s after SIGCONT", time.Since(resumed).Round(time.Millisecond))
	waitFor(t, 20*time.Second, "wsctl publish confirmed through NATS again", func() bool {
		return runWsctl(t, c.cps[1].addr, "", "publish", "live", `"backend after"`).code == 0
	})
}

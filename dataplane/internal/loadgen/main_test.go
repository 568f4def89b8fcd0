package loadgen

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// childRoleEnv makes the test binary act as a child process of Run: the
// servers (fake node; with "echo-server" first, the real echo command;
// with "--dev" first, the fake control plane) or a misbehaving process.
const childRoleEnv = "LOADGEN_TEST_CHILD"

// pidFileEnv, when set, makes the fake node write its pid there, so a test
// can check the process is gone after Run.
const pidFileEnv = "LOADGEN_TEST_PIDFILE"

const (
	roleServers  = "servers"  // fake node, Main's echo-server or fake control plane
	roleCrash    = "crash"    // writes a line and exits 3 before announcing
	roleSilent   = "silent"   // never announces
	roleStubborn = "stubborn" // announces, then ignores SIGTERM
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(childMain(role, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// childLifetime bounds every test child, so none can outlive a test run
// even if the parent-death signal did not fire.
const childLifetime = 60 * time.Second

func childMain(role string, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, childLifetime)
	defer cancel()
	switch role {
	case roleServers:
		switch {
		case len(args) > 0 && args[0] == "echo-server":
			return Main(ctx, args, os.Stdout, os.Stderr)
		case len(args) > 0 && args[0] == "--dev": // Run's control-plane command line
			return fakeControlMain(ctx, args)
		case len(args) > 0 && args[0] == "--name": // etcd's
			return fakeEtcdMain(ctx, args)
		case len(args) > 0 && args[0] == "-a": // nats-server's
			return fakeNATSMain(ctx, args)
		default:
			return fakeNodeMain(ctx, args)
		}
	case roleCrash:
		fmt.Fprintln(os.Stderr, "panic: the node fell over")
		return 3
	case roleSilent:
		<-ctx.Done()
		return 0
	case roleStubborn:
		signal.Ignore(syscall.SIGTERM)
		fmt.Fprintf(os.Stderr, `{"msg":"node listening","ws_addr":"127.0.0.1:1"}`+"\n")
		time.Sleep(childLifetime)
		return 0
	default:
		return 99
	}
}

// fakeNodeMain is wsfleet-node's command-line contract around fakeNode: the
// same flags, the policy file read with the SDK (so the bench policy is
// checked end to end), the JSON ready line, and exit 0 after closing every
// connection on SIGTERM.
func fakeNodeMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("fake-node", flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	metrics := fs.String("metrics-addr", "", "")
	policyPath := fs.String("policy-file", "", "")
	nodeID := fs.String("node-id", "", "")
	fs.String("log-format", "", "")
	broker := fs.String("broker", "", "")
	fs.Bool("disable-traffic", false, "") // the handshake-traffic scenario's second node
	if err := fs.Parse(args); err != nil {
		return 2
	}
	data, err := os.ReadFile(*policyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	doc, err := policyfile.Decode(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	allow := doc.Policy.GetOrigins().GetAllow()
	if len(allow) != 1 || doc.Policy.GetOrigins().GetAllowMissing() {
		fmt.Fprintln(os.Stderr, "want exactly one allowed origin and no missing origin")
		return 1
	}
	if nats, ok := strings.CutPrefix(*broker, "nats://"); ok {
		return serveProxy(ctx, nats, nodeReadyMsg, "ws_addr")
	}
	f, err := newFakeNode(*listen, allow[0], func(f *fakeNode) { f.nodeID = *nodeID })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	metricsAddr := *metrics
	if metricsAddr != "" && metricsAddr != "-" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		metricsAddr = ln.Addr().String()
		srv := f.serveMetrics(ln)
		defer func() { _ = srv.Close() }()
	}
	if pf := os.Getenv(pidFileEnv); pf != "" {
		if err := os.WriteFile(pf, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	// A line before the ready one, as a real node logs its policy first.
	fmt.Fprintln(os.Stderr, `{"level":"info","msg":"policy applied","revision":0}`)
	fmt.Fprintf(os.Stderr, `{"level":"info","msg":"node listening","ws_addr":%q,"metrics_addr":%q}`+"\n", f.addr(), metricsAddr)
	<-ctx.Done()
	f.shutdown()
	return 0
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

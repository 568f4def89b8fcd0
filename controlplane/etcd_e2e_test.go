package controlplane

// The etcd store end to end: real wsfleet-control processes started with
// --store etcd on an etcd embedded in the test process, a real
// wsfleet-node and wsctl.

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

// etcdArgs are the flags of a dev control plane on the etcd store.
func etcdArgs(endpoint string, more ...string) []string {
	return append([]string{"--dev", "--store", "etcd", "--etcd-endpoints", endpoint}, more...)
}

func TestReplicaProcessesOnEtcdPushToEachOthersNodes(t *testing.T) {
	e := etcdtest.Start(t, nil)
	a := startControl(t, t.TempDir(), etcdArgs(e.Endpoint)...)
	b := startControl(t, t.TempDir(), etcdArgs(e.Endpoint)...)
	if !strings.Contains(a.logText(), "created a new store") || strings.Contains(b.logText(), "created a new store") {
		t.Fatalf("want the first replica alone to create the store:\nA:\n%s\nB:\n%s", a.logText(), b.logText())
	}
	dir := t.TempDir()
	node := startNodeProc(t, "--control", b.addr, "--node-id", "n1", "--cache-file", filepath.Join(dir, "cache.json"))
	waitFor(t, 10*time.Second, "n1 on B runs revision 1", func() bool {
		n := nodesList(t, b.addr)["n1"]
		return n.Connected && n.AppliedRevision == 1
	})

	allow := policyFile(t, dir, "allow.yaml", 65536, "https://app.example.com")
	mustWsctl(t, a.addr, "", "policy", "apply", "-f", allow, "-m", "applied on replica A")
	took := waitFor(t, 10*time.Second, "B shows n1 on revision 2", func() bool {
		return nodesList(t, b.addr)["n1"].AppliedRevision == 2
	})
	t.Logf("revision 2, applied on A, ran on B's node %s after apply returned", took)
	if s := handshake(t, node.ws, "https://app.example.com", ""); s != http.StatusSwitchingProtocols {
		t.Fatalf("the node does not run revision 2: status %d", s)
	}
	if r := getJSON(t, b.addr); r.Revision != 2 || r.Message != "applied on replica A" {
		t.Fatalf("B's head is %d %q, want A's revision 2", r.Revision, r.Message)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestControlPlaneRefusesAnEtcdStoreItCannotUse(t *testing.T) {
	e := etcdtest.Start(t, nil)
	cli := e.Client(t)
	put := func(key string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, key, "x"); err != nil {
			t.Fatal(err)
		}
	}
	const advice = "--etcd-prefix"
	tests := []struct {
		name string
		args func(t *testing.T) []string
		says []string
	}{
		{"an unreachable etcd is one line within the dial timeout", func(t *testing.T) []string {
			addr := closedAddr(t)
			return etcdArgs(addr, "--etcd-dial-timeout", "1s")
		}, []string{"no answer within 1s", "connection refused", "check --etcd-endpoints"}},
		{"a prefix holding another program's keys", func(t *testing.T) []string {
			put("/theirs/feature-flags")
			return etcdArgs(e.Endpoint, "--etcd-prefix", "/theirs/")
		}, []string{"/theirs/", "not a wsfleet store's", advice}},
		{"a prefix holding wsfleet keys but no identity", func(t *testing.T) []string {
			put("/damaged/heads/default")
			return etcdArgs(e.Endpoint, "--etcd-prefix", "/damaged/")
		}, []string{"/damaged/", "no store identity", "wsctl policy recover"}},
		{"etcd flags without --store etcd", func(t *testing.T) []string {
			return []string{"--dev", "--etcd-endpoints", e.Endpoint}
		}, []string{"need --store etcd"}},
		{"--store etcd without endpoints", func(t *testing.T) []string {
			return []string{"--dev", "--store", "etcd"}
		}, []string{"needs --etcd-endpoints"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json"}, tt.args(t)...)
			start := time.Now()
			r := runControl(t, args...)
			oneErrorLine(t, r, tt.says[0], tt.says[1:]...)
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %s to refuse", took)
			}
		})
	}
}

func TestInitCreatesAnEtcdStoreOnlyUnderAnEmptyPrefix(t *testing.T) {
	e := etcdtest.Start(t, nil)
	args := []string{"--store", "etcd", "--etcd-endpoints", e.Endpoint, "--etcd-prefix", "/fleet/", "--log-format", "json", "--init"}
	r := runControl(t, args...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "created a new store etcd-") || !strings.Contains(r.stdout, "prefix /fleet/") {
		t.Fatalf("--init: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	id := strings.Fields(r.stdout)[4]
	again := runControl(t, args...)
	oneErrorLine(t, again, id, "already exists", "never overwritten")

	cp := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--etcd-prefix", "/fleet/")...)
	if strings.Contains(cp.logText(), "created a new store") || !strings.Contains(cp.logText(), id) {
		t.Fatalf("the control plane did not serve the store --init made (%s):\n%s", id, cp.logText())
	}
}

func TestTheEtcdTLSAndCredentialFlagsReachTheStore(t *testing.T) {
	t.Run("a client certificate for a TLS etcd", func(t *testing.T) {
		e, files := etcdtest.StartTLS(t)
		cp := startControl(t, t.TempDir(), etcdArgs(e.Endpoint,
			"--etcd-ca", files.CA, "--etcd-cert", files.ClientCert, "--etcd-key", files.ClientKey)...)
		if r := getJSON(t, cp.addr); r.Revision != 1 {
			t.Fatalf("head %d, want 1", r.Revision)
		}
	})
	t.Run("a username and a password file", func(t *testing.T) {
		e := etcdtest.Start(t, nil)
		e.EnableAuth(t, "s3cret")
		pw := filepath.Join(t.TempDir(), "etcd-password")
		if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cp := startControl(t, t.TempDir(), etcdArgs(e.Endpoint, "--etcd-username", "root", "--etcd-password-file", pw)...)
		if r := getJSON(t, cp.addr); r.Revision != 1 {
			t.Fatalf("head %d, want 1", r.Revision)
		}
	})
}

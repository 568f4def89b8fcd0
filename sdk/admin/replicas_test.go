package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

func TestAnAddressListIsChecked(t *testing.T) {
	tests := []struct {
		name string
		cfg  admin.Config
		want error // nil: Dial succeeds
	}{
		{"a list of three replicas dials", admin.Config{Addr: "cp1.internal:7400,cp2.internal:7400,10.0.0.3:7400"}, nil},
		{"spaces around the entries are ignored", admin.Config{Addr: "127.0.0.1:7400, 127.0.0.1:7500"}, nil},
		{"IPv6 entries are fine", admin.Config{Addr: "[::1]:7400,[fd00::3]:7400"}, nil},
		{"an empty entry is refused", admin.Config{Addr: "127.0.0.1:7400,,127.0.0.1:7500"}, admin.ErrConfig},
		{"a trailing comma is refused", admin.Config{Addr: "127.0.0.1:7400,"}, admin.ErrConfig},
		{"an entry without a port is refused", admin.Config{Addr: "127.0.0.1:7400,cp2.internal"}, admin.ErrConfig},
		{"an entry with port 0 is refused", admin.Config{Addr: "127.0.0.1:7400,127.0.0.1:0"}, admin.ErrConfig},
		{"an entry without a host is refused", admin.Config{Addr: "127.0.0.1:7400,:7500"}, admin.ErrConfig},
		{"a gRPC target inside a list is refused", admin.Config{Addr: "dns:///cp1.internal:7400,cp2.internal:7400"}, admin.ErrConfig},
		{"a replica listed twice is refused", admin.Config{Addr: "127.0.0.1:7400,127.0.0.1:7400"}, admin.ErrConfig},
		{"a token in plaintext to loopback replicas only is fine", admin.Config{Addr: "127.0.0.1:7400,[::1]:7400,localhost:7400", Token: "t"}, nil},
		{"a token in plaintext is refused when the last replica is remote", admin.Config{Addr: "127.0.0.1:7400,localhost:7500,10.0.0.1:7400", Token: "t"}, admin.ErrInsecureToken},
		{"a token in plaintext is refused when the first replica is remote", admin.Config{Addr: "cp1.internal:7400,127.0.0.1:7400", Token: "t"}, admin.ErrInsecureToken},
		{"a token over TLS to remote replicas is fine", admin.Config{Addr: "cp1.internal:7400,cp2.internal:7400", Token: "t", TLS: true}, nil},
		{"no token to remote replicas in plaintext is fine", admin.Config{Addr: "cp1.internal:7400,cp2.internal:7400"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := admin.Dial(tt.cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				if err := c.Close(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				_ = c.Close()
				t.Fatalf("Dial succeeded, want %v", tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("the refusal names the replica that is not loopback", func(t *testing.T) {
		_, err := admin.Dial(admin.Config{Addr: "127.0.0.1:7400,10.0.0.9:7400", Token: "secret"})
		if err == nil || !strings.Contains(err.Error(), "to 10.0.0.9:7400,") || strings.Contains(err.Error(), "secret") {
			t.Errorf("got %v, want an error naming 10.0.0.9:7400 and not the token", err)
		}
	})
}

// replica is a PolicyService that answers GetPolicy with its name as the
// author, so a test sees which replica a call reached.
type replica struct {
	wsfleetv1.UnimplementedPolicyServiceServer
	name string
	addr string
	stop func() // abrupt: listener and every connection closed at once
}

func (r *replica) GetPolicy(context.Context, *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	return &wsfleetv1.GetPolicyResponse{Revision: &wsfleetv1.PolicyRevision{Pool: "default", Revision: 1, Author: r.name}}, nil
}

// serveReplica serves a replica on lis until the test ends or stop.
func serveReplica(t *testing.T, name string, lis net.Listener, opts ...grpc.ServerOption) *replica {
	t.Helper()
	s := grpc.NewServer(opts...)
	r := &replica{name: name, addr: lis.Addr().String()}
	wsfleetv1.RegisterPolicyServiceServer(s, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	r.stop = func() {
		s.Stop()
		<-done
	}
	t.Cleanup(r.stop)
	return r
}

func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// replicaSet serves n replicas on loopback and returns them with their
// addresses as a list.
func replicaSet(t *testing.T, n int, opts ...grpc.ServerOption) ([]*replica, string) {
	t.Helper()
	rs := make([]*replica, n)
	addrs := make([]string, n)
	for i := range rs {
		rs[i] = serveReplica(t, fmt.Sprint("replica-", i), loopbackListener(t), opts...)
		addrs[i] = rs[i].addr
	}
	return rs, strings.Join(addrs, ",")
}

// answeredBy makes one read and returns the name of the replica that
// answered it.
func answeredBy(c *admin.Client) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Policy().GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{})
	return resp.GetRevision().GetAuthor(), err
}

// nextAnswer reads until a call succeeds (a call that races the broken
// connection may fail) and returns who answered; failing for 10 s is fatal.
func nextAnswer(t *testing.T, c *admin.Client) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		name, err := answeredBy(c)
		if err == nil {
			return name
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica answered within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func byName(rs []*replica, name string) *replica {
	for _, r := range rs {
		if r.name == name {
			return r
		}
	}
	return nil
}

func TestReadsFailOverToALiveReplica(t *testing.T) {
	rs, list := replicaSet(t, 3)
	c := dialT(t, list)

	gone := map[string]bool{}
	for range 2 {
		first := nextAnswer(t, c)
		if gone[first] {
			t.Fatalf("%s answered after it stopped", first)
		}
		for range 3 {
			if again := nextAnswer(t, c); again != first {
				t.Fatalf("calls moved from %s to %s while %s was up: one connection, one replica", first, again, first)
			}
		}
		byName(rs, first).stop()
		gone[first] = true
		if next := nextAnswer(t, c); gone[next] {
			t.Fatalf("%s answered after it stopped", next)
		}
	}

	// The last replica stops too: nothing is left to reach. A read that
	// races the closing connection is lost rather than unreachable.
	for _, r := range rs {
		r.stop()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		name, err := answeredBy(c)
		if errors.Is(err, admin.ErrUnreachable) {
			break
		}
		if !errors.Is(err, admin.ErrConnectionLost) || time.Now().After(deadline) {
			t.Fatalf("with every replica down got %q, %v; want %v", name, err, admin.ErrUnreachable)
		}
	}
}

func TestClientsSpreadOverTheReplicas(t *testing.T) {
	rs, list := replicaSet(t, 3)
	// Every client picks one replica at random: 45 clients miss one of
	// three replicas with probability 3·(2/3)^45, about 4e-8.
	seen := map[string]int{}
	for range 45 {
		c, err := admin.Dial(admin.Config{Addr: list})
		if err != nil {
			t.Fatal(err)
		}
		name, err := answeredBy(c)
		_ = c.Close()
		if err != nil {
			t.Fatal(err)
		}
		seen[name]++
	}
	for _, r := range rs {
		if seen[r.name] == 0 {
			t.Errorf("no client reached %s: %v", r.name, seen)
		}
	}
}

func TestASilentReplicaDoesNotHoldUpTheOthers(t *testing.T) {
	// The silent one accepts TCP and never completes the HTTP/2 handshake,
	// like a wedged process; gRPC's connect timeout would wait 5–20 s for
	// it, but the next replica is tried after 250 ms. In whichever order
	// the replicas are shuffled, each read is answered well within its 5 s.
	live := serveReplica(t, "live", loopbackListener(t))
	c := dialT(t, silentAddr(t)+","+live.addr)
	for range 3 {
		name, err := answeredBy(c)
		if err != nil || name != "live" {
			t.Fatalf("got %q, %v; want an answer from the live replica", name, err)
		}
	}
}

// testCA issues server certificates for any names and IPs.
type testCA struct {
	file string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsfleet replicas test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{file: file, cert: cert, key: key}
}

// serverCreds are TLS credentials with a certificate valid for exactly
// names (DNS names or IPs).
func (ca *testCA) serverCreds(t *testing.T, serial int64, names ...string) grpc.ServerOption {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
}

func TestEveryReplicaIsVerifiedOverTLS(t *testing.T) {
	ca := newTestCA(t)
	t.Run("without a server name each replica is checked against its own host", func(t *testing.T) {
		// One certificate names only localhost, the other only 127.0.0.1:
		// each holds only under the host its own list entry gives.
		byHost := serveReplica(t, "by-name", loopbackListener(t), ca.serverCreds(t, 2, "localhost"))
		byIP := serveReplica(t, "by-ip", loopbackListener(t), ca.serverCreds(t, 3, "127.0.0.1"))
		_, port, _ := net.SplitHostPort(byHost.addr)
		c := dialCfg(t, admin.Config{Addr: net.JoinHostPort("localhost", port) + "," + byIP.addr, CAFile: ca.file, Token: "t"})
		failOverOnce(t, c, []*replica{byHost, byIP})
	})
	t.Run("with a server name every replica is checked against it", func(t *testing.T) {
		rs, list := replicaSet(t, 2, ca.serverCreds(t, 4, "cp.wsfleet.test"))
		c := dialCfg(t, admin.Config{Addr: list, CAFile: ca.file, ServerName: "cp.wsfleet.test"})
		failOverOnce(t, c, rs)
	})
	t.Run("a replica whose certificate does not name its host is refused", func(t *testing.T) {
		// The service-name certificate does not cover 127.0.0.1: without
		// --server-name no replica is trusted.
		_, list := replicaSet(t, 2, ca.serverCreds(t, 5, "cp.wsfleet.test"))
		c := dialCfg(t, admin.Config{Addr: list, CAFile: ca.file})
		if name, err := answeredBy(c); !errors.Is(err, admin.ErrUnreachable) {
			t.Errorf("got %q, %v; want %v", name, err, admin.ErrUnreachable)
		}
	})
}

func dialCfg(t *testing.T, cfg admin.Config) *admin.Client {
	t.Helper()
	c, err := admin.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// failOverOnce reads from one of two replicas, stops it and reads from the
// other.
func failOverOnce(t *testing.T, c *admin.Client, rs []*replica) {
	t.Helper()
	first := nextAnswer(t, c)
	byName(rs, first).stop()
	if next := nextAnswer(t, c); next == first {
		t.Fatalf("%s answered after it stopped", next)
	}
}

// dnsServer answers A queries for name with ips and every other query with
// no records, on a loopback UDP port: a DNS name with several addresses
// without touching the system's DNS.
func dnsServer(t *testing.T, name string, ips ...net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fqdn := dnsmessage.MustNewName(name + ".")
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), fqdn.String()) {
				for _, ip := range ips {
					var a [4]byte
					copy(a[:], ip.To4())
					_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
				}
			}
			msg, err := b.Finish()
			if err != nil {
				continue
			}
			_, _ = pc.WriteTo(msg, from)
		}
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

// sharedPortListeners listens on the same port of each of ips, as replicas
// behind one DNS name do. It skips the test where only 127.0.0.1 is
// loopback (macOS).
func sharedPortListeners(t *testing.T, ips ...string) []net.Listener {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		ls := []net.Listener{first}
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				var op *net.OpError
				if errors.As(err, &op) && strings.Contains(err.Error(), "assign requested address") {
					for _, l := range ls {
						_ = l.Close()
					}
					t.Skipf("cannot listen on %s: this system routes only part of 127.0.0.0/8 to loopback", ip)
				}
				break // the port is taken there: try another
			}
			ls = append(ls, l)
		}
		if len(ls) == len(ips) {
			return ls
		}
		for _, l := range ls {
			_ = l.Close()
		}
	}
	t.Fatal("no port free on every address after 20 tries")
	return nil
}

func TestADNSNameSpansEveryAddressItResolvesTo(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	ls := sharedPortListeners(t, ips...)
	rs := make([]*replica, len(ls))
	parsed := make([]net.IP, len(ips))
	for i, l := range ls {
		rs[i] = serveReplica(t, ips[i], l)
		parsed[i] = net.ParseIP(ips[i])
	}
	_, port, _ := net.SplitHostPort(rs[0].addr)
	// dns://<server>/<name>:<port> asks that DNS server, ours.
	addr := "dns://" + dnsServer(t, "replicas.wsfleet.test", parsed...) + "/replicas.wsfleet.test:" + port

	t.Run("a client fails over between the addresses of the name", func(t *testing.T) {
		c := dialT(t, addr)
		first := nextAnswer(t, c)
		byName(rs, first).stop()
		if next := nextAnswer(t, c); next == first {
			t.Fatalf("%s answered after it stopped", next)
		}
	})
	t.Run("clients spread over the addresses of the name", func(t *testing.T) {
		// Two replicas are left; 30 clients all pick the same one with
		// probability 2·(1/2)^30.
		seen := map[string]bool{}
		for range 30 {
			c, err := admin.Dial(admin.Config{Addr: addr})
			if err != nil {
				t.Fatal(err)
			}
			name, err := answeredBy(c)
			_ = c.Close()
			if err != nil {
				t.Fatal(err)
			}
			seen[name] = true
		}
		if len(seen) < 2 {
			t.Errorf("every client reached the same replica: %v", seen)
		}
	})
}

func TestAWriteCutMidCallIsNotReplayedOnAnotherReplica(t *testing.T) {
	// Both replicas take the call and hang up before answering: whichever
	// the client is on, the apply was sent, so its outcome is unknown, and
	// it must not be sent again to the other replica behind the caller's
	// back (that could store it twice).
	a, addrA := serveCutter(t)
	b, addrB := serveCutter(t)
	c := dialT(t, addrA+","+addrB)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := apply(ctx, c.Policy()); !errors.Is(err, admin.ErrOutcomeUnknown) {
		t.Fatalf("got %v, want %v", err, admin.ErrOutcomeUnknown)
	}
	if calls := a.calls.Load() + b.calls.Load(); calls != 1 {
		t.Fatalf("the apply reached the replicas %d times, want once", calls)
	}
}

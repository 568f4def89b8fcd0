package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wsfleet/wsfleet/controlplane/registry/etcdstatus"
	"github.com/wsfleet/wsfleet/controlplane/replicas"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
	"github.com/wsfleet/wsfleet/controlplane/telemetry/fanout"
)

// buildReplicas makes what lets a replica on the etcd store answer for the
// whole fleet: its membership (lease, advertised address), the sharing of
// node status, and the queries that ask every replica. The gRPC listener
// must be bound (the advertised address defaults to it). It starts no
// goroutine: Run does.
func (s *Server) buildReplicas(st *etcdstore.Store) error {
	addr := s.cfg.AdvertiseAddr
	if addr == "" {
		// GRPCAddr as bound: a port 0 is the kernel's choice now.
		addr = s.grpcLis.Addr().String()
		if err := s.cfg.checkAdvertised(addr, "--grpc-addr"); err != nil {
			return err
		}
	}
	member, err := replicas.New(replicas.Config{
		Client:         st.Client(),
		Prefix:         st.Prefix(),
		Addr:           addr,
		LeaseTTL:       s.cfg.LeaseTTL,
		RequestTimeout: st.RequestTimeout(),
		Log:            s.log,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.member = member
	if s.status, err = etcdstatus.New(etcdstatus.Config{
		Client:         st.Client(),
		Prefix:         st.Prefix(),
		Member:         member,
		Registry:       s.fleet,
		WriteInterval:  s.cfg.StatusWriteInterval,
		RequestTimeout: st.RequestTimeout(),
		Registerer:     s.prom,
		Log:            s.log,
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	dial, err := s.peerDialOptions()
	if err != nil {
		return err
	}
	if s.queries, err = fanout.New(fanout.Config{
		Local:       s.telemetry,
		Peers:       member.Peers,
		Self:        member.ID(),
		Timeout:     s.cfg.PeerTimeout,
		DialOptions: dial,
		TailBuffer:  s.cfg.TailBuffer,
		Registerer:  s.prom,
		Log:         s.log,
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// peerDialOptions reach the other replicas: TLS when this one serves TLS
// (the replicas of a fleet share a configuration), with the peer CA and,
// if they require one, a client certificate; plaintext otherwise (loopback
// only, see checkAdvertised).
func (s *Server) peerDialOptions() ([]grpc.DialOption, error) {
	timeout := s.cfg.PeerTimeout
	if timeout <= 0 {
		timeout = DefaultPeerTimeout
	}
	opts := []grpc.DialOption{
		// A replica back from a restart is reached again within a second
		// or two, not after gRPC's default backoff of up to 2 minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: timeout,
		}),
	}
	if s.cfg.TLSCert == "" {
		return append(opts, grpc.WithTransportCredentials(insecure.NewCredentials())), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.cfg.PeerCA != "" {
		pem, err := os.ReadFile(s.cfg.PeerCA)
		if err != nil {
			return nil, fmt.Errorf("%w: peer CA: %w", ErrConfig, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: peer CA %s holds no PEM certificate", ErrConfig, s.cfg.PeerCA)
		}
	}
	cert, key := s.cfg.PeerCert, s.cfg.PeerKey
	if cert == "" && s.cfg.ClientCA != "" {
		cert, key = s.cfg.TLSCert, s.cfg.TLSKey
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("%w: peer client certificate: %w", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc))), nil
}

// runReplicas starts the membership and the sharing of node status, and
// returns the function that stops them: the sharing first, so that the
// last statuses (the detaches of a stop) are written while the lease
// still lives, then the membership, which revokes the lease.
func (s *Server) runReplicas() (stop func()) {
	if s.member == nil {
		return func() {}
	}
	memberCtx, stopMember := context.WithCancel(context.Background())
	statusCtx, stopStatus := context.WithCancel(context.Background())
	var member, status sync.WaitGroup
	member.Go(func() { s.member.Run(memberCtx) })
	status.Go(func() { s.status.Run(statusCtx) })
	return func() {
		stopStatus()
		status.Wait()
		stopMember()
		member.Wait()
	}
}

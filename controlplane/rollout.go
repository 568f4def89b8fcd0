package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc/metadata"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/policyserver"
	"github.com/wsfleet/wsfleet/controlplane/rollout"
)

// maxPoolNodePages bounds the pages poolNodes reads (each up to the
// registry's page size): a canary compares a pool's nodes, not more than
// this many pages of them.
const maxPoolNodePages = 100

// buildRollout makes the evaluator of baking canaries; Run runs it on
// every replica (the store's compare-and-set lets one decision win).
func (s *Server) buildRollout() error {
	events := peerAuthorized{events: s.eventQueries()}
	if s.cfg.PeerTokenFile != "" {
		b, err := os.ReadFile(s.cfg.PeerTokenFile)
		if err != nil {
			return fmt.Errorf("%w: --peer-token-file: %w", ErrConfig, err)
		}
		if events.token = strings.TrimSpace(string(b)); events.token == "" || strings.ContainsAny(events.token, " \t\r\n") {
			return fmt.Errorf("%w: --peer-token-file %s: want one token on one line", ErrConfig, s.cfg.PeerTokenFile)
		}
	} else if s.queries != nil && s.cfg.TokensFile != "" {
		s.log.Warn("several replicas with --tokens-file but no --peer-token-file: the rollout evaluator cannot read the other replicas' telemetry, so canaries are rolled back on the evidence there is but never promoted automatically")
	}
	ev, err := rollout.New(rollout.Config{
		Heads:    s.store.Pools,
		Nodes:    s.poolNodes,
		Events:   events,
		Ender:    s.policy,
		Context:  policyserver.SystemContext,
		Interval: s.cfg.RolloutInterval,
		Log:      s.log,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.rollout = ev
	return nil
}

// peerAuthorized hands the event queries the evaluator makes the peer
// token as if a caller had sent it: fanout forwards the caller's
// authorization to the other replicas, and the evaluator has no caller.
type peerAuthorized struct {
	events eventQueries
	token  string
}

func (p peerAuthorized) TopErrors(ctx context.Context, req *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	if p.token != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+p.token))
	}
	return p.events.TopErrors(ctx, req)
}

// runRollout starts the evaluator and returns the function that stops it.
func (s *Server) runRollout() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.rollout.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// poolNodes lists the known nodes of pool, the whole fleet's with
// replicas (the registry's merged view), for canary applies, GetRollout
// and the evaluator.
func (s *Server) poolNodes(ctx context.Context, pool string) ([]*wsfleetv1.NodeStatus, error) {
	var out []*wsfleetv1.NodeStatus
	token := ""
	for range maxPoolNodePages {
		resp, err := s.fleet.ListNodes(ctx, &wsfleetv1.ListNodesRequest{Pool: pool, PageToken: token})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetNodes()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
	return out, errors.New("more nodes in the pool than a rollout compares")
}

// compareRollout fills GetRollout's comparison from the evaluator.
func (s *Server) compareRollout(ctx context.Context, st *wsfleetv1.RolloutStatus) {
	if s.rollout != nil {
		s.rollout.Compare(ctx, st)
	}
}

package controlplane

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore/etcdtest"
)

// The evaluator's queries come from no caller, so there is no token for
// fanout to forward: with tokens, the other replicas answer it only when
// it shows --peer-token-file's. Without one their telemetry is missing,
// which the comparison says (and a due promotion then waits).
func TestTheRolloutEvaluatorReadsTheOtherReplicasWithThePeerToken(t *testing.T) {
	e := etcdtest.Start(t, nil)
	tokens := writeTokens(t)
	peerToken := filepath.Join(t.TempDir(), "peer-token")
	if err := os.WriteFile(peerToken, []byte(viewerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withTokens := func(c *Config) { c.Dev, c.TokensFile = false, tokens }
	withPeerToken := func(c *Config) { c.PeerTokenFile = peerToken }
	tests := []struct {
		name     string
		mutate   []func(*Config)
		degraded string
	}{
		{"with the peer token every replica answers", []func(*Config){withTokens, withPeerToken}, ""},
		{"without it the other replica's telemetry is missing, and the status says so", []func(*Config){withTokens}, "Unauthenticated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := replica(t, e.Endpoint, tc.mutate...)
			b := replica(t, e.Endpoint, tc.mutate...)
			st := &wsfleetv1.RolloutStatus{
				Pool:           "default",
				CanaryRevision: 2,
				Spec:           &wsfleetv1.RolloutSpec{Selector: "zone=a", BaseRevision: 1, Bake: durationpb.New(time.Minute), MinSamples: 10, MaxRatio: 2},
				StartTime:      timestamppb.New(time.Now().Add(-time.Minute)),
			}
			// Both replicas must have registered each other.
			waitFor(t, 10*time.Second, "the replicas see each other", func() bool {
				return len(a.member.Peers()) == 1 && len(b.member.Peers()) == 1
			})
			a.rollout.Compare(context.Background(), st)
			if tc.degraded == "" && st.GetDegraded() != "" || tc.degraded != "" && !strings.Contains(st.GetDegraded(), tc.degraded) {
				t.Fatalf("degraded %q, want %q", st.GetDegraded(), tc.degraded)
			}
		})
	}
}

func TestThePeerTokenFileIsChecked(t *testing.T) {
	e := etcdtest.Start(t, nil)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		says   string
	}{
		{"an empty file is refused", func(c *Config) {
			onEtcd(e.Endpoint)(c)
			c.Dev, c.TokensFile, c.PeerTokenFile = false, writeTokens(t), empty
		}, "one token"},
		{"a missing file is refused", func(c *Config) {
			onEtcd(e.Endpoint)(c)
			c.Dev, c.TokensFile, c.PeerTokenFile = false, writeTokens(t), filepath.Join(t.TempDir(), "none")
		}, "--peer-token-file"},
		{"the bolt store refuses it", func(c *Config) {
			c.Dev, c.TokensFile, c.PeerTokenFile = false, writeTokens(t), empty
		}, "need --store etcd"},
		{"dev mode refuses it", func(c *Config) {
			onEtcd(e.Endpoint)(c)
			c.PeerTokenFile = empty
		}, "is for --tokens-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := logrus.New()
			log.SetOutput(io.Discard)
			cfg := Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, Log: log}
			tc.mutate(&cfg)
			srv, err := New(cfg)
			if err == nil {
				srv.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

// A canary's events are told from the rest by the revision the node ran:
// the filter reaches every replica's telemetry unchanged.
func TestThePolicyRevisionFilterReachesEveryReplica(t *testing.T) {
	e := etcdtest.Start(t, nil)
	a, b := replica(t, e.Endpoint), replica(t, e.Endpoint)
	for _, r := range []*Server{a, b} {
		waitFor(t, 10*time.Second, "both replicas registered", func() bool { return len(r.member.Peers()) == 1 })
	}
	now := time.Now()
	rejected := wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED
	onCanary := func(at time.Time) *wsfleetv1.ErrorEvent {
		ev := event(rejected, "", at)
		ev.PolicyRevision = 5
		return ev
	}
	report(t, b, "node-a", onCanary(now.Add(-2*time.Second)), onCanary(now.Add(-time.Second)))
	report(t, a, "node-b", event(rejected, "", now))
	for _, tc := range []struct {
		rev  int64
		want string
	}{{5, "node-a=2"}, {4, ""}, {0, "node-a=2,node-b=1"}} {
		resp, err := fleetOf(t, a).TopErrors(context.Background(), &wsfleetv1.TopErrorsRequest{
			Filter: &wsfleetv1.EventFilter{PolicyRevision: tc.rev}, GroupBy: wsfleetv1.TopErrorsRequest_GROUP_BY_NODE,
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, g := range resp.GetGroups() {
			got = append(got, g.GetKey()+"="+strconv.FormatInt(g.GetCount(), 10))
		}
		sort.Strings(got)
		if strings.Join(got, ",") != tc.want || len(resp.GetMissingReplicas()) != 0 {
			t.Errorf("policy_revision %d on A: %v (missing %v), want %s", tc.rev, got, resp.GetMissingReplicas(), tc.want)
		}
	}
}

package policyserver

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

func TestDryRunCarriesTheImpact(t *testing.T) {
	type call struct {
		pool       string
		head, next *wsfleetv1.Policy
	}
	var calls []call
	var fail error
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logger, _ := test.NewNullLogger()
	srv, err := New(Config{Store: st, Log: logger, Impact: func(_ context.Context, pool string, head, next *wsfleetv1.Policy) (*wsfleetv1.PolicyImpact, error) {
		calls = append(calls, call{pool, head, next})
		if fail != nil {
			return nil, fail
		}
		return &wsfleetv1.PolicyImpact{NodesReporting: 3}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}

	t.Run("a dry run gets the hook's impact against the head", func(t *testing.T) {
		calls = nil
		resp, err := srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetImpact().GetNodesReporting() != 3 || len(calls) != 1 {
			t.Fatalf("impact %v after %d calls", resp.GetImpact(), len(calls))
		}
		if calls[0].pool != "default" || !proto.Equal(calls[0].head, policy.Default()) || !proto.Equal(calls[0].next, stagingPolicy()) {
			t.Fatalf("hook called with %+v", calls[0])
		}
	})

	t.Run("a new pool's dry run compares with no head", func(t *testing.T) {
		calls = nil
		if _, err := srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Pool: "edge", Policy: stagingPolicy(), DryRun: true}); err != nil {
			t.Fatal(err)
		}
		if len(calls) != 1 || calls[0].pool != "edge" || calls[0].head != nil {
			t.Fatalf("calls %+v", calls)
		}
	})

	t.Run("a real apply does not compute it", func(t *testing.T) {
		calls = nil
		resp, err := srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy()})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetImpact() != nil || len(calls) != 0 {
			t.Fatalf("impact %v, %d calls", resp.GetImpact(), len(calls))
		}
	})

	t.Run("the hook's error fails the dry run", func(t *testing.T) {
		fail = status.Error(codes.Unavailable, "telemetry unavailable")
		defer func() { fail = nil }()
		_, err := srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: policy.Default(), DryRun: true})
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "telemetry unavailable" {
			t.Fatalf("err %v", err)
		}
	})
}

package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The policy API end to end over loopback gRPC: interceptors, auth (dev),
// validation and the bbolt store. Each reports ops/s next to ns/op.

func reportOpsPerSec(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

func BenchmarkPolicyGet(b *testing.B) {
	pc := wsfleetv1.NewPolicyServiceClient(dial(b, startServer(b, nil)))
	ctx := context.Background()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := pc.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	reportOpsPerSec(b, start)
}

// BenchmarkPolicyGetParallel is many dashboards and CLIs reading at once.
func BenchmarkPolicyGetParallel(b *testing.B) {
	pc := wsfleetv1.NewPolicyServiceClient(dial(b, startServer(b, nil)))
	ctx := context.Background()
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pc.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSec(b, start)
}

// BenchmarkPolicyApply stores a new revision per op: validation, diff
// against the head and a durable (fsynced) bbolt commit.
func BenchmarkPolicyApply(b *testing.B) {
	pc := wsfleetv1.NewPolicyServiceClient(dial(b, startServer(b, nil)))
	ctx := context.Background()
	p := policy.Default()
	p.Origins.Allow = []string{"https://app.example.com", "https://*.example.org"}
	b.ReportAllocs()
	i := int32(0)
	start := time.Now()
	for b.Loop() {
		i++
		p.Limits.MaxConnections = 1000 + i%100_000
		if _, err := pc.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: p, Message: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	reportOpsPerSec(b, start)
}

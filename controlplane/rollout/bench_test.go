package rollout

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/internal/benchcpu"
	"github.com/wsfleet/wsfleet/controlplane/telemetry"
)

// failEnder fails the benchmark if the evaluator decides: the benchmark's
// canary keeps baking.
type failEnder struct{ b *testing.B }

func (f failEnder) EndRollout(_ context.Context, pool string, canary int64, result wsfleetv1.RolloutResult, _ bool, reason string) (*wsfleetv1.PolicyRevision, error) {
	f.b.Fatalf("pool %s canary %d decided %v: %s", pool, canary, result, reason)
	return nil, nil
}

// BenchmarkTick is one evaluator tick for one baking pool of 1,000 nodes
// (100 of them canary nodes, zone=a) five minutes into a bake of ten:
// the two TopErrors by node the comparison makes, answered by a real
// telemetry store (this replica alone: no fan-out) holding those five
// minutes of events — per node and minute three error classes from
// three origins, 9,000 keys a minute, under the default MaxKeysPerMinute
// — and the per-class comparison. Nothing is worse on the canary, so
// the canary keeps baking and nothing is written. Not in it: the heads
// (a fixed list) and the node list (a prebuilt slice; the registry's
// ListNodes copies its node statuses), and with several replicas the
// fan-out's gRPC calls. cpu-ns/op is the whole process's CPU per tick,
// the garbage collector's included.
func BenchmarkTick(b *testing.B) {
	const (
		nodes, canaryNodes = 1000, 100
		bakeMinutes        = 5
		canaryRevision     = 2
	)
	b.Run(fmt.Sprintf("pools=1/nodes=%d/baked=%dm", nodes, bakeMinutes), func(b *testing.B) {
		now := time.Now().Truncate(time.Minute)
		start := now.Add(-bakeMinutes * time.Minute)
		log := logrus.New()
		log.SetOutput(io.Discard)
		clock := now
		store, err := telemetry.New(telemetry.Config{Now: func() time.Time { return clock }, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		classes := []wsfleetv1.ErrorClass{
			wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, heartbeat, originRejected,
		}
		statuses := make([]*wsfleetv1.NodeStatus, nodes)
		for i := range statuses {
			id, zone, rev := fmt.Sprintf("node-%04d", i), "b", int64(1)
			if i < canaryNodes {
				zone, rev = "a", canaryRevision
			}
			statuses[i] = &wsfleetv1.NodeStatus{
				NodeId: id, Pool: "default", Connected: true, Labels: map[string]string{"zone": zone, "rack": fmt.Sprintf("r%02d", i%40)},
				AppliedPool: "default", AppliedRevision: rev,
			}
			for m := range bakeMinutes {
				at := timestamppb.New(start.Add(time.Duration(m)*time.Minute + 30*time.Second))
				var evs []*wsfleetv1.ErrorEvent
				for _, c := range classes {
					for o := range 3 {
						evs = append(evs, &wsfleetv1.ErrorEvent{
							Kind: wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, Class: c, NodeId: id, Pool: "default",
							Origin: fmt.Sprintf("https://app%d.example.com", o), Time: at, PolicyRevision: rev, Repeat: uint32(1 + o),
						})
					}
				}
				store.Ingest(&wsfleetv1.ReportTelemetryRequest{NodeId: id, Pool: "default", Events: evs})
			}
		}
		if keys := store.Stats().AggregateKeys; keys != nodes*bakeMinutes*len(classes)*3 {
			b.Fatalf("%d keys stored, want %d", keys, nodes*bakeMinutes*len(classes)*3)
		}
		head := &wsfleetv1.PolicyRevision{
			Pool: "default", Revision: canaryRevision, CreateTime: timestamppb.New(start),
			Rollout: &wsfleetv1.RolloutSpec{Selector: "zone=a", Bake: durationpb.New(2 * bakeMinutes * time.Minute), MinSamples: 10, MaxRatio: 2, BaseRevision: 1},
		}
		e, err := New(Config{
			Heads: func(context.Context) ([]*wsfleetv1.PolicyRevision, error) {
				return []*wsfleetv1.PolicyRevision{head}, nil
			},
			Nodes:  func(context.Context, string) ([]*wsfleetv1.NodeStatus, error) { return statuses, nil },
			Events: telemetry.NewServer(store, log),
			Ender:  failEnder{b},
			Log:    log,
			Now:    func() time.Time { return now },
		})
		if err != nil {
			b.Fatal(err)
		}
		// One evaluation checked: every class compared, none worse.
		v, err := e.evaluate(context.Background(), head)
		if err != nil || v.result != wsfleetv1.RolloutResult_ROLLOUT_RESULT_UNSPECIFIED || len(v.classes) != len(classes) {
			b.Fatalf("evaluation %+v, %v: want %d classes compared and no decision", v, err, len(classes))
		}
		ctx := context.Background()
		b.ReportAllocs()
		cpu := benchcpu.Start()
		for b.Loop() {
			e.Tick(ctx)
		}
		cpu.Report(b)
	})
}

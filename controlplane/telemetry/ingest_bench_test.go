package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane"
)

// The ingest path as production runs it: a control plane built by
// controlplane.New (its gRPC server with the whole interceptor chain:
// Prometheus metrics, logging, token authentication, panic recovery; the
// embedded store in a temporary directory), nodes authenticated with a node
// token, each streaming batches of 500 events over its own ReportTelemetry
// stream. The store alone is BenchmarkIngest; the same stream without the
// interceptors is BenchmarkReportTelemetryGRPC.

const (
	prodBatch     = 500
	prodNodeToken = "bench-node-token-0123456789abcdef"
	// prodWindow bounds the batches a stream has sent and not had
	// acknowledged, as the reporter's MaxInFlight does (4 by default).
	prodWindow = 4
)

// prodEvents is one node's batch: mostly closes, some rejected handshakes,
// a few dozen origins, every field a node fills set.
func prodEvents(rng *rand.Rand, node string, now time.Time) []*wsfleetv1.ErrorEvent {
	classes := []wsfleetv1.ErrorClass{
		wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY,
		wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT,
		wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
	}
	out := make([]*wsfleetv1.ErrorEvent, prodBatch)
	for i := range out {
		class := classes[rng.IntN(len(classes))]
		at := now.Add(-time.Duration(rng.IntN(60_000)) * time.Millisecond)
		e := &wsfleetv1.ErrorEvent{
			Kind: wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, Class: class, CloseCode: 1000,
			TraceId: fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), ConnId: node + "-" + strconv.Itoa(rng.IntN(1_000_000)),
			NodeId: node, Pool: "default", Origin: fmt.Sprintf("https://app%d.example.com", rng.IntN(40)),
			RemoteAddr: fmt.Sprintf("203.0.113.%d:%d", rng.IntN(255), 1024+rng.IntN(60000)),
			UserAgent:  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			OpenTime:   timestamppb.New(at.Add(-time.Minute)), Time: timestamppb.New(at), Duration: durationpb.New(time.Minute),
			MessagesIn: int64(rng.IntN(1000)), MessagesOut: int64(rng.IntN(5000)), PolicyRevision: 7,
		}
		if class == wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED {
			e.Kind, e.CloseCode, e.HttpStatus, e.ConnId, e.Duration = wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED, 0, 403, "", nil
			e.Error = "origin not allowed"
		}
		out[i] = e
	}
	return out
}

// startProduction runs a control plane as wsfleet-control does (tokens,
// no --dev) on loopback and returns a connection to it.
func startProduction(b *testing.B) *grpc.ClientConn {
	dir := b.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	data := "tokens:\n  - {name: bench-nodes, role: node, token: " + prodNodeToken + ", nodes: [bench-*], pools: [default]}\n"
	if err := os.WriteFile(tokens, []byte(data), 0o600); err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := controlplane.New(controlplane.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), TokensFile: tokens, Log: log,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("control plane: %v", err)
		}
	})
	return conn
}

// BenchmarkReportTelemetryProduction sends b.N batches of 500 events,
// shared out over several node streams at once, each keeping up to
// prodWindow batches unacknowledged; an op is one batch, acknowledged.
func BenchmarkReportTelemetryProduction(b *testing.B) {
	for _, streams := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			client := wsfleetv1.NewNodeServiceClient(startProduction(b))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+prodNodeToken)
			rng := rand.New(rand.NewPCG(1, 2))
			now := time.Now()
			type nodeStream struct {
				id     string
				events []*wsfleetv1.ErrorEvent
				stream wsfleetv1.NodeService_ReportTelemetryClient
			}
			nodes := make([]nodeStream, streams)
			for i := range nodes {
				id := fmt.Sprintf("bench-%02d", i)
				st, err := client.ReportTelemetry(ctx)
				if err != nil {
					b.Fatal(err)
				}
				nodes[i] = nodeStream{id: id, events: prodEvents(rng, id, now), stream: st}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			errs := make(chan error, 2*streams)
			for i := range nodes {
				n := &nodes[i]
				share := b.N / streams
				if i < b.N%streams {
					share++
				}
				window := make(chan struct{}, prodWindow)
				wg.Go(func() { // acknowledgements
					for range share {
						if _, err := n.stream.Recv(); err != nil {
							errs <- fmt.Errorf("%s: ack: %w", n.id, err)
							cancel() // the sender may wait on the window
							return
						}
						<-window
					}
				})
				wg.Go(func() {
					for seq := 1; seq <= share; seq++ {
						select {
						case window <- struct{}{}:
						case <-ctx.Done():
							errs <- ctx.Err()
							return
						}
						req := &wsfleetv1.ReportTelemetryRequest{NodeId: n.id, Pool: "default", ReporterId: n.id + "-r",
							Sequence: uint64(seq), Events: n.events}
						if err := n.stream.Send(req); err != nil {
							errs <- fmt.Errorf("%s: send: %w", n.id, err)
							cancel()
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*prodBatch)/b.Elapsed().Seconds(), "events/s")
			for i := range nodes {
				_ = nodes[i].stream.CloseSend()
			}
		})
	}
}

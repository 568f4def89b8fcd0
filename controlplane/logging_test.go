package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestLogLevelsByCode(t *testing.T) {
	tests := []struct {
		name   string
		level  func(codes.Code) logging.Level
		code   codes.Code
		expect logging.Level
	}{
		{"a successful call is debug", codeToLevel, codes.OK, logging.LevelDebug},
		{"a refused call is info", codeToLevel, codes.PermissionDenied, logging.LevelInfo},
		{"an unknown error is a server fault", codeToLevel, codes.Unknown, logging.LevelError},
		{"an unavailable store is a warning on a unary call", codeToLevel, codes.Unavailable, logging.LevelWarn},
		{"a node that went away ends its stream at info", streamCodeToLevel, codes.Canceled, logging.LevelInfo},
		{"a stream ended by a shutdown is info", streamCodeToLevel, codes.Unavailable, logging.LevelInfo},
		{"a stream that failed otherwise is still a fault", streamCodeToLevel, codes.Internal, logging.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.level(tt.code); got != tt.expect {
				t.Fatalf("level %v, want %v", got, tt.expect)
			}
		})
	}
}

// TestANodeThatStopsIsNotLoggedAsAnError runs real Watch streams through
// the server's interceptors and cancels them as a node that stops does:
// the log's finished-call line for Watch must carry a real status code at
// info, not `grpc.code=Unknown grpc.error="context canceled"` at error.
// The log level is the point here, so the test reads the log.
func TestANodeThatStopsIsNotLoggedAsAnError(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	srv := startServer(t, func(c *Config) { c.Log = log })
	nc := wsfleetv1.NewNodeServiceClient(dial(t, srv))
	// Whether the server sees the stream's context end or its Recv fail
	// first is up to the scheduler; enough streams cover both.
	const streams = 20
	for i := range streams {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := nc.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: &wsfleetv1.NodeHello{NodeId: "n1"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil { // revision 1
			t.Fatalf("stream %d: %v", i, err)
		}
		cancel()
	}
	finished := func() []*logrus.Entry {
		var out []*logrus.Entry
		for _, e := range hook.AllEntries() {
			if e.Message == "finished call" && e.Data["grpc.method"] == "Watch" {
				out = append(out, e)
			}
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(finished()) < streams {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Watch calls logged as finished", len(finished()), streams)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, e := range finished() {
		if e.Level < logrus.InfoLevel || e.Data["grpc.code"] == codes.Unknown.String() {
			t.Fatalf("a node that stopped was logged at %s: grpc.code=%v grpc.error=%v", e.Level, e.Data["grpc.code"], e.Data["grpc.error"])
		}
	}
}

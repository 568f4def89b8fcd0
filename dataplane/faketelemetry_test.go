package dataplane

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// fakeTelemetry is the control plane's NodeService as far as telemetry
// goes (dataplane never imports controlplane): it acknowledges every batch
// and keeps the events of each sequence once, as they came off the wire.
// It serves no policy: Watch refuses with Unavailable (refuseWatch), as a
// control plane that is down would, and a node pointed at it keeps its
// policy and retries the watch with backoff.
type fakeTelemetry struct {
	wsfleetv1.UnimplementedNodeServiceServer

	addr string

	mu      sync.Mutex
	events  []*wsfleetv1.ErrorEvent
	dropped uint64
	last    map[string]uint64 // reporter id → highest sequence kept
}

func startFakeTelemetry(t testing.TB) *fakeTelemetry {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTelemetry{addr: lis.Addr().String(), last: map[string]uint64{}}
	srv := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(srv, f)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return f
}

func (f *fakeTelemetry) Watch(wsfleetv1.NodeService_WatchServer) error { return refuseWatch() }

// refuseWatch is the answer of a fake that serves no policy.
func refuseWatch() error {
	return status.Error(codes.Unavailable, "this fake control plane serves no policy")
}

func (f *fakeTelemetry) ReportTelemetry(st wsfleetv1.NodeService_ReportTelemetryServer) error {
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		if req.GetSequence() > f.last[req.GetReporterId()] {
			f.last[req.GetReporterId()] = req.GetSequence()
			f.events = append(f.events, req.GetEvents()...)
			f.dropped += req.GetDropped()
		}
		f.mu.Unlock()
		if err := st.Send(&wsfleetv1.ReportTelemetryResponse{AckedSequence: req.GetSequence()}); err != nil {
			return err
		}
	}
}

func (f *fakeTelemetry) received() []*wsfleetv1.ErrorEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*wsfleetv1.ErrorEvent(nil), f.events...)
}

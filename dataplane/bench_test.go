package dataplane

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/sirupsen/logrus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// rtClient publishes to its own channel and waits for the message: one
// round trip through admission-checked session, decoder, broker, queue and
// writer.
type rtClient struct {
	gws.BuiltinEventHandler
	got chan struct{}
}

func (c *rtClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if bytes.HasPrefix(m.Bytes(), []byte(`{"type":"message",`)) {
		c.got <- struct{}{}
	}
}

// BenchmarkRoundTrip reports round trips per second with 16 concurrent
// clients; the load tool (make bench) compares the same against bare gws.
func BenchmarkRoundTrip(b *testing.B) { benchRoundTrip(b, nil) }

// benchRoundTrip is BenchmarkRoundTrip on a node configured by mutate.
func benchRoundTrip(b *testing.B, mutate func(*Config)) {
	n := startNode(b, testPolicy(), mutate)
	const clients = 16
	conns := make([]*gws.Conn, clients)
	handlers := make([]*rtClient, clients)
	frames := make([][]byte, clients)
	for i := range clients {
		h := &rtClient{got: make(chan struct{}, 1)}
		conn, _, err := gws.NewClient(h, &gws.ClientOption{
			Addr:          "ws://" + n.addr + "/ws",
			RequestHeader: map[string][]string{"Origin": {testOrigin}},
		})
		if err != nil {
			b.Fatal(err)
		}
		ch := "rt." + strconv.Itoa(i)
		if err := conn.WriteString(`{"type":"subscribe","channel":"` + ch + `"}`); err != nil {
			b.Fatal(err)
		}
		go conn.ReadLoop()
		conns[i], handlers[i] = conn, h
		frames[i] = []byte(`{"type":"publish","channel":"` + ch + `","data":{"seq":1,"payload":"0123456789abcdef0123456789abcdef"}}`)
	}
	defer func() {
		for _, c := range conns {
			_ = c.WriteClose(1000, nil)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	b.ResetTimer()
	start := time.Now()
	cpu := startCPU()
	var wg sync.WaitGroup
	per := b.N/clients + 1
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if err := conns[i].WriteMessage(gws.OpcodeText, frames[i]); err != nil {
					b.Error(err)
					return
				}
				select {
				case <-handlers[i].got:
				case <-time.After(5 * time.Second):
					b.Error("round trip timed out")
					return
				}
			}
		}()
	}
	wg.Wait()
	cpu.report(b, per*clients)
	b.ReportMetric(float64(per*clients)/time.Since(start).Seconds(), "roundtrips/s")
}

// BenchmarkRecordEvent is what one closed connection costs the node to
// explain: building the event, the log line (JSON, to io.Discard), the
// metric and the sink (a no-op here; sdk/telemetry's BenchmarkRecord has
// the reporter's own cost).
func BenchmarkRecordEvent(b *testing.B) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetFormatter(&logrus.JSONFormatter{})
	n, err := New(Config{NodeID: "bench", Log: log, Sink: EventSinkFunc(func(*wsfleetv1.ErrorEvent) {})})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	open := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		ev := newEvent(wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED, wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, open, time.Now())
		ev.CloseCode = 1006
		ev.TraceId = "4bf92f3577b34da6a3ce929d0e0e4736"
		ev.ConnId = "c1a2b"
		ev.NodeId = "bench"
		ev.Pool = "default"
		ev.Origin = "https://app.example.com"
		ev.RemoteAddr = "10.1.2.3:54321"
		ev.UserAgent = "Mozilla/5.0"
		ev.MessagesIn, ev.BytesIn = 12, 3456
		ev.Error = "EOF"
		n.record(ev)
	}
}

// BenchmarkHandshake is one complete handshake with the origin check and
// limits on, closed by the client with 1000 at once: the upgrade and the
// close as the node explains it (event, metric, log line through a JSON
// formatter to io.Discard, as the binary logs). The client's own cost is
// part of it; the load tool (make bench) measures the server alone.
func BenchmarkHandshake(b *testing.B) { benchHandshake(b, nil) }

// benchHandshake is BenchmarkHandshake on a node configured by mutate.
func benchHandshake(b *testing.B, mutate func(*Config)) {
	n := startNode(b, testPolicy(), func(c *Config) {
		c.Log.SetFormatter(&logrus.JSONFormatter{})
		if mutate != nil {
			mutate(c)
		}
	})
	h := &gws.BuiltinEventHandler{}
	opt := &gws.ClientOption{Addr: "ws://" + n.addr + "/ws", RequestHeader: map[string][]string{"Origin": {testOrigin}}}
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		conn, _, err := gws.NewClient(h, opt)
		if err != nil {
			b.Fatal(err)
		}
		if err := conn.WriteClose(1000, nil); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, b.N)
}

// trafficCases are the node with its traffic counting (the default) and
// without (Config.DisableTraffic: a nil Collector), side by side.
var trafficCases = []struct {
	name   string
	mutate func(*Config)
}{
	{"traffic=on", nil},
	{"traffic=off", func(c *Config) { c.DisableTraffic = true }},
}

// BenchmarkHandshakeTraffic is BenchmarkHandshake with and without the
// node's traffic counting (one origin; a handshake takes the Collector's
// mutex once), side by side in one run: -count N alternates them. The
// client's cost is in both; cpu-ns/op is the whole process's, client
// included, so the difference is the counting's share of both sides.
func BenchmarkHandshakeTraffic(b *testing.B) {
	for _, c := range trafficCases {
		b.Run(c.name, func(b *testing.B) { benchHandshake(b, c.mutate) })
	}
}

// BenchmarkRoundTripTraffic is BenchmarkRoundTrip with and without the
// node's traffic counting (per message: the message-rate and size peaks,
// an atomic load each, a compare-and-swap when a peak rises), side by
// side in one run.
func BenchmarkRoundTripTraffic(b *testing.B) {
	for _, c := range trafficCases {
		b.Run(c.name, func(b *testing.B) { benchRoundTrip(b, c.mutate) })
	}
}

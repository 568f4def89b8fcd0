package dataplane

import (
	"bytes"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
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
func BenchmarkRoundTrip(b *testing.B) {
	n := startNode(b, testPolicy(), nil)
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
	b.ReportMetric(float64(per*clients)/time.Since(start).Seconds(), "roundtrips/s")
}

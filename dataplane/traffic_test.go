package dataplane

import (
	"sync"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// trafficSink is the test sink that also takes traffic samples.
type trafficSink struct {
	*sink
	mu      sync.Mutex
	samples []*wsfleetv1.TrafficSample
}

func (s *trafficSink) RecordTraffic(ts *wsfleetv1.TrafficSample) {
	s.mu.Lock()
	s.samples = append(s.samples, ts)
	s.mu.Unlock()
}

// totals adds up the samples so far: accepted per origin, and each peak's
// highest value.
func (s *trafficSink) totals() (accepted map[string]uint64, peaks *wsfleetv1.TrafficSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	accepted = map[string]uint64{}
	peaks = &wsfleetv1.TrafficSample{}
	for _, ts := range s.samples {
		for _, o := range ts.GetAccepted() {
			accepted[o.GetOrigin()] += o.GetCount()
		}
		peaks.PeakConnections = max(peaks.PeakConnections, ts.GetPeakConnections())
		peaks.PeakConnectionsPerIp = max(peaks.PeakConnectionsPerIp, ts.GetPeakConnectionsPerIp())
		peaks.PeakHandshakesPerSecond = max(peaks.PeakHandshakesPerSecond, ts.GetPeakHandshakesPerSecond())
		peaks.PeakMessagesPerSecond = max(peaks.PeakMessagesPerSecond, ts.GetPeakMessagesPerSecond())
		peaks.PeakMessageBytes = max(peaks.PeakMessageBytes, ts.GetPeakMessageBytes())
		if ts.GetPolicyPool() != "default" || ts.GetPolicyRevision() != 1 || ts.GetMinute().AsTime().Second() != 0 {
			peaks.PolicyPool = "wrong: " + ts.String()
		}
	}
	return accepted, peaks
}

func TestNodeReportsTrafficSamples(t *testing.T) {
	ts := &trafficSink{sink: newSink()}
	n := startNode(t, testPolicy(), func(c *Config) {
		c.Sink = ts
		c.TrafficInterval = MinTrafficInterval
	})
	a := mustDial(t, n.addr, dialOpts{})
	mustDial(t, n.addr, dialOpts{})
	mustDial(t, n.addr, dialOpts{origin: "https://x.example.org"})
	if _, err := dial(t, n.addr, dialOpts{origin: "https://evil.example.net"}); err == nil {
		t.Fatal("a refused origin was upgraded")
	}
	const ping = `{"type":"ping","id":"a-rather-long-id-to-make-this-the-largest-message"}`
	for range 5 {
		a.send(t, ping)
	}
	for range 5 {
		a.expect(t, "pong")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		accepted, peaks := ts.totals()
		done := accepted[testOrigin] == 2 && accepted["https://x.example.org"] == 1 &&
			peaks.GetPeakConnections() >= 3 && peaks.GetPeakMessageBytes() == uint32(len(ping)) && peaks.GetPeakMessagesPerSecond() >= 1
		if done {
			if len(accepted) != 2 {
				t.Fatalf("accepted %v: the refused origin must not count", accepted)
			}
			if peaks.GetPeakConnectionsPerIp() != 3 || peaks.GetPeakHandshakesPerSecond() < 1 || peaks.GetPolicyPool() != "" {
				t.Fatalf("peaks %v", peaks)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("samples do not add up: accepted %v, peaks %v", accepted, peaks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTrafficIntervalIsBounded(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Minute} {
		cfg := Config{NodeID: "n", TrafficInterval: d}
		cfg.setDefaults()
		if err := cfg.validate(); err == nil {
			t.Errorf("TrafficInterval %v accepted", d)
		}
	}
}

// With DisableTraffic the node counts nothing and cuts no sample, however
// many intervals pass (make bench measures the node both ways).
func TestDisabledTrafficCutsNoSample(t *testing.T) {
	ts := &trafficSink{sink: newSink()}
	n := startNode(t, testPolicy(), func(c *Config) {
		c.Sink = ts
		c.TrafficInterval = MinTrafficInterval
		c.DisableTraffic = true
	})
	a := mustDial(t, n.addr, dialOpts{})
	a.send(t, `{"type":"ping","id":"1"}`)
	a.expect(t, "pong")
	// Ten intervals: a counting node has cut a sample by then.
	time.Sleep(10 * MinTrafficInterval)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.samples) != 0 {
		t.Fatalf("%d samples cut with traffic counting off: %v", len(ts.samples), ts.samples[0])
	}
}

package traffic

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func counts(s *wsfleetv1.TrafficSample) map[string]uint64 {
	out := map[string]uint64{}
	for _, o := range s.GetAccepted() {
		out[o.GetOrigin()] = o.GetCount()
	}
	return out
}

func TestCollector(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		run   func(c *Collector)
		check func(t *testing.T, s *wsfleetv1.TrafficSample)
	}{
		{
			name: "an interval without traffic gives no sample",
			run:  func(*Collector) {},
			check: func(t *testing.T, s *wsfleetv1.TrafficSample) {
				if s != nil {
					t.Fatalf("sample %v, want none", s)
				}
			},
		},
		{
			name: "handshakes are counted per origin, largest first, the empty origin included",
			run: func(c *Collector) {
				for range 3 {
					c.Accepted("https://a.example", 1, 1, t0)
				}
				c.Accepted("", 1, 1, t0)
				c.Accepted("https://b.example", 1, 1, t0)
				c.Accepted("https://b.example", 1, 1, t0)
			},
			check: func(t *testing.T, s *wsfleetv1.TrafficSample) {
				got := counts(s)
				if got["https://a.example"] != 3 || got["https://b.example"] != 2 || got[""] != 1 || len(got) != 3 {
					t.Fatalf("accepted %v", got)
				}
				if s.GetAccepted()[0].GetOrigin() != "https://a.example" {
					t.Fatalf("first %q, want the largest", s.GetAccepted()[0].GetOrigin())
				}
			},
		},
		{
			name: "origins beyond the cap count as accepted_other, first come first counted",
			max:  2,
			run: func(c *Collector) {
				c.Accepted("https://a.example", 1, 1, t0)
				c.Accepted("https://b.example", 1, 1, t0)
				c.Accepted("https://c.example", 1, 1, t0)
				c.Accepted("https://c.example", 1, 1, t0)
				c.Accepted("https://a.example", 1, 1, t0)
			},
			check: func(t *testing.T, s *wsfleetv1.TrafficSample) {
				got := counts(s)
				if len(got) != 2 || got["https://a.example"] != 2 || got["https://b.example"] != 1 || s.GetAcceptedOther() != 2 {
					t.Fatalf("accepted %v other %d", got, s.GetAcceptedOther())
				}
			},
		},
		{
			name: "handshakes per second peak at the busiest second",
			run: func(c *Collector) {
				for range 2 {
					c.Accepted("x", 1, 1, t0)
				}
				for range 5 {
					c.Accepted("x", 1, 1, t0.Add(1500*time.Millisecond))
				}
				c.Accepted("x", 1, 1, t0.Add(3*time.Second))
			},
			check: func(t *testing.T, s *wsfleetv1.TrafficSample) {
				if s.GetPeakHandshakesPerSecond() != 5 {
					t.Fatalf("peak handshakes/s %d, want 5", s.GetPeakHandshakesPerSecond())
				}
			},
		},
		{
			name: "connection peaks are the highest counts seen at a handshake",
			run: func(c *Collector) {
				c.Accepted("x", 7, 2, t0)
				c.Accepted("x", 3, 4, t0)
			},
			check: func(t *testing.T, s *wsfleetv1.TrafficSample) {
				if s.GetPeakConnections() != 7 || s.GetPeakConnectionsPerIp() != 4 {
					t.Fatalf("peaks %d / %d, want 7 / 4", s.GetPeakConnections(), s.GetPeakConnectionsPerIp())
				}
			},
		},
		{
			name: "message peaks are the highest rate and size reported",
			run: func(c *Collector) {
				c.MessageRate(3)
				c.MessageRate(9)
				c.MessageRate(1)
				c.MessageBytes(100)
				c.MessageBytes(5000)
				c.MessageBytes(10)
			},
			check: func(t *testing.T, s *wsfleetv1.TrafficSample) {
				if s.GetPeakMessagesPerSecond() != 9 || s.GetPeakMessageBytes() != 5000 {
					t.Fatalf("peaks %d msg/s, %d bytes", s.GetPeakMessagesPerSecond(), s.GetPeakMessageBytes())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{MaxOrigins: tt.max})
			if err != nil {
				t.Fatal(err)
			}
			tt.run(c)
			s := c.Cut(t0.Add(30*time.Second), "default", 4, 0, 0)
			if s != nil && (!s.GetMinute().AsTime().Equal(t0) || s.GetPolicyPool() != "default" || s.GetPolicyRevision() != 4) {
				t.Fatalf("minute %v pool %q revision %d", s.GetMinute().AsTime(), s.GetPolicyPool(), s.GetPolicyRevision())
			}
			tt.check(t, s)
		})
	}
}

func TestCutStartsTheNextInterval(t *testing.T) {
	c, _ := New(Config{})
	c.Accepted("https://a.example", 5, 2, t0)
	c.MessageRate(50)
	c.MessageBytes(700)
	if c.Cut(t0, "p", 1, 5, 2) == nil {
		t.Fatal("first interval: no sample")
	}
	// Nothing new, but 5 connections stay open (2 from one IP): the next
	// interval's peaks start from them, and its counts from zero.
	s := c.Cut(t0.Add(time.Minute), "p", 1, 5, 2)
	if s == nil {
		t.Fatal("connections open: want a sample")
	}
	if len(s.GetAccepted()) != 0 || s.GetPeakMessagesPerSecond() != 0 || s.GetPeakMessageBytes() != 0 || s.GetPeakHandshakesPerSecond() != 0 {
		t.Fatalf("counts carried over: %v", s)
	}
	if s.GetPeakConnections() != 5 || s.GetPeakConnectionsPerIp() != 2 {
		t.Fatalf("peaks %d / %d, want the open 5 / 2", s.GetPeakConnections(), s.GetPeakConnectionsPerIp())
	}
	if s := c.Cut(t0.Add(2*time.Minute), "p", 1, 0, 0); s == nil || s.GetPeakConnections() != 5 {
		t.Fatalf("third interval: %v", s)
	}
	if s := c.Cut(t0.Add(3*time.Minute), "p", 1, 0, 0); s != nil {
		t.Fatalf("nothing open, nothing accepted: want no sample, got %v", s)
	}
}

func TestConcurrentCountsAreExact(t *testing.T) {
	c, _ := New(Config{})
	var wg sync.WaitGroup
	total := uint64(0)
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				c.Accepted("https://a.example", 1, 1, t0)
				c.MessageRate(uint32(g*1000 + i))
			}
		})
	}
	var mu sync.Mutex
	wg.Go(func() {
		for range 50 {
			if s := c.Cut(t0, "p", 1, 0, 0); s != nil {
				mu.Lock()
				total += counts(s)["https://a.example"]
				mu.Unlock()
			}
		}
	})
	wg.Wait()
	if s := c.Cut(t0, "p", 1, 0, 0); s != nil {
		total += counts(s)["https://a.example"]
	}
	if total != 2000 {
		t.Fatalf("handshakes counted %d over the cuts, want 2000", total)
	}
}

func TestANilCollectorCountsNothing(t *testing.T) {
	var c *Collector
	c.Accepted("x", 1, 1, t0)
	c.MessageRate(5)
	c.MessageBytes(5)
	if s := c.Cut(t0, "p", 1, 3, 1); s != nil {
		t.Fatalf("sample %v", s)
	}
}

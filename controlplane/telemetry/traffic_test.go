package telemetry

import (
	"strings"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// trafficBatch is a batch of node in pool carrying samples.
func trafficBatch(node, pool string, seq uint64, samples ...*wsfleetv1.TrafficSample) *wsfleetv1.ReportTelemetryRequest {
	return &wsfleetv1.ReportTelemetryRequest{NodeId: node, Pool: pool, ReporterId: "r-" + node, Sequence: seq, Traffic: samples}
}

// sampleAt is a sample of the minute at d after t0 for policy pool pp,
// with peaks (connections, per IP, handshakes/s, messages/s, bytes) and
// origin/count pairs.
func sampleAt(d time.Duration, pp string, peaks [5]uint32, origins ...any) *wsfleetv1.TrafficSample {
	s := &wsfleetv1.TrafficSample{
		Minute: ts(d), PolicyPool: pp,
		PeakConnections: peaks[0], PeakConnectionsPerIp: peaks[1], PeakHandshakesPerSecond: peaks[2],
		PeakMessagesPerSecond: peaks[3], PeakMessageBytes: peaks[4],
	}
	for i := 0; i < len(origins); i += 2 {
		s.Accepted = append(s.Accepted, &wsfleetv1.OriginCount{Origin: origins[i].(string), Count: uint64(origins[i+1].(int))})
	}
	return s
}

func acceptedMap(r *wsfleetv1.TrafficSummaryResponse) map[string]uint64 {
	m := map[string]uint64{}
	for _, o := range r.GetAccepted() {
		m[o.GetOrigin()] = o.GetCount()
	}
	return m
}

func peakOf(r *wsfleetv1.TrafficSummaryResponse, measure string) *wsfleetv1.TrafficPeak {
	for _, p := range r.GetPeaks() {
		if p.GetMeasure() == measure {
			return p
		}
	}
	return nil
}

func TestTrafficSummary(t *testing.T) {
	clock := newClock(t0.Add(30 * time.Minute))
	s := newStore(t, Config{Now: clock.Now})
	s.Ingest(trafficBatch("n1", "default", 1,
		sampleAt(time.Minute, "default", [5]uint32{10, 2, 5, 7, 100}, "https://a.example", 4, "https://b.example", 1),
		// A second sample of the same minute (a node cutting more often
		// than once a minute) adds up.
		sampleAt(time.Minute+20*time.Second, "default", [5]uint32{12, 1, 3, 7, 50}, "https://a.example", 2),
	))
	s.Ingest(trafficBatch("n2", "default", 1,
		sampleAt(2*time.Minute, "default", [5]uint32{30, 1, 9, 2, 100}, "https://a.example", 1, "", 3),
	))
	// Another pool, and a minute outside the range asked for.
	s.Ingest(trafficBatch("n3", "edge", 1, sampleAt(time.Minute, "edge", [5]uint32{99, 99, 99, 99, 99}, "https://x.example", 50)))
	s.Ingest(trafficBatch("n1", "default", 2, sampleAt(20*time.Minute, "default", [5]uint32{500, 0, 0, 0, 0}, "https://a.example", 1000)))

	r := s.TrafficSummary("", t0, t0.Add(10*time.Minute))
	if got := acceptedMap(r); len(got) != 3 || got["https://a.example"] != 7 || got["https://b.example"] != 1 || got[""] != 3 {
		t.Fatalf("accepted %v", got)
	}
	if r.GetAccepted()[0].GetOrigin() != "https://a.example" {
		t.Fatalf("not largest first: %v", r.GetAccepted())
	}
	if r.GetNodesReporting() != 2 {
		t.Fatalf("nodes reporting %d, want 2", r.GetNodesReporting())
	}
	for _, tt := range []struct {
		measure string
		value   int64
		node    string
		minute  time.Duration
	}{
		{MeasureConnections, 30, "n2", 2 * time.Minute},
		{MeasureConnectionsPerIP, 2, "n1", time.Minute},
		{MeasureHandshakesPerSecond, 9, "n2", 2 * time.Minute},
		// A tie: the earliest minute wins.
		{MeasureMessagesPerSecond, 7, "n1", time.Minute},
		{MeasureMessageBytes, 100, "n1", time.Minute},
	} {
		p := peakOf(r, tt.measure)
		if p == nil || p.GetValue() != tt.value || p.GetNodeId() != tt.node || !p.GetMinute().AsTime().Equal(t0.Add(tt.minute)) {
			t.Errorf("%s: %v, want %d on %s at +%v", tt.measure, p, tt.value, tt.node, tt.minute)
		}
	}
	if got := acceptedMap(s.TrafficSummary("edge", t0, t0.Add(10*time.Minute))); got["https://x.example"] != 50 || len(got) != 1 {
		t.Fatalf("pool edge: %v", got)
	}
}

func TestTrafficIngestBounds(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		batch *wsfleetv1.ReportTelemetryRequest
		check func(t *testing.T, s *Store)
	}{
		{
			name: "origins beyond the per-minute bound count as accepted_other",
			cfg:  Config{MaxTrafficOrigins: 2},
			batch: trafficBatch("n1", "default", 1, sampleAt(time.Minute, "default", [5]uint32{1},
				"https://a.example", 1, "https://b.example", 2, "https://c.example", 4)),
			check: func(t *testing.T, s *Store) {
				r := s.TrafficSummary("default", t0, t0.Add(time.Hour))
				if len(r.GetAccepted()) != 2 || r.GetAcceptedOther() != 4 || s.Stats().TrafficOtherOrigins != 1 {
					t.Fatalf("accepted %v other %d", r.GetAccepted(), r.GetAcceptedOther())
				}
			},
		},
		{
			name:  "a sample for a pool the node does not run is dropped",
			batch: trafficBatch("n1", "edge", 1, sampleAt(time.Minute, "other-pool", [5]uint32{1}, "https://a.example", 1)),
			check: func(t *testing.T, s *Store) {
				if st := s.Stats(); st.TrafficSamples != 0 || st.TrafficDropped != 1 {
					t.Fatalf("stats %+v", st)
				}
			},
		},
		{
			name:  "a node of a pool without its own policy counts under default",
			batch: trafficBatch("n1", "edge", 1, sampleAt(time.Minute, "default", [5]uint32{1}, "https://a.example", 1)),
			check: func(t *testing.T, s *Store) {
				if got := acceptedMap(s.TrafficSummary("default", t0, t0.Add(time.Hour))); got["https://a.example"] != 1 {
					t.Fatalf("default: %v", got)
				}
			},
		},
		{
			name: "samples older than the retention or ahead of the clock are dropped",
			batch: trafficBatch("n1", "default", 1,
				sampleAt(-2*time.Hour, "default", [5]uint32{1}, "https://old.example", 1),
				sampleAt(time.Hour, "default", [5]uint32{1}, "https://future.example", 1),
				&wsfleetv1.TrafficSample{PolicyPool: "default", PeakConnections: 1}),
			check: func(t *testing.T, s *Store) {
				if st := s.Stats(); st.TrafficDropped != 3 || st.TrafficSamples != 0 {
					t.Fatalf("stats %+v", st)
				}
			},
		},
		{
			name: "node peaks beyond the per-minute bound fold under (other)",
			cfg:  Config{MaxTrafficNodes: 1},
			batch: trafficBatch("n1", "default", 1,
				sampleAt(time.Minute, "default", [5]uint32{5})),
			check: func(t *testing.T, s *Store) {
				s.Ingest(trafficBatch("n2", "default", 1, sampleAt(time.Minute, "default", [5]uint32{8})))
				p := peakOf(s.TrafficSummary("default", t0, t0.Add(time.Hour)), MeasureConnections)
				if p.GetValue() != 8 || p.GetNodeId() != OtherKey {
					t.Fatalf("peak %v", p)
				}
			},
		},
		{
			name:  "long origins are capped on ingest",
			batch: trafficBatch("n1", "default", 1, sampleAt(time.Minute, "default", [5]uint32{1}, "https://"+strings.Repeat("a", 2*MaxOriginBytes), 1)),
			check: func(t *testing.T, s *Store) {
				for o := range acceptedMap(s.TrafficSummary("default", t0, t0.Add(time.Hour))) {
					if len(o) > MaxOriginBytes {
						t.Fatalf("origin of %d bytes kept", len(o))
					}
				}
			},
		},
		{
			name:  "a resent batch is not counted twice",
			batch: trafficBatch("n1", "default", 1, sampleAt(time.Minute, "default", [5]uint32{1}, "https://a.example", 3)),
			check: func(t *testing.T, s *Store) {
				s.Ingest(trafficBatch("n1", "default", 1, sampleAt(time.Minute, "default", [5]uint32{1}, "https://a.example", 3)))
				if got := acceptedMap(s.TrafficSummary("default", t0, t0.Add(time.Hour))); got["https://a.example"] != 3 {
					t.Fatalf("accepted %v, want 3", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock(t0.Add(5 * time.Minute))
			tt.cfg.Now = clock.Now
			s := newStore(t, tt.cfg)
			s.Ingest(tt.batch)
			tt.check(t, s)
		})
	}
}

func TestTrafficRetention(t *testing.T) {
	clock := newClock(t0)
	s := newStore(t, Config{Now: clock.Now})
	s.Ingest(trafficBatch("n1", "default", 1, sampleAt(0, "default", [5]uint32{1}, "https://a.example", 1)))
	// An hour later the minute is still there: a dry run covers it.
	clock.Set(t0.Add(time.Hour))
	if got := acceptedMap(s.TrafficSummary("default", t0, t0.Add(time.Hour))); got["https://a.example"] != 1 {
		t.Fatalf("after an hour: %v", got)
	}
	clock.Set(t0.Add(DefaultTrafficRetention + 2*time.Minute))
	if got := acceptedMap(s.TrafficSummary("default", t0.Add(-time.Hour), t0.Add(2*time.Hour))); len(got) != 0 {
		t.Fatalf("after the retention: %v", got)
	}
	if st := s.Stats(); st.TrafficMinutes != 0 || st.TrafficBytes != 0 {
		t.Fatalf("table not emptied: %+v", st)
	}
}

func TestTrafficConfigBounds(t *testing.T) {
	if _, err := New(Config{TrafficRetention: time.Hour}); err == nil {
		t.Fatal("a retention under 65m must be refused: a dry run needs the hour")
	}
	if _, err := New(Config{MaxTrafficBytes: -1}); err == nil {
		t.Fatal("a negative bound must be refused")
	}
}

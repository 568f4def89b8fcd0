package dataplane

import (
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// TrafficSink receives the node's traffic samples (what it accepted per
// minute, see Config.TrafficInterval). RecordTraffic is called from the
// node's sampling goroutine, about once per interval, and must not block;
// the sample is the sink's to keep. sdk/telemetry's Reporter is one: it
// sends the samples with its event batches.
type TrafficSink interface {
	RecordTraffic(s *wsfleetv1.TrafficSample)
}

// cutTraffic cuts a traffic sample every Config.TrafficInterval and at
// every minute boundary, so that a sample belongs to one minute, until the
// node stops; Shutdown cuts the last one.
func (n *Node) cutTraffic() {
	defer close(n.trafficDone)
	start := n.cfg.Now()
	t := time.NewTimer(n.nextCut(start))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		// The clock, not the timer's value: Config.Now may be a test's.
		now := n.cfg.Now()
		n.cutSample(start)
		start = now
		t.Reset(n.nextCut(now))
	}
}

// nextCut is how long after now the current sample ends: the interval,
// or the end of the minute if that is sooner.
func (n *Node) nextCut(now time.Time) time.Duration {
	return max(min(n.cfg.TrafficInterval, now.Truncate(time.Minute).Add(time.Minute).Sub(now)), time.Millisecond)
}

// cutSample hands the sample of the interval that began at start to the
// sink, if it had traffic and the sink takes samples. Without a Collector
// (Config.DisableTraffic) it reads nothing: MaxFromIP walks every client
// IP.
func (n *Node) cutSample(start time.Time) {
	if n.traffic == nil {
		return
	}
	rev := n.snapshot().rev
	s := n.traffic.Cut(start, rev.GetPool(), rev.GetRevision(), n.admitter.Active(), n.admitter.MaxFromIP())
	if s == nil {
		return
	}
	if ts, ok := n.cfg.Sink.(TrafficSink); ok {
		ts.RecordTraffic(s)
	}
}

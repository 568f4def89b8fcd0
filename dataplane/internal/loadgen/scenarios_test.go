package loadgen

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoundtrip(t *testing.T) {
	fake := startFakeNode(t)
	echo, echoTarget := startEcho(t)
	for _, tc := range []struct {
		name   string
		target Target
		mode   Mode
		open   func() int
	}{
		{"each node client receives its own publish on its own channel", fake.target(), ModeChannel, fake.open},
		{"the echo server sends the same frames straight back", echoTarget, ModeEcho, echo.Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Roundtrip(context.Background(), RoundtripConfig{
				Target: tc.target, Mode: tc.mode, Clients: 2, Duration: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Clients != 2 || res.Mode != tc.mode.String() {
				t.Errorf("result echoes clients %d mode %q, want 2 %q", res.Clients, res.Mode, tc.mode)
			}
			if res.RoundTrips <= 0 || res.PerSecond <= 0 {
				t.Errorf("round trips %d, per second %f: want both positive", res.RoundTrips, res.PerSecond)
			}
			if res.Elapsed < 300*time.Millisecond {
				t.Errorf("elapsed %s, shorter than the 300ms asked for", res.Elapsed)
			}
			if res.LatencyP50 <= 0 || res.LatencyP99 < res.LatencyP50 {
				t.Errorf("latency p50 %s p99 %s: want 0 < p50 <= p99", res.LatencyP50, res.LatencyP99)
			}
			eventually(t, "the server has closed every connection", func() bool { return tc.open() == 0 })
		})
	}
}

func TestRoundtripFailures(t *testing.T) {
	refusing := startFakeNode(t, func(f *fakeNode) { f.errorOnPublish = true })
	silent := startFakeNode(t)
	for _, tc := range []struct {
		name      string
		cfg       RoundtripConfig
		want      error
		fragments []string
	}{
		{
			name: "an error frame instead of the message fails the scenario",
			cfg:  RoundtripConfig{Target: refusing.target(), Mode: ModeChannel, Clients: 2, Duration: time.Second},
			want: ErrReply, fragments: []string{"error frame", "publish refused"},
		},
		{
			name: "a handshake refused for its origin fails with the status",
			cfg: RoundtripConfig{Target: Target{Name: "fake", URL: silent.target().URL, Origin: "http://evil.example"},
				Mode: ModeChannel, Clients: 2, Duration: time.Second},
			want: ErrDial, fragments: []string{"403"},
		},
		{
			// Echo mode sends no subscribe, so the node has nobody to deliver to.
			name: "a reply that never comes fails after the reply timeout",
			cfg: RoundtripConfig{Target: silent.target(), Mode: ModeEcho, Clients: 1, Duration: time.Second,
				ReplyTimeout: 200 * time.Millisecond},
			want: ErrStalled, fragments: []string{"no reply to seq 0"},
		},
		{
			name: "a target that is not a ws URL is refused before dialling",
			cfg:  RoundtripConfig{Target: Target{Name: "x", URL: "http://127.0.0.1:1/"}},
			want: ErrConfig,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Roundtrip(context.Background(), tc.cfg)
			wantErr(t, err, tc.want, tc.fragments...)
		})
	}
	eventually(t, "every connection is closed", func() bool { return refusing.open() == 0 && silent.open() == 0 })
}

func TestFanout(t *testing.T) {
	t.Run("every subscriber receives every message once", func(t *testing.T) {
		fake := startFakeNode(t)
		res, err := Fanout(context.Background(), FanoutConfig{
			Target: fake.target(), Subscribers: 10, Messages: 50, Window: 4, Duration: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Messages != 50 || res.Deliveries != 500 {
			t.Errorf("messages %d deliveries %d, want 50 and 500", res.Messages, res.Deliveries)
		}
		if res.DeliveriesPerSecond <= 0 || res.Elapsed <= 0 {
			t.Errorf("rate %f over %s: want positive", res.DeliveriesPerSecond, res.Elapsed)
		}
		if res.LatencyP50 <= 0 || res.LatencyP99 < res.LatencyP50 || res.LatencyMax < res.LatencyP99 {
			t.Errorf("latency p50 %s p99 %s max %s: want 0 < p50 <= p99 <= max", res.LatencyP50, res.LatencyP99, res.LatencyMax)
		}
		if res.Probes != DefaultProbes || res.ProbeLatencyP50 <= 0 || res.ProbeLatencyP99 < res.ProbeLatencyP50 {
			t.Errorf("%d probes, latency p50 %s p99 %s: want %d probes and 0 < p50 <= p99",
				res.Probes, res.ProbeLatencyP50, res.ProbeLatencyP99, DefaultProbes)
		}
		if got := fake.maxOpen.Load(); got != 11 {
			t.Errorf("server saw at most %d connections, want 10 subscribers + 1 publisher", got)
		}
		eventually(t, "the server has closed every connection", func() bool { return fake.open() == 0 })
	})

	t.Run("publishing stops at the duration even with messages left, and no probes follow", func(t *testing.T) {
		fake := startFakeNode(t)
		res, err := Fanout(context.Background(), FanoutConfig{
			Target: fake.target(), Subscribers: 2, Messages: 100_000, Window: 1, Duration: 200 * time.Millisecond,
			Probes: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Messages <= 0 || res.Messages >= 100_000 || res.Deliveries != 2*res.Messages {
			t.Errorf("messages %d deliveries %d: want some but not all, each delivered twice", res.Messages, res.Deliveries)
		}
		if res.Probes != 0 {
			t.Errorf("%d probes sent, want none", res.Probes)
		}
	})

	t.Run("a lost delivery fails the scenario instead of hanging it", func(t *testing.T) {
		fake := startFakeNode(t, func(f *fakeNode) { f.dropEvery = 7 })
		_, err := Fanout(context.Background(), FanoutConfig{
			Target: fake.target(), Subscribers: 3, Messages: 50, Window: 4, ReplyTimeout: 300 * time.Millisecond,
		})
		wantErr(t, err, ErrStalled, "fanout fake")
		eventually(t, "the server has closed every connection", func() bool { return fake.open() == 0 })
	})

	t.Run("a subscriber closed by the server fails the scenario", func(t *testing.T) {
		fake := startFakeNode(t, func(f *fakeNode) { f.closeAfterOpen = 300 * time.Millisecond })
		_, err := Fanout(context.Background(), FanoutConfig{
			Target: fake.target(), Subscribers: 3, Messages: 1_000_000, Window: 1, Duration: 10 * time.Second,
		})
		wantErr(t, err, ErrClosed)
	})
}

func TestIdle(t *testing.T) {
	fake := startFakeNode(t)
	echo, echoTarget := startEcho(t)
	for _, tc := range []struct {
		name   string
		target Target
		open   func() int
	}{
		{"the node holds every idle connection until the bench closes it", fake.target(), fake.open},
		{"the echo server holds every idle connection until the bench closes it", echoTarget, echo.Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A scripted RSS: 1 MiB before, 1 MiB + 20 × 5000 B after, and
			// the server's connection count at the moment of the second read.
			var reads atomic.Int64
			var openAtRead int
			rss := func() (int64, error) {
				if reads.Add(1) == 1 {
					return 1 << 20, nil
				}
				openAtRead = tc.open()
				return 1<<20 + 20*5000, nil
			}
			res, err := Idle(context.Background(), IdleConfig{
				Target: tc.target, Conns: 20, Dialers: 4, Settle: 100 * time.Millisecond, RSS: rss,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Conns != 20 || res.BytesPerConn != 5000 || res.RSSBefore != 1<<20 {
				t.Errorf("conns %d bytes/conn %f before %d: want 20, 5000, %d", res.Conns, res.BytesPerConn, res.RSSBefore, 1<<20)
			}
			if openAtRead != 20 {
				t.Errorf("server held %d connections while RSS was read, want 20", openAtRead)
			}
			eventually(t, "the server has closed every connection", func() bool { return tc.open() == 0 })
		})
	}

	t.Run("the RSS of a real process is read from /proc", func(t *testing.T) {
		res, err := Idle(context.Background(), IdleConfig{
			Target: fake.target(), Conns: 20, Settle: 10 * time.Millisecond,
			RSS: func() (int64, error) { return ReadRSS(os.Getpid()) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.RSSBefore <= 0 || res.RSSAfter <= 0 {
			t.Errorf("RSS before %d after %d: want both positive", res.RSSBefore, res.RSSAfter)
		}
	})

	t.Run("a connection the server drops while settling fails the scenario", func(t *testing.T) {
		dropping := startFakeNode(t, func(f *fakeNode) { f.closeAfterOpen = 50 * time.Millisecond })
		_, err := Idle(context.Background(), IdleConfig{
			Target: dropping.target(), Conns: 5, Settle: 500 * time.Millisecond,
			RSS: func() (int64, error) { return 0, nil },
		})
		wantErr(t, err, ErrClosed, "1008")
	})

	t.Run("without an RSS reader the config is refused", func(t *testing.T) {
		_, err := Idle(context.Background(), IdleConfig{Target: fake.target()})
		wantErr(t, err, ErrConfig, "RSS")
	})
}

func TestHandshakes(t *testing.T) {
	fake := startFakeNode(t)
	echo, echoTarget := startEcho(t)
	for _, tc := range []struct {
		name     string
		target   Target
		open     func() int
		upgrades func() int64
	}{
		{"every handshake to the node completes with the allowed origin", fake.target(), fake.open, fake.upgrades.Load},
		{"every handshake to the echo server completes", echoTarget, echo.Open, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Handshakes(context.Background(), HandshakeConfig{Target: tc.target, Total: 20, Workers: 4})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != 20 || res.Workers != 4 || res.PerSecond <= 0 {
				t.Errorf("total %d workers %d rate %f: want 20, 4, positive", res.Total, res.Workers, res.PerSecond)
			}
			if tc.upgrades != nil {
				// The server counts after its Upgrade returns, a moment
				// after the client has its 101.
				eventually(t, "the server upgraded 20 connections", func() bool { return tc.upgrades() == 20 })
			}
			eventually(t, "the server has closed every connection", func() bool { return tc.open() == 0 })
		})
	}

	t.Run("a refused origin fails the scenario with the status", func(t *testing.T) {
		before := fake.rejected.Load()
		target := fake.target()
		target.Origin = "http://evil.example"
		_, err := Handshakes(context.Background(), HandshakeConfig{Target: target, Total: 20, Workers: 4})
		wantErr(t, err, ErrDial, "403")
		if fake.rejected.Load() == before {
			t.Error("the server saw no rejected handshake")
		}
	})

	t.Run("a cancelled context stops the workers", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Handshakes(ctx, HandshakeConfig{Target: fake.target(), Total: 1_000_000, Workers: 4})
		wantErr(t, err, context.Canceled)
	})
}

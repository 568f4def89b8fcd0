package loadgen

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestGoals(t *testing.T) {
	full := &Report{
		Fanout: []FanoutResult{
			{Subscribers: 1000, Window: 1, DeliveriesPerSecond: 60_000, ServerCPU: time.Second, CPUPerDelivery: 9000},
			{Subscribers: 1000, Window: 32, DeliveriesPerSecond: 1_200_000, ServerCPU: time.Second, CPUPerDelivery: 1500},
		},
		Roundtrip: &RoundtripComparison{
			Node: &RoundtripResult{CPUPerRoundTrip: 13_000}, Echo: &RoundtripResult{CPUPerRoundTrip: 12_000},
			CPURatio: 13.0 / 12, Target: TargetRoundtripCPURatio, Met: true,
		},
		Idle: &IdleComparison{Node: &IdleResult{BytesPerConn: 12_000}, Echo: &IdleResult{BytesPerConn: 10_000},
			DiffBytesPerConn: 2000, TargetMaxDiff: TargetIdleDiffBytes, Met: false},
		Handshake: &HandshakeComparison{Node: &HandshakeResult{PerSecond: 9000}, Echo: &HandshakeResult{PerSecond: 10_000},
			Ratio: 0.9, Target: TargetHandshakeRatio, Met: true},
		Channel: &ChannelResult{Subscribers: 100_000, Subscribed: 100_000, SubscribeComplete: true, SubscribeElapsed: 800 * time.Millisecond,
			BytesPerSubscription: 96, Delivered: 100_000, DeliveryComplete: true, DeliveryElapsed: 350 * time.Millisecond},
		BrokerChannel: &BrokerChannelResult{Subscribers: 100_000, Build: 47 * time.Millisecond, BytesPerSubscription: 71.8},
	}
	for _, tc := range []struct {
		name     string
		rep      *Report
		want     []string // goal, measured, target, status: one row each, in order
		footnote string
	}{
		{
			name: "every goal measured is judged against its target, with the figures behind each ratio",
			rep:  full,
			want: []string{
				"fan-out 1 -> 1,000, 32 in flight: deliveries/s|1,200,000|>= 1,000,000|ok",
				"fan-out 1 -> 1,000, 32 in flight: server CPU per delivery|1.5µs|<= 1µs|MISSED",
				"round trip: server CPU per round trip, node / bare gws|1.08x (13µs / 12µs)|<= 1.10x|ok",
				"idle: RSS per connection, node - bare gws|+2,000 B (12,000 / 10,000 B)|<= +1,024 B|MISSED",
				"handshakes/s, node / bare gws|0.90 (9,000 / 10,000)|>= 0.90|ok",
				"100,000 subscribers on one channel, the broker alone: built|47ms|< 1s|ok",
				"100,000 subscribers on one channel, the broker alone: memory per subscription|+72 B Go heap|stated|-",
				"100,000 subscribers on one channel over WebSockets: built (first subscribe -> last ack)|800ms|< 1s|ok",
				"100,000 subscribers on one channel over WebSockets: memory per subscription|+96 B RSS|stated|-",
				"100,000 subscribers on one channel over WebSockets: one publish -> last delivery|350ms to 100,000|stated|-",
			},
		},
		{
			name: "nothing measured: every goal says so",
			rep:  &Report{},
			want: []string{
				"fan-out 1 -> 1,000, 32 in flight: deliveries/s|-|>= 1,000,000|not measured",
				"fan-out 1 -> 1,000, 32 in flight: server CPU per delivery|-|<= 1µs|not measured",
				"round trip: server CPU per round trip, node / bare gws|-|<= 1.10x|not measured",
				"idle: RSS per connection, node - bare gws|-|<= +1,024 B|not measured",
				"handshakes/s, node / bare gws|-|>= 0.90|not measured",
				"100,000 subscribers on one channel, the broker alone: built|-|< 1s|not measured",
				"100,000 subscribers on one channel, the broker alone: memory per subscription|-|stated|not measured",
				"100,000 subscribers on one channel over WebSockets: built (first subscribe -> last ack)|-|< 1s|not measured",
				"100,000 subscribers on one channel over WebSockets: memory per subscription|-|stated|not measured",
				"100,000 subscribers on one channel over WebSockets: one publish -> last delivery|-|stated|not measured",
			},
		},
		{
			name: "a channel cut down by the descriptor limit is judged by its rate, starred and explained",
			rep: &Report{Channel: &ChannelResult{Subscribers: 19_744, Requested: 100_000, Limited: "19,744 subscribers, not 100,000: the descriptor limit is 20,000",
				Subscribed: 19_744, SubscribeComplete: true, SubscribeElapsed: 3710 * time.Millisecond, BytesPerSubscription: 10_204,
				Delivered: 19_744, DeliveryComplete: true, DeliveryElapsed: 213 * time.Millisecond}},
			want: []string{
				"100,000 subscribers on one channel over WebSockets: built (first subscribe -> last ack)|3.71s for 19,744* (5,322/s)|< 1s (>= 100,000/s)|MISSED",
				"100,000 subscribers on one channel over WebSockets: memory per subscription|+10,204 B RSS*|stated|-",
				"100,000 subscribers on one channel over WebSockets: one publish -> last delivery|213ms to 19,744*|stated|-",
			},
			footnote: "* 19,744 subscribers, not 100,000: the descriptor limit is 20,000. The build is judged as a rate",
		},
		{
			name: "the broker alone is judged at the issue's size only: a smaller channel says so and misses",
			rep:  &Report{BrokerChannel: &BrokerChannelResult{Subscribers: 30, Build: 28 * time.Microsecond, BytesPerSubscription: 80}},
			want: []string{
				"30 (not 100,000) subscribers on one channel, the broker alone: built|28µs|< 1s|MISSED",
				"30 (not 100,000) subscribers on one channel, the broker alone: memory per subscription|+80 B Go heap|stated|-",
			},
		},
		{
			name: "a build too slow at the issue's size misses",
			rep:  &Report{BrokerChannel: &BrokerChannelResult{Subscribers: 100_000, Build: 33 * time.Second}},
			want: []string{
				"100,000 subscribers on one channel, the broker alone: built|33s|< 1s|MISSED",
			},
		},
		{
			name: "a build still running at the timeout is missed with how far it got, and nothing after it is measured",
			rep:  &Report{Channel: &ChannelResult{Subscribers: 100_000, Subscribed: 41_234, SubscribeElapsed: time.Minute}},
			want: []string{
				"100,000 subscribers on one channel over WebSockets: built (first subscribe -> last ack)|> 1m0s (41,234 of 100,000 acked)|< 1s|MISSED",
				"100,000 subscribers on one channel over WebSockets: memory per subscription|-|stated|not measured",
				"100,000 subscribers on one channel over WebSockets: one publish -> last delivery|-|stated|not measured",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rows []string
			for _, g := range Goals(tc.rep) {
				rows = append(rows, strings.Join([]string{g.Goal, g.Measured, g.Target, g.Status}, "|"))
			}
			if len(rows) != 10 {
				t.Fatalf("%d goals, want 10:\n%s", len(rows), strings.Join(rows, "\n"))
			}
			for _, want := range tc.want {
				found := false
				for _, r := range rows {
					found = found || r == want
				}
				if !found {
					t.Errorf("no goal row %q in:\n%s", want, strings.Join(rows, "\n"))
				}
			}
			if fn := GoalsFootnote(tc.rep); !strings.HasPrefix(fn, tc.footnote) || (tc.footnote == "") != (fn == "") {
				t.Errorf("footnote %q, want one starting %q", fn, tc.footnote)
			}
			var b strings.Builder
			tc.rep.Goals = Goals(tc.rep)
			if err := WriteTable(&b, tc.rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "goals (issue 10), measured in this run") {
				t.Errorf("table lacks the goals:\n%s", b.String())
			}
		})
	}
}

func TestRaiseFileLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	t.Run("the soft limit is raised to the hard one", func(t *testing.T) {
		fl, err := raiseFileLimit(100)
		if err != nil {
			t.Fatal(err)
		}
		if fl.Soft != fl.Hard || fl.Hard < before.Max || fl.Note != "" || fl.Needed != 100 {
			t.Errorf("%+v, want soft = hard >= %d and no note", fl, before.Max)
		}
	})
	t.Run("a need above what the limit can be raised to is noted, not failed", func(t *testing.T) {
		fl, err := raiseFileLimit(1 << 40) // above any fs.nr_open
		if err != nil {
			t.Fatal(err)
		}
		if fl.Soft >= fl.Needed || !strings.Contains(fl.Note, "could not be raised") {
			t.Errorf("%+v, want a note saying the limit is short", fl)
		}
	})
}

func TestChannel(t *testing.T) {
	t.Run("every subscriber is acknowledged and receives the one publish", func(t *testing.T) {
		fake := startFakeNode(t)
		var rssReads int
		res, err := Channel(context.Background(), ChannelConfig{
			Target: fake.target(), Subscribers: 50, Settle: 10 * time.Millisecond,
			RSS: func() (int64, error) { rssReads++; return int64(rssReads) * 50_000, nil },
			CPU: func() (time.Duration, error) { return 0, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.SubscribeComplete || res.Subscribed != 50 || !res.DeliveryComplete || res.Delivered != 50 {
			t.Errorf("%+v, want 50 subscribed and 50 delivered", res)
		}
		if res.SubscribeElapsed <= 0 || res.DeliveryElapsed <= 0 || res.BytesPerSubscription != 1000 || res.RSSOpen != 50_000 {
			t.Errorf("%+v, want positive times and 1,000 B per subscription from the scripted RSS", res)
		}
		if got := fake.maxOpen.Load(); got != 51 {
			t.Errorf("the server saw %d connections, want 50 subscribers and a publisher", got)
		}
		eventually(t, "the server has closed every connection", func() bool { return fake.open() == 0 })
	})

	t.Run("subscribes never acknowledged are reported as a build not done, not as a failure", func(t *testing.T) {
		fake := startFakeNode(t, func(f *fakeNode) { f.noAck = true })
		res, err := Channel(context.Background(), ChannelConfig{
			Target: fake.target(), Subscribers: 5, Settle: 10 * time.Millisecond, SubscribeTimeout: 300 * time.Millisecond,
			RSS: func() (int64, error) { return 1, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.SubscribeComplete || res.Subscribed != 0 || res.SubscribeElapsed != 300*time.Millisecond || res.DeliveryComplete || res.Delivered != 0 {
			t.Errorf("%+v, want a build not done after 300ms and no publish", res)
		}
	})

	t.Run("a subscribe answered with anything but an acknowledgement fails the scenario", func(t *testing.T) {
		_, echo := startEcho(t) // echoes the subscribe frame back
		_, err := Channel(context.Background(), ChannelConfig{
			Target: echo, Subscribers: 5, Settle: 10 * time.Millisecond, SubscribeTimeout: 5 * time.Second,
			RSS: func() (int64, error) { return 1, nil },
		})
		wantErr(t, err, ErrReply, "channel subscriber")
	})

	t.Run("connections come from the given source addresses", func(t *testing.T) {
		ips := sourceIPs(45_000)
		if len(ips) != 3 || ips[0].String() != "127.0.1.1" || ips[2].String() != "127.0.1.3" {
			t.Errorf("sourceIPs(45,000) = %v, want 127.0.1.1-3", ips)
		}
		if ips := sourceIPs(10); len(ips) != 1 {
			t.Errorf("sourceIPs(10) = %v, want one", ips)
		}
	})
}

func TestStormGoals(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  *Report
		want []string
	}{
		{
			name: "a storm within the limit, every client back",
			rep: &Report{Storm: &StormResult{Clients: 5000, Rate: 1000, Burst: 1000, Back: 5000, AllBack: true,
				BackAfter: 7 * time.Second, PeakAccepted: 1900, PeakAttempts: 2300, Within: true}},
			want: []string{
				"reconnect storm, 5,000 clients, node restarted: time until all are back|7s|stated|-",
				"reconnect storm, 5,000 clients, node restarted: peak handshakes/s at the node|1,900 accepted, 2,300 with refused|<= rate + burst (2,000)|ok",
				"reconnect storm, 5,000 clients, node restarted: clients that gave up|0|0|ok",
			},
		},
		{
			name: "a smaller storm says so; clients that gave up miss the goal",
			rep: &Report{Storm: &StormResult{Clients: 200, Rate: 100, Burst: 100, Back: 190, GaveUp: 10,
				BackAfter: 2 * time.Second, PeakAccepted: 150, PeakAttempts: 150, Within: true}},
			want: []string{
				"reconnect storm, 200 clients (not 5,000), node restarted: time until all are back|> 2s (190 of 200 back)|stated|-",
				"reconnect storm, 200 clients (not 5,000), node restarted: peak handshakes/s at the node|150 accepted, 150 with refused|<= rate + burst (200)|ok",
				"reconnect storm, 200 clients (not 5,000), node restarted: clients that gave up|10|0|MISSED",
			},
		},
		{
			name: "no storm: nothing measured",
			rep:  &Report{},
			want: []string{
				"reconnect storm, 5,000 clients, node restarted: time until all are back|-|stated|not measured",
				"reconnect storm, 5,000 clients, node restarted: peak handshakes/s at the node|-|<= rate + burst|not measured",
				"reconnect storm, 5,000 clients, node restarted: clients that gave up|-|0|not measured",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rows []string
			for _, g := range StormGoals(tc.rep) {
				rows = append(rows, strings.Join([]string{g.Goal, g.Measured, g.Target, g.Status}, "|"))
			}
			if strings.Join(rows, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("goals:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

package loadgen

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/policy"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestParseSeq(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame string
		want  int64
		ok    bool
	}{
		{"an echoed publish frame", `{"type":"publish","channel":"rt.1","data":{"seq":42,"pad":"xx"}}`, 42, true},
		{"a node message wrapping the data", `{"type":"message","channel":"rt.1","data":{"seq":7,"pad":""}}`, 7, true},
		{"a re-encoded message with a space after the colon", `{"data": {"seq": 9}}`, 9, true},
		{"a warm-up message", `{"data":{"seq":-1}}`, -1, true},
		{"a node error frame", `{"type":"error","code":"bad_frame","message":"x"}`, 0, false},
		{"a seq key without a number", `{"seq":"x"}`, 0, false},
		{"an empty frame", ``, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseSeq([]byte(tc.frame))
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseSeq(%s) = %d, %v; want %d, %v", tc.frame, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestIsAck(t *testing.T) {
	for frame, want := range map[string]bool{
		`{"type":"subscribed","channel":"c"}`:                 true,
		`{"type":"unsubscribed","channel":"c"}`:               true,
		`{"type":"error","code":"bad_frame","message":"x"}`:   false,
		`{"type":"message","channel":"c","data":{"other":1}}`: false,
	} {
		if got := isAck([]byte(frame)); got != want {
			t.Errorf("isAck(%s) = %v, want %v", frame, got, want)
		}
	}
}

func TestIsWelcome(t *testing.T) {
	for frame, want := range map[string]bool{
		`{"type":"welcome","trace_id":"t","node_id":"n","heartbeat_interval_ms":1,"heartbeat_timeout_ms":2}`: true,
		string(echoWelcome):                                          true,
		`{"type":"subscribed","channel":"c"}`:                        false,
		`{"type":"message","channel":"c","data":{"type":"welcome"}}`: false,
	} {
		if got := isWelcome([]byte(frame)); got != want {
			t.Errorf("isWelcome(%s) = %v, want %v", frame, got, want)
		}
	}
}

func TestPublishFrameIsTheNodeProtocol(t *testing.T) {
	frame := publishFrame(nil, publishPrefix(`rt."1"`), 123, padding(DefaultDataBytes))
	var f struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
		Data    struct {
			Seq int64  `json:"seq"`
			Pad string `json:"pad"`
		} `json:"data"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatalf("publish frame %s is not JSON: %v", frame, err)
	}
	if f.Type != "publish" || f.Channel != `rt."1"` || f.Data.Seq != 123 {
		t.Errorf("decoded %+v, want a publish to rt.\"1\" with seq 123", f)
	}
	data := frame[bytes.Index(frame, []byte(`"data":`))+len(`"data":`) : len(frame)-1]
	if n := len(data); n < DefaultDataBytes-8 || n > DefaultDataBytes+8 {
		t.Errorf("data value is %d bytes, want about %d", n, DefaultDataBytes)
	}
	if got := string(subscribeFrame("c")); got != `{"type":"subscribe","channel":"c"}` {
		t.Errorf("subscribe frame %s", got)
	}
}

func TestHistogramQuantilesAreWithinABucket(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	var other histogram
	other.record(time.Hour)
	h.merge(&other)
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Hour}} {
		got := h.quantile(tc.q)
		if got > tc.want || float64(got) < float64(tc.want)*0.93 {
			t.Errorf("quantile(%v) = %s, want within 7%% below %s", tc.q, got, tc.want)
		}
	}
	var empty histogram
	if got := empty.quantile(0.5); got != 0 {
		t.Errorf("empty histogram quantile = %s, want 0", got)
	}
}

func TestRoundtripResultsMergeAcrossRounds(t *testing.T) {
	round := func(n int64, lat time.Duration) RoundtripResult {
		h := &histogram{}
		for range n {
			h.record(lat)
		}
		return RoundtripResult{RoundTrips: n, Elapsed: time.Second, PerSecond: float64(n), hist: h}
	}
	acc := merged(nil, round(100, time.Millisecond))
	acc = merged(acc, round(300, 10*time.Millisecond))
	if acc.RoundTrips != 400 || acc.Elapsed != 2*time.Second || acc.PerSecond != 200 {
		t.Errorf("merged %d round trips over %s at %f/s, want 400 over 2s at 200/s", acc.RoundTrips, acc.Elapsed, acc.PerSecond)
	}
	if acc.LatencyP50 < 9*time.Millisecond || acc.LatencyP99 > 10*time.Millisecond {
		t.Errorf("merged p50 %s p99 %s, want both from the 10ms round", acc.LatencyP50, acc.LatencyP99)
	}
}

func TestParseVmRSS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status string
		want   int64
		ok     bool
	}{
		{"the VmRSS line in kB is read as bytes", "Name:\tx\nVmHWM:\t  9 kB\nVmRSS:\t   1234 kB\nThreads:\t3\n", 1234 << 10, true},
		{"no VmRSS line is an error", "Name:\tx\n", 0, false},
		{"a VmRSS line in other units is an error", "VmRSS:\t1234 MB\n", 0, false},
		{"a VmRSS line without a number is an error", "VmRSS:\tlots kB\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVmRSS([]byte(tc.status))
			if tc.ok && (err != nil || got != tc.want) {
				t.Errorf("parseVmRSS = %d, %v; want %d", got, err, tc.want)
			}
			if !tc.ok {
				wantErr(t, err, ErrRSS)
			}
		})
	}
	_, err := ReadRSS(-1)
	wantErr(t, err, ErrRSS)
}

func TestBenchPolicyIsAValidPolicyFile(t *testing.T) {
	path, err := writePolicyFile(t.TempDir(), DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	data := readFile(t, path)
	doc, err := policyfile.Decode(data)
	if err != nil {
		t.Fatalf("the node could not read the bench policy: %v\n%s", err, data)
	}
	if err := policy.Check(doc.Policy); err != nil {
		t.Fatal(err)
	}
	p := doc.Policy
	if got := p.GetOrigins().GetAllow(); len(got) != 1 || got[0] != DefaultOrigin || p.GetOrigins().GetAllowMissing() {
		t.Errorf("origins %v allow_missing %v: want only %s, no missing origin", got, p.GetOrigins().GetAllowMissing(), DefaultOrigin)
	}
	l := p.GetLimits()
	if l.GetMaxConnections() < 1_000_000 || l.GetMessagesPerSecond() < 1_000_000 || l.GetHandshakesPerSecond() < 1_000_000 {
		t.Errorf("limits %v would throttle the bench", l)
	}
	if p.GetHeartbeat().GetInterval().AsDuration() != 25*time.Second || p.GetHeartbeat().GetTimeout().AsDuration() != time.Minute {
		t.Errorf("heartbeat %v, want 25s/60s", p.GetHeartbeat())
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{
		GoVersion: "go1.x", CPUs: 2,
		Settings: Settings{Clients: 32, Duration: "5s", IdleConns: 10000, Handshakes: 5000},
		Roundtrip: &RoundtripComparison{
			Node: &RoundtripResult{PerSecond: 80_000, LatencyP50: 400 * time.Microsecond, LatencyP99: 1234567,
				Elapsed: 5 * time.Second, ServerCPU: 4 * time.Second, LoadCPU: 5 * time.Second, RoundTrips: 400_000, CPUPerRoundTrip: 10_000},
			Echo:  &RoundtripResult{PerSecond: 100_000, Elapsed: 5 * time.Second, ServerCPU: 4 * time.Second, RoundTrips: 500_000, CPUPerRoundTrip: 8_000},
			Ratio: 0.8, CPURatio: 1.25, Target: TargetRoundtripCPURatio, Met: false,
		},
		Idle: &IdleComparison{
			Node: &IdleResult{BytesPerConn: 11_000}, Echo: &IdleResult{BytesPerConn: 10_000},
			DiffBytesPerConn: 1000, TargetMaxDiff: TargetIdleDiffBytes, Met: true,
		},
		Fanout:    []FanoutResult{{Subscribers: 1000, Messages: 5000, DeliveriesPerSecond: 1_234_567.4, Window: 32, LatencyP50: 1234567}},
		Handshake: &HandshakeComparison{Node: &HandshakeResult{PerSecond: 5000}},
		Errors:    []string{"handshake echo: boom"},
	}
	var b strings.Builder
	if err := WriteTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"80,000", "100,000", "0.80", // round trips/s, for reference
		"10µs", "8µs", "1.25x", "<= 1.10x MISSED", // CPU per round trip over target
		"80% / 100%",                             // CPU busy, server and load
		"11,000 B", "+1,000 B", "<= +1,024 B ok", // memory within target
		"1,234,567", "1.23ms", // fan-out rate, latency to three figures
		"5,000", "failed", // echo handshake failed
		"FAILED: handshake echo: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Roundtrip.Ratio != 0.8 || back.Idle.Node.BytesPerConn != 11_000 {
		t.Errorf("JSON report does not read back: %v\n%s", err, js.String())
	}
}

func TestGrouped(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.6: "1,234,568", -2048: "-2,048"} {
		if got := grouped(v); got != want {
			t.Errorf("grouped(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestWriteTablePropagation(t *testing.T) {
	run := func(clients int, last time.Duration) PropagationResult {
		return PropagationResult{
			Clients: clients, Conns: clients / 500, Applies: 20, FirstRevision: 1, LastRevision: 21,
			ReceivedLastP50: last / 2, ReceivedLastMax: last, ReceivedEachP50: last / 4, ReceivedEachP99: last / 3,
			ApplyRPCP50: 2 * time.Millisecond, ApplyRPCMax: 4 * time.Millisecond,
			SetupElapsed: 1500 * time.Millisecond, RSSBefore: 20 << 20, RSSWatching: 30 << 20, BytesPerWatcher: 10_485.76,
		}
	}
	runs := func(setup string, met bool, rs ...PropagationResult) *PropagationRuns {
		judged := slices.ContainsFunc(rs, func(r PropagationResult) bool { return r.Clients == 1000 })
		return &PropagationRuns{Setup: setup, Runs: rs, TargetClients: 1000, TargetMax: time.Second, Judged: judged, Met: met}
	}
	for _, tc := range []struct {
		name       string
		bolt, etcd *PropagationRuns
		sizes      []int
		want       []string
		not        []string
	}{
		{
			name:  "both setups under a second at 1,000 clients meet the target, side by side",
			bolt:  runs("bolt, 1 replica", true, run(1000, 40*time.Millisecond), run(10_000, 1500*time.Millisecond)),
			etcd:  runs("etcd, 3 replicas", true, run(1000, 60*time.Millisecond), run(10_000, 900*time.Millisecond)),
			sizes: []int{1000, 10_000},
			want: []string{"bolt, 1 replica", "etcd, 3 replicas", "1,000", "apply called -> last ACK received, p50 / max",
				"20ms / 40ms", "30ms / 60ms", "max < 1s ok / ok", "apply called -> each ACK received, p50 / p99", "10ms / 13.3ms",
				"10,000", "750ms / 1.5s", "450ms / 900ms", "2ms / 4ms", "1.5s (2 gRPC conns)",
				"20.0 MiB -> 30.0 MiB (+10,486 B/watcher)", "a p99 of 20 is their", "etcd: one member", "Not covered"},
			not: []string{"MISSED", "bare gws", "failed"},
		},
		{
			name:  "one setup over a second at 1,000 clients misses it",
			bolt:  runs("bolt, 1 replica", true, run(1000, 40*time.Millisecond)),
			etcd:  runs("etcd, 3 replicas", false, run(1000, 1200*time.Millisecond)),
			sizes: []int{1000},
			want:  []string{"600ms / 1.2s", "max < 1s ok / MISSED"},
		},
		{
			name:  "a 1,000-client run that failed misses it",
			bolt:  runs("bolt, 1 replica", false, run(10_000, 100*time.Millisecond)),
			sizes: []int{1000, 10_000},
			want:  []string{"failed", "max < 1s MISSED"},
		},
		{
			name:  "without a 1,000-client run asked for, nothing is judged",
			bolt:  runs("bolt, 1 replica", false, run(50, time.Millisecond)),
			sizes: []int{50},
			want:  []string{"50 "},
			not:   []string{"ok", "MISSED", "failed", "etcd:", "etcd, "},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{GoVersion: "go1.x", CPUs: 2, Propagation: tc.bolt, PropagationEtcd: tc.etcd,
				Settings: Settings{PropagationClients: tc.sizes, PropagationApplies: 20}}
			var b strings.Builder
			if err := WriteTable(&b, rep); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, b.String())
				}
			}
			for _, not := range tc.not {
				if strings.Contains(b.String(), not) {
					t.Errorf("table has %q:\n%s", not, b.String())
				}
			}
		})
	}
}

func TestWriteTableFanoutNATS(t *testing.T) {
	res := func(deliveries int64, cpu time.Duration) *FanoutResult {
		return &FanoutResult{Subscribers: 1000, Messages: deliveries / 1000, Deliveries: deliveries, DeliveriesPerSecond: 500_000,
			Elapsed: 4 * time.Second, ServerCPU: cpu, CPUPerDelivery: float64(cpu) / float64(deliveries),
			LatencyP50: 60 * time.Millisecond, LatencyP99: 90 * time.Millisecond, LatencyMax: 100 * time.Millisecond,
			ProbeLatencyP50: 4 * time.Millisecond, ProbeLatencyP99: 7 * time.Millisecond}
	}
	for _, tc := range []struct {
		name string
		cmp  *FanoutComparison
		want []string
	}{
		{
			name: "both sides side by side, with CPU per delivery and nats-server's share",
			cmp:  &FanoutComparison{InProcess: res(2_000_000, 2*time.Second), NATS: res(1_000_000, 3*time.Second), NATSServerCPU: 500 * time.Millisecond},
			want: []string{"in-process (1 node)", "NATS (2 nodes + nats-server)", "2,000 x 1,000 = 2,000,000", "1,000 x 1,000 = 1,000,000",
				"500,000", "1µs", "3µs (nats-server 500ns)", "2s / 4s", "60ms / 90ms / 100ms", "4ms / 7ms", "Not covered: the bench's own"},
		},
		{
			name: "a side that failed says so",
			cmp:  &FanoutComparison{InProcess: res(2_000_000, 2*time.Second)},
			want: []string{"failed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{GoVersion: "go1.x", CPUs: 2, FanoutNATS: tc.cmp, Settings: Settings{FanoutSubs: 1000, FanoutMessages: 5000, FanoutWindows: []int{1, 32}}}
			var b strings.Builder
			if err := WriteTable(&b, rep); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		want time.Duration
		err  string
	}{
		{"utime and stime are added up, in 10 ms ticks",
			"1234 (wsfleet-node) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 30 0 0 20 0 12 0 100 0 0", 2800 * time.Millisecond, ""},
		{"a command name with spaces and parentheses is skipped whole",
			"1234 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 100 0 0", 100 * time.Millisecond, ""},
		{"a line without the name's parenthesis is refused", "1234 wsfleet-node S 1", 0, "malformed stat line"},
		{"a line cut short is refused", "1234 (node) S 1 1 1 0 -1 0 0 0 0", 0, "fields after the name"},
		{"a tick count that is not a number is refused", "1 (node) S 1 1 1 0 -1 0 0 0 0 0 x 3 0", 0, "malformed stat field 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.stat))
			if tc.err != "" {
				wantErr(t, err, ErrCPU, tc.err)
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s, %v; want %s", got, err, tc.want)
			}
		})
	}
	t.Run("this process's own CPU time is read and grows", func(t *testing.T) {
		before, err := ReadCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		// Reading /proc in a loop is CPU time of its own.
		deadline := time.Now().Add(10 * time.Second)
		for {
			after, err := ReadCPU(os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if after > before {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("CPU time stayed at %s for 10s of reading it", before)
			}
		}
	})
}

func TestConnCount(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		clients, perConn, replicas, want int
	}{
		{"one replica: as many connections as perConn needs", 1000, 500, 1, 2},
		{"three replicas: rounded up to the same number each", 1000, 500, 3, 3},
		{"ten thousand clients over three replicas: 7 connections each", 10_000, 500, 3, 21},
		{"never more connections than clients", 2, 500, 3, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ConnCount(tc.clients, tc.perConn, tc.replicas); got != tc.want {
				t.Errorf("ConnCount(%d, %d, %d) = %d, want %d", tc.clients, tc.perConn, tc.replicas, got, tc.want)
			}
		})
	}
}

func TestCPUPerOperationAddsUpAcrossRounds(t *testing.T) {
	t.Run("round trips: CPU and counts add up, CPU per round trip over both", func(t *testing.T) {
		acc := merged(nil, RoundtripResult{RoundTrips: 1000, Elapsed: time.Second, ServerCPU: 10 * time.Millisecond, hist: &histogram{}})
		acc = merged(acc, RoundtripResult{RoundTrips: 3000, Elapsed: time.Second, ServerCPU: 50 * time.Millisecond, LoadCPU: time.Second, hist: &histogram{}})
		if acc.ServerCPU != 60*time.Millisecond || acc.CPUPerRoundTrip != 15_000 || acc.LoadCPU != time.Second {
			t.Errorf("merged %+v, want 60ms over 4,000 round trips = 15µs each", acc)
		}
	})
	t.Run("handshakes: CPU and counts add up, rates over both", func(t *testing.T) {
		acc := HandshakeResult{Total: 100, Elapsed: time.Second, ServerCPU: 10 * time.Millisecond}
		acc.Merge(HandshakeResult{Total: 300, Elapsed: time.Second, ServerCPU: 30 * time.Millisecond})
		if acc.Total != 400 || acc.PerSecond != 200 || acc.CPUPerHandshake != 100_000 {
			t.Errorf("merged %+v, want 400 handshakes at 200/s, 100µs each", acc)
		}
	})
	t.Run("no operations is no CPU per operation", func(t *testing.T) {
		if got := perOp(time.Second, 0); got != 0 {
			t.Errorf("perOp(1s, 0) = %v", got)
		}
	})
}

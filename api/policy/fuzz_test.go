package policy_test

import (
	"errors"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// originSeeds are shared by the origin fuzz targets.
var originSeeds = []string{
	"*", "null", "NULL", "", "https://app.example.com", "http://localhost:3000",
	"HTTPS://App.Example.COM:443", "https://*.example.com", "https://*.localhost",
	"https://*.*.x.com", "https://a.*.x.com", "https://*x.com", "https://*.",
	"https://a.com/", "https://a.com/x", "https://a.com?q", "https://a.com#f",
	"https://u@a.com", "http://10.0.0.1:8080", "http://[::1]:8080", "http://[::ffff:1.2.3.4]",
	"http://[fe80::1%eth0]", "http://127.1", "https://a.com:0", "https://a.com:65536",
	"https://a.com:0080", "wss://a.com", "https://xn--bcher-kva.example", "https://bücher.example",
	"https://a..com", "https://-a.com", "http://[::1", "https://:443",
}

func FuzzParseOriginPattern(f *testing.F) {
	for _, s := range originSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := policy.ParseOriginPattern(s)
		if err != nil {
			if !errors.Is(err, policy.ErrInvalidOrigin) {
				t.Fatalf("ParseOriginPattern(%q) error %v does not wrap ErrInvalidOrigin", s, err)
			}
			if _, merr := policy.NewOriginMatcher([]string{s}, false); merr == nil {
				t.Fatalf("NewOriginMatcher accepts %q, which ParseOriginPattern refuses", s)
			}
			return
		}
		canon := p.String()
		again, err := policy.ParseOriginPattern(canon)
		if err != nil {
			t.Fatalf("String() of %q is %q, which does not parse: %v", s, canon, err)
		}
		if again != p {
			t.Fatalf("%q parses as %+v, its String %q as %+v", s, p, canon, again)
		}
		if vs := policy.Validate(policyWithOrigins(s)); vs != nil {
			t.Fatalf("Validate refuses %q, which parses: %v", s, violations(vs))
		}

		fromInput, err := policy.NewOriginMatcher([]string{s}, false)
		if err != nil {
			t.Fatalf("NewOriginMatcher(%q) error = %v", s, err)
		}
		fromCanon, err := policy.NewOriginMatcher([]string{canon}, false)
		if err != nil {
			t.Fatalf("NewOriginMatcher(%q) error = %v", canon, err)
		}
		probes := []string{s, canon, strings.ToUpper(canon), "", "null", sampleOrigin(p), "https://unrelated.example"}
		for _, o := range probes {
			a, b := fromInput.Allow(o), fromCanon.Allow(o)
			if a != b {
				t.Errorf("Allow(%q): matcher from %q says %t, from %q says %t", o, s, a, canon, b)
			}
			if a != fromInput.Allow(o) {
				t.Errorf("Allow(%q) is not deterministic", o)
			}
		}
		if !p.Any && !fromInput.Allow(sampleOrigin(p)) {
			t.Errorf("matcher from %q refuses its own sample origin %q", s, sampleOrigin(p))
		}
	})
}

func FuzzOriginMatcher(f *testing.F) {
	for _, s := range originSeeds {
		f.Add(s, s)
		f.Add(s, "https://a.example.com")
		f.Add(s, "https://A.b.EXAMPLE.com:443")
	}
	f.Add("https://*.example.com", "https://evilexample.com")
	f.Add("https://*.example.com", "https://example.com")
	f.Add("http://[::1]", "http://[0:0::1]:80")
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		m, err := policy.NewOriginMatcher([]string{pattern}, false)
		if err != nil {
			return
		}
		got := m.Allow(origin)
		p, err := policy.ParseOriginPattern(pattern)
		if err != nil {
			t.Fatalf("NewOriginMatcher accepts %q, which ParseOriginPattern refuses: %v", pattern, err)
		}

		if !p.Any && !p.Null {
			if exact := p.String(); !p.Wildcard && !m.Allow(exact) {
				t.Errorf("exact pattern %q does not match its own origin", exact)
			}
			if p.Wildcard {
				bare := p
				bare.Wildcard = false
				if m.Allow(bare.String()) {
					t.Errorf("wildcard %q matches the bare domain %q", pattern, bare.String())
				}
			}
		}

		if isASCII(origin) && !strings.EqualFold(origin, "null") {
			if up := strings.ToUpper(origin); m.Allow(up) != got {
				t.Errorf("Allow(%q) = %t but Allow(%q) = %t; matching must ignore case", origin, got, up, !got)
			}
		}

		if got && !p.Any && origin != "" {
			checkMatchIndependently(t, p, origin)
		}
	})
}

// checkMatchIndependently re-derives with net/url that an allowed origin is
// one the pattern describes, without the matcher's own parsing.
func checkMatchIndependently(t *testing.T, p policy.OriginPattern, origin string) {
	t.Helper()
	if p.Null {
		if origin != "null" {
			t.Errorf("null pattern allows %q", origin)
		}
		return
	}
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatalf("allowed origin %q does not parse as a URL: %v", origin, err)
	}
	if !strings.EqualFold(u.Scheme, p.Scheme) || u.User != nil || u.Opaque != "" || u.Path != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		t.Fatalf("allowed origin %q is not %s://host[:port]: %#v", origin, p.Scheme, u)
	}
	wantPort := p.Port
	if wantPort == "" {
		wantPort = map[string]string{"http": "80", "https": "443"}[p.Scheme]
	}
	gotPort := u.Port()
	if gotPort == "" {
		gotPort = map[string]string{"http": "80", "https": "443"}[p.Scheme]
	}
	if n, err := strconv.Atoi(gotPort); err != nil || strconv.Itoa(n) != wantPort {
		t.Fatalf("allowed origin %q has port %q, pattern %v wants %s", origin, u.Port(), p, wantPort)
	}
	host := strings.ToLower(u.Hostname())
	if strings.HasPrefix(p.Host, "[") {
		want, _ := netip.ParseAddr(strings.Trim(p.Host, "[]"))
		got, err := netip.ParseAddr(host)
		if err != nil || got != want {
			t.Fatalf("allowed origin %q has host %q, pattern wants %s", origin, host, p.Host)
		}
		return
	}
	if p.Wildcard {
		if !strings.HasSuffix(host, "."+p.Host) {
			t.Fatalf("allowed origin %q is not under %s", origin, p.Host)
		}
		return
	}
	if host != p.Host {
		t.Fatalf("allowed origin %q has host %q, pattern wants %s", origin, host, p.Host)
	}
}

// sampleOrigin is an origin a browser could send that the pattern allows.
func sampleOrigin(p policy.OriginPattern) string {
	switch {
	case p.Any:
		return "https://any.example"
	case p.Null:
		return "null"
	}
	host := p.Host
	if p.Wildcard {
		host = "x." + host
	}
	s := p.Scheme + "://" + host
	if p.Port != "" {
		s += ":" + p.Port
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func policyWithOrigins(origins ...string) *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = origins
	return p
}

// Bits of FuzzValidate's group mask: a set bit leaves that group out.
const (
	noOrigins = 1 << iota
	noHeartbeat
	noLimits
	noBreaker
	noInterval
	noTimeout
	noWindow
	noOpenDuration
)

func FuzzValidate(f *testing.F) {
	d := policy.Default()
	seed := func(mask uint8, o1, o2 string, is int64, in int32, ts int64, tn int32, limit int32, ratio float64) {
		l := d.GetLimits()
		b := d.GetBreaker()
		f.Add(mask, o1, o2, true, is, in, ts, tn,
			limit, l.MaxConnectionsPerIp, l.HandshakesPerSecond, l.HandshakeBurst, l.MessagesPerSecond, l.MessageBurst, l.MaxMessageBytes,
			ratio, b.MinSamples, int64(10), int32(0), int64(5), int32(0), b.HalfOpenProbes)
	}
	seed(0, "https://a.com", "https://*.b.com", 25, 0, 60, 0, 100_000, 0.5)
	seed(0, "*", "", 1, 0, 1, 1, 1, 1)
	seed(0, "https://a.com", "https://a.com", 600, 0, 3600, 0, policy.MaxConnections, 1e-9)
	seed(0, "https://*.*.x.com", "null", 30, 0, 30, 0, -1, 1.5)
	seed(0, "", "", 0, 999_999_999, 3600, 1, 0, math.NaN())
	seed(0xff, "", "", -1, -1, 5, -5, math.MaxInt32, math.Inf(1))
	seed(noHeartbeat|noBreaker, "http://[::1]", "http://127.0.0.1", 0, 0, 0, 0, 0, 0)

	f.Fuzz(func(t *testing.T, mask uint8, o1, o2 string, allowMissing bool,
		intervalS int64, intervalN int32, timeoutS int64, timeoutN int32,
		maxConns, perIP, hsRate, hsBurst, msgRate, msgBurst, msgBytes int32,
		ratio float64, minSamples int32, windowS int64, windowN int32, openS int64, openN int32, probes int32,
	) {
		p := &wsfleetv1.Policy{}
		if mask&noOrigins == 0 {
			var allow []string
			for _, o := range []string{o1, o2} {
				if o != "" {
					allow = append(allow, o)
				}
			}
			p.Origins = &wsfleetv1.OriginPolicy{Allow: allow, AllowMissing: allowMissing}
		}
		if mask&noHeartbeat == 0 {
			p.Heartbeat = &wsfleetv1.HeartbeatPolicy{}
			if mask&noInterval == 0 {
				p.Heartbeat.Interval = &durationpb.Duration{Seconds: intervalS, Nanos: intervalN}
			}
			if mask&noTimeout == 0 {
				p.Heartbeat.Timeout = &durationpb.Duration{Seconds: timeoutS, Nanos: timeoutN}
			}
		}
		if mask&noLimits == 0 {
			p.Limits = &wsfleetv1.LimitsPolicy{
				MaxConnections: maxConns, MaxConnectionsPerIp: perIP,
				HandshakesPerSecond: hsRate, HandshakeBurst: hsBurst,
				MessagesPerSecond: msgRate, MessageBurst: msgBurst, MaxMessageBytes: msgBytes,
			}
		}
		if mask&noBreaker == 0 {
			p.Breaker = &wsfleetv1.BreakerPolicy{FailureRatio: ratio, MinSamples: minSamples, HalfOpenProbes: probes}
			if mask&noWindow == 0 {
				p.Breaker.Window = &durationpb.Duration{Seconds: windowS, Nanos: windowN}
			}
			if mask&noOpenDuration == 0 {
				p.Breaker.OpenDuration = &durationpb.Duration{Seconds: openS, Nanos: openN}
			}
		}

		vs := policy.Validate(p)
		for _, v := range vs {
			if v.GetField() == "" || v.GetDescription() == "" {
				t.Fatalf("violation with an empty field or description: %v", v)
			}
		}
		if err := policy.Check(p); (err == nil) != (len(vs) == 0) {
			t.Fatalf("Check = %v but Validate found %d violations", err, len(vs))
		}
		if len(vs) == 0 {
			checkInRange(t, p)
		}
	})
}

// checkInRange states the bounds of a valid policy directly, without the
// validator's code, so that a validator bug shows up as a disagreement.
func checkInRange(t *testing.T, p *wsfleetv1.Policy) {
	t.Helper()
	if p.Origins == nil || p.Heartbeat == nil || p.Limits == nil || p.Breaker == nil {
		t.Fatalf("valid policy has a missing group: %v", p)
	}

	allow := p.Origins.Allow
	if len(allow) > 1000 {
		t.Fatalf("valid policy has %d origins", len(allow))
	}
	seen := map[string]bool{}
	for _, o := range allow {
		if len(o) > 512 || seen[o] {
			t.Fatalf("valid policy has an over-long or repeated origin %q", o)
		}
		seen[o] = true
		switch o {
		case "*":
			if len(allow) != 1 {
				t.Fatalf("valid policy has * next to %q", allow)
			}
			continue
		case "null":
			continue
		}
		u, err := url.Parse(o)
		if err != nil {
			t.Fatalf("valid origin %q does not parse as a URL: %v", o, err)
		}
		scheme := strings.ToLower(u.Scheme)
		if scheme != "http" && scheme != "https" || u.Hostname() == "" || u.User != nil || u.Opaque != "" ||
			u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			t.Fatalf("valid origin %q is not scheme://host[:port]: %#v", o, u)
		}
		if star := strings.LastIndex(u.Hostname(), "*"); star > 0 || star == 0 && !strings.HasPrefix(u.Hostname(), "*.") {
			t.Fatalf("valid origin %q has a wildcard that is not the leftmost label", o)
		}
		if port := u.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("valid origin %q has port %q", o, port)
			}
		}
	}
	if _, err := policy.NewOriginMatcher(allow, p.Origins.AllowMissing); err != nil {
		t.Fatalf("a valid allowlist does not build a matcher: %v", err)
	}

	interval := checkDuration(t, "heartbeat.interval", p.Heartbeat.Interval)
	timeout := checkDuration(t, "heartbeat.timeout", p.Heartbeat.Timeout)
	if interval < time.Second || interval > 10*time.Minute {
		t.Fatalf("valid interval %v", interval)
	}
	if timeout <= interval || timeout > time.Hour {
		t.Fatalf("valid timeout %v with interval %v", timeout, interval)
	}

	l := p.Limits
	for _, c := range []struct {
		name string
		v    int32
		max  int32
	}{
		{"max_connections", l.MaxConnections, 10_000_000},
		{"max_connections_per_ip", l.MaxConnectionsPerIp, 1_000_000},
		{"handshakes_per_second", l.HandshakesPerSecond, 1_000_000},
		{"handshake_burst", l.HandshakeBurst, 1_000_000},
		{"messages_per_second", l.MessagesPerSecond, 1_000_000},
		{"message_burst", l.MessageBurst, 1_000_000},
		{"max_message_bytes", l.MaxMessageBytes, 64 << 20},
		{"min_samples", p.Breaker.MinSamples, 1_000_000},
		{"half_open_probes", p.Breaker.HalfOpenProbes, 10_000},
	} {
		if c.v < 1 || c.v > c.max {
			t.Fatalf("valid %s = %d, outside 1..%d", c.name, c.v, c.max)
		}
	}

	if r := p.Breaker.FailureRatio; math.IsNaN(r) || r <= 0 || r > 1 {
		t.Fatalf("valid failure_ratio %v", r)
	}
	for name, d := range map[string]*durationpb.Duration{"window": p.Breaker.Window, "open_duration": p.Breaker.OpenDuration} {
		if v := checkDuration(t, name, d); v <= 0 || v > time.Hour {
			t.Fatalf("valid %s %v", name, v)
		}
	}
}

// checkDuration checks the wire form by hand: seconds and nanos of one sign,
// nanos below a second.
func checkDuration(t *testing.T, name string, d *durationpb.Duration) time.Duration {
	t.Helper()
	if d == nil {
		t.Fatalf("valid policy has no %s", name)
	}
	s, n := d.Seconds, d.Nanos
	if n <= -1e9 || n >= 1e9 || (s > 0 && n < 0) || (s < 0 && n > 0) {
		t.Fatalf("valid %s is malformed: seconds %d nanos %d", name, s, n)
	}
	if s > 1e6 || s < -1e6 {
		t.Fatalf("valid %s is absurdly long: %d seconds", name, s)
	}
	return time.Duration(s)*time.Second + time.Duration(n)
}

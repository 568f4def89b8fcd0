package policy_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// violation is a FieldViolation without the proto internals, for readable
// comparisons.
type violation struct{ field, desc string }

func violations(vs []*wsfleetv1.FieldViolation) []violation {
	var out []violation
	for _, v := range vs {
		out = append(out, violation{v.GetField(), v.GetDescription()})
	}
	return out
}

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func TestDefaultIsValid(t *testing.T) {
	if vs := policy.Validate(policy.Default()); vs != nil {
		t.Errorf("Validate(Default()) = %v, want nil", violations(vs))
	}
	if err := policy.Check(policy.Default()); err != nil {
		t.Errorf("Check(Default()) = %v", err)
	}
}

func TestDefaultIsAFreshCopy(t *testing.T) {
	a := policy.Default()
	a.Limits.MaxConnections = 1
	a.Origins.Allow = append(a.Origins.Allow, "https://a.com")
	if b := policy.Default(); b.Limits.MaxConnections == 1 || len(b.Origins.Allow) != 0 {
		t.Errorf("Default() shares state between calls: %v", b)
	}
}

func TestDefaultAllowsNoBrowserOriginButAdmitsMissing(t *testing.T) {
	o := policy.Default().GetOrigins()
	m, err := policy.NewOriginMatcher(o.GetAllow(), o.GetAllowMissing())
	if err != nil {
		t.Fatal(err)
	}
	if m.Allow("https://example.com") {
		t.Error("the default policy allows a browser origin")
	}
	if !m.Allow("") {
		t.Error("the default policy refuses a client without an Origin header")
	}
}

func TestFourViolationsAreAllReported(t *testing.T) {
	p := policy.Default()
	p.Origins.Allow = []string{"https://ok.example.com", "https://*.*.example.com"}
	p.Heartbeat.Interval = dur(30 * time.Second)
	p.Heartbeat.Timeout = dur(30 * time.Second)
	p.Limits.MaxConnections = -1
	p.Breaker.FailureRatio = 1.5

	got := violations(policy.Validate(p))
	want := []violation{
		{"origins.allow[1]", `"https://*.*.example.com": wildcard only as the leftmost label`},
		{"heartbeat.timeout", `"30s": must be greater than heartbeat.interval ("30s")`},
		{"limits.max_connections", "-1: must be positive"},
		{"breaker.failure_ratio", "1.5: must be at most 1"},
	}
	assertViolations(t, got, want)

	err := policy.Check(p)
	if !errors.Is(err, policy.ErrInvalidPolicy) {
		t.Fatalf("Check error = %v, want ErrInvalidPolicy", err)
	}
	for _, v := range want {
		if !strings.Contains(err.Error(), v.field) {
			t.Errorf("Check error %q does not name %s", err, v.field)
		}
	}
}

func assertViolations(t *testing.T, got, want []violation) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d violations %q, want %d %q", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("violation %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *wsfleetv1.Policy)
		want   []violation // nil: valid
	}{
		// Whole policy and groups.
		{"a missing origins group is one violation", func(p *wsfleetv1.Policy) { p.Origins = nil },
			[]violation{{"origins", "required"}}},
		{"a missing heartbeat group is one violation", func(p *wsfleetv1.Policy) { p.Heartbeat = nil },
			[]violation{{"heartbeat", "required"}}},
		{"a missing limits group is one violation", func(p *wsfleetv1.Policy) { p.Limits = nil },
			[]violation{{"limits", "required"}}},
		{"a missing breaker group is one violation", func(p *wsfleetv1.Policy) { p.Breaker = nil },
			[]violation{{"breaker", "required"}}},
		{"all groups missing are reported in field order", func(p *wsfleetv1.Policy) { p.Reset() },
			[]violation{{"origins", "required"}, {"heartbeat", "required"}, {"limits", "required"}, {"breaker", "required"}}},

		// Origins.
		{"exact, wildcard, IP and null origins are valid", func(p *wsfleetv1.Policy) {
			p.Origins.Allow = []string{"https://a.com", "https://*.b.com", "http://10.0.0.1:8080", "http://[::1]", "null"}
		}, nil},
		{"a lone star is valid", func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"*"} }, nil},
		{"a star next to other entries is refused", func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"https://a.com", "*"} },
			[]violation{{"origins.allow[1]", `"*": must be the only entry, it already allows every origin`}}},
		{"wildcard in the middle is refused", func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"https://a.*.x.com"} },
			[]violation{{"origins.allow[0]", `"https://a.*.x.com": wildcard only as the leftmost label`}}},
		{"a trailing slash is refused", func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"https://a.com/"} },
			[]violation{{"origins.allow[0]", `"https://a.com/": trailing "/" not allowed: drop it, an origin has no path`}}},
		{"a duplicate is refused at the later index", func(p *wsfleetv1.Policy) {
			p.Origins.Allow = []string{"https://a.com", "https://b.com", "https://a.com"}
		}, []violation{{"origins.allow[2]", `"https://a.com": duplicate of origins.allow[0]`}}},
		{"a duplicate spelled differently is refused", func(p *wsfleetv1.Policy) {
			p.Origins.Allow = []string{"https://a.com", "HTTPS://A.com:443"}
		}, []violation{{"origins.allow[1]", `"HTTPS://A.com:443": duplicate of origins.allow[0]`}}},
		{"a wildcard and an exact origin of the same domain are not duplicates", func(p *wsfleetv1.Policy) {
			p.Origins.Allow = []string{"https://a.com", "https://*.a.com"}
		}, nil},
		{"every bad entry is reported", func(p *wsfleetv1.Policy) {
			p.Origins.Allow = []string{"ftp://a.com", "https://ok.com", "https://x.com/path"}
		}, []violation{
			{"origins.allow[0]", `"ftp://a.com": scheme must be http or https`},
			{"origins.allow[2]", `"https://x.com/path": path not allowed: an origin is scheme://host[:port]`},
		}},
		{"an over-long entry is refused and quoted in part", func(p *wsfleetv1.Policy) {
			p.Origins.Allow = []string{"https://" + strings.Repeat("a", 600)}
		}, []violation{{"origins.allow[0]", `"https://` + strings.Repeat("a", 56) + `...": must be at most 512 characters (is 608)`}}},
		{"the most origins allowed are valid", func(p *wsfleetv1.Policy) { p.Origins.Allow = manyOrigins(policy.MaxOrigins) }, nil},
		{"one origin more than allowed is refused", func(p *wsfleetv1.Policy) { p.Origins.Allow = manyOrigins(policy.MaxOrigins + 1) },
			[]violation{{"origins.allow", "must have at most 1000 entries (has 1001)"}}},

		// Heartbeat.
		{"the shortest interval is valid", func(p *wsfleetv1.Policy) { p.Heartbeat.Interval = dur(time.Second) }, nil},
		{"the longest interval is valid", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Interval = dur(10 * time.Minute)
			p.Heartbeat.Timeout = dur(11 * time.Minute)
		}, nil},
		{"an interval under a second is refused", func(p *wsfleetv1.Policy) { p.Heartbeat.Interval = dur(500 * time.Millisecond) },
			[]violation{{"heartbeat.interval", `"500ms": must be at least 1s`}}},
		{"an interval over ten minutes is refused", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Interval = dur(10*time.Minute + time.Second)
			p.Heartbeat.Timeout = dur(time.Hour)
		}, []violation{{"heartbeat.interval", `"10m1s": must be at most 10m`}}},
		{"a missing interval is required", func(p *wsfleetv1.Policy) { p.Heartbeat.Interval = nil },
			[]violation{{"heartbeat.interval", "required"}}},
		{"a missing timeout is required", func(p *wsfleetv1.Policy) { p.Heartbeat.Timeout = nil },
			[]violation{{"heartbeat.timeout", "required"}}},
		{"a negative interval is refused", func(p *wsfleetv1.Policy) { p.Heartbeat.Interval = dur(-5 * time.Second) },
			[]violation{{"heartbeat.interval", `"-5s": must be at least 1s`}}},
		{"a non-normalized interval is refused", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Interval = &durationpb.Duration{Seconds: 5, Nanos: -1}
		}, []violation{{"heartbeat.interval", "not a valid duration (seconds 5, nanos -1)"}}},
		{"nanos out of range are refused", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Timeout = &durationpb.Duration{Seconds: 60, Nanos: 1_000_000_000}
		}, []violation{{"heartbeat.timeout", "not a valid duration (seconds 60, nanos 1000000000)"}}},
		{"a timeout equal to the interval is refused", func(p *wsfleetv1.Policy) { p.Heartbeat.Timeout = dur(25 * time.Second) },
			[]violation{{"heartbeat.timeout", `"25s": must be greater than heartbeat.interval ("25s")`}}},
		{"a timeout just over the interval is valid", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Timeout = dur(25*time.Second + time.Nanosecond)
		}, nil},
		{"a timeout over an hour is refused", func(p *wsfleetv1.Policy) { p.Heartbeat.Timeout = dur(time.Hour + time.Second) },
			[]violation{{"heartbeat.timeout", `"1h1s": must be at most 1h`}}},
		{"a timeout of an hour is valid", func(p *wsfleetv1.Policy) { p.Heartbeat.Timeout = dur(time.Hour) }, nil},
		{"a non-positive timeout is refused even when the interval is invalid", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Interval = nil
			p.Heartbeat.Timeout = dur(0)
		}, []violation{{"heartbeat.interval", "required"}, {"heartbeat.timeout", `"0s": must be positive`}}},
		{"a huge timeout is quoted in seconds", func(p *wsfleetv1.Policy) {
			p.Heartbeat.Timeout = &durationpb.Duration{Seconds: 300_000_000_000}
		}, []violation{{"heartbeat.timeout", `"300000000000s": must be at most 1h`}}},

		// Limits.
		{"zero max connections is refused", func(p *wsfleetv1.Policy) { p.Limits.MaxConnections = 0 },
			[]violation{{"limits.max_connections", "0: must be positive"}}},
		{"max connections at the bound is valid", func(p *wsfleetv1.Policy) { p.Limits.MaxConnections = policy.MaxConnections }, nil},
		{"max connections over the bound is refused", func(p *wsfleetv1.Policy) { p.Limits.MaxConnections = policy.MaxConnections + 1 },
			[]violation{{"limits.max_connections", "10000001: must be at most 10000000"}}},
		{"negative connections per IP are refused", func(p *wsfleetv1.Policy) { p.Limits.MaxConnectionsPerIp = -3 },
			[]violation{{"limits.max_connections_per_ip", "-3: must be positive"}}},
		{"connections per IP over the bound are refused", func(p *wsfleetv1.Policy) { p.Limits.MaxConnectionsPerIp = policy.MaxConnectionsPerIP + 1 },
			[]violation{{"limits.max_connections_per_ip", "1000001: must be at most 1000000"}}},
		{"zero handshakes per second are refused", func(p *wsfleetv1.Policy) { p.Limits.HandshakesPerSecond = 0 },
			[]violation{{"limits.handshakes_per_second", "0: must be positive"}}},
		{"handshakes per second over the bound are refused", func(p *wsfleetv1.Policy) { p.Limits.HandshakesPerSecond = policy.MaxHandshakesPerSecond + 1 },
			[]violation{{"limits.handshakes_per_second", "1000001: must be at most 1000000"}}},
		{"a zero handshake burst is refused", func(p *wsfleetv1.Policy) { p.Limits.HandshakeBurst = 0 },
			[]violation{{"limits.handshake_burst", "0: must be positive"}}},
		{"a handshake burst of one is valid", func(p *wsfleetv1.Policy) { p.Limits.HandshakeBurst = 1 }, nil},
		{"a handshake burst over the bound is refused", func(p *wsfleetv1.Policy) { p.Limits.HandshakeBurst = policy.MaxHandshakeBurst + 1 },
			[]violation{{"limits.handshake_burst", "1000001: must be at most 1000000"}}},
		{"zero messages per second are refused", func(p *wsfleetv1.Policy) { p.Limits.MessagesPerSecond = 0 },
			[]violation{{"limits.messages_per_second", "0: must be positive"}}},
		{"messages per second over the bound are refused", func(p *wsfleetv1.Policy) { p.Limits.MessagesPerSecond = policy.MaxMessagesPerSecond + 1 },
			[]violation{{"limits.messages_per_second", "1000001: must be at most 1000000"}}},
		{"a zero message burst is refused", func(p *wsfleetv1.Policy) { p.Limits.MessageBurst = 0 },
			[]violation{{"limits.message_burst", "0: must be positive"}}},
		{"a message burst over the bound is refused", func(p *wsfleetv1.Policy) { p.Limits.MessageBurst = policy.MaxMessageBurst + 1 },
			[]violation{{"limits.message_burst", "1000001: must be at most 1000000"}}},
		{"zero max message bytes are refused", func(p *wsfleetv1.Policy) { p.Limits.MaxMessageBytes = 0 },
			[]violation{{"limits.max_message_bytes", "0: must be positive"}}},
		{"64 MiB messages are valid", func(p *wsfleetv1.Policy) { p.Limits.MaxMessageBytes = 64 << 20 }, nil},
		{"messages over 64 MiB are refused", func(p *wsfleetv1.Policy) { p.Limits.MaxMessageBytes = 64<<20 + 1 },
			[]violation{{"limits.max_message_bytes", "67108865: must be at most 67108864"}}},
		{"every bad limit is reported in field order", func(p *wsfleetv1.Policy) { p.Limits = &wsfleetv1.LimitsPolicy{} },
			[]violation{
				{"limits.max_connections", "0: must be positive"},
				{"limits.max_connections_per_ip", "0: must be positive"},
				{"limits.handshakes_per_second", "0: must be positive"},
				{"limits.handshake_burst", "0: must be positive"},
				{"limits.messages_per_second", "0: must be positive"},
				{"limits.message_burst", "0: must be positive"},
				{"limits.max_message_bytes", "0: must be positive"},
			}},

		// Breaker.
		{"a failure ratio of one is valid", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = 1 }, nil},
		{"a tiny failure ratio is valid", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = 0.0001 }, nil},
		{"a zero failure ratio is refused", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = 0 },
			[]violation{{"breaker.failure_ratio", "0: must be greater than 0"}}},
		{"a negative failure ratio is refused", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = -0.5 },
			[]violation{{"breaker.failure_ratio", "-0.5: must be greater than 0"}}},
		{"a failure ratio over one is refused", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = 1.5 },
			[]violation{{"breaker.failure_ratio", "1.5: must be at most 1"}}},
		{"a NaN failure ratio is refused", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = math.NaN() },
			[]violation{{"breaker.failure_ratio", `"NaN": must be a number`}}},
		{"an infinite failure ratio is refused", func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = math.Inf(1) },
			[]violation{{"breaker.failure_ratio", `"Infinity": must be at most 1`}}},
		{"zero min samples are refused", func(p *wsfleetv1.Policy) { p.Breaker.MinSamples = 0 },
			[]violation{{"breaker.min_samples", "0: must be positive"}}},
		{"min samples over the bound are refused", func(p *wsfleetv1.Policy) { p.Breaker.MinSamples = policy.MaxBreakerMinSamples + 1 },
			[]violation{{"breaker.min_samples", "1000001: must be at most 1000000"}}},
		{"a missing window is required", func(p *wsfleetv1.Policy) { p.Breaker.Window = nil },
			[]violation{{"breaker.window", "required"}}},
		{"a zero window is refused", func(p *wsfleetv1.Policy) { p.Breaker.Window = dur(0) },
			[]violation{{"breaker.window", `"0s": must be positive`}}},
		{"a window over an hour is refused", func(p *wsfleetv1.Policy) { p.Breaker.Window = dur(90 * time.Minute) },
			[]violation{{"breaker.window", `"1h30m": must be at most 1h`}}},
		{"an invalid window is refused", func(p *wsfleetv1.Policy) { p.Breaker.Window = &durationpb.Duration{Seconds: -1, Nanos: 1} },
			[]violation{{"breaker.window", "not a valid duration (seconds -1, nanos 1)"}}},
		{"a missing open duration is required", func(p *wsfleetv1.Policy) { p.Breaker.OpenDuration = nil },
			[]violation{{"breaker.open_duration", "required"}}},
		{"a negative open duration is refused", func(p *wsfleetv1.Policy) { p.Breaker.OpenDuration = dur(-time.Millisecond) },
			[]violation{{"breaker.open_duration", `"-1ms": must be positive`}}},
		{"an open duration over an hour is refused", func(p *wsfleetv1.Policy) { p.Breaker.OpenDuration = dur(2 * time.Hour) },
			[]violation{{"breaker.open_duration", `"2h": must be at most 1h`}}},
		{"an open duration of an hour is valid", func(p *wsfleetv1.Policy) { p.Breaker.OpenDuration = dur(time.Hour) }, nil},
		{"zero half-open probes are refused", func(p *wsfleetv1.Policy) { p.Breaker.HalfOpenProbes = 0 },
			[]violation{{"breaker.half_open_probes", "0: must be positive"}}},
		{"half-open probes over the bound are refused", func(p *wsfleetv1.Policy) { p.Breaker.HalfOpenProbes = policy.MaxHalfOpenProbes + 1 },
			[]violation{{"breaker.half_open_probes", "10001: must be at most 10000"}}},

		// Handshake.
		{"a missing handshake group is valid: it means http", func(p *wsfleetv1.Policy) { p.Handshake = nil }, nil},
		{"an unspecified reject mode is valid: it means http", func(p *wsfleetv1.Policy) {
			p.Handshake.RejectWith = wsfleetv1.RejectMode_REJECT_MODE_UNSPECIFIED
		}, nil},
		{"reject with close is valid", func(p *wsfleetv1.Policy) { p.Handshake.RejectWith = wsfleetv1.RejectMode_REJECT_MODE_CLOSE }, nil},
		{"an unknown reject mode is refused", func(p *wsfleetv1.Policy) { p.Handshake.RejectWith = 7 },
			[]violation{{"handshake.reject_with", "7: must be one of unspecified, http, close"}}},
		{"every bad field is named, the handshake's included", func(p *wsfleetv1.Policy) {
			p.Limits.MessageBurst = 0
			p.Handshake.RejectWith = -1
		}, []violation{{"limits.message_burst", "0: must be positive"}, {"handshake.reject_with", "-1: must be one of unspecified, http, close"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.Default()
			tt.mutate(p)
			got := violations(policy.Validate(p))
			assertViolations(t, got, tt.want)
			if (policy.Check(p) == nil) != (tt.want == nil) {
				t.Errorf("Check disagrees with Validate: %v", policy.Check(p))
			}
		})
	}
}

func TestRejectWithReadsUnsetAsHTTP(t *testing.T) {
	tests := []struct {
		name string
		p    *wsfleetv1.Policy
		want wsfleetv1.RejectMode
	}{
		{"a nil policy is http", nil, wsfleetv1.RejectMode_REJECT_MODE_HTTP},
		{"a policy without the group is http", &wsfleetv1.Policy{}, wsfleetv1.RejectMode_REJECT_MODE_HTTP},
		{"an unspecified mode is http", &wsfleetv1.Policy{Handshake: &wsfleetv1.HandshakePolicy{}}, wsfleetv1.RejectMode_REJECT_MODE_HTTP},
		{"the default is http", policy.Default(), wsfleetv1.RejectMode_REJECT_MODE_HTTP},
		{"close is close", &wsfleetv1.Policy{Handshake: &wsfleetv1.HandshakePolicy{RejectWith: wsfleetv1.RejectMode_REJECT_MODE_CLOSE}}, wsfleetv1.RejectMode_REJECT_MODE_CLOSE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.RejectWith(tt.p); got != tt.want {
				t.Errorf("RejectWith = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEnumTexts(t *testing.T) {
	ed := wsfleetv1.RejectMode(0).Descriptor()
	if got, _ := policy.EnumText(ed, 2); got != "close" {
		t.Errorf("EnumText(REJECT_MODE_CLOSE) = %q, want close", got)
	}
	if _, ok := policy.EnumText(ed, 9); ok {
		t.Error("EnumText(9) is known")
	}
	for _, in := range []string{"close", "CLOSE", " Close ", "REJECT_MODE_CLOSE", "reject_mode_close"} {
		if n, ok := policy.ParseEnumText(ed, in); !ok || n != 2 {
			t.Errorf("ParseEnumText(%q) = %d, %t; want 2", in, n, ok)
		}
	}
	for _, in := range []string{"", "closed", "MODE_CLOSE", "2"} {
		if n, ok := policy.ParseEnumText(ed, in); ok {
			t.Errorf("ParseEnumText(%q) = %d, want not ok", in, n)
		}
	}
}

func TestValidateNilPolicy(t *testing.T) {
	assertViolations(t, violations(policy.Validate(nil)), []violation{{"policy", "required"}})
}

// TestViolationPathsNameRealFields guards the hand-written field paths
// against a renamed proto field.
func TestViolationPathsNameRealFields(t *testing.T) {
	var p wsfleetv1.Policy
	broken := &wsfleetv1.Policy{
		Origins:   &wsfleetv1.OriginPolicy{Allow: append(manyOrigins(policy.MaxOrigins), "x")},
		Heartbeat: &wsfleetv1.HeartbeatPolicy{},
		Limits:    &wsfleetv1.LimitsPolicy{},
		Breaker:   &wsfleetv1.BreakerPolicy{},
		Handshake: &wsfleetv1.HandshakePolicy{RejectWith: 99},
	}
	seen := 0
	for _, v := range policy.Validate(broken) {
		path := v.GetField()
		if i := strings.IndexByte(path, '['); i >= 0 {
			path = path[:i]
		}
		md := p.ProtoReflect().Descriptor()
		for _, name := range strings.Split(path, ".") {
			fd := md.Fields().ByName(protoreflect.Name(name))
			if fd == nil {
				t.Fatalf("violation path %q: no field %q in %s", v.GetField(), name, md.FullName())
			}
			md = fd.Message()
			if md == nil {
				break
			}
		}
		seen++
	}
	// Every leaf of the five groups, plus the list itself and its bad entry.
	if seen < 15 {
		t.Errorf("only %d violations checked; the broken policy should break every leaf", seen)
	}
}

func TestValidateDoesNotModifyThePolicy(t *testing.T) {
	p := policy.Default()
	p.Origins.Allow = []string{"HTTPS://A.com", "https://a.*.com"}
	before := proto.Clone(p)
	policy.Validate(p)
	if !proto.Equal(before, p) {
		t.Errorf("Validate changed the policy: %v, was %v", p, before)
	}
}

func TestValidatePoolName(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		reason string // "" for valid
	}{
		{"the default pool is valid", policy.DefaultPool, ""},
		{"letters, digits and hyphens are valid", "edge-eu-1", ""},
		{"a single character is valid", "a", ""},
		{"63 characters are valid", strings.Repeat("a", 63), ""},
		{"a digit-only name is valid", "42", ""},
		{"an empty name is refused", "", "empty"},
		{"64 characters are refused", strings.Repeat("a", 64), "longer than 63"},
		{"a leading hyphen is refused", "-edge", `start or end with "-"`},
		{"a trailing hyphen is refused", "edge-", `start or end with "-"`},
		{"upper case is refused", "Edge", `invalid character 'E'`},
		{"an underscore is refused", "edge_eu", `invalid character '_'`},
		{"a dot is refused", "edge.eu", `invalid character '.'`},
		{"a slash is refused", "edge/eu", `invalid character '/'`},
		{"non-ASCII is refused", "édge", `invalid character 'é'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := policy.ValidatePoolName(tt.input)
			if tt.reason == "" {
				if err != nil {
					t.Errorf("ValidatePoolName(%q) = %v, want nil", tt.input, err)
				}
				return
			}
			if !errors.Is(err, policy.ErrInvalidPoolName) {
				t.Fatalf("ValidatePoolName(%q) = %v, want ErrInvalidPoolName", tt.input, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

func manyOrigins(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "https://app" + strconv.Itoa(i) + ".example.com"
	}
	return out
}

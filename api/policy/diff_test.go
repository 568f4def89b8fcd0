package policy_test

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// change is a FieldChange without the proto internals.
type change struct {
	field    string
	kind     wsfleetv1.FieldChange_Kind
	old, new string
}

const (
	changed = wsfleetv1.FieldChange_KIND_CHANGED
	added   = wsfleetv1.FieldChange_KIND_ADDED
	removed = wsfleetv1.FieldChange_KIND_REMOVED
)

func changes(cs []*wsfleetv1.FieldChange) []change {
	var out []change
	for _, c := range cs {
		out = append(out, change{c.GetField(), c.GetKind(), c.GetOldValue(), c.GetNewValue()})
	}
	return out
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name     string
		from, to func(p *wsfleetv1.Policy) *wsfleetv1.Policy
		want     []change
	}{
		{"equal policies give nothing", same, same, nil},
		{"a changed interval reads as durations", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Heartbeat.Interval = durationpb.New(90 * time.Second)
			return p
		}, []change{{"heartbeat.interval", changed, `"25s"`, `"1m30s"`}}},
		{"a sub-second duration reads in milliseconds", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Breaker.OpenDuration = durationpb.New(500 * time.Millisecond)
			return p
		}, []change{{"breaker.open_duration", changed, `"5s"`, `"500ms"`}}},
		{"a changed limit reads as a plain number", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Limits.MaxConnections = 250_000
			return p
		}, []change{{"limits.max_connections", changed, "100000", "250000"}}},
		{"a changed reject mode reads as a policy file writes it", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Handshake.RejectWith = wsfleetv1.RejectMode_REJECT_MODE_CLOSE
			return p
		}, []change{{"handshake.reject_with", changed, `"http"`, `"close"`}}},
		{"a policy older than the handshake group shows it appearing", func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Handshake = nil
			return p
		}, same, []change{{"handshake.reject_with", changed, "null", `"http"`}}},
		{"a changed bool reads as true or false", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Origins.AllowMissing = false
			return p
		}, []change{{"origins.allow_missing", changed, "true", "false"}}},
		{"a changed ratio reads as a plain number", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Breaker.FailureRatio = 0.75
			return p
		}, []change{{"breaker.failure_ratio", changed, "0.5", "0.75"}}},
		{"a NaN ratio reads as the string a policy file holds", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Breaker.FailureRatio = math.NaN()
			return p
		}, []change{{"breaker.failure_ratio", changed, "0.5", `"NaN"`}}},
		{"equal NaN ratios are no change", withNaN, withNaN, nil},
		{"added origins are one change each", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Origins.Allow = []string{"https://a.com", "https://*.b.com"}
			return p
		}, []change{
			{"origins.allow", added, "", `"https://a.com"`},
			{"origins.allow", added, "", `"https://*.b.com"`},
		}},
		{"removed origins come before added ones", withOrigins("https://a.com", "https://b.com"), withOrigins("https://b.com", "https://c.com"),
			[]change{
				{"origins.allow", removed, `"https://a.com"`, ""},
				{"origins.allow", added, "", `"https://c.com"`},
			}},
		{"reordered origins are no change", withOrigins("https://a.com", "https://b.com"), withOrigins("https://b.com", "https://a.com"), nil},
		{"a repeated origin counts once", withOrigins("https://a.com", "https://a.com"), withOrigins(),
			[]change{{"origins.allow", removed, `"https://a.com"`, ""}}},
		{"origins are quoted as JSON without HTML escaping", withOrigins(), withOrigins(`https://a.com?x=1&y="2"`),
			[]change{{"origins.allow", added, "", `"https://a.com?x=1&y=\"2\""`}}},
		{"an unset duration reads as null", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Heartbeat.Timeout = nil
			return p
		}, []change{{"heartbeat.timeout", changed, `"1m"`, "null"}}},
		{"a group that appears is reported per leaf", func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Breaker = nil
			return p
		}, same, []change{
			{"breaker.failure_ratio", changed, "null", "0.5"},
			{"breaker.min_samples", changed, "null", "20"},
			{"breaker.window", changed, "null", `"10s"`},
			{"breaker.open_duration", changed, "null", `"5s"`},
			{"breaker.half_open_probes", changed, "null", "3"},
		}},
		{"a group that disappears is reported per leaf", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Heartbeat = nil
			return p
		}, []change{
			{"heartbeat.interval", changed, `"25s"`, "null"},
			{"heartbeat.timeout", changed, `"1m"`, "null"},
		}},
		{"a disappearing origins group removes each origin", withOrigins("https://a.com"), func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Origins = nil
			return p
		}, []change{
			{"origins.allow", removed, `"https://a.com"`, ""},
			{"origins.allow_missing", changed, "true", "null"},
		}},
		{"changes come in field order", same, func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
			p.Breaker.HalfOpenProbes = 5
			p.Limits.MessageBurst = 300
			p.Origins.Allow = []string{"https://a.com"}
			p.Heartbeat.Timeout = durationpb.New(2 * time.Minute)
			return p
		}, []change{
			{"origins.allow", added, "", `"https://a.com"`},
			{"heartbeat.timeout", changed, `"1m"`, `"2m"`},
			{"limits.message_burst", changed, "200", "300"},
			{"breaker.half_open_probes", changed, "3", "5"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := changes(policy.Diff(tt.from(policy.Default()), tt.to(policy.Default())))
			assertChanges(t, got, tt.want)
		})
	}
}

func same(p *wsfleetv1.Policy) *wsfleetv1.Policy { return p }

func withNaN(p *wsfleetv1.Policy) *wsfleetv1.Policy {
	p.Breaker.FailureRatio = math.NaN()
	return p
}

func withOrigins(origins ...string) func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
	return func(p *wsfleetv1.Policy) *wsfleetv1.Policy {
		p.Origins.Allow = origins
		return p
	}
}

func assertChanges(t *testing.T, got, want []change) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d changes %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestDiffOfNilPolicies(t *testing.T) {
	if got := policy.Diff(nil, nil); got != nil {
		t.Errorf("Diff(nil, nil) = %v, want nil", changes(got))
	}
	// From nothing to the default: every scalar leaf appears; the empty
	// allowlist adds no element.
	got := changes(policy.Diff(nil, policy.Default()))
	want := leafPaths(t)
	var paths []string
	for _, c := range got {
		if c.old != "null" || c.kind != changed {
			t.Errorf("change %+v from a nil policy, want null to a value", c)
		}
		paths = append(paths, c.field)
	}
	wantScalar := want[1:] // origins.allow is empty in the default
	if len(paths) != len(wantScalar) {
		t.Fatalf("paths %q, want %q", paths, wantScalar)
	}
	for i := range paths {
		if paths[i] != wantScalar[i] {
			t.Errorf("path %d = %q, want %q", i, paths[i], wantScalar[i])
		}
	}
	if back := changes(policy.Diff(policy.Default(), nil)); len(back) != len(got) {
		t.Errorf("Diff(Default(), nil) has %d changes, the other way %d", len(back), len(got))
	}
}

// TestDiffCoversEveryLeafField changes every leaf the descriptor lists, so a
// field added to the proto is only covered if Diff walks it generically.
func TestDiffCoversEveryLeafField(t *testing.T) {
	from := policy.Default()
	to := proto.Clone(from).(*wsfleetv1.Policy)
	to.Origins.Allow = []string{"https://a.com"}
	to.Origins.AllowMissing = !to.Origins.AllowMissing
	to.Heartbeat.Interval = durationpb.New(26 * time.Second)
	to.Heartbeat.Timeout = durationpb.New(61 * time.Second)
	l := to.Limits
	l.MaxConnections++
	l.MaxConnectionsPerIp++
	l.HandshakesPerSecond++
	l.HandshakeBurst++
	l.MessagesPerSecond++
	l.MessageBurst++
	l.MaxMessageBytes++
	b := to.Breaker
	b.FailureRatio += 0.1
	b.MinSamples++
	b.Window = durationpb.New(11 * time.Second)
	b.OpenDuration = durationpb.New(6 * time.Second)
	b.HalfOpenProbes++
	to.Handshake.RejectWith = wsfleetv1.RejectMode_REJECT_MODE_CLOSE
	to.Approval.Required = true

	var paths []string
	for _, c := range policy.Diff(from, to) {
		paths = append(paths, c.GetField())
	}
	want := leafPaths(t)
	if len(paths) != len(want) {
		t.Fatalf("Diff reported %q, want one change per leaf %q (did the proto grow a field this test does not change?)", paths, want)
	}
	for i := range want {
		if paths[i] != want[i] {
			t.Errorf("change %d is on %q, want %q", i, paths[i], want[i])
		}
	}
}

// leafPaths lists the policy's leaf field paths in field order, walking the
// descriptor the way an operator reads a policy file.
func leafPaths(t *testing.T) []string {
	t.Helper()
	var out []string
	var walk func(prefix string, md protoreflect.MessageDescriptor)
	walk = func(prefix string, md protoreflect.MessageDescriptor) {
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			path := prefix + string(fd.Name())
			if m := fd.Message(); m != nil && !fd.IsList() && m.FullName() != "google.protobuf.Duration" {
				walk(path+".", m)
				continue
			}
			out = append(out, path)
		}
	}
	walk("", (&wsfleetv1.Policy{}).ProtoReflect().Descriptor())
	return out
}

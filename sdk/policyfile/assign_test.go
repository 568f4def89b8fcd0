package policyfile_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestPathsAreEveryLeafInProtoOrder(t *testing.T) {
	want := []string{
		"origins.allow", "origins.allow_missing",
		"heartbeat.interval", "heartbeat.timeout",
		"limits.max_connections", "limits.max_connections_per_ip", "limits.handshakes_per_second",
		"limits.handshake_burst", "limits.messages_per_second", "limits.message_burst", "limits.max_message_bytes",
		"breaker.failure_ratio", "breaker.min_samples", "breaker.window", "breaker.open_duration", "breaker.half_open_probes",
		"handshake.reject_with", "approval.required",
	}
	if got := policyfile.Paths(); !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func assignments(t *testing.T, args ...string) []policyfile.Assignment {
	t.Helper()
	out := make([]policyfile.Assignment, len(args))
	for i, a := range args {
		as, err := policyfile.ParseAssignment(a)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = as
	}
	return out
}

func TestAssignChangesOnlyTheNamedFields(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(p *wsfleetv1.Policy) // applied to staging
	}{
		{"a duration is read as in a file", []string{"heartbeat.interval=10s"},
			func(p *wsfleetv1.Policy) { p.Heartbeat.Interval = durationpb.New(10 * time.Second) }},
		{"a list is read from comma-separated values", []string{"origins.allow=https://a.example.com, https://*.b.example.com"},
			func(p *wsfleetv1.Policy) {
				p.Origins.Allow = []string{"https://a.example.com", "https://*.b.example.com"}
			}},
		{"a list is read from a JSON list", []string{`origins.allow=["https://a.example.com","https://b.example.com"]`},
			func(p *wsfleetv1.Policy) {
				p.Origins.Allow = []string{"https://a.example.com", "https://b.example.com"}
			}},
		{"[] is an empty list", []string{"origins.allow=[]"},
			func(p *wsfleetv1.Policy) { p.Origins.Allow = nil }},
		{"a star alone is the allow-everything origin, not a YAML alias", []string{"origins.allow=*"},
			func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"*"} }},
		{"a boolean", []string{"origins.allow_missing=false"},
			func(p *wsfleetv1.Policy) { p.Origins.AllowMissing = false }},
		{"a ratio", []string{"breaker.failure_ratio=0.25"},
			func(p *wsfleetv1.Policy) { p.Breaker.FailureRatio = 0.25 }},
		{"several fields at once", []string{"limits.max_connections=5000", "breaker.window=1m30s"},
			func(p *wsfleetv1.Policy) {
				p.Limits.MaxConnections = 5000
				p.Breaker.Window = durationpb.New(90 * time.Second)
			}},
		{"a camelCase path names the same field", []string{"limits.maxConnectionsPerIp=7"},
			func(p *wsfleetv1.Policy) { p.Limits.MaxConnectionsPerIp = 7 }},
		{"the last assignment to a field wins", []string{"limits.message_burst=1", "limits.message_burst=2"},
			func(p *wsfleetv1.Policy) { p.Limits.MessageBurst = 2 }},
		{"a value may hold an equals sign", []string{"origins.allow=https://a.example.com"},
			func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"https://a.example.com"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := stagingPolicy()
			got, err := policyfile.Assign(base, assignments(t, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			want := stagingPolicy()
			tt.want(want)
			if !proto.Equal(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
			if !proto.Equal(base, stagingPolicy()) {
				t.Errorf("Assign changed its input: %v", base)
			}
		})
	}
}

func stagingPolicy() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = []string{"https://staging.example.com"}
	p.Limits.MaxConnections = 300
	return p
}

func TestAssignRefusesWhatAFileWouldRefuse(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		want   error
		naming []string
	}{
		{"an unknown path lists the valid ones", []string{"heartbeat.intervl=10s"}, policyfile.ErrUnknownField,
			[]string{"heartbeat.intervl: unknown field", "heartbeat.interval, heartbeat.timeout"}},
		{"an unknown group", []string{"limit.max_connections=1"}, policyfile.ErrUnknownField,
			[]string{"limit.max_connections: unknown field"}},
		{"a group is not a value", []string{"heartbeat=10s"}, policyfile.ErrUnknownField,
			[]string{"heartbeat: is a group of fields", "heartbeat.interval"}},
		{"a path below a value", []string{"heartbeat.interval.seconds=3"}, policyfile.ErrUnknownField,
			[]string{"heartbeat.interval.seconds: unknown field"}},
		{"a duration that does not parse", []string{"heartbeat.interval=10 seconds"}, policyfile.ErrInvalidDuration,
			[]string{`heartbeat.interval: invalid duration "10 seconds"`}},
		{"a number that is not one", []string{"limits.max_connections=lots"}, policyfile.ErrWrongType,
			[]string{`limits.max_connections: want an integer, got string "lots"`}},
		{"a number out of range", []string{"limits.max_connections=99999999999"}, policyfile.ErrInvalidValue,
			[]string{"limits.max_connections: 99999999999 is out of range"}},
		{"an empty value", []string{"limits.max_connections="}, policyfile.ErrInvalidValue,
			[]string{"limits.max_connections: empty value"}},
		{"an empty list value says how to write one", []string{"origins.allow="}, policyfile.ErrInvalidValue,
			[]string{"origins.allow: empty value (write [] for an empty list)"}},
		{"null is not a value", []string{"limits.max_connections=null"}, policyfile.ErrInvalidValue,
			[]string{`limits.max_connections: "null" is not a value`}},
		{"a list element of the wrong type", []string{"origins.allow=[1]"}, policyfile.ErrWrongType,
			[]string{"origins.allow[0]: want a string, got number 1"}},
		{"every problem is reported", []string{"heartbeat.timeout=soon", "limits.nope=1"}, policyfile.ErrUnknownField,
			[]string{`heartbeat.timeout: invalid duration "soon"`, "limits.nope: unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policyfile.Assign(policy.Default(), assignments(t, tt.args...))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			for _, s := range tt.naming {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
}

func TestParseAssignment(t *testing.T) {
	tests := []struct {
		in         string
		path, want string
		ok         bool
	}{
		{"heartbeat.interval=10s", "heartbeat.interval", "10s", true},
		{"origins.allow=https://a.example.com?x=1", "origins.allow", "https://a.example.com?x=1", true},
		{" limits.max_connections =5", "limits.max_connections", "5", true},
		{"heartbeat.interval", "", "", false},
		{"=10s", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := policyfile.ParseAssignment(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (a.Path != tt.path || a.Value != tt.want) {
				t.Errorf("got %+v, want %s=%s", a, tt.path, tt.want)
			}
		})
	}
}

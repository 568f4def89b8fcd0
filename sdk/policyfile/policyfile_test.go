package policyfile_test

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// richPolicy sets every field to a non-default value, with durations that
// need every unit FormatDuration writes.
func richPolicy() *wsfleetv1.Policy {
	return &wsfleetv1.Policy{
		Origins: &wsfleetv1.OriginPolicy{
			Allow:        []string{"https://app.example.com", "https://*.example.com", "http://localhost:3000"},
			AllowMissing: false,
		},
		Heartbeat: &wsfleetv1.HeartbeatPolicy{
			Interval: durationpb.New(1500 * time.Millisecond),
			Timeout:  durationpb.New(time.Minute + 30*time.Second),
		},
		Limits: &wsfleetv1.LimitsPolicy{
			MaxConnections:      math.MaxInt32,
			MaxConnectionsPerIp: 7,
			HandshakesPerSecond: 250,
			HandshakeBurst:      500,
			MessagesPerSecond:   10,
			MessageBurst:        0,
			MaxMessageBytes:     1 << 20,
		},
		Breaker: &wsfleetv1.BreakerPolicy{
			FailureRatio:   0.125,
			MinSamples:     50,
			Window:         durationpb.New(2*time.Hour + 5*time.Minute),
			OpenDuration:   durationpb.New(500 * time.Millisecond),
			HalfOpenProbes: 1,
		},
		Handshake: &wsfleetv1.HandshakePolicy{RejectWith: wsfleetv1.RejectMode_REJECT_MODE_CLOSE},
		Approval:  &wsfleetv1.ApprovalPolicy{Required: true},
	}
}

func richRevision() *wsfleetv1.PolicyRevision {
	return &wsfleetv1.PolicyRevision{
		Pool:       "edge-eu",
		Revision:   1 << 40,
		Author:     "alice",
		CreateTime: timestamppb.New(time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)),
		Message:    "allow staging & <preview>\nsecond line",
		Policy:     richPolicy(),
		RollbackOf: 12,
	}
}

type encoder func(proto.Message) ([]byte, error)

var encoders = []struct {
	name string
	enc  encoder
}{
	{"yaml", policyfile.EncodeYAML},
	{"json", policyfile.EncodeJSON},
}

func TestRoundTrip(t *testing.T) {
	policies := []struct {
		name   string
		policy *wsfleetv1.Policy
	}{
		{"the default policy", policy.Default()},
		{"a policy with every field set", richPolicy()},
		{"a policy with an allow-everything origin and no origin-less clients", allowEverything()},
	}
	for _, e := range encoders {
		for _, p := range policies {
			t.Run(p.name+" survives "+e.name, func(t *testing.T) {
				data, err := e.enc(p.policy)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := policyfile.Decode(data)
				if err != nil {
					t.Fatalf("%v\n%s", err, data)
				}
				if !proto.Equal(p.policy, doc.Policy) {
					t.Errorf("got %v, want %v", doc.Policy, p.policy)
				}
				if doc.Pool != "" || doc.Revision != 0 {
					t.Errorf("a bare policy decoded with pool %q revision %d", doc.Pool, doc.Revision)
				}
			})
		}
		t.Run("a revision document survives "+e.name, func(t *testing.T) {
			rev := richRevision()
			data, err := e.enc(rev)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := policyfile.Decode(data)
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if !proto.Equal(rev.Policy, doc.Policy) {
				t.Errorf("got %v, want %v", doc.Policy, rev.Policy)
			}
			if doc.Pool != rev.Pool || doc.Revision != rev.Revision {
				t.Errorf("got pool %q revision %d, want %q %d", doc.Pool, doc.Revision, rev.Pool, rev.Revision)
			}
		})
	}
}

func allowEverything() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins = &wsfleetv1.OriginPolicy{Allow: []string{"*"}}
	return p
}

func TestEncodeYAMLWritesACompletePolicyFile(t *testing.T) {
	rev := &wsfleetv1.PolicyRevision{
		Pool:       "default",
		Revision:   3,
		Author:     "bob",
		CreateTime: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		Message:    "tighten limits",
		Policy: &wsfleetv1.Policy{
			Origins:   &wsfleetv1.OriginPolicy{},
			Heartbeat: &wsfleetv1.HeartbeatPolicy{Interval: durationpb.New(90 * time.Second), Timeout: durationpb.New(500 * time.Millisecond)},
			Limits:    &wsfleetv1.LimitsPolicy{MaxConnections: 10},
		},
	}
	got, err := policyfile.EncodeYAML(rev)
	if err != nil {
		t.Fatal(err)
	}
	want := `pool: default
revision: 3
author: bob
create_time: "2026-01-02T03:04:05Z"
message: tighten limits
policy:
  origins:
    allow: []
    allow_missing: false
  heartbeat:
    interval: 1m30s
    timeout: 500ms
  limits:
    max_connections: 10
    max_connections_per_ip: 0
    handshakes_per_second: 0
    handshake_burst: 0
    messages_per_second: 0
    message_burst: 0
    max_message_bytes: 0
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeJSON(t *testing.T) {
	tests := []struct {
		name string
		msg  proto.Message
		want string
	}{
		{
			name: "a revision is written in proto field order with int64 as numbers",
			msg: &wsfleetv1.PolicyRevision{
				Pool: "default", Revision: 1 << 40, Author: "ci&cd",
				CreateTime: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)),
				Policy:     &wsfleetv1.Policy{Origins: &wsfleetv1.OriginPolicy{Allow: []string{"https://a.example.com"}}},
				RollbackOf: 2,
			},
			want: `{
  "pool": "default",
  "revision": 1099511627776,
  "author": "ci&cd",
  "create_time": "2026-01-02T03:04:05.000006Z",
  "policy": {
    "origins": {
      "allow": [
        "https://a.example.com"
      ],
      "allow_missing": false
    }
  },
  "rollback_of": 2
}
`,
		},
		{
			name: "a response leaves zero scalars out and writes enums by name",
			msg: &wsfleetv1.ApplyPolicyResponse{
				Revision: &wsfleetv1.PolicyRevision{Pool: "default", Revision: 2},
				Changes: []*wsfleetv1.FieldChange{{
					Field: "origins.allow", Kind: wsfleetv1.FieldChange_KIND_ADDED, NewValue: `"https://b.example.com"`,
				}},
			},
			want: `{
  "revision": {
    "pool": "default",
    "revision": 2
  },
  "changes": [
    {
      "field": "origins.allow",
      "kind": "KIND_ADDED",
      "new_value": "\"https://b.example.com\""
    }
  ]
}
`,
		},
		{
			name: "an empty message is an empty object",
			msg:  &wsfleetv1.ValidatePolicyResponse{},
			want: "{}\n",
		},
		{
			name: "special floats are written as protojson strings",
			msg:  &wsfleetv1.BreakerPolicy{FailureRatio: math.Inf(1)},
			want: "{\n  \"failure_ratio\": \"Infinity\"\n}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policyfile.EncodeJSON(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestEncodeRefusesWhatCannotBeReadBack(t *testing.T) {
	tests := []struct {
		name string
		msg  proto.Message
	}{
		{"a duration with mixed signs", &wsfleetv1.HeartbeatPolicy{Interval: &durationpb.Duration{Seconds: 1, Nanos: -1}}},
		{"a timestamp past year 9999", &wsfleetv1.PolicyRevision{CreateTime: &timestamppb.Timestamp{Seconds: math.MaxInt64}}},
		{"a well-known type the format does not define", &anypb.Any{TypeUrl: "x"}},
	}
	for _, e := range encoders {
		for _, tt := range tests {
			t.Run(tt.name+" in "+e.name, func(t *testing.T) {
				if _, err := e.enc(tt.msg); !errors.Is(err, policyfile.ErrUnsupported) {
					t.Errorf("got %v, want ErrUnsupported", err)
				}
			})
		}
	}
}

func TestDecodeDurations(t *testing.T) {
	tests := []struct {
		name    string
		written string
		want    *durationpb.Duration
	}{
		{"seconds in Go syntax", "10s", durationpb.New(10 * time.Second)},
		{"minutes and seconds in Go syntax", "1m30s", durationpb.New(90 * time.Second)},
		{"milliseconds in Go syntax", "500ms", durationpb.New(500 * time.Millisecond)},
		{"hours in Go syntax", "2h", durationpb.New(2 * time.Hour)},
		{"fractional seconds", "1.5s", durationpb.New(1500 * time.Millisecond)},
		{"protojson's nanosecond form", "1.000000001s", durationpb.New(time.Second + time.Nanosecond)},
		{"protojson beyond time.Duration's range", "315576000000s", &durationpb.Duration{Seconds: 315576000000}},
		{"a negative duration", "-2s", durationpb.New(-2 * time.Second)},
		{"zero", "0s", durationpb.New(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name+" reads "+tt.written, func(t *testing.T) {
			doc, err := policyfile.Decode([]byte("heartbeat:\n  interval: " + tt.written + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.Policy.GetHeartbeat().GetInterval(); !proto.Equal(tt.want, got) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}

			// And it writes back to something that reads the same.
			out, err := policyfile.EncodeYAML(doc.Policy)
			if err != nil {
				t.Fatal(err)
			}
			again, err := policyfile.Decode(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !proto.Equal(doc.Policy, again.Policy) {
				t.Errorf("round trip through\n%s\ngave %v", out, again.Policy)
			}
		})
	}
}

func TestDecodeAcceptsBothFieldNameStyles(t *testing.T) {
	snake := `
origins:
  allow: ["https://a.example.com"]
  allow_missing: true
limits:
  max_connections_per_ip: 5
breaker:
  open_duration: 3s
`
	camel := `{
  "origins": {"allow": ["https://a.example.com"], "allowMissing": true},
  "limits": {"maxConnectionsPerIp": 5},
  "breaker": {"openDuration": "3s"}
}`
	a, err := policyfile.Decode([]byte(snake))
	if err != nil {
		t.Fatal(err)
	}
	b, err := policyfile.Decode([]byte(camel))
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Default()
	want.Origins.Allow = []string{"https://a.example.com"}
	want.Limits.MaxConnectionsPerIp = 5
	want.Breaker.OpenDuration = durationpb.New(3 * time.Second)
	if !proto.Equal(a.Policy, want) {
		t.Errorf("snake_case: got %v, want %v", a.Policy, want)
	}
	if !proto.Equal(b.Policy, want) {
		t.Errorf("lowerCamelCase: got %v, want %v", b.Policy, want)
	}
}

func TestDecodeReadsProtojsonOutput(t *testing.T) {
	// Another tool may hand us protojson: camelCase names, int64 as strings,
	// durations as "1.500s". It must write zero values (EmitUnpopulated,
	// grpcurl -emit-defaults): a field left out takes its default.
	rev := richRevision()
	data, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(rev)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := policyfile.Decode(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !proto.Equal(rev.Policy, doc.Policy) || doc.Pool != rev.Pool || doc.Revision != rev.Revision {
		t.Errorf("got %+v, want pool %q revision %d policy %v", doc, rev.Pool, rev.Revision, rev.Policy)
	}
}

func TestDecodeRevisionDocument(t *testing.T) {
	doc, err := policyfile.Decode([]byte(`
pool: staging
revision: 7
author: carol
create_time: 2026-01-02T03:04:05+02:00
message: "yes"
rollback_of: 3
policy:
  origins:
    allow: []
`))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Pool != "staging" || doc.Revision != 7 {
		t.Errorf("got pool %q revision %d, want staging 7", doc.Pool, doc.Revision)
	}
	if want := policy.Default(); !proto.Equal(want, doc.Policy) {
		t.Errorf("got %v, want %v", doc.Policy, want)
	}
}

func TestDecodeIntegersWrittenAsFloats(t *testing.T) {
	doc, err := policyfile.Decode([]byte(`{"limits": {"max_connections": 1e3, "message_burst": 20.0, "max_message_bytes": "4096"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Default().GetLimits()
	want.MaxConnections, want.MessageBurst, want.MaxMessageBytes = 1000, 20, 4096
	if got := doc.Policy.GetLimits(); !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		sentinel error
		// Every string must appear in the error text: the path and what is wrong.
		want []string
	}{
		{"empty input is an error", "", policyfile.ErrEmpty, []string{"empty"}},
		{"blank input is an error", " \n\t\n", policyfile.ErrEmpty, []string{"empty"}},
		{"a file of comments is an error", "# nothing here\n", policyfile.ErrEmpty, []string{"empty"}},
		{"a null document is an error", "null", policyfile.ErrEmpty, []string{"empty"}},
		{"malformed YAML is a syntax error", "origins: [unclosed\n", policyfile.ErrSyntax, []string{"syntax error"}},
		{"a key given twice is a syntax error", "origins: {}\norigins: {}\n", policyfile.ErrSyntax, []string{"origins"}},
		{"a list at the top level is the wrong type", "- a\n- b\n", policyfile.ErrWrongType, []string{"top level", "list"}},
		{"an unknown top-level field names itself", "origin: {}\n", policyfile.ErrUnknownField, []string{"origin: unknown field", "origins, heartbeat, limits, breaker"}},
		{"an unknown nested field names its path", "heartbeat:\n  intervall: 10s\n", policyfile.ErrUnknownField, []string{"heartbeat.intervall: unknown field", "interval, timeout"}},
		{"a duration in words names its path", "heartbeat:\n  interval: 10 seconds\n", policyfile.ErrInvalidDuration, []string{`heartbeat.interval: invalid duration "10 seconds"`}},
		{"a bare number as a duration names its path", "breaker:\n  window: 10\n", policyfile.ErrInvalidDuration, []string{`breaker.window: invalid duration 10`, `"10s"`}},
		{"a mapping as a duration names its path", "breaker:\n  window: {seconds: 10}\n", policyfile.ErrInvalidDuration, []string{`breaker.window: invalid duration (a mapping)`}},
		{"a string where a number belongs names its path", "limits:\n  max_connections: lots\n", policyfile.ErrWrongType, []string{`limits.max_connections: want an integer, got string "lots"`}},
		{"an int32 overflow names its path", "limits:\n  max_connections: 3000000000\n", policyfile.ErrInvalidValue, []string{`limits.max_connections: 3000000000 is out of range`}},
		{"a fraction where an integer belongs names its path", "limits:\n  message_burst: 1.5\n", policyfile.ErrWrongType, []string{`limits.message_burst: want an integer, got number 1.5`}},
		{"a string where a ratio belongs names its path", "breaker:\n  failure_ratio: half\n", policyfile.ErrWrongType, []string{`breaker.failure_ratio: want a number, got string "half"`}},
		{"a string where a bool belongs names its path", "origins:\n  allow_missing: sometimes\n", policyfile.ErrWrongType, []string{`origins.allow_missing: want true or false, got string "sometimes"`}},
		{"a number in the origin list names its index", "origins:\n  allow: [\"https://a.example.com\", 42]\n", policyfile.ErrWrongType, []string{`origins.allow[1]: want a string, got number 42`}},
		{"a null in the origin list names its index", "origins:\n  allow: [null]\n", policyfile.ErrWrongType, []string{`origins.allow[0]: want a string, got null`}},
		{"a single origin instead of a list names its path", "origins:\n  allow: https://a.example.com\n", policyfile.ErrWrongType, []string{`origins.allow: want a list`}},
		{"a scalar where a group belongs names its path", "limits: 5\n", policyfile.ErrWrongType, []string{`limits: want a mapping, got number 5`}},
		{"a field given under both names names its path", "origins:\n  allow_missing: true\n  allowMissing: false\n", policyfile.ErrInvalidValue, []string{`origins.allow_missing: given twice`}},
		{"a bad field in a revision document names the full path", "pool: default\npolicy:\n  heartbeat:\n    timeout: soon\n", policyfile.ErrInvalidDuration, []string{`policy.heartbeat.timeout: invalid duration "soon"`}},
		{"an unknown field in a revision document names itself", "pool: default\nrevison: 3\npolicy: {}\n", policyfile.ErrUnknownField, []string{`revison: unknown field`}},
		{"a revision that is not a number names its path", "revision: three\npolicy: {}\n", policyfile.ErrWrongType, []string{`revision: want an integer, got string "three"`}},
		{"a bad timestamp names its path", "create_time: yesterday\npolicy: {}\n", policyfile.ErrInvalidTimestamp, []string{`create_time: invalid timestamp "yesterday"`}},
		{"a revision document with a null policy is an error", "pool: default\npolicy:\n", policyfile.ErrWrongType, []string{`policy: want a mapping, got null`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := policyfile.Decode([]byte(tt.input))
			if err == nil {
				t.Fatalf("decoded to %v, want an error", doc)
			}
			if doc != nil {
				t.Errorf("got a document %v along with the error", doc)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q is not %v", err, tt.sentinel)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	_, err := policyfile.Decode([]byte(`
origins:
  allow: [1]
heartbeat:
  interval: 10 seconds
  timeout: 1 minute
limits:
  max_conections: 5
`))
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("got %v, want several joined errors", err)
	}
	var paths []string
	for _, e := range joined.Unwrap() {
		var fe *policyfile.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		paths = append(paths, fe.Path)
	}
	// In proto field order, so the list reads like the file.
	want := []string{"origins.allow[0]", "heartbeat.interval", "heartbeat.timeout", "limits.max_conections"}
	if !slices.Equal(paths, want) {
		t.Errorf("got paths %q, want %q", paths, want)
	}
}

func TestAwkwardStringsSurvive(t *testing.T) {
	long := strings.Repeat("word ", 30) + "and  two  spaces " + strings.Repeat("x", 100)
	for _, s := range []string{
		"", " leading", "trailing ", "a\n", "\n\nx\n\n", " \n ", "tab\there", "~", "null", "yes", "No", "1e3",
		"0x10", "- dash", "key: value", "# hash", "&anchor", "*alias", "!tag", "%percent", "@at", "`tick",
		"\"quoted\"", "'single'", `back\slash`, "\x7f", "\u2028", "\u0085", "\ufeffbom", "emoji 🚀", long,
		"2026-01-02T03:04:05Z", "1:30", "<<",
	} {
		p := policy.Default()
		p.Origins.Allow = []string{s, "x" + s}
		rev := &wsfleetv1.PolicyRevision{Pool: s, Message: s, Policy: p}
		for _, e := range encoders {
			t.Run(e.name+" keeps "+strconv.Quote(s), func(t *testing.T) {
				data, err := e.enc(rev)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := policyfile.Decode(data)
				if err != nil {
					t.Fatalf("%v\n%s", err, data)
				}
				if doc.Pool != s || !proto.Equal(doc.Policy, rev.Policy) {
					t.Errorf("got pool %q policy %v from\n%s", doc.Pool, doc.Policy, data)
				}
			})
		}
	}
}

func TestRejectWithReadsAndWritesAsOperatorsTypeIt(t *testing.T) {
	tests := []struct {
		name string
		file string
		want wsfleetv1.RejectMode
	}{
		{"close", "handshake: {reject_with: close}\n", wsfleetv1.RejectMode_REJECT_MODE_CLOSE},
		{"http", "handshake: {reject_with: http}\n", wsfleetv1.RejectMode_REJECT_MODE_HTTP},
		{"upper case", "handshake: {reject_with: CLOSE}\n", wsfleetv1.RejectMode_REJECT_MODE_CLOSE},
		{"the proto name", "handshake: {reject_with: REJECT_MODE_CLOSE}\n", wsfleetv1.RejectMode_REJECT_MODE_CLOSE},
		{"protojson's camelCase", `{"handshake": {"rejectWith": "REJECT_MODE_CLOSE"}}`, wsfleetv1.RejectMode_REJECT_MODE_CLOSE},
		{"left out is the default, http", "limits: {}\n", wsfleetv1.RejectMode_REJECT_MODE_HTTP},
	}
	for _, tt := range tests {
		t.Run("a file saying "+tt.name+" reads as "+tt.want.String(), func(t *testing.T) {
			doc, err := policyfile.Decode([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.Policy.GetHandshake().GetRejectWith(); got != tt.want {
				t.Errorf("reject_with = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("an unknown mode is refused naming the field and the choices", func(t *testing.T) {
		_, err := policyfile.Decode([]byte("handshake: {reject_with: udp}\n"))
		var fe *policyfile.FieldError
		if !errors.As(err, &fe) || fe.Path != "handshake.reject_with" || !errors.Is(err, policyfile.ErrInvalidValue) {
			t.Fatalf("error %v, want a FieldError on handshake.reject_with", err)
		}
		if !strings.Contains(err.Error(), "http, close") {
			t.Errorf("error %q does not list the choices", err)
		}
	})

	t.Run("a policy is written with the short form", func(t *testing.T) {
		out, err := policyfile.EncodeYAML(richPolicy())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "handshake:\n  reject_with: close\n") {
			t.Errorf("YAML does not say reject_with: close:\n%s", out)
		}
	})

	t.Run("a revision stored before the field existed prints and applies back as http", func(t *testing.T) {
		old := policy.Default()
		old.Handshake = nil
		out, err := policyfile.EncodeYAML(old)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := policyfile.Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		if policy.RejectWith(doc.Policy) != policy.RejectWith(old) || !proto.Equal(doc.Policy, policy.Default()) {
			t.Errorf("got %v, want the default policy", doc.Policy)
		}
	})

	t.Run("wsctl policy set handshake.reject_with=close", func(t *testing.T) {
		got, err := policyfile.Assign(policy.Default(), []policyfile.Assignment{{Path: "handshake.reject_with", Value: "close"}})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetHandshake().GetRejectWith() != wsfleetv1.RejectMode_REJECT_MODE_CLOSE {
			t.Errorf("got %v", got)
		}
	})
}

package policyfile_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestOmittedFieldsTakeTheirDefaults(t *testing.T) {
	tests := []struct {
		name string
		file string
		want func(p *wsfleetv1.Policy) // applied to policy.Default()
	}{
		{"a file with only origins.allow gets every other field at its default",
			"origins:\n  allow: [\"https://app.example.com\"]\n",
			func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"https://app.example.com"} }},
		{"an explicit allow_missing false wins over the default true",
			"origins: {allow_missing: false}\n",
			func(p *wsfleetv1.Policy) { p.Origins.AllowMissing = false }},
		{"an explicit empty allow list is kept",
			"origins: {allow: [], allow_missing: false}\n",
			func(p *wsfleetv1.Policy) { p.Origins.Allow, p.Origins.AllowMissing = []string{}, false }},
		{"an explicit zero is kept, for validation to refuse",
			"limits: {max_connections: 0}\n",
			func(p *wsfleetv1.Policy) { p.Limits.MaxConnections = 0 }},
		{"a group given in part keeps its other fields at their defaults",
			"heartbeat: {interval: 5s}\n",
			func(p *wsfleetv1.Policy) { p.Heartbeat.Interval = durationpb.New(5 * time.Second) }},
		{"a group given as null is the default group",
			"heartbeat: null\nbreaker: {window: 1m}\n",
			func(p *wsfleetv1.Policy) { p.Breaker.Window = durationpb.New(time.Minute) }},
		{"a field given as null is its default",
			"origins: {allow: null, allow_missing: false}\n",
			func(p *wsfleetv1.Policy) { p.Origins.AllowMissing = false }},
		{"an empty group is the default group",
			"limits: {}\n",
			func(*wsfleetv1.Policy) {}},
		{"an empty mapping is the default policy",
			"{}\n",
			func(*wsfleetv1.Policy) {}},
		{"camelCase names count as given",
			`{"origins": {"allowMissing": false}}`,
			func(p *wsfleetv1.Policy) { p.Origins.AllowMissing = false }},
		{"a revision document's policy gets the defaults too",
			"pool: edge\nrevision: 3\npolicy:\n  limits: {message_burst: 7}\n",
			func(p *wsfleetv1.Policy) { p.Limits.MessageBurst = 7 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := policyfile.Decode([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			want := policy.Default()
			tt.want(want)
			if !proto.Equal(doc.Policy, want) {
				t.Errorf("got  %v\nwant %v", doc.Policy, want)
			}
		})
	}
}

func TestAPartialFileIsOnlyAsWrongAsItsFields(t *testing.T) {
	// The README's example: four fields given, four broken.
	doc, err := policyfile.Decode([]byte(`origins:
  allow: ["https://app.example.com", "https://*.*.example.com"]
heartbeat: {interval: 30s, timeout: 30s}
limits: {max_connections: -1}
breaker: {failure_ratio: 1.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range policy.Validate(doc.Policy) {
		got = append(got, v.GetField())
	}
	want := []string{"origins.allow[1]", "heartbeat.timeout", "limits.max_connections", "breaker.failure_ratio"}
	if len(got) != len(want) {
		t.Fatalf("violations on %v, want exactly %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("violation %d on %s, want %s", i, got[i], want[i])
		}
	}
}

func TestDefaultsAreNotShared(t *testing.T) {
	a, err := policyfile.Decode([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	a.Policy.Origins.Allow = append(a.Policy.Origins.Allow, "https://changed.example.com")
	a.Policy.Heartbeat.Interval.Seconds = 1
	b, err := policyfile.Decode([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(b.Policy, policy.Default()) {
		t.Errorf("changing one decoded policy changed the next: %v", b.Policy)
	}
}

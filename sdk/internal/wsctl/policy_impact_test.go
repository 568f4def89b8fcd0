package wsctl

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestTheDryRunImpactTable(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	imp := &wsfleetv1.PolicyImpact{
		WindowStart: timestamppb.New(t0), WindowEnd: timestamppb.New(t0.Add(time.Hour)), NodesReporting: 2,
		NewlyRejected:        []*wsfleetv1.OriginImpact{{Origin: "https://b.example", Handshakes: 42}, {Origin: "", Handshakes: 3}},
		NewlyAdmitted:        []*wsfleetv1.OriginImpact{{Origin: "https://c.example", Handshakes: 7}},
		UnattributedAccepted: 5,
		Limits: []*wsfleetv1.LimitImpact{
			{Field: "limits.max_connections", Limit: 10, OldLimit: 100, Peak: 12, NodeId: "edge-1", PeakMinute: timestamppb.New(t0.Add(3 * time.Minute)), Exceeded: true},
			{Field: "limits.max_message_bytes", Limit: 65536, OldLimit: 65536, Peak: 900, NodeId: "edge-2"},
			{Field: "limits.messages_per_second", Limit: 100, OldLimit: 100},
		},
		MissingReplicas: []string{"10.0.0.2:7000: no answer within 2s"},
	}
	var b strings.Builder
	if err := writeImpact(&b, imp); err != nil {
		t.Fatal(err)
	}
	want := `
impact on the traffic of 2026-11-30T12:00:00Z .. 2026-11-30T13:00:00Z (2 nodes reporting):
  would exceed:        limits.max_connections 10       peak 12 on node edge-1 at 2026-11-30T12:03:00Z (now 100)
  would newly reject:  https://b.example               42 handshakes in the last hour
  would newly reject:  (no Origin header)              3 handshakes in the last hour
  would newly admit:   https://c.example               7 handshakes rejected in the last hour
  within:              limits.max_message_bytes 65536  peak 900 on node edge-2
  within:              limits.messages_per_second 100  no traffic seen
  5 accepted handshakes were not attributed to an origin (node or control-plane origin caps): their fate is unknown
  missing: replica 10.0.0.2:7000: no answer within 2s
`
	assertEqual(t, "impact", b.String(), want)

	b.Reset()
	if err := writeImpact(&b, &wsfleetv1.PolicyImpact{
		WindowStart: timestamppb.New(t0), WindowEnd: timestamppb.New(t0.Add(time.Hour)), NodesReporting: 1,
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "no origin newly rejected or admitted, no limit exceeded") {
		t.Fatalf("an empty impact says nothing:\n%s", b.String())
	}
}

// After a control-plane restart (traffic is kept in memory) a dry run
// sees no sample: it must not read as "nothing would change".
func TestADryRunWithoutTrafficSaysSo(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		imp     *wsfleetv1.PolicyImpact
		want    []string
		wantNot []string
	}{
		{"no node reporting is no traffic seen, not no change", &wsfleetv1.PolicyImpact{
			WindowStart: timestamppb.New(t0.Add(55 * time.Minute)), WindowEnd: timestamppb.New(t0.Add(time.Hour)),
			Limits: []*wsfleetv1.LimitImpact{{Field: "limits.max_connections", Limit: 10, OldLimit: 100}},
		}, []string{"no traffic seen: no node reported", "the window is short: 5m0s of the last 1h0m0s", "none from before 2026-11-30T12:55:00Z"},
			[]string{"no origin newly rejected or admitted, no limit exceeded"}},
		{"a whole hour with traffic is not short", &wsfleetv1.PolicyImpact{
			WindowStart: timestamppb.New(t0), WindowEnd: timestamppb.New(t0.Add(time.Hour).Add(30 * time.Second)), NodesReporting: 3,
		}, []string{"no origin newly rejected or admitted, no limit exceeded"}, []string{"no traffic seen: no node", "window is short"}},
		{"a short window with traffic says it is short", &wsfleetv1.PolicyImpact{
			WindowStart: timestamppb.New(t0.Add(40 * time.Minute)), WindowEnd: timestamppb.New(t0.Add(time.Hour)), NodesReporting: 1,
		}, []string{"the window is short: 20m0s", "no origin newly rejected or admitted"}, []string{"no traffic seen: no node"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeImpact(&b, tc.imp); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q in:\n%s", w, b.String())
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(b.String(), w) {
					t.Errorf("%q in:\n%s", w, b.String())
				}
			}
		})
	}
}

package impact

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	a = "https://a.example.com"
	b = "https://b.example.com"
	c = "https://c.example.com"
)

// pol is the default policy with this allowlist and max_connections.
func pol(allowMissing bool, maxConns int32, allow ...string) *wsfleetv1.Policy {
	p := proto.Clone(policy.Default()).(*wsfleetv1.Policy)
	p.Origins = &wsfleetv1.OriginPolicy{Allow: allow, AllowMissing: allowMissing}
	p.Limits.MaxConnections = maxConns
	return p
}

func accepted(pairs ...any) *wsfleetv1.TrafficSummaryResponse {
	r := &wsfleetv1.TrafficSummaryResponse{NodesReporting: 2, AcceptedOther: 9}
	for i := 0; i < len(pairs); i += 2 {
		r.Accepted = append(r.Accepted, &wsfleetv1.OriginCount{Origin: pairs[i].(string), Count: uint64(pairs[i+1].(int))})
	}
	return r
}

func rejections(pairs ...any) *wsfleetv1.TopErrorsResponse {
	r := &wsfleetv1.TopErrorsResponse{}
	for i := 0; i < len(pairs); i += 2 {
		r.Groups = append(r.Groups, &wsfleetv1.TopErrorsResponse_Group{Key: pairs[i].(string), Count: int64(pairs[i+1].(int))})
	}
	return r
}

func origins(s []*wsfleetv1.OriginImpact) map[string]int64 {
	m := map[string]int64{}
	for _, o := range s {
		m[o.GetOrigin()] = o.GetHandshakes()
	}
	return m
}

func TestOriginImpact(t *testing.T) {
	tests := []struct {
		name         string
		head, next   *wsfleetv1.Policy
		traffic      *wsfleetv1.TrafficSummaryResponse
		rejected     *wsfleetv1.TopErrorsResponse
		wantRejected map[string]int64
		wantAdmitted map[string]int64
	}{
		{
			name: "dropping an origin newly rejects its accepted handshakes only",
			head: pol(false, 100, a, b), next: pol(false, 100, a),
			traffic:      accepted(a, 10, b, 4),
			wantRejected: map[string]int64{b: 4},
		},
		{
			name: "adding an origin newly admits its origin_rejected count",
			head: pol(false, 100, a), next: pol(false, 100, a, c),
			traffic: accepted(a, 10), rejected: rejections(c, 6, "https://d.example.com", 2),
			wantAdmitted: map[string]int64{c: 6},
		},
		{
			name: "turning allow_missing off rejects the handshakes without an Origin header",
			head: pol(true, 100, a), next: pol(false, 100, a),
			traffic:      accepted(a, 3, "", 7),
			wantRejected: map[string]int64{"": 7},
		},
		{
			name: "a wildcard keeps its subdomains",
			head: pol(false, 100, a, "https://*.example.com"), next: pol(false, 100, "https://*.example.com"),
			traffic: accepted(a, 3, b, 2),
		},
		{
			name: "star admits every rejected origin, not the missing one",
			head: pol(false, 100, a), next: pol(false, 100, "*"),
			rejected:     rejections(b, 3, "", 5),
			wantAdmitted: map[string]int64{b: 3},
		},
		{
			name: "origins the head already refused are not newly rejected, nor already admitted ones newly admitted",
			head: pol(false, 100, a), next: pol(false, 100, a),
			traffic: accepted(b, 2), rejected: rejections(a, 4),
		},
		{
			name: "the control plane's (other) group is not an origin",
			head: pol(false, 100, a), next: pol(false, 100, "*"),
			rejected: rejections("(other)", 40),
		},
		{
			name:         "a new pool compares with nothing: what next refuses is newly rejected",
			next:         pol(false, 100, a),
			traffic:      accepted(a, 1, b, 2),
			wantRejected: map[string]int64{b: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traffic := tt.traffic
			if traffic == nil {
				traffic = accepted()
			}
			got, err := Compute(tt.head, tt.next, traffic, tt.rejected)
			if err != nil {
				t.Fatal(err)
			}
			for what, pair := range map[string][2]map[string]int64{
				"newly rejected": {origins(got.GetNewlyRejected()), tt.wantRejected},
				"newly admitted": {origins(got.GetNewlyAdmitted()), tt.wantAdmitted},
			} {
				g, w := pair[0], pair[1]
				if len(g) != len(w) {
					t.Fatalf("%s %v, want %v", what, g, w)
				}
				for o, n := range w {
					if g[o] != n {
						t.Fatalf("%s %v, want %v", what, g, w)
					}
				}
			}
			if got.GetUnattributedAccepted() != 9 || got.GetNodesReporting() != 2 {
				t.Fatalf("unattributed %d nodes %d", got.GetUnattributedAccepted(), got.GetNodesReporting())
			}
		})
	}
}

func TestLimitImpact(t *testing.T) {
	minute := timestamppb.New(time.Date(2026, 11, 30, 12, 3, 0, 0, time.UTC))
	traffic := accepted()
	traffic.Peaks = []*wsfleetv1.TrafficPeak{
		{Measure: "connections", Value: 120, NodeId: "n1", Minute: minute},
		{Measure: "message_bytes", Value: 4096, NodeId: "n2", Minute: minute},
	}
	tests := []struct {
		name     string
		maxConns int32
		exceeded bool
	}{
		{"a limit under the peak is exceeded", 100, true},
		{"a limit at the peak holds", 120, false},
		{"a limit over the peak holds", 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compute(pol(false, 500, a), pol(false, tt.maxConns, a), traffic, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.GetLimits()) != len(limitFields) {
				t.Fatalf("%d limits, want one per field", len(got.GetLimits()))
			}
			var li *wsfleetv1.LimitImpact
			for _, l := range got.GetLimits() {
				if l.GetField() == "limits.max_connections" {
					li = l
				}
				if l.GetField() == "limits.handshakes_per_second" && (l.GetPeak() != 0 || l.GetExceeded()) {
					t.Fatalf("a measure no sample reported: %v", l)
				}
			}
			if li.GetExceeded() != tt.exceeded || li.GetPeak() != 120 || li.GetNodeId() != "n1" || li.GetLimit() != int64(tt.maxConns) || li.GetOldLimit() != 500 || !proto.Equal(li.GetPeakMinute(), minute) {
				t.Fatalf("max_connections %v", li)
			}
			if tt.exceeded && got.GetLimits()[0] != li {
				t.Fatalf("the exceeded limit is not first: %v", got.GetLimits())
			}
		})
	}
}

// fakeSource answers with fixed figures and records the requests.
type fakeSource struct {
	traffic  *wsfleetv1.TrafficSummaryRequest
	top      *wsfleetv1.TopErrorsRequest
	topErr   error
	missingT []*wsfleetv1.ReplicaError
}

func (f *fakeSource) TrafficSummary(_ context.Context, r *wsfleetv1.TrafficSummaryRequest) (*wsfleetv1.TrafficSummaryResponse, error) {
	f.traffic = r
	resp := accepted(b, 3)
	resp.MissingReplicas = f.missingT
	return resp, nil
}

func (f *fakeSource) TopErrors(_ context.Context, r *wsfleetv1.TopErrorsRequest) (*wsfleetv1.TopErrorsResponse, error) {
	f.top = r
	if f.topErr != nil {
		return nil, f.topErr
	}
	return &wsfleetv1.TopErrorsResponse{MissingReplicas: f.missingT}, nil
}

func TestFuncAsksForTheLastHourOfThePool(t *testing.T) {
	now := time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC)
	src := &fakeSource{missingT: []*wsfleetv1.ReplicaError{{Replica: "10.0.0.2:7000", Error: "no answer within 2s"}}}
	got, err := Func(src, func() time.Time { return now })(context.Background(), "", pol(false, 1, a, b), pol(false, 1, a))
	if err != nil {
		t.Fatal(err)
	}
	if src.traffic.GetPool() != "default" || !src.traffic.GetStartTime().AsTime().Equal(now.Add(-time.Hour)) || !src.traffic.GetEndTime().AsTime().Equal(now) {
		t.Fatalf("traffic asked %v", src.traffic)
	}
	f := src.top.GetFilter()
	if f.GetPool() != "default" || len(f.GetClasses()) != 1 || f.GetClasses()[0] != wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED ||
		src.top.GetGroupBy() != wsfleetv1.TopErrorsRequest_GROUP_BY_ORIGIN || !f.GetStartTime().AsTime().Equal(now.Add(-time.Hour)) {
		t.Fatalf("top asked %v", src.top)
	}
	if origins(got.GetNewlyRejected())[b] != 3 {
		t.Fatalf("newly rejected %v", got.GetNewlyRejected())
	}
	// The same replica missing from both answers is named once.
	if len(got.GetMissingReplicas()) != 1 || got.GetMissingReplicas()[0] != "10.0.0.2:7000: no answer within 2s" {
		t.Fatalf("missing %v", got.GetMissingReplicas())
	}

	src.topErr = errors.New("boom")
	if _, err := Func(src, time.Now)(context.Background(), "p", nil, pol(false, 1, a)); err == nil {
		t.Fatal("a failed query must fail the impact")
	}
}

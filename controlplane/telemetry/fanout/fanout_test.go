package fanout

import (
	"context"
	"strconv"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/metadata"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	rejected = wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED
	reset    = wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET
	timeout  = wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT
)

func group(key string, classes ...any) *wsfleetv1.TopErrorsResponse_Group {
	g := &wsfleetv1.TopErrorsResponse_Group{Key: key}
	for i := 0; i < len(classes); i += 2 {
		c, n := classes[i].(wsfleetv1.ErrorClass), int64(classes[i+1].(int))
		g.Count += n
		g.Classes = append(g.Classes, &wsfleetv1.TopErrorsResponse_ClassCount{Class: c, Count: n})
	}
	return g
}

func TestTopAnswersAddUpExactly(t *testing.T) {
	a := &wsfleetv1.TopErrorsResponse{Total: 9, Groups: []*wsfleetv1.TopErrorsResponse_Group{
		group("https://a.example", rejected, 5, reset, 1), group("https://b.example", reset, 3),
	}}
	b := &wsfleetv1.TopErrorsResponse{Total: 8, Groups: []*wsfleetv1.TopErrorsResponse_Group{
		group("https://a.example", reset, 6), group("https://c.example", timeout, 2),
	}}
	// A replica of a build without per-class counts: its top class stands
	// for the group.
	old := &wsfleetv1.TopErrorsResponse{Total: 1, Groups: []*wsfleetv1.TopErrorsResponse_Group{
		{Key: "https://c.example", Count: 1, TopClass: reset},
	}}
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"every group, largest first", 10, []string{"https://a.example=12/conn_reset", "https://b.example=3/conn_reset", "https://c.example=3/heartbeat_timeout"}},
		{"the limit keeps the largest", 1, []string{"https://a.example=12/conn_reset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sumTop([]*wsfleetv1.TopErrorsResponse{a, b, old}, tt.limit)
			if got.GetTotal() != 18 {
				t.Fatalf("total %d, want 18", got.GetTotal())
			}
			var groups []string
			for _, g := range got.GetGroups() {
				groups = append(groups, g.GetKey()+"="+strconv.FormatInt(g.GetCount(), 10)+"/"+errclass.Name(g.GetTopClass()))
			}
			if len(groups) != len(tt.want) {
				t.Fatalf("groups %v, want %v", groups, tt.want)
			}
			for i := range groups {
				if groups[i] != tt.want[i] {
					t.Fatalf("groups %v, want %v", groups, tt.want)
				}
			}
			// a.example: 5 rejected here, 1+6 resets: reset is its top class
			// only once both replicas are added up.
			if cs := got.GetGroups()[0].GetClasses(); len(cs) != 2 || cs[0].GetClass() != reset || cs[0].GetCount() != 7 || cs[1].GetCount() != 5 {
				t.Fatalf("a.example's classes %v", cs)
			}
		})
	}
}

func TestAForwardedCallCarriesTheCallersCredentialsAndTheMarker(t *testing.T) {
	f := &Fleet{cfg: Config{Self: "r-self"}}
	in := metadata.Pairs("authorization", "Bearer viewer-secret", auth.UserHeader, "alice", "x-other", "not forwarded")
	out, _ := metadata.FromOutgoingContext(f.outgoing(metadata.NewIncomingContext(context.Background(), in)))
	for k, want := range map[string]string{"authorization": "Bearer viewer-secret", auth.UserHeader: "alice", ForwardedHeader: "r-self"} {
		if got := out.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, want %q", k, got, want)
		}
	}
	if len(out.Get("x-other")) != 0 {
		t.Error("other metadata forwarded")
	}
	// What the other replica sees: a forwarded call, answered alone.
	if !Forwarded(metadata.NewIncomingContext(context.Background(), out)) || Forwarded(metadata.NewIncomingContext(context.Background(), in)) {
		t.Error("Forwarded does not tell a forwarded call")
	}
}

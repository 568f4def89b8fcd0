package wsctl

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestPolicySet(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		pool   string
		stdout string
		want   func(p *wsfleetv1.Policy) // applied to staging()
	}{
		{"a duration changes that field alone", []string{"heartbeat.timeout=90s", "-m", "longer"}, "default",
			"pool default: revision 2 -> 3\n  ~ heartbeat.timeout: \"1m\" -> \"1m30s\"\n",
			func(p *wsfleetv1.Policy) { p.Heartbeat.Timeout = durationpb.New(90 * time.Second) }},
		{"a list from comma-separated values", []string{"origins.allow=https://staging.example.com,https://app.example.com"}, "default",
			"pool default: revision 2 -> 3\n  + origins.allow: \"https://app.example.com\"\n",
			func(p *wsfleetv1.Policy) {
				p.Origins.Allow = []string{"https://staging.example.com", "https://app.example.com"}
			}},
		{"an empty list and false", []string{"origins.allow=[]", "origins.allow_missing=false"}, "default",
			"pool default: revision 2 -> 3\n  - origins.allow: \"https://staging.example.com\"\n  ~ origins.allow_missing: true -> false\n",
			func(p *wsfleetv1.Policy) { p.Origins.Allow, p.Origins.AllowMissing = nil, false }},
		{"several groups at once, in another pool", []string{"limits.max_connections=500", "breaker.failure_ratio=0.25", "--pool", "edge"}, "edge",
			"pool edge: revision 1 -> 2\n  ~ limits.max_connections: 100000 -> 500\n  ~ breaker.failure_ratio: 0.5 -> 0.25\n",
			func(p *wsfleetv1.Policy) { p.Limits.MaxConnections, p.Breaker.FailureRatio = 500, 0.25 }},
		{"setting a field to what it is changes nothing", []string{"heartbeat.interval=30s"}, "default",
			"pool default: unchanged at revision 2\n",
			func(*wsfleetv1.Policy) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.fake.seed("default", "alice", "staging", staging(), 0)
			h.fake.seed("edge", "alice", "edge", staging(), 0)
			before := h.fake.head(tt.pool)

			r := h.run(append([]string{"policy", "set"}, tt.args...)...)
			r.want(t, 0)
			assertEqual(t, "stdout", r.stdout, tt.stdout)
			want := staging()
			tt.want(want)
			if got := h.fake.head(tt.pool).GetPolicy(); !proto.Equal(got, want) {
				t.Errorf("stored %v\nwant   %v", got, want)
			}
			_, applies := h.fake.recorded()
			if len(applies) != 1 {
				t.Fatalf("%d ApplyPolicy calls, want 1", len(applies))
			}
			if applies[0].ExpectedRevision == nil || applies[0].GetExpectedRevision() != before.GetRevision() {
				t.Errorf("sent expected revision %v, want the head read, %d", applies[0].ExpectedRevision, before.GetRevision())
			}
		})
	}

	t.Run("the message is -m, else the command line", func(t *testing.T) {
		h := newHarness(t)
		h.run("policy", "set", "limits.message_burst=300", "-m", "bursty clients").want(t, 0)
		h.run("policy", "set", "limits.message_burst=400").want(t, 0)
		_, applies := h.fake.recorded()
		if got := applies[0].GetMessage(); got != "bursty clients" {
			t.Errorf("message %q, want the -m text", got)
		}
		if got := applies[1].GetMessage(); got != "wsctl policy set limits.message_burst=400" {
			t.Errorf("message %q, want the command line", got)
		}
	})
	t.Run("a dry run shows the change and stores nothing", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "set", "heartbeat.interval=20s", "--dry-run")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "dry run: pool default would go from revision 1 to 2\n  ~ heartbeat.interval: \"25s\" -> \"20s\"\n")
		if got := h.fake.head("default").GetRevision(); got != 1 {
			t.Errorf("head is revision %d after a dry run", got)
		}
	})
	t.Run("a result the control plane refuses names every field", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "set", "heartbeat.interval=2m", "limits.max_connections=0")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: policy has 2 invalid fields\n"+
			"  heartbeat.timeout: \"1m\": must be greater than heartbeat.interval (\"2m\")\n"+
			"  limits.max_connections: 0: must be positive\n")
	})
	t.Run("a pool without a policy says how to create one", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "set", "heartbeat.interval=20s", "--pool", "canary")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"canary\" has no policy to change; create it with 'wsctl policy apply -f FILE --pool canary'\n")
	})
}

// racingPolicy is the fake control plane with another writer that commits
// right after wsctl has read the head.
type racingPolicy struct{ *fakePolicy }

func (r racingPolicy) GetPolicy(ctx context.Context, req *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	resp, err := r.fakePolicy.GetPolicy(ctx, req)
	if err == nil {
		p := proto.Clone(resp.GetRevision().GetPolicy()).(*wsfleetv1.Policy)
		p.Limits.MaxConnections = 7
		r.seed(req.GetPool(), "bob", "meanwhile", p, 0)
	}
	return resp, err
}

// servePolicy runs srv on a loopback listener until the test ends.
func servePolicy(t *testing.T, srv wsfleetv1.PolicyServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	wsfleetv1.RegisterPolicyServiceServer(s, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

func TestPolicySetNeverOverwritesAConcurrentChange(t *testing.T) {
	f := newFakePolicy()
	f.seed("default", "system", "initial policy", policy.Default(), 0)
	addr := servePolicy(t, racingPolicy{f})
	h := &harness{t: t, fake: f, addr: addr, env: map[string]string{envAddr: addr, envUser: "tester"}}

	r := h.run("policy", "set", "heartbeat.interval=20s")
	r.want(t, 1)
	assertEqual(t, "stderr", r.stderr, "error: pool \"default\" changed while wsctl was setting fields (revision 1, now 2); nothing was stored: run the command again to set them on the new revision\n")
	head := h.fake.head("default")
	if head.GetRevision() != 2 || head.GetAuthor() != "bob" {
		t.Errorf("head is %d by %s, want bob's revision 2 left alone", head.GetRevision(), head.GetAuthor())
	}
}

func TestPolicySetUsageErrorsExit2(t *testing.T) {
	h := newHarness(t)
	paths := "origins.allow, origins.allow_missing, heartbeat.interval, heartbeat.timeout, limits.max_connections"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no assignment lists the paths", nil, "policy set needs at least one PATH=VALUE (valid paths: " + paths},
		{"an argument without = lists the paths", []string{"heartbeat.interval"}, `want PATH=VALUE, got "heartbeat.interval" (valid paths: ` + paths},
		{"an unknown path names it and lists the paths", []string{"heartbeat.intervall=10s"}, "heartbeat.intervall: unknown field (want one of " + paths},
		{"a group is not a path", []string{"limits=5"}, "limits: is a group of fields; set them one by one"},
		{"a bad duration names the path", []string{"heartbeat.interval=10 seconds"}, `heartbeat.interval: invalid duration "10 seconds"`},
		{"a bad number names the path", []string{"limits.max_connections=many"}, `limits.max_connections: want an integer, got string "many"`},
		{"an empty list must be written []", []string{"origins.allow="}, "origins.allow: empty value (write [] for an empty list)"},
		{"every bad assignment is named", []string{"heartbeat.interval=soon", "breaker.window=later"},
			`heartbeat.interval: invalid duration "soon" (want e.g. "10s", "1m30s", "500ms"); breaker.window: invalid duration "later"`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" exits 2", func(t *testing.T) {
			r := h.run(append([]string{"policy", "set"}, tt.args...)...)
			r.want(t, 2)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "error: "+tt.want) {
				t.Errorf("stderr:\n%s\nwant the error %q then a pointer to --help", r.stderr, tt.want)
			}
		})
	}
	if md, _ := h.fake.recorded(); len(md) != 0 {
		t.Errorf("usage errors reached the control plane %d times", len(md))
	}
}

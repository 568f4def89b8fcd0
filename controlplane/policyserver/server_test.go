package policyserver

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	srv *Server
	st  *boltstore.Store
	log *logtest.Hook
	reg *prometheus.Registry
}

// commits is wsfleet_control_policy_commits_total summed over pools.
func (f *fixture) commits(t *testing.T) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "wsfleet_control_policy_commits_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logger, hook := logtest.NewNullLogger()
	f := &fixture{st: st, log: hook, reg: prometheus.NewRegistry()}
	f.srv, err = New(Config{Store: st, Log: logger, Registerer: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func as(name string) context.Context {
	return auth.WithIdentity(context.Background(), auth.Identity{Name: name, Role: auth.RoleAdmin})
}

func stagingPolicy() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = []string{"https://staging.example.com"}
	p.Heartbeat.Interval = durationpb.New(30 * time.Second)
	return p
}

func TestBootstrapCreatesDefaultRevisionOne(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.GetPolicy(as("x"), &wsfleetv1.GetPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.GetRevision()
	if rev.GetPool() != "default" || rev.GetRevision() != 1 || rev.GetAuthor() != SystemAuthor {
		t.Fatalf("revision = %v", rev)
	}
	if !proto.Equal(rev.GetPolicy(), policy.Default()) {
		t.Fatalf("default policy differs: %v", rev.GetPolicy())
	}
	again, err := f.srv.Bootstrap(context.Background())
	if err != nil || again.GetRevision() != 1 {
		t.Fatalf("second bootstrap: %v %v", again, err)
	}
}

func TestApplyHistoryDiffRollback(t *testing.T) {
	f := newFixture(t)
	ctx := as("alice")
	applied, err := f.srv.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), Message: "allow staging"})
	if err != nil {
		t.Fatal(err)
	}
	if r := applied.GetRevision(); r.GetRevision() != 2 || r.GetAuthor() != "alice" || r.GetMessage() != "allow staging" {
		t.Fatalf("applied = %v", r)
	}
	if applied.GetPreviousRevision() != 1 || len(applied.GetChanges()) != 2 {
		t.Fatalf("previous %d, changes %v", applied.GetPreviousRevision(), applied.GetChanges())
	}

	diff, err := f.srv.DiffPolicy(ctx, &wsfleetv1.DiffPolicyRequest{FromRevision: 1, ToRevision: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range diff.GetChanges() {
		got[c.GetField()+" "+c.GetKind().String()] = true
	}
	want := map[string]bool{"origins.allow KIND_ADDED": true, "heartbeat.interval KIND_CHANGED": true}
	if len(got) != len(want) || !got["origins.allow KIND_ADDED"] || !got["heartbeat.interval KIND_CHANGED"] {
		t.Fatalf("diff = %v", diff.GetChanges())
	}

	rb, err := f.srv.RollbackPolicy(as("bob"), &wsfleetv1.RollbackPolicyRequest{ToRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	r3 := rb.GetRevision()
	if r3.GetRevision() != 3 || r3.GetRollbackOf() != 1 || r3.GetAuthor() != "bob" || r3.GetMessage() != "rollback to revision 1" {
		t.Fatalf("rollback = %v", r3)
	}
	if !proto.Equal(r3.GetPolicy(), policy.Default()) {
		t.Fatal("rollback content is not revision 1's")
	}

	hist, err := f.srv.ListPolicyRevisions(ctx, &wsfleetv1.ListPolicyRevisionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var nums []int64
	for _, r := range hist.GetRevisions() {
		nums = append(nums, r.GetRevision())
	}
	if len(nums) != 3 || nums[0] != 3 || nums[2] != 1 {
		t.Fatalf("history = %v", nums)
	}
	if n := f.commits(t); n != 3 { // bootstrap, apply, rollback
		t.Fatalf("policy_commits_total = %v, want 3", n)
	}
	audits := 0
	for _, e := range f.log.AllEntries() {
		if e.Data["audit"] == true {
			audits++
		}
	}
	if audits != 3 {
		t.Fatalf("audit lines = %d", audits)
	}
}

func TestApplyingTheSamePolicyMakesNoRevision(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: policy.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetUnchanged() || resp.GetRevision().GetRevision() != 1 {
		t.Fatalf("resp = %v", resp)
	}
}

func TestDryRunStoresNothing(t *testing.T) {
	f := newFixture(t)
	resp, err := f.srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: stagingPolicy(), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision().GetRevision() != 2 || len(resp.GetChanges()) == 0 {
		t.Fatalf("resp = %v", resp)
	}
	head, _ := f.srv.GetPolicy(as("a"), &wsfleetv1.GetPolicyRequest{})
	if head.GetRevision().GetRevision() != 1 {
		t.Fatalf("dry run stored revision %d", head.GetRevision().GetRevision())
	}
}

func TestInvalidPolicyNamesEveryField(t *testing.T) {
	f := newFixture(t)
	p := policy.Default()
	p.Origins.Allow = []string{"https://ok.example.com", "https://*.*.example.com"}
	p.Heartbeat.Timeout = durationpb.New(10 * time.Second)
	p.Heartbeat.Interval = durationpb.New(20 * time.Second)
	p.Limits.MaxConnections = -5
	p.Breaker.FailureRatio = 1.5
	_, err := f.srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: p})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v", st.Code())
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	want := []string{"origins.allow[1]", "heartbeat.timeout", "limits.max_connections", "breaker.failure_ratio"}
	if len(fields) != len(want) {
		t.Fatalf("fields = %v, want %v", fields, want)
	}
	for i := range want {
		if fields[i] != want[i] {
			t.Fatalf("fields = %v, want %v", fields, want)
		}
	}
	head, _ := f.srv.GetPolicy(as("a"), &wsfleetv1.GetPolicyRequest{})
	if head.GetRevision().GetRevision() != 1 {
		t.Fatal("invalid policy changed the revision")
	}
}

func TestRequestFieldsAreChecked(t *testing.T) {
	f := newFixture(t)
	ctx := as("a")
	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"a pool name that is not a DNS label is refused", func() error {
			_, err := f.srv.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Pool: "Bad_Pool"})
			return err
		}, codes.InvalidArgument},
		{"an unknown pool is not found", func() error {
			_, err := f.srv.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Pool: "nope"})
			return err
		}, codes.NotFound},
		{"an unknown revision is not found", func() error {
			_, err := f.srv.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Revision: 99})
			return err
		}, codes.NotFound},
		{"rollback to an unknown revision is not found", func() error {
			_, err := f.srv.RollbackPolicy(ctx, &wsfleetv1.RollbackPolicyRequest{ToRevision: 42})
			return err
		}, codes.NotFound},
		{"diff needs positive revisions", func() error {
			_, err := f.srv.DiffPolicy(ctx, &wsfleetv1.DiffPolicyRequest{})
			return err
		}, codes.InvalidArgument},
		{"a forged page token is refused", func() error {
			_, err := f.srv.ListPolicyRevisions(ctx, &wsfleetv1.ListPolicyRevisionsRequest{PageToken: "!!"})
			return err
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.code {
				t.Fatalf("code = %v, want %v", got, tt.code)
			}
		})
	}
}

func TestNewPoolStartsAtRevisionOne(t *testing.T) {
	f := newFixture(t)
	zero := int64(0)
	resp, err := f.srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Pool: "eu-west", Policy: stagingPolicy(), ExpectedRevision: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision().GetRevision() != 1 || resp.GetPreviousRevision() != 0 {
		t.Fatalf("resp = %v", resp)
	}
	_, err = f.srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Pool: "eu-west", Policy: policy.Default(), ExpectedRevision: &zero})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second create: %v", err)
	}
	pools, err := f.srv.ListPools(as("a"), &wsfleetv1.ListPoolsRequest{})
	if err != nil || len(pools.GetPools()) != 2 {
		t.Fatalf("pools = %v, %v", pools, err)
	}
}

func TestConcurrentAppliesWithTheSameExpectedRevision(t *testing.T) {
	f := newFixture(t)
	const n = 8
	one := int64(1)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := policy.Default()
			p.Limits.MaxConnections = int32(1000 + i)
			_, errs[i] = f.srv.ApplyPolicy(as("w"), &wsfleetv1.ApplyPolicyRequest{Policy: p, ExpectedRevision: &one})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != `pool "default" is at revision 2, not 1` {
			t.Fatalf("loser got %v", err)
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if e, ok := d.(*errdetails.ErrorInfo); ok {
				info = e
			}
		}
		if info == nil || info.GetReason() != "REVISION_CONFLICT" || info.GetMetadata()["current_revision"] != "2" {
			t.Fatalf("conflict detail = %v", info)
		}
	}
	if wins != 1 {
		t.Fatalf("%d applies won, want exactly 1", wins)
	}
}

func TestConcurrentAppliesWithoutExpectationAllLand(t *testing.T) {
	f := newFixture(t)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := policy.Default()
			p.Limits.MaxConnections = int32(2000 + i)
			if _, err := f.srv.ApplyPolicy(as("w"), &wsfleetv1.ApplyPolicyRequest{Policy: p}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	head, _ := f.srv.GetPolicy(as("a"), &wsfleetv1.GetPolicyRequest{})
	if head.GetRevision().GetRevision() != 1+n {
		t.Fatalf("head = %d, want %d", head.GetRevision().GetRevision(), 1+n)
	}
}

func TestHistoryPages(t *testing.T) {
	f := newFixture(t)
	for i := range 7 {
		p := policy.Default()
		p.Limits.MaxConnections = int32(3000 + i)
		if _, err := f.srv.ApplyPolicy(as("a"), &wsfleetv1.ApplyPolicyRequest{Policy: p}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []int64
	token := ""
	for pages := 0; pages < 10; pages++ {
		resp, err := f.srv.ListPolicyRevisions(as("a"), &wsfleetv1.ListPolicyRevisionsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetRevisions() {
			seen = append(seen, r.GetRevision())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(seen) != 8 {
		t.Fatalf("seen %v", seen)
	}
	for i, r := range seen {
		if r != int64(8-i) {
			t.Fatalf("seen %v", seen)
		}
	}
}

func TestValidatePolicyReportsWithoutError(t *testing.T) {
	f := newFixture(t)
	p := policy.Default()
	p.Limits.MaxMessageBytes = 0
	resp, err := f.srv.ValidatePolicy(as("a"), &wsfleetv1.ValidatePolicyRequest{Policy: p})
	if err != nil || len(resp.GetViolations()) != 1 || resp.GetViolations()[0].GetField() != "limits.max_message_bytes" {
		t.Fatalf("resp = %v, err = %v", resp, err)
	}
}

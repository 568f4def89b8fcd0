package wsctl

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// fakePolicy is an in-memory PolicyService that keeps the control plane's
// error contract (InvalidArgument + BadRequest, FailedPrecondition +
// REVISION_CONFLICT ErrorInfo, NotFound) and records what it was sent.
type fakePolicy struct {
	wsfleetv1.UnimplementedPolicyServiceServer

	// token, when set, is the only bearer token accepted; writerToken,
	// when set, is the only one that may change policy.
	token       string
	writerToken string
	// pageCap bounds page sizes, to make wsctl follow page tokens.
	pageCap int

	mu        sync.Mutex
	pools     map[string][]*wsfleetv1.PolicyRevision
	clock     time.Time
	md        []metadata.MD
	applies   []*wsfleetv1.ApplyPolicyRequest
	rollbacks []*wsfleetv1.RollbackPolicyRequest
	lists     []*wsfleetv1.ListPolicyRevisionsRequest
	validates int
}

var _ wsfleetv1.PolicyServiceServer = (*fakePolicy)(nil)

func newFakePolicy() *fakePolicy {
	return &fakePolicy{
		pools: map[string][]*wsfleetv1.PolicyRevision{},
		clock: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
	}
}

// seed stores a revision as if applied, bypassing validation.
func (f *fakePolicy) seed(pool, author, message string, p *wsfleetv1.Policy, rollbackOf int64) *wsfleetv1.PolicyRevision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.storeLocked(pool, author, message, p, rollbackOf)
}

func (f *fakePolicy) storeLocked(pool, author, message string, p *wsfleetv1.Policy, rollbackOf int64) *wsfleetv1.PolicyRevision {
	f.clock = f.clock.Add(time.Minute)
	rev := &wsfleetv1.PolicyRevision{
		Pool:       pool,
		Revision:   int64(len(f.pools[pool]) + 1),
		Author:     author,
		CreateTime: timestamppb.New(f.clock),
		Message:    message,
		Policy:     proto.Clone(p).(*wsfleetv1.Policy),
		RollbackOf: rollbackOf,
	}
	f.pools[pool] = append(f.pools[pool], rev)
	return rev
}

func (f *fakePolicy) head(pool string) *wsfleetv1.PolicyRevision {
	f.mu.Lock()
	defer f.mu.Unlock()
	revs := f.pools[pool]
	if len(revs) == 0 {
		return nil
	}
	return revs[len(revs)-1]
}

func (f *fakePolicy) recorded() (md []metadata.MD, applies []*wsfleetv1.ApplyPolicyRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]metadata.MD(nil), f.md...), append([]*wsfleetv1.ApplyPolicyRequest(nil), f.applies...)
}

// auth records the call's metadata and checks the token; it returns the
// author for a write.
func (f *fakePolicy) auth(ctx context.Context, write bool) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.md = append(f.md, md)
	f.mu.Unlock()
	got := strings.Join(md.Get("authorization"), ",")
	if f.token != "" && got != "Bearer "+f.token && got != "Bearer "+f.writerToken {
		return "", status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	}
	if write && f.writerToken != "" && got != "Bearer "+f.writerToken {
		return "", status.Error(codes.PermissionDenied, "role viewer may not change policy")
	}
	// As the control plane in --dev mode: the author is the user header.
	if u := md.Get("x-wsfleet-user"); len(u) > 0 {
		return u[0], nil
	}
	return "anonymous", nil
}

func poolName(p string) string {
	if p == "" {
		return policy.DefaultPool
	}
	return p
}

func (f *fakePolicy) findLocked(pool string, revision int64) (*wsfleetv1.PolicyRevision, error) {
	revs := f.pools[pool]
	if len(revs) == 0 {
		return nil, status.Errorf(codes.NotFound, "pool %q has no policy", pool)
	}
	if revision == 0 {
		return revs[len(revs)-1], nil
	}
	if revision < 0 || revision > int64(len(revs)) {
		return nil, status.Errorf(codes.NotFound, "pool %q has no revision %d", pool, revision)
	}
	return revs[revision-1], nil
}

func (f *fakePolicy) GetPolicy(ctx context.Context, req *wsfleetv1.GetPolicyRequest) (*wsfleetv1.GetPolicyResponse, error) {
	if _, err := f.auth(ctx, false); err != nil {
		return nil, err
	}
	if req.GetPool() == "slow" {
		// Lets a test see wsctl give up after --timeout.
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rev, err := f.findLocked(poolName(req.GetPool()), req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.GetPolicyResponse{Revision: rev}, nil
}

func invalidPolicy(vs []*wsfleetv1.FieldViolation) error {
	br := &errdetails.BadRequest{}
	for _, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
	}
	st, err := status.New(codes.InvalidArgument, fmt.Sprintf("policy has %d invalid fields", len(vs))).WithDetails(br)
	if err != nil {
		return err
	}
	return st.Err()
}

func conflict(pool string, current, expected int64) error {
	st, err := status.New(codes.FailedPrecondition, fmt.Sprintf("pool %q is at revision %d, not %d", pool, current, expected)).
		WithDetails(&errdetails.ErrorInfo{
			Reason: admin.ReasonRevisionConflict,
			Domain: admin.ErrorDomain,
			Metadata: map[string]string{
				admin.ConflictPoolKey:     pool,
				admin.ConflictCurrentKey:  strconv.FormatInt(current, 10),
				admin.ConflictExpectedKey: strconv.FormatInt(expected, 10),
			},
		})
	if err != nil {
		return err
	}
	return st.Err()
}

// change is the shared body of apply and rollback.
func (f *fakePolicy) changeLocked(pool, author, message string, p *wsfleetv1.Policy, expected *int64, dryRun bool, rollbackOf int64) (*wsfleetv1.ApplyPolicyResponse, error) {
	if vs := policy.Validate(p); len(vs) > 0 {
		return nil, invalidPolicy(vs)
	}
	revs := f.pools[pool]
	current := int64(len(revs))
	if expected != nil && *expected != current {
		return nil, conflict(pool, current, *expected)
	}
	var prev *wsfleetv1.Policy
	if current > 0 {
		prev = revs[current-1].GetPolicy()
		if proto.Equal(prev, p) {
			return &wsfleetv1.ApplyPolicyResponse{Revision: revs[current-1], PreviousRevision: current, Unchanged: true}, nil
		}
	}
	resp := &wsfleetv1.ApplyPolicyResponse{PreviousRevision: current, Changes: policy.Diff(prev, p)}
	if dryRun {
		resp.Revision = &wsfleetv1.PolicyRevision{Pool: pool, Revision: current + 1, Author: author, Message: message, Policy: p, RollbackOf: rollbackOf}
		return resp, nil
	}
	resp.Revision = f.storeLocked(pool, author, message, p, rollbackOf)
	return resp, nil
}

func (f *fakePolicy) ApplyPolicy(ctx context.Context, req *wsfleetv1.ApplyPolicyRequest) (*wsfleetv1.ApplyPolicyResponse, error) {
	f.mu.Lock()
	f.applies = append(f.applies, req)
	f.mu.Unlock()
	author, err := f.auth(ctx, true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var expected *int64
	if req.ExpectedRevision != nil {
		expected = proto.Int64(req.GetExpectedRevision())
	}
	return f.changeLocked(poolName(req.GetPool()), author, req.GetMessage(), req.GetPolicy(), expected, req.GetDryRun(), 0)
}

func (f *fakePolicy) ValidatePolicy(ctx context.Context, req *wsfleetv1.ValidatePolicyRequest) (*wsfleetv1.ValidatePolicyResponse, error) {
	if _, err := f.auth(ctx, false); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.validates++
	f.mu.Unlock()
	return &wsfleetv1.ValidatePolicyResponse{Violations: policy.Validate(req.GetPolicy())}, nil
}

func (f *fakePolicy) ListPolicyRevisions(ctx context.Context, req *wsfleetv1.ListPolicyRevisionsRequest) (*wsfleetv1.ListPolicyRevisionsResponse, error) {
	if _, err := f.auth(ctx, false); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, req)
	pool := poolName(req.GetPool())
	revs := f.pools[pool]
	if len(revs) == 0 {
		return nil, status.Errorf(codes.NotFound, "pool %q has no policy", pool)
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	if f.pageCap > 0 && size > f.pageCap {
		size = f.pageCap
	}
	offset := 0
	if req.GetPageToken() != "" {
		n, err := strconv.Atoi(req.GetPageToken())
		if err != nil || n < 0 || n > len(revs) {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
		offset = n
	}
	resp := &wsfleetv1.ListPolicyRevisionsResponse{}
	for i := len(revs) - 1 - offset; i >= 0 && len(resp.Revisions) < size; i-- {
		resp.Revisions = append(resp.Revisions, revs[i])
	}
	if next := offset + len(resp.Revisions); next < len(revs) {
		resp.NextPageToken = strconv.Itoa(next)
	}
	return resp, nil
}

func (f *fakePolicy) DiffPolicy(ctx context.Context, req *wsfleetv1.DiffPolicyRequest) (*wsfleetv1.DiffPolicyResponse, error) {
	if _, err := f.auth(ctx, false); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pool := poolName(req.GetPool())
	from, err := f.findLocked(pool, req.GetFromRevision())
	if err != nil {
		return nil, err
	}
	to, err := f.findLocked(pool, req.GetToRevision())
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.DiffPolicyResponse{Changes: policy.Diff(from.GetPolicy(), to.GetPolicy())}, nil
}

func (f *fakePolicy) RollbackPolicy(ctx context.Context, req *wsfleetv1.RollbackPolicyRequest) (*wsfleetv1.RollbackPolicyResponse, error) {
	f.mu.Lock()
	f.rollbacks = append(f.rollbacks, req)
	f.mu.Unlock()
	author, err := f.auth(ctx, true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pool := poolName(req.GetPool())
	target, err := f.findLocked(pool, req.GetToRevision())
	if err != nil {
		return nil, err
	}
	var expected *int64
	if req.ExpectedRevision != nil {
		expected = proto.Int64(req.GetExpectedRevision())
	}
	resp, err := f.changeLocked(pool, author, req.GetMessage(), target.GetPolicy(), expected, false, req.GetToRevision())
	if err != nil {
		return nil, err
	}
	return &wsfleetv1.RollbackPolicyResponse{
		Revision:         resp.GetRevision(),
		PreviousRevision: resp.GetPreviousRevision(),
		Unchanged:        resp.GetUnchanged(),
		Changes:          resp.GetChanges(),
	}, nil
}

// serveFake runs f and fl on a loopback listener until the test ends.
func serveFake(t *testing.T, f *fakePolicy, fl *fakeFleet) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	wsfleetv1.RegisterPolicyServiceServer(s, f)
	wsfleetv1.RegisterFleetServiceServer(s, fl)
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

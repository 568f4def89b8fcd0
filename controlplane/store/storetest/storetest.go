// Package storetest is the conformance suite for store.Store implementations.
//
// Every implementation (the embedded bbolt store, the etcd store) runs Run
// from its own tests, so the control plane above can rely on the same
// semantics whatever backs it: revisions numbered 1, 2, 3 with no gaps per
// pool, a compare-and-set that never overwrites silently, returned messages
// owned by the caller, a watch of pool heads that never goes backwards and
// never misses a pool's newest head, and ErrClosed after Close.
//
// A backend that more than one process can share says how to open a second
// handle on it (WithShared); one whose notifications can break says how to
// break them (WithGap). The sub-tests that need either are skipped for a
// backend without it, saying why.
//
// The suite starts goroutines only inside the concurrency and watch
// sub-tests and waits for all of them (and for the watches to end) before
// the sub-test returns, so it is safe under goleak.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/store"
)

// Revision returns a complete revision of pool with every policy field set,
// carrying message so that tests can tell revisions apart. Its revision
// number is 0: the store assigns it.
func Revision(pool, message string) *wsfleetv1.PolicyRevision {
	return &wsfleetv1.PolicyRevision{
		Pool:       pool,
		Author:     "alice@example.com",
		CreateTime: timestamppb.New(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)),
		Message:    message,
		Policy: &wsfleetv1.Policy{
			Origins: &wsfleetv1.OriginPolicy{
				Allow:        []string{"https://app.example.com", "https://*.example.com"},
				AllowMissing: true,
			},
			Heartbeat: &wsfleetv1.HeartbeatPolicy{
				Interval: durationpb.New(10 * time.Second),
				Timeout:  durationpb.New(30 * time.Second),
			},
			Limits: &wsfleetv1.LimitsPolicy{
				MaxConnections:      10000,
				MaxConnectionsPerIp: 50,
				HandshakesPerSecond: 200,
				HandshakeBurst:      400,
				MessagesPerSecond:   20,
				MessageBurst:        40,
				MaxMessageBytes:     64 << 10,
			},
			Breaker: &wsfleetv1.BreakerPolicy{
				FailureRatio:   0.5,
				MinSamples:     20,
				Window:         durationpb.New(10 * time.Second),
				OpenDuration:   durationpb.New(5 * time.Second),
				HalfOpenProbes: 3,
			},
		},
	}
}

// Option describes what else a backend can do for the suite.
type Option func(*options)

type options struct {
	shared func(t *testing.T, s store.Store) store.Store
	gap    func(t *testing.T, s store.Store, during func())
}

// WithShared says the backend can be shared by several processes (control
// plane replicas): open returns another handle on the same backend as s,
// as another process would open it, closed when the test ends.
func WithShared(open func(t *testing.T, s store.Store) store.Store) Option {
	return func(o *options) { o.shared = open }
}

// WithGap says the backend's notifications can break: gap makes s's watches
// lose what happens while during runs (for etcd: s's connection cut and the
// history compacted meanwhile), then lets s reconnect. during writes
// through a handle from WithShared, which is required with it.
func WithGap(gap func(t *testing.T, s store.Store, during func())) Option {
	return func(o *options) { o.gap = gap }
}

// Run runs the conformance suite; newStore returns a fresh, empty store and
// registers its cleanup with t.Cleanup. Some sub-tests close their store
// themselves, so that cleanup must accept Close returning ErrClosed.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.gap != nil && o.shared == nil {
		t.Fatal("storetest: WithGap needs WithShared")
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"empty store has no head", testEmptyHead},
		{"a revision number at or below head+1 is ignored", testInputRevisionAtOrBelowNextIgnored},
		{"a revision number above head+1 is kept, leaving a gap", testInputRevisionAboveNextJumps},
		{"the store has one identity, carried by every revision", testIdentity},
		{"empty store has no revision", testEmptyGet},
		{"empty store has no history", testEmptyHistory},
		{"empty store lists no pools", testEmptyPools},
		{"first append with expected 0 gives revision 1", testFirstAppend},
		{"first append with expected 5 conflicts at revision 0", testFirstAppendConflict},
		{"sequential appends are numbered 1, 2, 3", testSequentialAppends},
		{"append with AnyRevision goes after the head", testAnyRevision},
		{"stale expected revision conflicts and stores nothing", testStaleExpected},
		{"missing revision is not found", testGetMissing},
		{"mutating a returned revision does not change the store", testReturnedCopies},
		{"mutating the input after append does not change the store", testInputNotRetained},
		{"append does not modify its input", testInputNotModified},
		{"history is newest first", testHistoryOrder},
		{"history pages walk the whole history without gaps or repeats", testHistoryPaging},
		{"history before beyond the head starts at the head", testHistoryBeforeBeyondHead},
		{"pools lists each pool's head ordered by name", testPoolsOrdered},
		{"pools are independent", testPoolsIndependent},
		{"racing appends with the same expected revision have exactly one winner", testRacingCAS},
		{"concurrent appends with AnyRevision are numbered without gaps", testConcurrentAny},
		{"cancelled context fails and stores nothing", testCancelledContext},
		{"every method returns ErrClosed after close", testClosed},
	}
	tests = append(tests, proposalTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}

	watchTests := []struct {
		name string
		run  func(t *testing.T, s store.Store, o options)
	}{
		{"a watch delivers the head of every pool first", testWatchInitialHeads},
		{"a watch of an empty store delivers a new pool's first revision", testWatchEmptyStore},
		{"a consumer that keeps up gets every head in order", testWatchEveryHead},
		{"a slow consumer misses no pool's newest head under a burst of appends", testWatchSlowConsumer},
		{"a watch sees heads appended through another handle of the store", testWatchShared},
		{"after a gap the watch re-reads the heads and misses no newest head", testWatchGap},
		{"a watch whose context ends closes its channel and leaves no goroutine", testWatchCancel},
		{"closing the store ends its watches", testWatchClose},
	}
	for _, tt := range watchTests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t), o)
		})
	}
}

const pool = "default"

func testEmptyHead(t *testing.T, s store.Store) {
	_, err := s.Head(t.Context(), pool)
	wantErr(t, err, store.ErrNotFound)
}

func testEmptyGet(t *testing.T, s store.Store) {
	_, err := s.Get(t.Context(), pool, 1)
	wantErr(t, err, store.ErrNotFound)
}

func testEmptyHistory(t *testing.T, s store.Store) {
	_, err := s.History(t.Context(), pool, 0, 10)
	wantErr(t, err, store.ErrNotFound)
}

func testEmptyPools(t *testing.T, s store.Store) {
	pools, err := s.Pools(t.Context())
	if err != nil {
		t.Fatalf("Pools: %v", err)
	}
	if len(pools) != 0 {
		t.Fatalf("Pools returned %d pools, want none", len(pools))
	}
}

func testFirstAppend(t *testing.T, s store.Store) {
	in := Revision(pool, "first")
	got, err := s.Append(t.Context(), in, 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	want := withRevision(s, in, 1)
	wantEqual(t, "Append result", got, want)
	wantEqual(t, "Head", mustHead(t, s, pool), want)
	wantEqual(t, "Get(1)", mustGet(t, s, pool, 1), want)
}

func testFirstAppendConflict(t *testing.T, s store.Store) {
	_, err := s.Append(t.Context(), Revision(pool, "first"), 5)
	wantConflict(t, err, pool, 5, 0)
	_, err = s.Head(t.Context(), pool)
	wantErr(t, err, store.ErrNotFound)
}

func testSequentialAppends(t *testing.T, s store.Store) {
	var ins []*wsfleetv1.PolicyRevision
	for n := int64(1); n <= 3; n++ {
		in := Revision(pool, fmt.Sprintf("change %d", n))
		got, err := s.Append(t.Context(), in, n-1)
		if err != nil {
			t.Fatalf("Append with expected %d: %v", n-1, err)
		}
		if got.GetRevision() != n {
			t.Fatalf("Append with expected %d gave revision %d, want %d", n-1, got.GetRevision(), n)
		}
		ins = append(ins, in)
	}
	for i, in := range ins {
		n := int64(i + 1)
		wantEqual(t, fmt.Sprintf("Get(%d)", n), mustGet(t, s, pool, n), withRevision(s, in, n))
	}
	wantEqual(t, "Head", mustHead(t, s, pool), withRevision(s, ins[2], 3))
}

func testAnyRevision(t *testing.T, s store.Store) {
	for n := int64(1); n <= 3; n++ {
		got, err := s.Append(t.Context(), Revision(pool, fmt.Sprintf("change %d", n)), store.AnyRevision)
		if err != nil {
			t.Fatalf("Append %d with AnyRevision: %v", n, err)
		}
		if got.GetRevision() != n {
			t.Fatalf("Append %d with AnyRevision gave revision %d, want %d", n, got.GetRevision(), n)
		}
	}
	if head := mustHead(t, s, pool).GetRevision(); head != 3 {
		t.Fatalf("head is %d, want 3", head)
	}
}

func testStaleExpected(t *testing.T, s store.Store) {
	appendN(t, s, pool, 3)
	before := mustHistory(t, s, pool, 0, 100)

	for _, expected := range []int64{0, 2, 4} {
		_, err := s.Append(t.Context(), Revision(pool, "stale"), expected)
		wantConflict(t, err, pool, expected, 3)
	}

	after := mustHistory(t, s, pool, 0, 100)
	wantEqualList(t, "history after conflicts", after, before)
}

func testInputRevisionAtOrBelowNextIgnored(t *testing.T, s store.Store) {
	appendN(t, s, pool, 2)
	for _, n := range []int64{-5, 0, 1, 2, 3} {
		in := Revision(pool, fmt.Sprintf("asks for %d", n))
		in.Revision = n
		head := mustHead(t, s, pool).GetRevision()
		got, err := s.Append(t.Context(), in, head)
		if err != nil {
			t.Fatalf("Append asking for %d: %v", n, err)
		}
		if got.GetRevision() != head+1 {
			t.Fatalf("Append asking for %d stored revision %d, want head+1 = %d", n, got.GetRevision(), head+1)
		}
	}
}

func testInputRevisionAboveNextJumps(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)
	in := Revision(pool, "recovered")
	in.Revision = 82
	got, err := s.Append(t.Context(), in, 1)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got.GetRevision() != 82 {
		t.Fatalf("Append stored revision %d, want 82", got.GetRevision())
	}
	wantEqual(t, "head after a jump", mustHead(t, s, pool), got)
	wantEqual(t, "revision 82", mustGet(t, s, pool, 82), got)
	for _, n := range []int64{2, 81} {
		_, err := s.Get(t.Context(), pool, n)
		wantErr(t, err, store.ErrNotFound)
	}
	if h := mustHistory(t, s, pool, 0, 0); len(h) != 2 || h[0].GetRevision() != 82 || h[1].GetRevision() != 1 {
		t.Fatalf("history after a jump = %v, want [82 1]", revisionNumbers(h))
	}
	next, err := s.Append(t.Context(), Revision(pool, "after"), 82)
	if err != nil || next.GetRevision() != 83 {
		t.Fatalf("Append after a jump = %v, %v; want revision 83", next, err)
	}
	wantConflict(t, func() error { _, err := s.Append(t.Context(), Revision(pool, "stale"), 1); return err }(), pool, 1, 83)
}

func testIdentity(t *testing.T, s store.Store) {
	id := s.ID()
	if id == "" {
		t.Fatal("ID() is empty")
	}
	got, err := s.Append(t.Context(), Revision(pool, "first"), 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got.GetStoreId() != id {
		t.Errorf("Append returned store_id %q, want ID() %q", got.GetStoreId(), id)
	}
	for what, r := range map[string]*wsfleetv1.PolicyRevision{
		"Head": mustHead(t, s, pool),
		"Get":  mustGet(t, s, pool, 1),
		"History": func() *wsfleetv1.PolicyRevision {
			return mustHistory(t, s, pool, 0, 1)[0]
		}(),
	} {
		if r.GetStoreId() != id {
			t.Errorf("%s returned store_id %q, want ID() %q", what, r.GetStoreId(), id)
		}
	}
	if s.ID() != id {
		t.Errorf("ID() changed from %q to %q", id, s.ID())
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	appendN(t, s, pool, 2)
	tests := []struct {
		pool     string
		revision int64
	}{
		{pool, 0},
		{pool, -1},
		{pool, 3},
		{"other", 1},
	}
	for _, tt := range tests {
		_, err := s.Get(t.Context(), tt.pool, tt.revision)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q, %d) error = %v, want ErrNotFound", tt.pool, tt.revision, err)
		}
	}
}

func testReturnedCopies(t *testing.T, s store.Store) {
	in := Revision(pool, "original")
	want := withRevision(s, in, 1)
	appended, err := s.Append(t.Context(), in, 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	scribble(appended)
	wantEqual(t, "Get after mutating the Append result", mustGet(t, s, pool, 1), want)

	scribble(mustGet(t, s, pool, 1))
	wantEqual(t, "Get after mutating a Get result", mustGet(t, s, pool, 1), want)

	scribble(mustHead(t, s, pool))
	wantEqual(t, "Get after mutating a Head result", mustGet(t, s, pool, 1), want)

	for _, r := range mustHistory(t, s, pool, 0, 10) {
		scribble(r)
	}
	wantEqual(t, "Get after mutating a History result", mustGet(t, s, pool, 1), want)

	pools, err := s.Pools(t.Context())
	if err != nil {
		t.Fatalf("Pools: %v", err)
	}
	for _, r := range pools {
		scribble(r)
	}
	wantEqual(t, "Get after mutating a Pools result", mustGet(t, s, pool, 1), want)
}

func testInputNotRetained(t *testing.T, s store.Store) {
	in := Revision(pool, "original")
	want := withRevision(s, in, 1)
	if _, err := s.Append(t.Context(), in, 0); err != nil {
		t.Fatalf("Append: %v", err)
	}
	scribble(in)
	wantEqual(t, "Get after mutating the input", mustGet(t, s, pool, 1), want)
}

func testInputNotModified(t *testing.T, s store.Store) {
	in := Revision(pool, "original")
	in.Revision = 7
	orig := proto.Clone(in)
	if _, err := s.Append(t.Context(), in, 0); err != nil {
		t.Fatalf("Append: %v", err)
	}
	wantEqual(t, "input after Append", in, orig)
}

func testHistoryOrder(t *testing.T, s store.Store) {
	ins := appendN(t, s, pool, 5)
	got := mustHistory(t, s, pool, 0, 10)
	var want []*wsfleetv1.PolicyRevision
	for i := len(ins) - 1; i >= 0; i-- {
		want = append(want, ins[i])
	}
	wantEqualList(t, "History", got, want)
}

func testHistoryPaging(t *testing.T, s store.Store) {
	const total = 10
	ins := appendN(t, s, pool, total)

	for _, limit := range []int{1, 3, 4, total, total + 1} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var walked []int64
			before := int64(0)
			for page := 0; ; page++ {
				if page > total+1 {
					t.Fatalf("paging did not end after %d pages: walked %v", page, walked)
				}
				revs := mustHistory(t, s, pool, before, limit)
				if len(revs) > limit {
					t.Fatalf("History(before %d, limit %d) returned %d revisions", before, limit, len(revs))
				}
				if len(revs) == 0 {
					break
				}
				for _, r := range revs {
					n := r.GetRevision()
					if before > 0 && n >= before {
						t.Fatalf("History(before %d) returned revision %d", before, n)
					}
					wantEqual(t, fmt.Sprintf("History revision %d", n), r, ins[n-1])
					walked = append(walked, n)
				}
				before = revs[len(revs)-1].GetRevision()
			}
			if len(walked) != total {
				t.Fatalf("walked revisions %v, want %d..1", walked, total)
			}
			for i, n := range walked {
				if want := int64(total - i); n != want {
					t.Fatalf("walked revisions %v, want %d..1 with no gap or repeat", walked, total)
				}
			}
		})
	}
}

func testHistoryBeforeBeyondHead(t *testing.T, s store.Store) {
	appendN(t, s, pool, 3)
	got := mustHistory(t, s, pool, 100, 2)
	if len(got) != 2 || got[0].GetRevision() != 3 || got[1].GetRevision() != 2 {
		t.Fatalf("History(before 100, limit 2) = %v, want revisions [3 2]", revisionNumbers(got))
	}
}

func testPoolsOrdered(t *testing.T, s store.Store) {
	counts := map[string]int{"zeta": 1, "alpha": 3, "default": 2, "mid": 4}
	heads := map[string]*wsfleetv1.PolicyRevision{}
	// Interleave pools so a store that orders by creation or last write
	// rather than by name shows up.
	for round := 1; round <= 4; round++ {
		for _, p := range []string{"zeta", "mid", "default", "alpha"} {
			if round > counts[p] {
				continue
			}
			in := Revision(p, fmt.Sprintf("%s %d", p, round))
			if _, err := s.Append(t.Context(), in, int64(round-1)); err != nil {
				t.Fatalf("Append to %s: %v", p, err)
			}
			heads[p] = withRevision(s, in, int64(round))
		}
	}

	got, err := s.Pools(t.Context())
	if err != nil {
		t.Fatalf("Pools: %v", err)
	}
	want := []*wsfleetv1.PolicyRevision{heads["alpha"], heads["default"], heads["mid"], heads["zeta"]}
	wantEqualList(t, "Pools", got, want)
}

func testPoolsIndependent(t *testing.T, s store.Store) {
	a := appendN(t, s, "a", 3)
	b := appendN(t, s, "b", 1)

	_, err := s.Append(t.Context(), Revision("a", "stale"), 1)
	wantConflict(t, err, "a", 1, 3)

	got, err := s.Append(t.Context(), Revision("b", "second"), 1)
	if err != nil {
		t.Fatalf("Append to b with expected 1 after a conflict on a: %v", err)
	}
	if got.GetRevision() != 2 {
		t.Fatalf("b's second append gave revision %d, want 2", got.GetRevision())
	}
	b = append(b, withRevision(s, Revision("b", "second"), 2))

	wantEqualList(t, "History of a", mustHistory(t, s, "a", 0, 10), []*wsfleetv1.PolicyRevision{a[2], a[1], a[0]})
	wantEqualList(t, "History of b", mustHistory(t, s, "b", 0, 10), []*wsfleetv1.PolicyRevision{b[1], b[0]})
}

func testRacingCAS(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)

	const racers = 16
	type result struct {
		i   int
		rev *wsfleetv1.PolicyRevision
		err error
	}
	results := make(chan result, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			rev, err := s.Append(t.Context(), Revision(pool, fmt.Sprintf("racer %d", i)), 1)
			results <- result{i, rev, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)

	winner := -1
	var conflicts []error
	for r := range results {
		if r.err == nil {
			if winner >= 0 {
				t.Fatalf("racers %d and %d both won the compare-and-set on revision 1", winner, r.i)
			}
			winner = r.i
			if r.rev.GetRevision() != 2 {
				t.Fatalf("winner got revision %d, want 2", r.rev.GetRevision())
			}
			continue
		}
		conflicts = append(conflicts, r.err)
	}
	if winner < 0 {
		t.Fatalf("no racer won; errors: %v", conflicts)
	}
	for _, err := range conflicts {
		wantConflict(t, err, pool, 1, 2)
	}
	wantEqual(t, "Head", mustHead(t, s, pool), withRevision(s, Revision(pool, fmt.Sprintf("racer %d", winner)), 2))
	if n := len(mustHistory(t, s, pool, 0, 100)); n != 2 {
		t.Fatalf("history has %d revisions, want 2", n)
	}
}

func testConcurrentAny(t *testing.T, s store.Store) {
	const writers, perWriter = 8, 10
	const total = writers * perWriter
	type result struct {
		msg string
		rev int64
		err error
	}
	results := make(chan result, total)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range perWriter {
				msg := fmt.Sprintf("writer %d append %d", w, i)
				rev, err := s.Append(t.Context(), Revision(pool, msg), store.AnyRevision)
				results <- result{msg, rev.GetRevision(), err}
			}
		})
	}
	close(start)
	wg.Wait()
	close(results)

	byRevision := map[int64]string{}
	for r := range results {
		if r.err != nil {
			t.Fatalf("Append %q with AnyRevision: %v", r.msg, r.err)
		}
		if prev, dup := byRevision[r.rev]; dup {
			t.Fatalf("revision %d given to both %q and %q", r.rev, prev, r.msg)
		}
		byRevision[r.rev] = r.msg
	}
	for n := int64(1); n <= total; n++ {
		if _, ok := byRevision[n]; !ok {
			t.Fatalf("no append got revision %d; revisions must run 1..%d with no gap", n, total)
		}
	}

	hist := mustHistory(t, s, pool, 0, total+1)
	if len(hist) != total {
		t.Fatalf("history has %d revisions, want %d", len(hist), total)
	}
	for _, r := range hist {
		if want := byRevision[r.GetRevision()]; r.GetMessage() != want {
			t.Fatalf("revision %d holds %q, but Append returned it for %q", r.GetRevision(), r.GetMessage(), want)
		}
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	_, err := s.Append(ctx, Revision(pool, "cancelled"), 1)
	wantErr(t, err, context.Canceled)
	_, err = s.Append(ctx, Revision("fresh", "cancelled"), 0)
	wantErr(t, err, context.Canceled)

	_, err = s.Head(ctx, pool)
	wantErr(t, err, context.Canceled)
	_, err = s.Get(ctx, pool, 1)
	wantErr(t, err, context.Canceled)
	_, err = s.History(ctx, pool, 0, 10)
	wantErr(t, err, context.Canceled)
	_, err = s.Pools(ctx)
	wantErr(t, err, context.Canceled)
	_, err = s.WatchHeads(ctx)
	wantErr(t, err, context.Canceled)

	if head := mustHead(t, s, pool).GetRevision(); head != 1 {
		t.Fatalf("head is %d after a cancelled append, want 1", head)
	}
	_, err = s.Head(t.Context(), "fresh")
	wantErr(t, err, store.ErrNotFound)
}

func testClosed(t *testing.T, s store.Store) {
	appendN(t, s, pool, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	calls := []struct {
		name string
		call func() error
	}{
		{"Head", func() error { _, err := s.Head(ctx, pool); return err }},
		{"Get", func() error { _, err := s.Get(ctx, pool, 1); return err }},
		{"Append", func() error { _, err := s.Append(ctx, Revision(pool, "late"), store.AnyRevision); return err }},
		{"History", func() error { _, err := s.History(ctx, pool, 0, 10); return err }},
		{"Pools", func() error { _, err := s.Pools(ctx); return err }},
		{"WatchHeads", func() error { _, err := s.WatchHeads(ctx); return err }},
		{"Close", s.Close},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: error = %v, want ErrClosed", c.name, err)
		}
	}
}

// watchWithin bounds every wait for a watch: generous, for a loaded CI
// machine and for backends that reconnect with backoff.
const watchWithin = 15 * time.Second

// watch is one WatchHeads channel read by the test, with what it
// delivered per pool.
type watch struct {
	t      *testing.T
	s      store.Store
	ch     <-chan *wsfleetv1.PolicyRevision
	cancel context.CancelFunc
	seen   map[string][]int64 // pool → revisions delivered, in order
}

// startWatch watches s until the test ends; the cleanup waits for the
// channel to close, so no watch outlives its sub-test.
func startWatch(t *testing.T, s store.Store) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.WatchHeads(ctx)
	if err != nil {
		cancel()
		t.Fatalf("WatchHeads: %v", err)
	}
	w := &watch{t: t, s: s, ch: ch, cancel: cancel, seen: map[string][]int64{}}
	t.Cleanup(func() {
		cancel()
		w.closed("after its context was cancelled")
	})
	return w
}

// next returns the next head delivered, checking that its pool's
// revisions only go up.
func (w *watch) next() *wsfleetv1.PolicyRevision {
	w.t.Helper()
	select {
	case r, ok := <-w.ch:
		if !ok {
			w.t.Fatal("the watch channel closed")
		}
		seen := w.seen[r.GetPool()]
		if n := len(seen); n > 0 && r.GetRevision() <= seen[n-1] {
			w.t.Fatalf("pool %s went backwards: delivered %d after %v", r.GetPool(), r.GetRevision(), seen)
		}
		w.seen[r.GetPool()] = append(seen, r.GetRevision())
		return r
	case <-time.After(watchWithin):
		w.t.Fatalf("no head delivered within %s; delivered so far: %v", watchWithin, w.seen)
	}
	return nil
}

// until reads heads until every pool in heads has delivered exactly that
// revision, checking each delivered revision against what the store holds.
// pause is slept before each read: a slow consumer.
func (w *watch) until(heads map[string]*wsfleetv1.PolicyRevision, pause time.Duration) {
	w.t.Helper()
	done := func() bool {
		for pool, h := range heads {
			seen := w.seen[pool]
			if len(seen) == 0 || seen[len(seen)-1] < h.GetRevision() {
				return false
			}
		}
		return true
	}
	for !done() {
		time.Sleep(pause)
		r := w.next()
		want, ok := heads[r.GetPool()]
		if !ok {
			w.t.Fatalf("delivered a head of pool %s, which nobody wrote", r.GetPool())
		}
		if r.GetRevision() > want.GetRevision() {
			w.t.Fatalf("delivered %s@%d, above the head %d", r.GetPool(), r.GetRevision(), want.GetRevision())
		}
		wantEqual(w.t, fmt.Sprintf("delivered %s@%d", r.GetPool(), r.GetRevision()), r, mustGet(w.t, w.s, r.GetPool(), r.GetRevision()))
	}
}

// closed waits for the channel to close, draining what is still delivered.
func (w *watch) closed(why string) {
	w.t.Helper()
	deadline := time.After(watchWithin)
	for {
		select {
		case _, ok := <-w.ch:
			if !ok {
				return
			}
		case <-deadline:
			w.t.Fatalf("the watch channel was not closed %s within %s", why, watchWithin)
		}
	}
}

// heads is every pool's head, by pool.
func heads(t *testing.T, s store.Store) map[string]*wsfleetv1.PolicyRevision {
	t.Helper()
	pools, err := s.Pools(t.Context())
	if err != nil {
		t.Fatalf("Pools: %v", err)
	}
	out := map[string]*wsfleetv1.PolicyRevision{}
	for _, p := range pools {
		out[p.GetPool()] = p
	}
	return out
}

func testWatchInitialHeads(t *testing.T, s store.Store, _ options) {
	appendN(t, s, "default", 3)
	appendN(t, s, "edge", 1)
	appendN(t, s, "zeta", 2)
	want := heads(t, s)

	w := startWatch(t, s)
	for range len(want) {
		r := w.next()
		h, ok := want[r.GetPool()]
		if !ok {
			t.Fatalf("delivered pool %s, which has no revision", r.GetPool())
		}
		if len(w.seen[r.GetPool()]) > 1 {
			t.Fatalf("pool %s delivered twice before every pool was: %v", r.GetPool(), w.seen)
		}
		wantEqual(t, "first delivered head of "+r.GetPool(), r, h)
	}
}

func testWatchEmptyStore(t *testing.T, s store.Store, _ options) {
	w := startWatch(t, s)
	first, err := s.Append(t.Context(), Revision("fresh", "first"), 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	wantEqual(t, "delivered head", w.next(), first)
}

func testWatchEveryHead(t *testing.T, s store.Store, _ options) {
	appendN(t, s, pool, 1)
	w := startWatch(t, s)
	if r := w.next(); r.GetRevision() != 1 {
		t.Fatalf("first delivered %s@%d, want the head 1", r.GetPool(), r.GetRevision())
	}
	for n := int64(2); n <= 6; n++ {
		in := Revision(pool, fmt.Sprintf("change %d", n))
		if n == 5 {
			in.Revision = 40 // a recovery's jump is a head like any other
		}
		stored, err := s.Append(t.Context(), in, store.AnyRevision)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		wantEqual(t, fmt.Sprintf("head after append %d", n), w.next(), stored)
	}
}

func testWatchSlowConsumer(t *testing.T, s store.Store, _ options) {
	appendN(t, s, "p0", 1)
	w := startWatch(t, s) // not read until every append has returned

	const writers, perWriter = 4, 30
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			for j := range perWriter {
				// Writers share pools, so that pools also race.
				p := fmt.Sprintf("p%d", (i+j)%3)
				if _, err := s.Append(t.Context(), Revision(p, fmt.Sprintf("writer %d append %d", i, j)), store.AnyRevision); err != nil {
					errs <- fmt.Errorf("append to %s: %w", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := heads(t, s)
	w.until(want, 20*time.Millisecond)
}

func testWatchShared(t *testing.T, s store.Store, o options) {
	if o.shared == nil {
		t.Skip("the backend is one process's (no WithShared): every commit is its own")
	}
	other := o.shared(t, s)
	if other.ID() != s.ID() {
		t.Fatalf("another handle has identity %q, want %q", other.ID(), s.ID())
	}
	appendN(t, other, "edge", 2)
	w := startWatch(t, s)
	w.until(heads(t, s), 0)

	for n := int64(3); n <= 5; n++ {
		stored, err := other.Append(t.Context(), Revision("edge", fmt.Sprintf("edge change %d", n)), n-1)
		if err != nil {
			t.Fatalf("Append through the other handle: %v", err)
		}
		wantEqual(t, "head appended through the other handle", w.next(), stored)
	}
}

func testWatchGap(t *testing.T, s store.Store, o options) {
	if o.gap == nil {
		t.Skip("the backend's notifications cannot break (no WithGap): they are its own commits, in process")
	}
	other := o.shared(t, s)
	appendN(t, s, "a", 1)
	w := startWatch(t, s)
	w.until(heads(t, s), 0)

	o.gap(t, s, func() {
		for n := int64(2); n <= 5; n++ {
			if _, err := other.Append(t.Context(), Revision("a", fmt.Sprintf("during the gap %d", n)), n-1); err != nil {
				t.Errorf("Append during the gap: %v", err)
			}
		}
		if _, err := other.Append(t.Context(), Revision("b", "a pool born during the gap"), 0); err != nil {
			t.Errorf("Append during the gap: %v", err)
		}
	})
	want := heads(t, other)
	if want["a"].GetRevision() != 5 || want["b"].GetRevision() != 1 {
		t.Fatalf("heads after the gap: a@%d b@%d, want a@5 b@1", want["a"].GetRevision(), want["b"].GetRevision())
	}
	w.until(want, 0)

	// And the watch goes on after it.
	next, err := other.Append(t.Context(), Revision("a", "after the gap"), 5)
	if err != nil {
		t.Fatalf("Append after the gap: %v", err)
	}
	wantEqual(t, "head after the gap", w.next(), next)
}

func testWatchCancel(t *testing.T, s store.Store, _ options) {
	appendN(t, s, pool, 1)
	// Goroutines of the store and its backend, up to now: the watch's must
	// all be gone once its channel is closed.
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.WatchHeads(ctx)
	if err != nil {
		cancel()
		t.Fatalf("WatchHeads: %v", err)
	}
	w := &watch{t: t, s: s, ch: ch, cancel: cancel, seen: map[string][]int64{}}
	w.next()
	cancel()
	w.closed("after its context was cancelled")
	// A backend's client and server may take a moment to tear the watch
	// down after the channel is closed (a network round trip).
	for deadline := time.Now().Add(watchWithin); ; {
		err := goleak.Find(before)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch left goroutines behind: %v", err)
		}
	}
	// The store goes on.
	if _, err := s.Append(t.Context(), Revision(pool, "after the watch"), 1); err != nil {
		t.Fatalf("Append after a watch ended: %v", err)
	}
}

func testWatchClose(t *testing.T, s store.Store, _ options) {
	appendN(t, s, pool, 1)
	a, b := startWatch(t, s), startWatch(t, s)
	a.next() // one read, one not: neither holds Close up
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	a.closed("after Close")
	b.closed("after Close")
}

// appendN appends n revisions to a pool that must be empty and returns them
// as stored, oldest first.
func appendN(t *testing.T, s store.Store, pool string, n int) []*wsfleetv1.PolicyRevision {
	t.Helper()
	out := make([]*wsfleetv1.PolicyRevision, 0, n)
	for i := 1; i <= n; i++ {
		in := Revision(pool, fmt.Sprintf("%s change %d", pool, i))
		if _, err := s.Append(t.Context(), in, int64(i-1)); err != nil {
			t.Fatalf("Append %d to %s: %v", i, pool, err)
		}
		out = append(out, withRevision(s, in, int64(i)))
	}
	return out
}

// withRevision is in as s stores it as revision n.
func withRevision(s store.Store, in *wsfleetv1.PolicyRevision, n int64) *wsfleetv1.PolicyRevision {
	out := proto.Clone(in).(*wsfleetv1.PolicyRevision)
	out.Revision = n
	out.StoreId = s.ID()
	return out
}

// scribble changes every kind of field a store could share by reference:
// scalars, nested messages and repeated fields.
func scribble(r *wsfleetv1.PolicyRevision) {
	r.Pool = "scribbled"
	r.Revision = 999
	r.Message = "scribbled"
	r.CreateTime.Seconds = 1
	r.Policy.Origins.Allow[0] = "https://evil.example"
	r.Policy.Origins.Allow = append(r.Policy.Origins.Allow, "https://more.example")
	r.Policy.Heartbeat.Interval.Seconds = 1
	r.Policy.Limits.MaxConnections = 1
}

func mustHead(t *testing.T, s store.Store, pool string) *wsfleetv1.PolicyRevision {
	t.Helper()
	r, err := s.Head(t.Context(), pool)
	if err != nil {
		t.Fatalf("Head(%q): %v", pool, err)
	}
	return r
}

func mustGet(t *testing.T, s store.Store, pool string, n int64) *wsfleetv1.PolicyRevision {
	t.Helper()
	r, err := s.Get(t.Context(), pool, n)
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", pool, n, err)
	}
	return r
}

func mustHistory(t *testing.T, s store.Store, pool string, before int64, limit int) []*wsfleetv1.PolicyRevision {
	t.Helper()
	rs, err := s.History(t.Context(), pool, before, limit)
	if err != nil {
		t.Fatalf("History(%q, before %d, limit %d): %v", pool, before, limit, err)
	}
	return rs
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
}

func wantConflict(t *testing.T, err error, pool string, expected, current int64) {
	t.Helper()
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("error = %v, want one wrapping ErrConflict", err)
	}
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v, want a *store.ConflictError", err)
	}
	want := store.ConflictError{Pool: pool, Expected: expected, Current: current}
	if *ce != want {
		t.Fatalf("ConflictError = %+v, want %+v", *ce, want)
	}
}

func wantEqual(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s:\n got: %s\nwant: %s", what, prototext.Format(got), prototext.Format(want))
	}
}

func wantEqualList(t *testing.T, what string, got, want []*wsfleetv1.PolicyRevision) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d revisions %v, want %d", what, len(got), revisionNumbers(got), len(want))
	}
	for i := range got {
		wantEqual(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

func revisionNumbers(rs []*wsfleetv1.PolicyRevision) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s@%d", r.GetPool(), r.GetRevision()))
	}
	return out
}

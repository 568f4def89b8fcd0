package policyclient

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// stored returns revision(pool, n) as the store storeID issued it.
func stored(pool string, n int64, storeID string) *wsfleetv1.PolicyRevision {
	r := revision(pool, n)
	r.StoreId = storeID
	return r
}

func TestHelloCarriesTheRunningRevisionWhole(t *testing.T) {
	h := newHarness(t, false)
	cache := filepath.Join(t.TempDir(), "policy.json")
	c := newClient(t, h, &recorder{}, func(cfg *Config) { cfg.CacheFile = cache })
	ctx := runClientCtx(t, c)
	fs := h.nextStream(t)
	if fs.hello.GetRunning() != nil {
		t.Fatalf("a node that runs nothing reports %v", fs.hello.GetRunning())
	}
	running := stored("edge", 7, "bolt-aaaa")
	fs.expectAck(t, fs.push(t, running))

	fs.fail(t, status.Error(codes.Unavailable, "control plane restarting"))
	fs2 := h.nextStream(t)
	if !proto.Equal(fs2.hello.GetRunning(), running) {
		t.Fatalf("hello running %v, want %v", fs2.hello.GetRunning(), running)
	}
	if fs2.hello.GetAppliedRevision() != 7 || fs2.hello.GetAppliedPool() != "edge" {
		t.Fatalf("hello %v, want applied edge/7 as well", fs2.hello)
	}
	if st := c.Status(); st.StoreID != "bolt-aaaa" {
		t.Fatalf("status %+v, want store bolt-aaaa", st)
	}
	ctx.stop(t)

	// A restarted node reports its cached revision, store id included.
	again := newClient(t, h, &recorder{}, func(cfg *Config) { cfg.CacheFile = cache })
	if again.Cached().GetStoreId() != "bolt-aaaa" || again.Status().StoreID != "bolt-aaaa" {
		t.Fatalf("cache lost the store id: %v", again.Cached())
	}
	runClient(t, again)
	if got := h.nextStream(t).hello.GetRunning(); !proto.Equal(got, running) {
		t.Fatalf("hello after a restart: running %v, want %v", got, running)
	}
}

func TestARevisionThatGoesBackwardsIsRefused(t *testing.T) {
	sameNumberOtherContent := stored("edge", 81, "bolt-bbbb")
	sameNumberOtherContent.Policy.Limits.MaxConnections = 7
	tests := []struct {
		name     string
		running  *wsfleetv1.PolicyRevision
		offered  *wsfleetv1.PolicyRevision
		wantNack string // empty: ACKed
		applied  bool   // Apply was called with offered
	}{
		{
			name:     "a lower revision from a new store is refused",
			running:  stored("edge", 81, "bolt-aaaa"),
			offered:  stored("edge", 1, "bolt-bbbb"),
			wantNack: "revision went backwards: running edge@81 from store bolt-aaaa, offered edge@1 from store bolt-bbbb",
		},
		{
			name:     "a lower revision of default's is refused",
			running:  stored(policy.DefaultPool, 81, "bolt-aaaa"),
			offered:  stored(policy.DefaultPool, 1, "bolt-bbbb"),
			wantNack: "revision went backwards: running default@81 from store bolt-aaaa, offered default@1 from store bolt-bbbb",
		},
		{
			name:     "a lower revision from the same store is refused",
			running:  stored("edge", 5, "bolt-aaaa"),
			offered:  stored("edge", 4, "bolt-aaaa"),
			wantNack: "revision went backwards: running edge@5 from store bolt-aaaa, offered edge@4 from store bolt-aaaa",
		},
		{
			name:     "the same number with other content from another store is refused",
			running:  stored("edge", 81, "bolt-aaaa"),
			offered:  sameNumberOtherContent,
			wantNack: "running edge@81 from store bolt-aaaa, offered edge@81 from store bolt-bbbb (same number, other content)",
		},
		{
			name:     "default's revision offered to a node that runs its own pool's is refused",
			running:  stored("edge", 5, "bolt-aaaa"),
			offered:  stored(policy.DefaultPool, 9, "bolt-bbbb"),
			wantNack: "the control plane has no policy for pool edge",
		},
		{
			name:    "the same number and content from another store is acknowledged without Apply",
			running: stored("edge", 81, "bolt-aaaa"),
			offered: stored("edge", 81, "bolt-bbbb"),
		},
		{
			name:    "a recovered revision above the running one is applied",
			running: stored("edge", 81, "bolt-aaaa"),
			offered: stored("edge", 82, "bolt-bbbb"),
			applied: true,
		},
		{
			name:    "the node's own pool's first revision after default's is applied",
			running: stored(policy.DefaultPool, 81, "bolt-aaaa"),
			offered: stored("edge", 1, "bolt-aaaa"),
			applied: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			rec := &recorder{}
			cache := filepath.Join(t.TempDir(), "policy.json")
			c := newClient(t, h, rec, func(cfg *Config) { cfg.CacheFile = cache })
			runClient(t, c)
			fs := h.nextStream(t)
			fs.expectAck(t, fs.push(t, tt.running))
			nonce := fs.push(t, tt.offered)
			want := tt.running
			if tt.wantNack != "" {
				text := fs.expectNack(t, nonce)
				if !strings.Contains(text, tt.wantNack) || !strings.HasPrefix(text, ErrBackwards.Error()) {
					t.Fatalf("NACK text %q, want it to start with %q and contain %q", text, ErrBackwards, tt.wantNack)
				}
				// Counted once the NACK is sent, which may be just after
				// the server read it.
				eventually(t, "NACK counted", func() bool { return c.Status().Nacks == 1 })
				if st := c.Status(); st.LastError != text {
					t.Fatalf("status %+v", st)
				}
			} else {
				fs.expectAck(t, nonce)
				want = tt.offered
			}
			wantApplied := []int64{tt.running.GetRevision()}
			if tt.applied {
				wantApplied = append(wantApplied, tt.offered.GetRevision())
			}
			if got := rec.got(); !slices.Equal(got, wantApplied) {
				t.Fatalf("Apply called with %v, want %v", got, wantApplied)
			}
			// The node keeps (or takes) want, in memory, in the cache and
			// in its next hello.
			if st := c.Status(); st.Revision != want.GetRevision() || st.Pool != want.GetPool() || st.StoreID != want.GetStoreId() {
				t.Fatalf("status %+v, want %s@%d from %s", st, want.GetPool(), want.GetRevision(), want.GetStoreId())
			}
			if cached, err := loadCache(cache); err != nil || !proto.Equal(cached, want) {
				t.Fatalf("cache holds %v (%v), want %v", cached, err, want)
			}
			fs.fail(t, status.Error(codes.Unavailable, "restart"))
			if got := h.nextStream(t).hello.GetRunning(); !proto.Equal(got, want) {
				t.Fatalf("hello reports running %v, want %v", got, want)
			}
		})
	}
}

func TestNackTextIsValidUTF8AndBounded(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"an invalid byte in Apply's error is replaced", errors.New("origin \"https://\xff.example.com\" refused")},
		{"a long text is cut on a character", errors.New(strings.Repeat("é", MaxNackBytes))},
		{"a long text with invalid bytes is repaired and cut", errors.New(strings.Repeat("\xe2\x82", MaxNackBytes))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			rec := &recorder{}
			rec.setFail(tt.err)
			c := newClient(t, h, rec, nil)
			runClient(t, c)
			fs := h.nextStream(t)
			// Before the fix, this NACK could not be marshalled: it never
			// arrived and the control plane never heard why.
			text := fs.expectNack(t, fs.push(t, revision("edge", 1)))
			if !utf8.ValidString(text) || len(text) > MaxNackBytes {
				t.Fatalf("NACK text of %d bytes, valid UTF-8 %v", len(text), utf8.ValidString(text))
			}
			if len(tt.err.Error()) > MaxNackBytes && !strings.HasSuffix(text, clip.Mark) {
				t.Fatalf("a cut NACK text does not say so: ...%q", text[max(0, len(text)-40):])
			}
		})
	}
}

// runningClient is a Run a test stops before its end.
type runningClient struct {
	cancel func()
	done   chan error
}

func runClientCtx(t testing.TB, c *Client) *runningClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningClient{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(cancel)
	return r
}

// stop cancels the Run and waits for it to return.
func (r *runningClient) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

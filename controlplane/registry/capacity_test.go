package registry

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// labelsOf makes n labels with values of size bytes.
func labelsOf(n, size int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("label-%02d", i)] = strings.Repeat("v", size)
	}
	return m
}

func TestOversizedHellosAreRefusedNamingTheField(t *testing.T) {
	bigPolicy := policy.Default()
	for i := range 2100 {
		bigPolicy.Origins.Allow = append(bigPolicy.Origins.Allow, fmt.Sprintf("https://%s%d.example", strings.Repeat("a", 480), i))
	}
	cases := []struct {
		name  string
		hello *wsfleetv1.NodeHello
		field string
	}{
		{"an address over its cap", &wsfleetv1.NodeHello{Address: strings.Repeat("a", MaxAddressBytes+1)}, "address:"},
		{"a build over its cap", &wsfleetv1.NodeHello{Build: strings.Repeat("b", MaxBuildBytes+1)}, "build:"},
		{"more than 64 labels", &wsfleetv1.NodeHello{Labels: labelsOf(65, 1)}, "labels: more than 64"},
		{"64 labels of 30 KB", &wsfleetv1.NodeHello{Labels: labelsOf(64, 30_000)}, "labels[label-00]: value of 30000 bytes"},
		{"a label key over its cap", &wsfleetv1.NodeHello{Labels: map[string]string{strings.Repeat("k", MaxLabelKeyBytes+1): "v"}}, "labels: key"},
		{"an empty label key", &wsfleetv1.NodeHello{Labels: map[string]string{"": "v"}}, "labels: an empty key"},
		{"labels over their total", &wsfleetv1.NodeHello{Labels: labelsOf(20, MaxLabelValueBytes)}, "labels: 5280 bytes of keys and values, at most 4096"},
		{"a running revision over its cap", &wsfleetv1.NodeHello{Running: &wsfleetv1.PolicyRevision{Pool: "default", Revision: 1, Policy: bigPolicy}}, "running:"},
		{"an applied pool that is no pool name", &wsfleetv1.NodeHello{AppliedPool: "Not A Pool"}, "applied_pool:"},
		{"a node id over its cap", &wsfleetv1.NodeHello{NodeId: strings.Repeat("n", maxNodeIDLength+1)}, "node_id:"},
		{"a pool that is no DNS label", &wsfleetv1.NodeHello{Pool: strings.Repeat("p", 64)}, "pool:"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if tc.hello.NodeId == "" {
				tc.hello.NodeId = "n1"
			}
			err := validateHello(tc.hello)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %q", err, tc.field)
			}
			// The answer stays short, whatever the node sent.
			if n := len(err.Error()); n > 1024 {
				t.Fatalf("error of %d bytes", n)
			}
		})
	}
	t.Run("a hello at every cap is accepted", func(t *testing.T) {
		labels := map[string]string{strings.Repeat("k", MaxLabelKeyBytes): strings.Repeat("v", MaxLabelValueBytes)}
		for i := range 10 {
			labels[fmt.Sprintf("l%d", i)] = strings.Repeat("v", 300-MaxLabelKeyBytes)
		}
		h := &wsfleetv1.NodeHello{
			NodeId:      strings.Repeat("n", maxNodeIDLength),
			Pool:        strings.Repeat("p", 63),
			Address:     strings.Repeat("a", MaxAddressBytes),
			Build:       strings.Repeat("b", MaxBuildBytes),
			AppliedPool: policy.DefaultPool,
			Labels:      labels,
		}
		if err := validateHello(h); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an oversized hello over gRPC ends the stream with InvalidArgument", func(t *testing.T) {
		_, c := fixture(t, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := c.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hello := &wsfleetv1.NodeHello{NodeId: "n1", Labels: labelsOf(64, 30_000)}
		if err := st.Send(&wsfleetv1.WatchRequest{Kind: &wsfleetv1.WatchRequest_Hello{Hello: hello}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "labels") {
			t.Fatalf("err = %v", err)
		}
	})
}

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newRegistry is a registry driven by direct calls, without gRPC.
func newRegistry(t *testing.T, cfg Config) *Registry {
	t.Helper()
	if cfg.Log == nil {
		log := logrus.New()
		log.SetOutput(io.Discard)
		cfg.Log = log
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// attachHello attaches a node's stream as Watch does after its hello.
func attachHello(r *Registry, h *wsfleetv1.NodeHello) (gen uint64, err error) {
	_, gen, _, _, err = r.attach(h, "", "token:test")
	return gen, err
}

// join attaches a node as a hello would; it fails the test on a refusal.
func join(t *testing.T, r *Registry, h *wsfleetv1.NodeHello) uint64 {
	t.Helper()
	gen, err := attachHello(r, h)
	if err != nil {
		t.Fatalf("attach %s: %v", h.GetNodeId(), err)
	}
	return gen
}

// listAll pages through ListNodes with page size size and returns the ids
// in the order listed and the number of pages.
func listAll(t *testing.T, list func(*wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error), size int32, between func()) ([]string, int) {
	t.Helper()
	var ids []string
	req := &wsfleetv1.ListNodesRequest{PageSize: size}
	for pages := 1; ; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages")
		}
		resp, err := list(req)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, n := range resp.GetNodes() {
			ids = append(ids, n.GetNodeId())
		}
		if resp.GetNextPageToken() == "" {
			return ids, pages
		}
		req = &wsfleetv1.ListNodesRequest{PageSize: size, PageToken: resp.GetNextPageToken()}
		if between != nil {
			between()
		}
	}
}

func TestTheRegistryForgetsTheOldestDisconnectedNodeWhenFull(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRegistry(t, Config{MaxNodes: 3, Now: clk.Now})
	genA := join(t, r, &wsfleetv1.NodeHello{NodeId: "a"})
	genB := join(t, r, &wsfleetv1.NodeHello{NodeId: "b"})
	join(t, r, &wsfleetv1.NodeHello{NodeId: "c"})
	clk.advance(time.Minute)
	r.detach("b", genB)
	clk.advance(time.Minute)
	r.detach("a", genA) // a was seen last, b longest ago

	join(t, r, &wsfleetv1.NodeHello{NodeId: "d"})
	if got := ids(t, r); got != "a,c,d" {
		t.Fatalf("nodes %s, want b forgotten", got)
	}
	// A known node coming back needs no room.
	join(t, r, &wsfleetv1.NodeHello{NodeId: "a"})
	// Every known node connected: a new one is refused, loudly.
	_, err := attachHello(r, &wsfleetv1.NodeHello{NodeId: "e"})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `node "e" not admitted`) {
		t.Fatalf("err = %v", err)
	}
	// Telemetry from an unknown node is not listed then either.
	r.TelemetryBatch("f", 1, 0)
	if got := ids(t, r); got != "a,c,d" {
		t.Fatalf("nodes %s", got)
	}
}

func TestTheRegistryIsBoundedInBytes(t *testing.T) {
	clk := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	big := labelsOf(16, 250) // about 5 KiB with the overhead
	per := helloBytes(&wsfleetv1.NodeHello{NodeId: "n00", Labels: big}, nil)
	r := newRegistry(t, Config{MaxNodesBytes: 3*per + per/2, Now: clk.Now})
	var gens []uint64
	for i := range 3 {
		gens = append(gens, join(t, r, &wsfleetv1.NodeHello{NodeId: fmt.Sprintf("n%02d", i), Labels: big}))
		clk.advance(time.Second)
	}
	if _, err := attachHello(r, &wsfleetv1.NodeHello{NodeId: "n03", Labels: big}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("fourth node: %v", err)
	}
	r.detach("n01", gens[1])
	join(t, r, &wsfleetv1.NodeHello{NodeId: "n03", Labels: big})
	if got := ids(t, r); got != "n00,n02,n03" {
		t.Fatalf("nodes %s", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bytes != 3*per || len(r.ids) != 3 {
		t.Fatalf("%d bytes, %d ids", r.bytes, len(r.ids))
	}
}

// ids lists the registry's node ids, comma-separated.
func ids(t *testing.T, r *Registry) string {
	t.Helper()
	got, _ := listAll(t, func(req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
		return r.ListNodes(context.Background(), req)
	}, 0, nil)
	return strings.Join(got, ",")
}

func TestListNodesPagesThroughTenThousandNodes(t *testing.T) {
	const n = 10_000
	// Labels near their total cap: the fleet's listing is about 45 MB,
	// ten times a client's message limit.
	labels := labelsOf(16, 250)
	f := newServed(t, Config{Heads: []*wsfleetv1.PolicyRevision{rev("default", 1)}})
	for i := range n {
		join(t, f.r, &wsfleetv1.NodeHello{NodeId: fmt.Sprintf("node-%05d", i), Labels: labels, Address: "10.0.0.1:8080", Build: "v1.2.3"})
	}
	list := func(req *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := f.fleet.ListNodes(ctx, req)
		if err == nil && proto.Size(resp) > MaxPageBytes+1024 {
			t.Fatalf("a page of %d bytes", proto.Size(resp))
		}
		return resp, err
	}
	for _, size := range []int32{0, 1000} {
		t.Run(fmt.Sprintf("page size %d lists every node once, in id order", size), func(t *testing.T) {
			got, pages := listAll(t, list, size, nil)
			if len(got) != n {
				t.Fatalf("%d nodes listed", len(got))
			}
			for i, id := range got {
				if want := fmt.Sprintf("node-%05d", i); id != want {
					t.Fatalf("position %d: %s, want %s", i, id, want)
				}
			}
			if pages < n/MaxPageSize {
				t.Fatalf("%d pages", pages)
			}
		})
	}
	t.Run("nodes coming and going between pages do not shift the others", func(t *testing.T) {
		churn := 0
		got, _ := listAll(t, list, 997, func() {
			// Forget one node ahead of the cursor, add one behind and one
			// ahead of it.
			churn++
			f.r.mu.Lock()
			f.r.remove(fmt.Sprintf("node-%05d", n-churn))
			f.r.mu.Unlock()
			join(t, f.r, &wsfleetv1.NodeHello{NodeId: fmt.Sprintf("a-new-%03d", churn)})
			join(t, f.r, &wsfleetv1.NodeHello{NodeId: fmt.Sprintf("z-new-%03d", churn)})
		})
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
		}
		for i := range n - churn {
			if id := fmt.Sprintf("node-%05d", i); seen[id] != 1 {
				t.Fatalf("%s listed %d times", id, seen[id])
			}
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("%s listed %d times", id, c)
			}
		}
	})
}

func TestListNodesRefusesABadPageRequest(t *testing.T) {
	r := newRegistry(t, Config{})
	join(t, r, &wsfleetv1.NodeHello{NodeId: "n1"})
	cases := []struct {
		name string
		req  *wsfleetv1.ListNodesRequest
		want string
	}{
		{"a negative page size", &wsfleetv1.ListNodesRequest{PageSize: -1}, "page_size"},
		{"a page token that is not base64", &wsfleetv1.ListNodesRequest{PageToken: "!!"}, "page_token"},
		{"a page token too long for a node id", &wsfleetv1.ListNodesRequest{PageToken: pageTokenEncoding.EncodeToString(make([]byte, 200))}, "page_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := r.ListNodes(context.Background(), tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("a page filtered by pool ends without a token", func(t *testing.T) {
		join(t, r, &wsfleetv1.NodeHello{NodeId: "n2", Pool: "edge"})
		join(t, r, &wsfleetv1.NodeHello{NodeId: "n3"})
		resp, err := r.ListNodes(context.Background(), &wsfleetv1.ListNodesRequest{Pool: "edge", PageSize: 1})
		if err != nil || len(resp.GetNodes()) != 1 || resp.GetNodes()[0].GetNodeId() != "n2" || resp.GetNextPageToken() != "" {
			t.Fatalf("resp %v, %v", resp, err)
		}
	})
}

func TestNodesOnTheHeadShareItsRevision(t *testing.T) {
	head := rev("default", 4)
	head.StoreId = "bolt-1"
	r := newRegistry(t, Config{Heads: []*wsfleetv1.PolicyRevision{head}})
	same := proto.Clone(head).(*wsfleetv1.PolicyRevision)
	other := proto.Clone(head).(*wsfleetv1.PolicyRevision)
	other.Policy.Limits.MaxConnections++ // same number, other content
	join(t, r, &wsfleetv1.NodeHello{NodeId: "same", Running: same})
	join(t, r, &wsfleetv1.NodeHello{NodeId: "diff", Running: other})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nodes["same"].running != head || r.nodes["diff"].running != other {
		t.Fatal("running revisions not shared as they should be")
	}
	if r.nodes["diff"].bytes-r.nodes["same"].bytes != proto.Size(other) {
		t.Fatalf("bytes %d and %d", r.nodes["same"].bytes, r.nodes["diff"].bytes)
	}
}

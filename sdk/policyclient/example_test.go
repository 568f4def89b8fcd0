package policyclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/errclass"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyclient"
)

// guard is what a plain Go HTTP service writes to enforce its pool's
// policy on its own endpoints: the origin allowlist (the CORS-style check a
// browser's Origin header gets at the node) and the pool's handshake rate
// as the service's request rate. Apply is the policy client's Apply; Wrap
// guards any handler. The data path reads one immutable value through an
// atomic pointer: no lock per request.
type guard struct {
	cur atomic.Pointer[enforcement]
}

// enforcement is one applied policy, immutable once stored.
type enforcement struct {
	revision int64
	origins  *policy.OriginMatcher
	// limiter is shared by every revision: a push that keeps or changes the
	// rate must not refill the bucket (SetLimit and SetBurst keep its
	// tokens), or every push would let a burst through.
	limiter *rate.Limiter
}

// Apply builds the new enforcement; an error NACKs the revision and the
// service keeps enforcing its last good one. The policy client calls it
// from one goroutine, one revision at a time.
func (g *guard) Apply(rev *wsfleetv1.PolicyRevision) error {
	p := rev.GetPolicy()
	origins, err := policy.NewOriginMatcher(p.GetOrigins().GetAllow(), p.GetOrigins().GetAllowMissing())
	if err != nil {
		return err // NACK: the last good policy stays in force
	}
	g.cur.Store(&enforcement{revision: rev.GetRevision(), origins: origins, limiter: g.limiter(p.GetLimits())})
	return nil
}

// limiter is the service's token bucket at the pool's handshake rate and
// burst: the first revision's, carried over to the next ones.
func (g *guard) limiter(l *wsfleetv1.LimitsPolicy) *rate.Limiter {
	perSecond, burst := rate.Limit(l.GetHandshakesPerSecond()), int(l.GetHandshakeBurst())
	prev := g.cur.Load()
	if prev == nil {
		return rate.NewLimiter(perSecond, burst) // starts full
	}
	prev.limiter.SetLimit(perSecond)
	prev.limiter.SetBurst(burst)
	return prev.limiter
}

// Wrap refuses what the policy refuses, with the node's statuses and body
// (api/errclass): 403 origin_rejected, 429 rate_limited with Retry-After.
// Until the first policy arrives everything is refused with 503.
func (g *guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := g.cur.Load()
		switch {
		case e == nil:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "no policy yet", http.StatusServiceUnavailable)
		case !e.origins.Allow(r.Header.Get("Origin")):
			refuse(w, wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED)
		case !e.limiter.Allow():
			refuse(w, wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func refuse(w http.ResponseWriter, class wsfleetv1.ErrorClass) {
	info := errclass.Lookup(class)
	if info.RetryAfter {
		// The pool's rate is at least one per second: a token is back
		// within a second.
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(info.HTTPStatus)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": info.Name})
}

// standIn is a stand-in control plane for the example: the generated
// NodeService with a Watch that pushes every revision sent on push and
// hands every ACK or NACK to replies. A real service dials wsfleet-control
// instead (sdk/admin.Dial(...).Conn()), which pushes what `wsctl policy
// apply` stores.
type standIn struct {
	wsfleetv1.UnimplementedNodeServiceServer
	push    chan *wsfleetv1.PolicyRevision
	replies chan *wsfleetv1.WatchRequest
}

func (s *standIn) Watch(stream grpc.BidiStreamingServer[wsfleetv1.WatchRequest, wsfleetv1.WatchResponse]) error {
	if _, err := stream.Recv(); err != nil { // the hello
		return err
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case s.replies <- r:
			case <-stream.Context().Done():
				return
			}
		}
	}()
	for nonce := 1; ; nonce++ {
		select {
		case rev := <-s.push:
			if err := stream.Send(&wsfleetv1.WatchResponse{Revision: rev, Nonce: strconv.Itoa(nonce)}); err != nil {
				return err
			}
		case <-ended:
			return nil
		}
	}
}

// A plain Go HTTP service (not a wsfleet node) embeds the policy client to
// enforce its pool's origin allowlist and rate limit on its own endpoints,
// and follows every policy change at runtime.
func Example_httpService() {
	// The stand-in control plane, on loopback.
	cp := &standIn{push: make(chan *wsfleetv1.PolicyRevision), replies: make(chan *wsfleetv1.WatchRequest)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	grpcServer := grpc.NewServer()
	wsfleetv1.RegisterNodeServiceServer(grpcServer, cp)
	served := make(chan struct{})
	go func() { defer close(served); _ = grpcServer.Serve(lis) }()
	defer func() { grpcServer.Stop(); <-served }()

	// The service: a policy client in pool "shop" applying to a guard, and
	// the guard in front of the service's handlers.
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	g := &guard{}
	pc, err := policyclient.New(policyclient.Config{
		Conn:   conn,
		NodeID: "orders-api-1",
		Pool:   "shop",
		Build:  "orders-api 1.4.0",
		Apply:  g.Apply,
		Log:    quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pc.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	orders := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "[]\n") })
	api := httptest.NewServer(g.Wrap(orders))
	defer api.Close()

	// push stores a revision at the stand-in and waits for the service's
	// answer, as `wsctl policy apply` followed by `wsctl nodes list` would.
	push := func(revision int64, p *wsfleetv1.Policy) {
		cp.push <- &wsfleetv1.PolicyRevision{Pool: "shop", Revision: revision, Policy: p}
		select {
		case r := <-cp.replies:
			if r.GetAck() != nil {
				fmt.Printf("revision %d applied\n", revision)
			} else {
				fmt.Printf("revision %d refused: %s\n", revision, r.GetNack().GetError())
			}
		case <-time.After(10 * time.Second):
			fmt.Println("no answer from the service")
		}
	}
	get := func(origin string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/orders", nil)
		req.Header.Set("Origin", origin)
		resp, err := api.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("  %-26s %d %s", origin, resp.StatusCode, body)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			fmt.Printf("  %-26s Retry-After: %s\n", "", ra)
		}
	}

	p := policy.Default()
	p.Origins.Allow = []string{"https://shop.example.com"}
	p.Origins.AllowMissing = false
	p.Limits.HandshakesPerSecond = 1
	p.Limits.HandshakeBurst = 3
	push(1, p)
	get("https://shop.example.com")
	get("https://evil.example.net")

	// A change at runtime: one more origin, same rate (the bucket keeps
	// its tokens: 1 of 3 used so far).
	p = proto.Clone(p).(*wsfleetv1.Policy)
	p.Origins.Allow = append(p.Origins.Allow, "https://*.example.net")
	push(2, p)
	get("https://evil.example.net")
	get("https://shop.example.com")
	get("https://shop.example.com")

	// An invalid policy is refused (NACK, shown by `wsctl nodes list`)
	// before it reaches Apply, and the last good one stays in force; so is
	// one Apply returns an error for.
	bad := proto.Clone(p).(*wsfleetv1.Policy)
	bad.Origins.Allow = []string{"not an origin"}
	push(3, bad)
	fmt.Printf("in force: revision %d\n", g.cur.Load().revision)

	// Output:
	// revision 1 applied
	//   https://shop.example.com   200 []
	//   https://evil.example.net   403 {"error":"origin_rejected"}
	// revision 2 applied
	//   https://evil.example.net   200 []
	//   https://shop.example.com   200 []
	//   https://shop.example.com   429 {"error":"rate_limited"}
	//                              Retry-After: 1
	// revision 3 refused: policyclient: refused pushed revision: revision 3 of pool "shop": policy: invalid policy: origins.allow[0]: "not an origin": missing scheme: want scheme://host[:port]
	// in force: revision 2
}

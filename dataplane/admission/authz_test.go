package admission

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// authEndpoint is the app's connect-authorization endpoint on loopback. It
// answers status (200 unless set) and counts the calls that reached it.
type authEndpoint struct {
	srv    *httptest.Server
	calls  atomic.Int64
	status atomic.Int64
	// hold, when set, makes the handler wait for it to close (or for the
	// caller to give up) before answering.
	hold    atomic.Pointer[chan struct{}]
	entered chan struct{}

	mu      sync.Mutex
	last    authRequest
	lastHdr http.Header
}

func newAuthEndpoint(t *testing.T) *authEndpoint {
	t.Helper()
	e := &authEndpoint{entered: make(chan struct{}, 16)}
	e.status.Store(http.StatusOK)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var req authRequest
		_ = json.Unmarshal(body, &req)
		e.mu.Lock()
		e.last, e.lastHdr = req, r.Header.Clone()
		e.mu.Unlock()
		select {
		case e.entered <- struct{}{}:
		default:
		}
		if h := e.hold.Load(); h != nil {
			select {
			case <-*h:
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
		w.WriteHeader(int(e.status.Load()))
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *authEndpoint) request() (authRequest, http.Header) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last, e.lastHdr
}

// breakerPolicy opens after minSamples calls with at least half failed,
// stays open for openFor and lets probes probes through half-open.
func breakerPolicy(minSamples int32, openFor time.Duration, probes int32) *wsfleetv1.Policy {
	p := testPolicy()
	p.Breaker.FailureRatio = 0.5
	p.Breaker.MinSamples = minSamples
	p.Breaker.Window = durationpb.New(time.Minute)
	p.Breaker.OpenDuration = durationpb.New(openFor)
	p.Breaker.HalfOpenProbes = probes
	return p
}

// stateLog records OnBreakerState calls.
type stateLog struct {
	mu      sync.Mutex
	changes []string
}

func (l *stateLog) record(from, to gobreaker.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, from.String()+"->"+to.String())
}

func (l *stateLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.changes, " ")
}

func admitOnce(t *testing.T, a *Admitter) *Rejection {
	t.Helper()
	r := handshake("https://app.example.com", "10.3.0.1:1")
	tk, rej := a.Admit(context.Background(), r, "trace-1")
	if rej == nil {
		tk.Release()
	}
	return rej
}

// waitHalfOpen waits (bounded) until the breaker's open duration is over.
func waitHalfOpen(t *testing.T, a *Admitter) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.BreakerState() == gobreaker.StateOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker did not leave open within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuthAdmitsAndSendsTheHandshake(t *testing.T) {
	e := newAuthEndpoint(t)
	a := mustNew(t, Config{AuthURL: e.srv.URL + "/authorize", AuthHeaders: []string{"authorization", "Cookie", "X-Missing"}},
		breakerPolicy(5, time.Second, 1))
	r := handshake("https://app.example.com", "10.3.0.7:4242")
	r.URL.Path = "/ws/chat"
	r.URL.RawQuery = "token=abc&room=7"
	r.Header.Set("Authorization", "Bearer xyz")
	r.Header.Add("Cookie", "a=1")
	r.Header.Add("Cookie", "b=2")
	r.Header.Set("X-Secret-Internal", "not forwarded")

	tk, rej := a.Admit(context.Background(), r, "trace-42")
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	defer tk.Release()
	got, hdr := e.request()
	want := authRequest{
		TraceID: "trace-42",
		Origin:  "https://app.example.com",
		Remote:  "10.3.0.7:4242",
		Path:    "/ws/chat",
		Query:   "token=abc&room=7",
		Headers: map[string]string{"Authorization": "Bearer xyz", "Cookie": "a=1; b=2"},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("endpoint got\n %s\nwant\n %s", gotJSON, wantJSON)
	}
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Trace-ID") != "trace-42" {
		t.Fatalf("request headers: Content-Type %q, X-Trace-ID %q", hdr.Get("Content-Type"), hdr.Get("X-Trace-ID"))
	}
}

func TestAuthDeniedIsUnauthorizedAndKeepsTheBreakerClosed(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status)+" from the endpoint gets 401 unauthorized", func(t *testing.T) {
			e := newAuthEndpoint(t)
			e.status.Store(int64(status))
			a := mustNew(t, Config{AuthURL: e.srv.URL}, breakerPolicy(2, time.Minute, 1))
			for range 5 {
				rej := admitOnce(t, a)
				wantRejection(t, rej, classUnauth, 401)
				if rej.RetryAfter != 0 {
					t.Fatalf("RetryAfter = %s on a denial", rej.RetryAfter)
				}
			}
			if s := a.BreakerState(); s != gobreaker.StateClosed {
				t.Fatalf("breaker %s after denials; a healthy upstream must not open it", s)
			}
			if e.calls.Load() != 5 {
				t.Fatalf("endpoint called %d times, want 5", e.calls.Load())
			}
			if a.Active() != 0 {
				t.Fatalf("Active() = %d after denials", a.Active())
			}
		})
	}
}

func TestAuthFailureOpensTheBreakerAndAHealthyEndpointClosesIt(t *testing.T) {
	const openFor = 200 * time.Millisecond
	e := newAuthEndpoint(t)
	e.status.Store(http.StatusInternalServerError)
	var log stateLog
	a := mustNew(t, Config{AuthURL: e.srv.URL, OnBreakerState: log.record}, breakerPolicy(3, openFor, 1))

	for i := range 3 {
		rej := admitOnce(t, a)
		wantRejection(t, rej, classBreaker, 503)
		if !errors.Is(rej, ErrAuthStatus) || !strings.HasPrefix(rej.Reason, "connect authorization failed: ") {
			t.Fatalf("failure %d: %v (cause %v)", i, rej, rej.Err)
		}
		if rej.RetryAfter < time.Second {
			t.Fatalf("RetryAfter = %s on a failed authorization", rej.RetryAfter)
		}
	}
	if s := a.BreakerState(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s after min_samples failures, want open", s)
	}

	t.Run("while open the endpoint is not called and clients get 503 with Retry-After", func(t *testing.T) {
		for range 3 {
			rej := admitOnce(t, a)
			wantRejection(t, rej, classBreaker, 503)
			if rej.RetryAfter != time.Second {
				t.Fatalf("RetryAfter = %s, want the 200ms left rounded up to 1s", rej.RetryAfter)
			}
			if rej.Err != nil {
				t.Fatalf("an open breaker has no call to blame: %v", rej.Err)
			}
		}
		if n := e.calls.Load(); n != 3 {
			t.Fatalf("endpoint called %d times, want 3: an open breaker must not call it", n)
		}
		if a.Active() != 0 {
			t.Fatalf("Active() = %d", a.Active())
		}
	})

	t.Run("after open_duration a healthy endpoint closes it", func(t *testing.T) {
		e.status.Store(http.StatusNoContent)
		waitHalfOpen(t, a)
		if rej := admitOnce(t, a); rej != nil {
			t.Fatalf("half-open probe rejected: %v", rej)
		}
		if s := a.BreakerState(); s != gobreaker.StateClosed {
			t.Fatalf("breaker %s after a successful probe, want closed", s)
		}
		if n := e.calls.Load(); n != 4 {
			t.Fatalf("endpoint called %d times, want 4", n)
		}
	})
	if got, want := log.String(), "closed->open open->half-open half-open->closed"; got != want {
		t.Fatalf("OnBreakerState saw %q, want %q", got, want)
	}
}

func TestAuthFailedProbeReopensTheBreaker(t *testing.T) {
	e := newAuthEndpoint(t)
	e.status.Store(http.StatusBadGateway)
	a := mustNew(t, Config{AuthURL: e.srv.URL}, breakerPolicy(1, 100*time.Millisecond, 1))
	wantRejection(t, admitOnce(t, a), classBreaker, 503)
	waitHalfOpen(t, a)
	wantRejection(t, admitOnce(t, a), classBreaker, 503)
	if s := a.BreakerState(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s after a failed probe, want open", s)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("endpoint called %d times, want 2", n)
	}
}

func TestAuthHalfOpenWithEveryProbeInFlight(t *testing.T) {
	e := newAuthEndpoint(t)
	e.status.Store(http.StatusInternalServerError)
	a := mustNew(t, Config{AuthURL: e.srv.URL}, breakerPolicy(1, 100*time.Millisecond, 1))
	wantRejection(t, admitOnce(t, a), classBreaker, 503)
	waitHalfOpen(t, a)

	e.status.Store(http.StatusOK)
	release := make(chan struct{})
	e.hold.Store(&release)
	drain(e.entered)
	probe := make(chan *Rejection, 1)
	go func() { probe <- admitOnce(t, a) }()
	select {
	case <-e.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the probe did not reach the endpoint")
	}

	rej := admitOnce(t, a)
	wantRejection(t, rej, classBreaker, 503)
	if !strings.Contains(rej.Reason, "every probe in flight") || rej.RetryAfter != time.Second {
		t.Fatalf("rejection %q, Retry-After %s", rej.Reason, rej.RetryAfter)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("endpoint called %d times, want 2 (one failure, one probe)", n)
	}
	close(release)
	if rej := <-probe; rej != nil {
		t.Fatalf("probe: %v", rej)
	}
	if s := a.BreakerState(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s after the probe succeeded", s)
	}
}

// drain empties a signal channel so a test waits for the next signal, not
// an earlier one.
func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func TestAuthFailuresCountAgainstTheBreaker(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *authEndpoint) string // returns the URL to use
		cause error
	}{
		{name: "a timeout counts as a failure", cause: ErrAuthTimeout, setup: func(e *authEndpoint) string {
			never := make(chan struct{})
			e.hold.Store(&never)
			return e.srv.URL
		}},
		{name: "an unreachable endpoint counts as a failure", cause: ErrAuthUnavailable, setup: func(e *authEndpoint) string {
			// A closed loopback server: connection refused.
			dead := httptest.NewServer(http.NotFoundHandler())
			url := dead.URL
			dead.Close()
			return url
		}},
		{name: "a redirect counts as a failure", cause: ErrAuthStatus, setup: func(e *authEndpoint) string {
			e.status.Store(http.StatusFound)
			return e.srv.URL
		}},
		{name: "429 from the endpoint counts as a failure", cause: ErrAuthStatus, setup: func(e *authEndpoint) string {
			e.status.Store(http.StatusTooManyRequests)
			return e.srv.URL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuthEndpoint(t)
			url := tt.setup(e)
			a := mustNew(t, Config{AuthURL: url, AuthTimeout: 50 * time.Millisecond}, breakerPolicy(2, time.Minute, 1))
			for range 2 {
				rej := admitOnce(t, a)
				wantRejection(t, rej, classBreaker, 503)
				if !errors.Is(rej, tt.cause) {
					t.Fatalf("cause %v, want %v", rej.Err, tt.cause)
				}
			}
			if s := a.BreakerState(); s != gobreaker.StateOpen {
				t.Fatalf("breaker %s after 2 failures with min_samples 2", s)
			}
			if a.Active() != 0 {
				t.Fatalf("Active() = %d", a.Active())
			}
		})
	}
}

func TestAuthClientGoneDoesNotCount(t *testing.T) {
	e := newAuthEndpoint(t)
	never := make(chan struct{})
	e.hold.Store(&never)
	a := mustNew(t, Config{AuthURL: e.srv.URL}, breakerPolicy(1, time.Minute, 1))
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-e.entered
			cancel()
		}()
		_, rej := a.Admit(ctx, handshake("", "10.3.0.1:1"), "gone")
		cancel()
		wantRejection(t, rej, classBreaker, 503)
		if !errors.Is(rej, ErrClientGone) {
			t.Fatalf("cause %v, want ErrClientGone", rej.Err)
		}
	}
	if s := a.BreakerState(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s: clients leaving must not open it", s)
	}
	if a.Active() != 0 {
		t.Fatalf("Active() = %d", a.Active())
	}
}

func TestUpdateBreaker(t *testing.T) {
	e := newAuthEndpoint(t)
	e.status.Store(http.StatusInternalServerError)
	var log stateLog
	a := mustNew(t, Config{AuthURL: e.srv.URL, OnBreakerState: log.record}, breakerPolicy(1, time.Minute, 1))
	wantRejection(t, admitOnce(t, a), classBreaker, 503)

	t.Run("unchanged breaker settings keep an open breaker open", func(t *testing.T) {
		p := breakerPolicy(1, time.Minute, 1)
		p.Origins.Allow = []string{"https://app.example.com", "https://more.example.com"}
		p.Limits.HandshakeBurst = 10
		if err := a.Update(p); err != nil {
			t.Fatal(err)
		}
		if s := a.BreakerState(); s != gobreaker.StateOpen {
			t.Fatalf("breaker %s after an unrelated change", s)
		}
		wantRejection(t, admitOnce(t, a), classBreaker, 503)
		if n := e.calls.Load(); n != 1 {
			t.Fatalf("endpoint called %d times", n)
		}
	})
	t.Run("changed breaker settings start a closed breaker and say so", func(t *testing.T) {
		e.status.Store(http.StatusOK)
		if err := a.Update(breakerPolicy(5, time.Minute, 2)); err != nil {
			t.Fatal(err)
		}
		if s := a.BreakerState(); s != gobreaker.StateClosed {
			t.Fatalf("breaker %s after new settings", s)
		}
		if rej := admitOnce(t, a); rej != nil {
			t.Fatal(rej)
		}
		if got, want := log.String(), "closed->open open->closed"; got != want {
			t.Fatalf("OnBreakerState saw %q, want %q", got, want)
		}
	})
}

func TestBreakerReadyToTrip(t *testing.T) {
	s := breakerSettings{failureRatio: 0.5, minSamples: 4}
	tests := []struct {
		name   string
		counts gobreaker.Counts
		trip   bool
	}{
		{name: "fewer outcomes than min_samples do not trip", counts: gobreaker.Counts{Requests: 10, TotalFailures: 3}},
		{name: "the ratio reached at min_samples trips", counts: gobreaker.Counts{Requests: 4, TotalFailures: 2, TotalSuccesses: 2}, trip: true},
		{name: "a ratio under failure_ratio does not trip", counts: gobreaker.Counts{Requests: 10, TotalFailures: 4, TotalSuccesses: 6}},
		{name: "calls still in flight do not dilute the ratio", counts: gobreaker.Counts{Requests: 20, TotalFailures: 3, TotalSuccesses: 1}, trip: true},
		{name: "no outcomes do not trip", counts: gobreaker.Counts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.readyToTrip(tt.counts); got != tt.trip {
				t.Fatalf("readyToTrip(%+v) = %v", tt.counts, got)
			}
		})
	}
}

package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
)

// The tests here play a hostile or unlucky user of the console.

func TestTheRPCBridgeReachesOnlyTheListedMethods(t *testing.T) {
	f := newFixture(t, Config{})
	admin := f.login(t, adminToken)
	for _, path := range []string{
		"/ui/api/rpc/NodeService/Watch",
		"/ui/api/rpc/NodeService/ReportTelemetry",
		"/ui/api/rpc/FleetService/TailEvents",
		"/ui/api/rpc/PolicyService/RecoverPolicy",
		"/ui/api/rpc/PublishService/Publish",
		"/ui/api/rpc/wsfleet.v1.PolicyService/ApplyPolicy",
		"/ui/api/rpc/policyservice/applypolicy",
		"/ui/api/rpc/POLICYSERVICE/APPLYPOLICY",
		"/ui/api/rpc/PolicyService/ApplyPolicy/",
		"/ui/api/rpc/PolicyService/ApplyPolicy/x",
		"/ui/api/rpc/PolicyService",
		"/ui/api/rpc/PolicyService/%41pplyPolicy%2F..",
		"/ui/api/rpc/PolicyService%2FApplyPolicy/x",
		"/ui/api/rpc/../rpc/NodeService/Watch",
		"/ui/api/rpc/grpc.health.v1.Health/Check",
		"/ui/api/rpc/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	} {
		t.Run(path, func(t *testing.T) {
			a := f.do(t, http.MethodPost, path, admin, applyGood("1"))
			if a.status == http.StatusOK || a.status < 400 {
				t.Fatalf("%s answered %d %s", path, a.status, a.raw)
			}
			if f.head(t) != 1 {
				t.Fatal("the policy changed")
			}
		})
	}
}

func TestRequestsFromElsewhereAreRefused(t *testing.T) {
	f := newFixture(t, Config{})
	admin := f.login(t, adminToken)
	const apply = "/ui/api/rpc/PolicyService/ApplyPolicy"
	sub := strings.Replace(f.srv.URL, "http://", "http://evil.", 1)
	otherPort := f.srv.URL[:strings.LastIndex(f.srv.URL, ":")] + ":1"
	cases := []struct {
		name    string
		path    string
		u       *user
		headers []string
	}{
		{"Origin: null (a sandboxed frame, a data: URL)", apply, admin, []string{"Origin", "null"}},
		{"a subdomain's Origin", apply, admin, []string{"Origin", sub}},
		{"another port's Origin", apply, admin, []string{"Origin", otherPort}},
		{"a same-site fetch from a sibling host", apply, admin, []string{"Origin", "", "Sec-Fetch-Site", "same-site"}},
		{"the right Origin but Sec-Fetch-Site cross-site", apply, admin, []string{"Sec-Fetch-Site", "cross-site"}},
		{"a text/plain form POST without the CSRF token", apply, &user{cookie: admin.cookie},
			[]string{"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"a form POST from the console's own origin without the CSRF token", apply, &user{cookie: admin.cookie},
			[]string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"a cross-site login", "/ui/api/login", nil, []string{"Origin", "null"}},
		{"a cross-site logout", "/ui/api/logout", admin, []string{"Origin", "https://evil.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := applyGood("1")
			if tc.path == "/ui/api/login" {
				body = `{"token":"` + adminToken + `"}`
			}
			a := f.do(t, http.MethodPost, tc.path, tc.u, body, tc.headers...)
			if a.status != http.StatusForbidden {
				t.Fatalf("got %d %s, want 403", a.status, a.raw)
			}
			if f.head(t) != 1 {
				t.Fatal("the policy changed")
			}
		})
	}
	t.Run("a cross-site GET of the session is refused", func(t *testing.T) {
		if a := f.do(t, http.MethodGet, "/ui/api/session", admin, "", "Sec-Fetch-Site", "cross-site"); a.status != http.StatusForbidden {
			t.Fatalf("got %d %s", a.status, a.raw)
		}
	})
	t.Run("the session survived every attempt", func(t *testing.T) {
		if a := f.do(t, http.MethodGet, "/ui/api/session", admin, ""); a.status != 200 {
			t.Fatalf("got %d %s", a.status, a.raw)
		}
	})
}

func TestHostileBodiesAreRefusedCleanly(t *testing.T) {
	f := newFixture(t, Config{})
	admin := f.login(t, adminToken)
	const apply = "/ui/api/rpc/PolicyService/ApplyPolicy"
	cases := []struct {
		name   string
		body   string
		status int
	}{
		{"a body over 1 MiB gets 413", `{"pool":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, 413},
		{"deeply nested JSON gets 400", strings.Repeat(`{"policy":`, 20_000) + strings.Repeat("}", 20_000), 400},
		{"deeply nested arrays get 400", `{"policy":{"origins":{"allow":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}}}`, 400},
		{"invalid UTF-8 gets 400", "{\"pool\":\"de\xff\xfeault\"}", 400},
		{"an unknown field gets 400", `{"pool":"default","policy_override":true}`, 400},
		{"a JSON array gets 400", `[1,2,3]`, 400},
		{"trailing garbage gets 400", `{"pool":"default"} {"pool":"x"}`, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, apply, admin, tc.body)
			if a.status != tc.status {
				t.Fatalf("got %d %.300s, want %d", a.status, a.raw, tc.status)
			}
			if a.header.Get("Content-Type") != "application/json" || a.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("headers %v", a.header)
			}
			if f.head(t) != 1 {
				t.Fatal("the policy changed")
			}
		})
	}
}

func TestALoginTokenIsBounded(t *testing.T) {
	t.Run("a 1 MiB token is refused without a session", func(t *testing.T) {
		f := newFixture(t, Config{})
		a := f.do(t, http.MethodPost, "/ui/api/login", nil, `{"token":"`+strings.Repeat("x", 1<<20)+`"}`)
		if a.status == 200 || strings.Contains(a.header.Get("Set-Cookie"), CookieName+"=") {
			t.Fatalf("got %d %v", a.status, a.header)
		}
	})
	t.Run("in dev mode a huge token makes no session either", func(t *testing.T) {
		// Dev mode takes every token: without a bound, MaxSessions
		// sessions would each keep a token of up to MaxBodyBytes.
		f := newFixture(t, Config{})
		dev, err := auth.New(auth.Config{Dev: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{Auth: dev, Policy: f.policy, Fleet: f.fleet, Now: f.clock.Now, Log: f.c.cfg.Log})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := httptest.NewRequest("POST", "http://console.test/ui/api/login", strings.NewReader(`{"token":"`+strings.Repeat("x", 100_000)+`"}`))
		req.Header.Set("Origin", "http://console.test")
		w := httptest.NewRecorder()
		c.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest || c.sessions.len() != 0 {
			t.Fatalf("got %d with %d sessions, want 400 and none", w.Code, c.sessions.len())
		}
	})
}

func TestACookieSetBeforeLoginIsNeverTheSession(t *testing.T) {
	f := newFixture(t, Config{})
	planted := &http.Cookie{Name: CookieName, Value: "planted-by-an-attacker-0123456789abcdefghijk"}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/api/login", strings.NewReader(`{"token":"`+adminToken+`"}`))
	req.Header.Set("Origin", f.srv.URL)
	req.AddCookie(planted)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var got *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			got = c
		}
	}
	if resp.StatusCode != 200 || got == nil || got.Value == planted.Value {
		t.Fatalf("login %d set %v", resp.StatusCode, got)
	}
	if a := f.do(t, http.MethodGet, "/ui/api/session", &user{cookie: planted}, ""); a.status != 401 {
		t.Fatalf("the planted cookie got %d", a.status)
	}
}

func TestARoleChangeTakesEffectInOpenSessions(t *testing.T) {
	f := newFixture(t, Config{})
	u := f.login(t, adminToken)
	demoted, err := auth.ParseTokens([]byte("tokens:\n  - {name: alice, role: viewer, token: " + adminToken + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.auth.Reload(demoted); err != nil {
		t.Fatal(err)
	}
	if a := f.do(t, http.MethodPost, "/ui/api/rpc/PolicyService/ApplyPolicy", u, applyGood("1")); a.status != http.StatusForbidden {
		t.Fatalf("a demoted admin's apply: %d %s", a.status, a.raw)
	}
	if a := f.do(t, http.MethodGet, "/ui/api/session", u, ""); a.status != 200 || !strings.Contains(string(a.raw), `"role":"viewer"`) {
		t.Fatalf("session %d %s", a.status, a.raw)
	}
	if f.head(t) != 1 {
		t.Fatal("the policy changed")
	}
}

func TestErrorAnswersCarryTheSecurityHeaders(t *testing.T) {
	f := newFixture(t, Config{})
	u := f.login(t, viewerToken)
	cases := []struct {
		name, method, path string
		status             int
	}{
		{"a wrong method on the login", http.MethodPut, "/ui/api/login", 405},
		{"a GET of the RPC bridge", http.MethodGet, "/ui/api/rpc/PolicyService/ListPools", 404},
		{"a DELETE of the page", http.MethodDelete, "/ui/", 405},
		{"a path outside the assets", http.MethodGet, "/ui/../../etc/passwd", 404},
		{"an encoded path outside the assets", http.MethodGet, "/ui/%2e%2e/%2e%2e/etc/passwd", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
			req.URL.Opaque = tc.path // sent as is, not cleaned by the client
			req.AddCookie(u.cookie)
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Fatalf("got 200")
			}
			h := resp.Header
			if h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("%d without the security headers: %v", resp.StatusCode, h)
			}
		})
	}
}

func TestManyLoginAddressesStayBounded(t *testing.T) {
	l := newLoginLimiter(DefaultLoginRate, DefaultLoginBurst, 100)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	refused := 0
	for i := range 10_000 {
		if !l.allow(fmt.Sprintf("2001:db8::%x", i), now) {
			refused++
		}
	}
	if len(l.byIP) > 100 {
		t.Fatalf("%d addresses held, bound 100", len(l.byIP))
	}
	if refused != 10_000-100 {
		t.Fatalf("%d refused, want every address beyond the table while all are limited", refused)
	}
	// Each sweep walks the whole table under the lock: a flood from many
	// addresses must not pay one per login.
	if l.sweeps > 1 {
		t.Fatalf("%d sweeps of the full table within one second, want at most 1", l.sweeps)
	}
	// Once the addresses are idle, new ones get in again.
	if !l.allow("192.0.2.9", now.Add(time.Minute)) {
		t.Fatal("a new address after the others went idle was refused")
	}
}

// A tail is one long request: the token's removal must end it too, not
// only the session's next request.
func TestALiveTailEndsWhenItsTokenIsRemoved(t *testing.T) {
	f := newFixture(t, Config{TailKeepalive: 100 * time.Millisecond})
	u := f.login(t, viewerToken)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/ui/api/tail", nil)
	req.AddCookie(u.cookie)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case <-f.fleet.tailing:
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not open")
	}
	if err := f.auth.Reload(tokens(t, false)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.fleet.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the tail outlived its token")
	}
	lines := bufio.NewScanner(resp.Body)
	var last string
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data: ") {
			last = lines.Text()
		}
	}
	if !strings.Contains(last, "session ended") {
		t.Fatalf("last data line %q", last)
	}
	if a := f.do(t, http.MethodGet, "/ui/api/session", u, ""); a.status != 401 {
		t.Fatalf("the session after its token's removal: %d", a.status)
	}
}

// In dev mode the console's user is named after the token: a name cut in
// the middle of a rune would be invalid UTF-8, which no revision can
// carry as its author.
func TestADevLoginWithAMultiByteNameCanApply(t *testing.T) {
	f := newFixture(t, Config{})
	dev, err := auth.New(auth.Config{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Auth: dev, Policy: f.policy, Fleet: f.fleet, Now: f.clock.Now, Log: f.c.cfg.Log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.srv.Close()
	f.srv = httptest.NewServer(c.Handler()) // closed by the fixture's cleanup
	u := f.login(t, "a"+strings.Repeat("é", 40))
	a := f.do(t, http.MethodPost, "/ui/api/rpc/PolicyService/ApplyPolicy", u, applyGood("1"))
	if a.status != 200 {
		t.Fatalf("apply: %d %s", a.status, a.raw)
	}
	if !strings.Contains(string(a.raw), `"author":"dev:a`) {
		t.Fatalf("answer %s", a.raw)
	}
}

func TestOneSessionCannotTakeEveryLiveTail(t *testing.T) {
	f := newFixture(t, Config{MaxTails: 3, MaxTailsPerSession: 1})
	greedy, other := f.login(t, viewerToken), f.login(t, viewerToken)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(u *user) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/ui/api/tail", nil)
		req.AddCookie(u.cookie)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := open(greedy); resp.StatusCode != 200 {
		t.Fatalf("the first tail: %d", resp.StatusCode)
	}
	<-f.fleet.tailing
	if resp := open(greedy); resp.StatusCode != 429 {
		t.Fatalf("the session's second tail: %d, want 429", resp.StatusCode)
	}
	if resp := open(other); resp.StatusCode != 200 {
		t.Fatalf("another session's tail: %d, want 200", resp.StatusCode)
	}
	<-f.fleet.tailing
	cancel()
	<-f.fleet.ended
	<-f.fleet.ended
}

// Behind a TLS-terminating proxy (as the README suggests for a console
// off loopback) the browser's page is https://host while the console
// sees plain HTTP for the same Host: its own pages must still work.
func TestTheConsoleWorksBehindATLSTerminatingProxy(t *testing.T) {
	f := newFixture(t, Config{})
	httpsOrigin := strings.Replace(f.srv.URL, "http://", "https://", 1)
	cases := []struct {
		name    string
		headers []string
	}{
		{"a browser with Fetch metadata", []string{"Origin", httpsOrigin, "Sec-Fetch-Site", "same-origin"}},
		{"a browser with only Origin", []string{"Origin", httpsOrigin}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, "/ui/api/login", nil, `{"token":"`+adminToken+`"}`, tc.headers...)
			if a.status != 200 {
				t.Fatalf("login through the proxy: %d %s", a.status, a.raw)
			}
			var cookie *http.Cookie
			for _, c := range (&http.Response{Header: a.header}).Cookies() {
				if c.Name == CookieName {
					cookie = c
				}
			}
			var s sessionInfo
			if err := json.Unmarshal(a.raw, &s); err != nil || cookie == nil {
				t.Fatalf("session %s, cookie %v", a.raw, cookie)
			}
			u := &user{cookie: cookie, csrf: s.CSRF}
			if a := f.do(t, http.MethodPost, "/ui/api/rpc/PolicyService/ListPools", u, `{}`, tc.headers...); a.status != 200 {
				t.Fatalf("a call through the proxy: %d %s", a.status, a.raw)
			}
		})
	}
}

func TestAnIPv6HostCannotRotateThroughItsPrefixToGuessTokens(t *testing.T) {
	f := newFixture(t, Config{LoginBurst: 3})
	login := func(ip string) int {
		req := httptest.NewRequest("POST", "http://console.test/ui/api/login", strings.NewReader(`{"token":"wrong-token-0123456789"}`))
		req.Header.Set("Origin", "http://console.test")
		req.RemoteAddr = "[" + ip + "]:40000"
		w := httptest.NewRecorder()
		f.c.Handler().ServeHTTP(w, req)
		return w.Code
	}
	for i := range 3 {
		if got := login(fmt.Sprintf("2001:db8:1:2::%x", i+1)); got != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, got)
		}
	}
	if got := login("2001:db8:1:2:ffff::9"); got != 429 {
		t.Fatalf("another address of the same /64: %d, want 429", got)
	}
	if got := login("2001:db8:1:3::1"); got != 401 {
		t.Fatalf("another /64: %d, want 401", got)
	}
	if got := login("::ffff:192.0.2.1"); got != 401 {
		t.Fatalf("a v4-mapped address: %d, want 401", got)
	}
	if n := len(f.c.logins.byIP); n != 3 {
		t.Fatalf("%d limiters, want 3 (one /64, another /64, one IPv4)", n)
	}
}

// failingFleet's tail ends at once with an error whose text is not
// printable ASCII (a peer's or a store's text quoted in it).
type failingFleet struct {
	wsfleetv1.UnimplementedFleetServiceServer
}

func (failingFleet) TailEvents(*wsfleetv1.TailEventsRequest, wsfleetv1.FleetService_TailEventsServer) error {
	return status.Error(codes.ResourceExhausted, "tail dropped: \a\v\x00 \xff\xfe «slow» 🐢")
}

func TestATailsEndReasonIsValidJSON(t *testing.T) {
	f := newFixture(t, Config{})
	c, err := New(Config{Auth: f.auth, Policy: f.policy, Fleet: failingFleet{}, Now: f.clock.Now, Log: f.c.cfg.Log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.srv.Close()
	f.srv = httptest.NewServer(c.Handler()) // closed by the fixture's cleanup
	u := f.login(t, viewerToken)
	a := f.do(t, http.MethodGet, "/ui/api/tail", u, "")
	var data string
	for _, line := range strings.Split(string(a.raw), "\n") {
		if strings.HasPrefix(line, "data: ") {
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	var reason string
	if err := json.Unmarshal([]byte(data), &reason); err != nil {
		t.Fatalf("the end event's data %q is not JSON (the page JSON.parses it): %v\n%s", data, err, a.raw)
	}
	if !strings.Contains(reason, "tail dropped") || !strings.Contains(reason, "🐢") {
		t.Fatalf("reason %q", reason)
	}
}

// A browser that opens a live tail and stops reading (a frozen tab, a
// client that only wants to hold the slot) must not hold it: once the
// socket's buffers are full, the next write waits at most TailWriteTimeout,
// then the tail ends — its stream on the control plane, its slot — while
// the event source keeps sending.
func TestALiveTailWhoseBrowserStopsReadingEnds(t *testing.T) {
	f := newFixture(t, Config{MaxTails: 1, TailWriteTimeout: 300 * time.Millisecond})
	f.fleet.flood.Store(true)
	u := f.login(t, viewerToken)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // fill up sooner
	}
	if _, err := fmt.Fprintf(conn, "GET /ui/api/tail HTTP/1.1\r\nHost: console\r\nCookie: %s=%s\r\n\r\n", u.cookie.Name, u.cookie.Value); err != nil {
		t.Fatal(err)
	}
	// Never read from conn.
	select {
	case <-f.fleet.tailing:
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not open")
	}
	select {
	case <-f.fleet.ended:
	case <-time.After(15 * time.Second):
		t.Fatal("a tail whose browser stopped reading still runs after 15 s (write timeout 300ms)")
	}
	// Its slot is free again: with MaxTails 1, another tail opens.
	f.fleet.flood.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/ui/api/tail", nil)
	req.AddCookie(u.cookie)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a new tail after the stuck one ended: %d, want 200", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-f.fleet.tailing
	<-f.fleet.ended
}

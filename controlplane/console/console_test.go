package console

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/controlplane/auth"
	"github.com/wsfleet/wsfleet/controlplane/policyserver"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	adminToken  = "admin-token-0123456789"
	viewerToken = "viewer-token-0123456789"
	nodeToken   = "node-token-0123456789ab"
)

func tokens(t *testing.T, withViewer bool) *auth.Tokens {
	t.Helper()
	sum := sha256.Sum256([]byte(nodeToken))
	text := "tokens:\n  - {name: alice, role: admin, token: " + adminToken + "}\n" +
		"  - {name: node-1, role: node, sha256: " + hex.EncodeToString(sum[:]) + ", nodes: [edge-*], pools: [default]}\n"
	if withViewer {
		text += "  - {name: grafana, role: viewer, token: " + viewerToken + "}\n"
	}
	tok, err := auth.ParseTokens([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeFleet answers ListNodes and TailEvents; the rest is Unimplemented,
// as a FleetService method another engineer has not written yet would be.
// fakeFleet answers ListNodes and TailEvents; every other FleetService
// method gets gRPC's Unimplemented, which the console maps to 501.
type fakeFleet struct {
	wsfleetv1.UnimplementedFleetServiceServer
	tailing chan struct{} // a tail is open
	ended   chan struct{} // a tail ended
	// flood: a tail sends events without pause until a send fails.
	flood atomic.Bool
}

func (f *fakeFleet) ListNodes(ctx context.Context, _ *wsfleetv1.ListNodesRequest) (*wsfleetv1.ListNodesResponse, error) {
	id, _ := auth.FromContext(ctx)
	return &wsfleetv1.ListNodesResponse{Nodes: []*wsfleetv1.NodeStatus{{NodeId: "asked-by-" + id.Name}}}, nil
}

func (f *fakeFleet) TailEvents(_ *wsfleetv1.TailEventsRequest, stream wsfleetv1.FleetService_TailEventsServer) error {
	defer func() { f.ended <- struct{}{} }()
	if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: &wsfleetv1.ErrorEvent{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, TraceId: "t-1", Time: timestamppb.Now(),
	}}); err != nil {
		return err
	}
	f.tailing <- struct{}{}
	for f.flood.Load() {
		ev := &wsfleetv1.ErrorEvent{Class: wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, Error: strings.Repeat("x", 4096), Time: timestamppb.Now()}
		if err := stream.Send(&wsfleetv1.TailEventsResponse{Event: ev}); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

type fixture struct {
	c      *Console
	auth   *auth.Authenticator
	policy *policyserver.Server
	fleet  *fakeFleet
	clock  *clock
	srv    *httptest.Server
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	st, err := boltstore.Open(boltstore.Config{Path: filepath.Join(t.TempDir(), "policy.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logger, _ := logtest.NewNullLogger()
	ps, err := policyserver.New(policyserver.Config{Store: st, Log: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Tokens: tokens(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{auth: a, policy: ps, fleet: &fakeFleet{tailing: make(chan struct{}, 4), ended: make(chan struct{}, 4)},
		clock: &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}}
	cfg.Auth, cfg.Policy, cfg.Fleet, cfg.Log, cfg.Now = a, ps, f.fleet, logger, f.clock.Now
	if f.c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.c.Handler())
	t.Cleanup(func() {
		f.c.Close()
		f.srv.Close()
	})
	return f
}

// user is a browser's state: its session cookie and CSRF token.
type user struct {
	cookie *http.Cookie
	csrf   string
}

type answer struct {
	status int
	header http.Header
	body   errorBody
	raw    []byte
}

// do sends a request to the console, same-origin unless headers say
// otherwise ("Origin", "" deletes).
func (f *fixture) do(t *testing.T, method, path string, u *user, body string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Origin", f.srv.URL)
		req.Header.Set("Content-Type", "application/json")
	}
	if u != nil {
		if u.cookie != nil {
			req.AddCookie(u.cookie)
		}
		if u.csrf != "" {
			req.Header.Set(CSRFHeader, u.csrf)
		}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (f *fixture) login(t *testing.T, token string) *user {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/api/login", strings.NewReader(`{"token":"`+token+`"}`))
	req.Header.Set("Origin", f.srv.URL)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	var s sessionInfo
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == CookieName {
			return &user{cookie: c, csrf: s.CSRF}
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

const applyBad = `{"pool":"default","policy":{"origins":{"allow":["not an origin"]},"heartbeat":{"interval":"30s","timeout":"90s"},"limits":{"max_connections":10,"max_connections_per_ip":5,"handshakes_per_second":10,"handshake_burst":10,"messages_per_second":10,"message_burst":10,"max_message_bytes":65536},"breaker":{"failure_ratio":0.5,"min_samples":10,"window":"10s","open_duration":"5s","half_open_probes":1}}}`

func applyGood(expected string) string {
	return strings.Replace(strings.Replace(applyBad, `"not an origin"`, `"https://app.example.com"`, 1), `"pool":"default"`, `"pool":"default","expected_revision":`+expected, 1)
}

func (f *fixture) head(t *testing.T) int64 {
	t.Helper()
	r, err := f.policy.GetPolicy(auth.WithIdentity(context.Background(), auth.Identity{Name: "t", Role: auth.RoleAdmin}), &wsfleetv1.GetPolicyRequest{Pool: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetRevision().GetRevision()
}

func TestTheAPIAuthorizesEveryCallLikeGRPC(t *testing.T) {
	f := newFixture(t, Config{})
	admin, viewer := f.login(t, adminToken), f.login(t, viewerToken)
	noCSRF := &user{cookie: admin.cookie}
	wrongCSRF := &user{cookie: admin.cookie, csrf: viewer.csrf}
	const apply = "/ui/api/rpc/PolicyService/ApplyPolicy"
	cases := []struct {
		name    string
		u       *user
		path    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"no cookie gets 401", nil, "/ui/api/rpc/PolicyService/GetPolicy", `{}`, nil, 401, "Unauthenticated"},
		{"an unknown session gets 401", &user{cookie: &http.Cookie{Name: CookieName, Value: "forged"}, csrf: "x"}, "/ui/api/rpc/PolicyService/GetPolicy", `{}`, nil, 401, "Unauthenticated"},
		{"a viewer's apply gets 403", viewer, apply, applyGood("1"), nil, 403, "PermissionDenied"},
		{"a viewer's rollback gets 403", viewer, "/ui/api/rpc/PolicyService/RollbackPolicy", `{"pool":"default","to_revision":1}`, nil, 403, "PermissionDenied"},
		{"a viewer's proposal gets 403", viewer, "/ui/api/rpc/PolicyService/ProposePolicy", proposeGood, nil, 403, "PermissionDenied"},
		{"a POST without the CSRF token gets 403", noCSRF, apply, applyGood("1"), nil, 403, "PermissionDenied"},
		{"a POST with another session's CSRF token gets 403", wrongCSRF, apply, applyGood("1"), nil, 403, "PermissionDenied"},
		{"a cross-origin POST gets 403 even with the CSRF token", admin, apply, applyGood("1"), []string{"Origin", "https://evil.example"}, 403, "PermissionDenied"},
		{"a cross-site POST without Origin gets 403", admin, apply, applyGood("1"), []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}, 403, "PermissionDenied"},
		{"a POST with neither Origin nor Sec-Fetch-Site gets 403", admin, apply, applyGood("1"), []string{"Origin", ""}, 403, "PermissionDenied"},
		{"an admin's invalid policy gets 400 naming the field", admin, apply, applyBad, nil, 400, "InvalidArgument"},
		{"a stale expected revision gets 409", admin, apply, applyGood("7"), nil, 409, "FailedPrecondition"},
		{"a request that is not JSON of the message gets 400", admin, apply, `{"pool": 5}`, nil, 400, "InvalidArgument"},
		{"a method the console does not offer gets 404", admin, "/ui/api/rpc/PolicyService/RecoverPolicy", `{}`, nil, 404, "NotFound"},
		// fakeFleet serves ListNodes and TailEvents only: any other call is
		// answered Unimplemented, as a service without the method answers.
		{"a call the service answers Unimplemented gets 501", viewer, "/ui/api/rpc/FleetService/ErrorSeries", `{}`, nil, 501, "Unimplemented"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, tc.path, tc.u, tc.body, tc.headers...)
			if a.status != tc.status || a.body.Code != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", a.status, a.body.Code, a.raw, tc.status, tc.code)
			}
			if f.head(t) != 1 {
				t.Fatal("a refused call changed the policy")
			}
		})
	}
	t.Run("an invalid policy's violations name the field as the policy file does", func(t *testing.T) {
		a := f.do(t, http.MethodPost, apply, admin, applyBad)
		if len(a.body.Violations) == 0 || a.body.Violations[0].Field != "origins.allow[0]" {
			t.Fatalf("violations %+v", a.body.Violations)
		}
	})
	t.Run("a viewer reads, as the identity it logged in with", func(t *testing.T) {
		a := f.do(t, http.MethodPost, "/ui/api/rpc/FleetService/ListNodes", viewer, `{}`)
		if a.status != 200 || !strings.Contains(string(a.raw), "asked-by-grafana") {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("an admin's apply is the admin's revision", func(t *testing.T) {
		a := f.do(t, http.MethodPost, apply, admin, applyGood("1"))
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		var resp struct {
			Revision struct {
				Revision string `json:"revision"`
				Author   string `json:"author"`
			} `json:"revision"`
		}
		if err := json.Unmarshal(a.raw, &resp); err != nil || resp.Revision.Revision != "2" || resp.Revision.Author != "alice" {
			t.Fatalf("answer %s", a.raw)
		}
	})
}

// proposeGood proposes applyGood's policy (the Policy page's Propose,
// for a pool whose head has approval.required).
var proposeGood = strings.Replace(applyGood("1"), `"pool":"default"`, `"pool":"default","message":"from the console"`, 1)

func TestAnAdminProposesThroughTheConsole(t *testing.T) {
	f := newFixture(t, Config{})
	a := f.do(t, http.MethodPost, "/ui/api/rpc/PolicyService/ProposePolicy", f.login(t, adminToken), proposeGood)
	var resp struct {
		Proposal struct {
			ID       string `json:"id"`
			Proposer string `json:"proposer"`
			State    string `json:"state"`
		} `json:"proposal"`
	}
	if a.status != 200 || json.Unmarshal(a.raw, &resp) != nil || resp.Proposal.ID != "1" || resp.Proposal.Proposer != "alice" || resp.Proposal.State != "PROPOSAL_STATE_OPEN" {
		t.Fatalf("got %d %s, want proposal 1 by alice, open", a.status, a.raw)
	}
	if f.head(t) != 1 {
		t.Fatal("a proposal changed the policy")
	}
}

func TestLoginRefusesWhatIsNoConsoleUser(t *testing.T) {
	f := newFixture(t, Config{})
	cases := []struct {
		name, body string
		headers    []string
		status     int
	}{
		{"a wrong token gets 401", `{"token":"wrong-token-0123456789"}`, nil, 401},
		{"a node token gets 403", `{"token":"` + nodeToken + `"}`, nil, 403},
		{"no token gets 400", `{}`, nil, 400},
		{"a cross-origin login gets 403", `{"token":"` + adminToken + `"}`, []string{"Origin", "https://evil.example"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, http.MethodPost, "/ui/api/login", nil, tc.body, tc.headers...)
			if a.status != tc.status {
				t.Fatalf("got %d %s, want %d", a.status, a.raw, tc.status)
			}
			if strings.Contains(a.header.Get("Set-Cookie"), CookieName+"=") {
				t.Fatal("a refused login set a session cookie")
			}
		})
	}
}

func TestTheSessionCookieIsLockedDown(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := "over plain HTTP it is not Secure"
		if tlsOn {
			name = "over TLS it is Secure"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, Config{})
			if tlsOn {
				f.srv.Close()
				f.srv = httptest.NewTLSServer(f.c.Handler())
			}
			u := f.login(t, adminToken)
			c := u.cookie
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || c.Secure != tlsOn || c.MaxAge != int(DefaultSessionTTL/time.Second) {
				t.Fatalf("cookie %+v", c)
			}
			if raw, _ := base64Len(c.Value); raw != 32 {
				t.Fatalf("session id of %d bytes, want 32", raw)
			}
		})
	}
}

func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	f := newFixture(t, Config{})
	u := f.login(t, viewerToken)
	cases := []struct {
		name, method, path string
		u                  *user
		api                bool
		status             int
	}{
		{"the page", "GET", "/ui/", nil, false, 200},
		{"a script", "GET", "/ui/app.js", nil, false, 200},
		{"the chart library", "GET", "/ui/vendor/uPlot.esm.js", nil, false, 200},
		{"the stylesheet", "GET", "/ui/style.css", nil, false, 200},
		{"a missing asset", "GET", "/ui/nope.js", nil, false, 404},
		{"the session without a cookie", "GET", "/ui/api/session", nil, true, 401},
		{"the session", "GET", "/ui/api/session", u, true, 200},
		{"an API call", "POST", "/ui/api/rpc/PolicyService/ListPools", u, true, 200},
		{"an unknown API path", "GET", "/ui/api/nope", u, true, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, tc.method, tc.path, tc.u, "{}")
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.raw)
			}
			if got := a.header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Fatalf("CSP %q", got)
			}
			if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Referrer-Policy") != "no-referrer" || a.header.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("headers %v", a.header)
			}
			if tc.api && a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("API answer with Cache-Control %q", a.header.Get("Cache-Control"))
			}
		})
	}
	t.Run("the page has no inline script or style", func(t *testing.T) {
		a := f.do(t, "GET", "/ui/", nil, "")
		page := string(a.raw)
		if strings.Contains(page, "<script>") || strings.Contains(page, "<style") || strings.Contains(page, " style=") || strings.Contains(page, " on") && strings.Contains(page, "onclick=") {
			t.Fatalf("inline code in the page:\n%s", page)
		}
	})
}

func TestASessionEnds(t *testing.T) {
	f := newFixture(t, Config{SessionTTL: time.Hour})
	const read = "/ui/api/rpc/PolicyService/ListPools"
	t.Run("at its expiry", func(t *testing.T) {
		u := f.login(t, adminToken)
		f.clock.Add(59 * time.Minute)
		if a := f.do(t, "POST", read, u, "{}"); a.status != 200 {
			t.Fatalf("before expiry: %d", a.status)
		}
		f.clock.Add(time.Minute)
		if a := f.do(t, "POST", read, u, "{}"); a.status != 401 {
			t.Fatalf("at expiry: %d", a.status)
		}
	})
	t.Run("at logout", func(t *testing.T) {
		u := f.login(t, adminToken)
		if a := f.do(t, "POST", "/ui/api/logout", u, ""); a.status != 200 || !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("logout: %d %v", a.status, a.header)
		}
		if a := f.do(t, "POST", read, u, "{}"); a.status != 401 {
			t.Fatalf("after logout: %d", a.status)
		}
	})
	t.Run("when its token is removed from the tokens file", func(t *testing.T) {
		u := f.login(t, viewerToken)
		if err := f.auth.Reload(tokens(t, false)); err != nil {
			t.Fatal(err)
		}
		if a := f.do(t, "POST", read, u, "{}"); a.status != 401 {
			t.Fatalf("after the reload: %d", a.status)
		}
	})
}

func TestTheSessionTableIsBounded(t *testing.T) {
	f := newFixture(t, Config{MaxSessions: 3, LoginBurst: 10})
	var users []*user
	for range 4 {
		users = append(users, f.login(t, adminToken))
		f.clock.Add(time.Second)
	}
	if n := f.c.sessions.len(); n != 3 {
		t.Fatalf("%d sessions held, want 3", n)
	}
	for i, u := range users {
		want := 200
		if i == 0 {
			want = 401 // the oldest made room
		}
		if a := f.do(t, "GET", "/ui/api/session", u, ""); a.status != want {
			t.Fatalf("session %d: %d, want %d", i, a.status, want)
		}
	}
}

func TestLoginIsRateLimitedPerAddress(t *testing.T) {
	f := newFixture(t, Config{LoginBurst: 3, MaxLoginIPs: 2})
	login := func(ip string) int {
		req := httptest.NewRequest("POST", "http://console.test/ui/api/login", strings.NewReader(`{"token":"wrong-token-0123456789"}`))
		req.Header.Set("Origin", "http://console.test")
		req.RemoteAddr = ip + ":40000"
		w := httptest.NewRecorder()
		f.c.Handler().ServeHTTP(w, req)
		return w.Code
	}
	for i := range 3 {
		if got := login("192.0.2.1"); got != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, got)
		}
	}
	if got := login("192.0.2.1"); got != 429 {
		t.Fatalf("attempt over the burst: %d, want 429", got)
	}
	if got := login("192.0.2.2"); got != 401 {
		t.Fatalf("another address: %d, want 401", got)
	}
	// The table holds two addresses, both limited: a third is refused.
	if got := login("192.0.2.3"); got != 429 {
		t.Fatalf("a third address with the table full: %d, want 429", got)
	}
	// Once the first two are idle (their buckets full), they are forgotten.
	f.clock.Add(10 * time.Second)
	if got := login("192.0.2.3"); got != 401 {
		t.Fatalf("a third address once the others are idle: %d, want 401", got)
	}
	if got := login("192.0.2.1"); got != 401 {
		t.Fatalf("the first address after the wait: %d, want 401", got)
	}
}

func TestTheLiveTailEndsWithTheSession(t *testing.T) {
	f := newFixture(t, Config{})
	u := f.login(t, viewerToken)
	req, _ := http.NewRequest("GET", f.srv.URL+"/ui/api/tail?backlog=5", nil)
	req.AddCookie(u.cookie)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), prefix) {
				return lines.Text()
			}
		}
		t.Fatalf("stream ended before a line starting %q: %v", prefix, lines.Err())
		return ""
	}
	if l := next("data: "); !strings.Contains(l, `"trace_id":"t-1"`) {
		t.Fatalf("event %s", l)
	}
	select {
	case <-f.fleet.tailing:
	case <-time.After(10 * time.Second):
		t.Fatal("the tail did not open")
	}
	if a := f.do(t, "POST", "/ui/api/logout", u, ""); a.status != 200 {
		t.Fatalf("logout %d", a.status)
	}
	if l := next("data: "); !strings.Contains(l, "session ended") {
		t.Fatalf("last line %s", l)
	}
	select {
	case <-f.fleet.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the tail outlived its session")
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
}

func TestLiveTailsAreBounded(t *testing.T) {
	f := newFixture(t, Config{MaxTails: 1})
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
	<-f.fleet.tailing
	if a := f.do(t, "GET", "/ui/api/tail", u, ""); a.status != 429 {
		t.Fatalf("a second tail: %d, want 429: %s", a.status, a.raw)
	}
	cancel()
	<-f.fleet.ended
}

func base64Len(s string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return len(b), err
}

package admission

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsfleet/wsfleet/api/clip"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

const (
	classOrigin   = wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED
	classCapacity = wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY
	classRate     = wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED
	classUnauth   = wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED
	classBreaker  = wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN
	classBad      = wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE
)

func TestAdmitOrigin(t *testing.T) {
	tests := []struct {
		name         string
		allowMissing bool
		origin       string
		admitted     bool
		reason       string
	}{
		{name: "allowed origin is admitted", origin: "https://app.example.com", admitted: true},
		{name: "allowed origin in upper case is admitted", origin: "HTTPS://APP.EXAMPLE.COM", admitted: true},
		{name: "subdomain under a wildcard is admitted", origin: "https://a.b.example.org", admitted: true},
		{name: "origin not in allowlist gets 403 naming it", origin: "https://evil.example",
			reason: `origin "https://evil.example" is not in the allowlist`},
		{name: "lookalike of a wildcard domain gets 403", origin: "https://evilexample.org",
			reason: `origin "https://evilexample.org" is not in the allowlist`},
		{name: "wrong scheme gets 403", origin: "http://app.example.com",
			reason: `origin "http://app.example.com" is not in the allowlist`},
		{name: "missing Origin is admitted when allow_missing is true", allowMissing: true, admitted: true},
		{name: "missing Origin gets 403 when allow_missing is false",
			reason: "no Origin header and origins.allow_missing is false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			p.Origins.AllowMissing = tt.allowMissing
			a := mustNew(t, Config{}, p)
			ticket, rej := a.Admit(context.Background(), handshake(tt.origin, "192.0.2.1:1234"), "t1")
			if tt.admitted {
				if rej != nil {
					t.Fatalf("rejected: %v", rej)
				}
				if a.Active() != 1 {
					t.Fatalf("Active() = %d, want 1", a.Active())
				}
				ticket.Release()
			} else {
				wantRejection(t, rej, classOrigin, 403)
				if rej.Reason != tt.reason {
					t.Fatalf("Reason = %q, want %q", rej.Reason, tt.reason)
				}
			}
			if a.Active() != 0 || a.ips.len() != 0 {
				t.Fatalf("after release: Active() = %d, tracked IPs = %d; want 0, 0", a.Active(), a.ips.len())
			}
		})
	}
}

func TestAdmitOriginReasonIsBounded(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	long := "https://" + strings.Repeat("a", 5000) + ".example"
	_, rej := a.Admit(context.Background(), handshake(long, "192.0.2.1:1"), "t")
	wantRejection(t, rej, classOrigin, 403)
	if len(rej.Reason) > 400 {
		t.Fatalf("Reason is %d bytes; a client-sent origin must be clipped", len(rej.Reason))
	}
}

func TestAdmitOriginReasonIsCutOnARuneBoundary(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	// 3-byte runes: a cut at a fixed byte count lands inside one and the
	// quoted Reason shows it as \x escapes.
	long := "https://" + strings.Repeat("€", 300) + ".example"
	_, rej := a.Admit(context.Background(), handshake(long, "192.0.2.1:1"), "t")
	wantRejection(t, rej, classOrigin, 403)
	if strings.Contains(rej.Reason, `\x`) || !utf8.ValidString(rej.Reason) {
		t.Fatalf("Reason splits a character: %q", rej.Reason)
	}
	if !strings.Contains(rej.Reason, clip.Mark) {
		t.Fatalf("Reason does not say the origin was cut: %q", rej.Reason)
	}
}

func TestAdmitNodeCap(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxConnections = 2
	a := mustNew(t, Config{CapacityRetryAfter: 7 * time.Second}, p)
	ctx := context.Background()

	t1, rej := a.Admit(ctx, handshake("", "10.0.0.1:1"), "a")
	if rej != nil {
		t.Fatal(rej)
	}
	t2, rej := a.Admit(ctx, handshake("", "10.0.0.2:1"), "b")
	if rej != nil {
		t.Fatal(rej)
	}
	_, rej = a.Admit(ctx, handshake("", "10.0.0.3:1"), "c")
	wantRejection(t, rej, classCapacity, 503)
	if rej.RetryAfter != 7*time.Second {
		t.Fatalf("RetryAfter = %s, want 7s", rej.RetryAfter)
	}
	if rej.Reason != "node at max_connections 2" {
		t.Fatalf("Reason = %q", rej.Reason)
	}
	if a.Active() != 2 {
		t.Fatalf("a rejected handshake kept a slot: Active() = %d, want 2", a.Active())
	}

	t1.Release()
	t3, rej := a.Admit(ctx, handshake("", "10.0.0.3:1"), "c")
	if rej != nil {
		t.Fatalf("the released slot did not return: %v", rej)
	}
	t2.Release()
	t3.Release()
	if a.Active() != 0 || a.ips.len() != 0 {
		t.Fatalf("Active() = %d, tracked IPs = %d; want 0, 0", a.Active(), a.ips.len())
	}
}

func TestAdmitCapacityDefaultRetryAfter(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxConnections = 1
	a := mustNew(t, Config{}, p)
	tk, rej := a.Admit(context.Background(), handshake("", "10.0.0.1:1"), "a")
	if rej != nil {
		t.Fatal(rej)
	}
	defer tk.Release()
	_, rej = a.Admit(context.Background(), handshake("", "10.0.0.2:1"), "b")
	wantRejection(t, rej, classCapacity, 503)
	if rej.RetryAfter != DefaultCapacityRetryAfter {
		t.Fatalf("RetryAfter = %s, want %s", rej.RetryAfter, DefaultCapacityRetryAfter)
	}
}

func TestAdmitPerIPCap(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxConnectionsPerIp = 2
	a := mustNew(t, Config{}, p)
	ctx := context.Background()
	var held []*Ticket
	admit := func(remote string) *Rejection {
		t.Helper()
		tk, rej := a.Admit(ctx, handshake("", remote), "x")
		if rej == nil {
			held = append(held, tk)
		}
		return rej
	}

	for _, remote := range []string{"10.0.0.1:1", "10.0.0.1:2"} {
		if rej := admit(remote); rej != nil {
			t.Fatalf("%s: %v", remote, rej)
		}
	}
	t.Run("a third connection from the same IP gets 503 naming the client", func(t *testing.T) {
		rej := admit("10.0.0.1:3")
		wantRejection(t, rej, classCapacity, 503)
		if rej.Reason != "client 10.0.0.1 at max_connections_per_ip 2" {
			t.Fatalf("Reason = %q", rej.Reason)
		}
		if rej.RetryAfter != DefaultCapacityRetryAfter {
			t.Fatalf("RetryAfter = %s", rej.RetryAfter)
		}
	})
	t.Run("the same IPv4 address mapped into IPv6 counts as the same client", func(t *testing.T) {
		wantRejection(t, admit("[::ffff:10.0.0.1]:4"), classCapacity, 503)
	})
	t.Run("another IP has its own cap", func(t *testing.T) {
		for _, remote := range []string{"10.0.0.2:1", "10.0.0.2:2"} {
			if rej := admit(remote); rej != nil {
				t.Fatalf("%s: %v", remote, rej)
			}
		}
		wantRejection(t, admit("10.0.0.2:3"), classCapacity, 503)
	})
	t.Run("an IPv6 client with and without a zone is one client", func(t *testing.T) {
		if rej := admit("[2001:db8::1]:1"); rej != nil {
			t.Fatal(rej)
		}
		if rej := admit("[2001:DB8:0::1%eth0]:2"); rej != nil {
			t.Fatal(rej)
		}
		rej := admit("[2001:db8::1]:3")
		wantRejection(t, rej, classCapacity, 503)
		if !strings.Contains(rej.Reason, "client 2001:db8::1 ") {
			t.Fatalf("Reason = %q", rej.Reason)
		}
	})
	if got := a.Active(); got != int64(len(held)) {
		t.Fatalf("Active() = %d, want %d", got, len(held))
	}
	if n := a.ips.count(netip.MustParseAddr("10.0.0.1")); n != 2 {
		t.Fatalf("slots held by 10.0.0.1 = %d, want 2", n)
	}
	for _, tk := range held {
		tk.Release()
	}
	if a.Active() != 0 || a.ips.len() != 0 {
		t.Fatalf("Active() = %d, tracked IPs = %d; want 0, 0", a.Active(), a.ips.len())
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		want   string
		ok     bool
	}{
		{name: "IPv4 with port", remote: "10.0.0.1:5000", want: "10.0.0.1", ok: true},
		{name: "IPv6 with port", remote: "[2001:db8::1]:5000", want: "2001:db8::1", ok: true},
		{name: "IPv6 is normalized", remote: "[2001:DB8:0:0::1]:5000", want: "2001:db8::1", ok: true},
		{name: "IPv6 zone is stripped", remote: "[fe80::1%eth0]:5000", want: "fe80::1", ok: true},
		{name: "IPv4-mapped IPv6 is unmapped", remote: "[::ffff:192.0.2.7]:1", want: "192.0.2.7", ok: true},
		{name: "bare IPv4 without port", remote: "10.0.0.9", want: "10.0.0.9", ok: true},
		{name: "bracketed IPv6 without port", remote: "[::1]", want: "::1", ok: true},
		{name: "no IP at all", remote: "@", ok: false},
		{name: "empty", remote: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := clientAddr(tt.remote)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTicketClientIP(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	for _, tt := range []struct{ remote, want string }{
		{"[fe80::1%lo]:1", "fe80::1"},
		{"unix-socket", "unix-socket"},
	} {
		tk, rej := a.Admit(context.Background(), handshake("", tt.remote), "x")
		if rej != nil {
			t.Fatal(rej)
		}
		if got := tk.ClientIP(); got != tt.want {
			t.Errorf("ClientIP() for %q = %q, want %q", tt.remote, got, tt.want)
		}
		tk.Release()
	}
}

func TestReleaseTwiceIsANoOp(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	t1, _ := a.Admit(context.Background(), handshake("", "10.0.0.1:1"), "a")
	t2, _ := a.Admit(context.Background(), handshake("", "10.0.0.1:2"), "b")
	t1.Release()
	t1.Release()
	if a.Active() != 1 || a.ips.count(netip.MustParseAddr("10.0.0.1")) != 1 {
		t.Fatalf("a second Release took another slot: Active() = %d", a.Active())
	}
	t2.Release()
	var nilTicket *Ticket
	nilTicket.Release()
	if a.Active() != 0 || a.ips.len() != 0 {
		t.Fatalf("Active() = %d, tracked IPs = %d", a.Active(), a.ips.len())
	}
}

// rateAdmitter has a bucket of burst tokens refilling at perSecond on a
// hand-driven clock.
func rateAdmitter(t *testing.T, perSecond, burst int32) (*Admitter, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	p := testPolicy()
	p.Limits.HandshakesPerSecond = perSecond
	p.Limits.HandshakeBurst = burst
	return mustNew(t, Config{Now: clock.Now}, p), clock
}

// admitN tries n handshakes, releasing the admitted ones at once, and
// returns how many were admitted and the last rejection.
func admitN(t *testing.T, a *Admitter, n int) (int, *Rejection) {
	t.Helper()
	admitted := 0
	var last *Rejection
	for i := range n {
		tk, rej := a.Admit(context.Background(), handshake("", fmt.Sprintf("10.1.0.%d:1", i%200)), "r")
		if rej != nil {
			last = rej
			continue
		}
		admitted++
		tk.Release()
	}
	return admitted, last
}

func TestAdmitHandshakeRate(t *testing.T) {
	a, clock := rateAdmitter(t, 1, 3)

	t.Run("a burst over the bucket gets 429 with Retry-After of at least 1s", func(t *testing.T) {
		n, rej := admitN(t, a, 5)
		if n != 3 {
			t.Fatalf("admitted %d of 5 with burst 3", n)
		}
		wantRejection(t, rej, classRate, 429)
		if rej.RetryAfter < time.Second || rej.RetryAfter%time.Second != 0 {
			t.Fatalf("RetryAfter = %s, want whole seconds >= 1s", rej.RetryAfter)
		}
		if rej.Reason != "handshake rate over limits.handshakes_per_second 1 (burst 3)" {
			t.Fatalf("Reason = %q", rej.Reason)
		}
	})
	t.Run("a refused handshake holds no slot", func(t *testing.T) {
		if a.Active() != 0 || a.ips.len() != 0 {
			t.Fatalf("Active() = %d, tracked IPs = %d", a.Active(), a.ips.len())
		}
	})
	t.Run("a refused handshake spends no token", func(t *testing.T) {
		clock.Advance(time.Second)
		if n, _ := admitN(t, a, 3); n != 1 {
			t.Fatalf("admitted %d after 1s at 1/s, want exactly 1", n)
		}
	})
	t.Run("capacity is checked before the rate and spends no token", func(t *testing.T) {
		p := testPolicy()
		p.Limits.MaxConnections = 1
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 1
		clock := newFakeClock()
		a := mustNew(t, Config{Now: clock.Now}, p)
		tk, rej := a.Admit(context.Background(), handshake("", "10.0.0.1:1"), "a")
		if rej != nil {
			t.Fatal(rej)
		}
		clock.Advance(time.Second) // one token back
		_, rej = a.Admit(context.Background(), handshake("", "10.0.0.2:1"), "b")
		wantRejection(t, rej, classCapacity, 503)
		tk.Release()
		tk, rej = a.Admit(context.Background(), handshake("", "10.0.0.2:1"), "b")
		if rej != nil {
			t.Fatalf("the capacity rejection spent the token: %v", rej)
		}
		tk.Release()
	})
}

func TestUpdateLimiter(t *testing.T) {
	t.Run("an unrelated change keeps an empty bucket empty", func(t *testing.T) {
		a, _ := rateAdmitter(t, 1, 2)
		if n, _ := admitN(t, a, 2); n != 2 {
			t.Fatalf("admitted %d, want 2", n)
		}
		p := testPolicy()
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 2
		p.Origins.Allow = append(p.Origins.Allow, "https://new.example.com")
		p.Limits.MaxConnections = 5000
		if err := a.Update(p); err != nil {
			t.Fatal(err)
		}
		_, rej := admitN(t, a, 1)
		wantRejection(t, rej, classRate, 429)
	})
	t.Run("a higher rate refills the bucket faster", func(t *testing.T) {
		a, clock := rateAdmitter(t, 1, 1)
		control, controlClock := rateAdmitter(t, 1, 1)
		admitN(t, a, 1)
		admitN(t, control, 1)
		p := testPolicy()
		p.Limits.HandshakesPerSecond = 1000
		p.Limits.HandshakeBurst = 1
		if err := a.Update(p); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Millisecond)
		controlClock.Advance(10 * time.Millisecond)
		if n, _ := admitN(t, a, 1); n != 1 {
			t.Fatal("after raising the rate to 1000/s, 10ms did not refill a token")
		}
		if n, _ := admitN(t, control, 1); n != 0 {
			t.Fatal("control: at 1/s, 10ms refilled a token")
		}
	})
	t.Run("a smaller burst caps the tokens left", func(t *testing.T) {
		a, _ := rateAdmitter(t, 1, 5)
		p := testPolicy()
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 2
		if err := a.Update(p); err != nil {
			t.Fatal(err)
		}
		if n, _ := admitN(t, a, 5); n != 2 {
			t.Fatalf("admitted %d after lowering the burst to 2", n)
		}
	})
	t.Run("a larger burst holds more tokens once refilled", func(t *testing.T) {
		a, clock := rateAdmitter(t, 1, 1)
		p := testPolicy()
		p.Limits.HandshakesPerSecond = 1
		p.Limits.HandshakeBurst = 4
		if err := a.Update(p); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Second)
		if n, _ := admitN(t, a, 6); n != 4 {
			t.Fatalf("admitted %d after raising the burst to 4", n)
		}
	})
}

func TestUpdateOriginsAndCaps(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	ctx := context.Background()
	var held []*Ticket
	for i := range 3 {
		tk, rej := a.Admit(ctx, handshake("https://app.example.com", fmt.Sprintf("10.0.0.%d:1", i)), "x")
		if rej != nil {
			t.Fatal(rej)
		}
		held = append(held, tk)
	}

	p := testPolicy()
	p.Origins.Allow = []string{"https://other.example.com"}
	p.Limits.MaxConnections = 2
	if err := a.Update(p); err != nil {
		t.Fatal(err)
	}

	t.Run("a removed origin is refused on the next handshake", func(t *testing.T) {
		_, rej := a.Admit(ctx, handshake("https://app.example.com", "10.0.0.9:1"), "x")
		wantRejection(t, rej, classOrigin, 403)
	})
	t.Run("connections above a lowered cap stay and new ones are refused", func(t *testing.T) {
		if a.Active() != 3 {
			t.Fatalf("Active() = %d, want 3", a.Active())
		}
		_, rej := a.Admit(ctx, handshake("https://other.example.com", "10.0.0.9:1"), "x")
		wantRejection(t, rej, classCapacity, 503)
		held[0].Release()
		held[1].Release()
		tk, rej := a.Admit(ctx, handshake("https://other.example.com", "10.0.0.9:1"), "x")
		if rej != nil {
			t.Fatalf("below the lowered cap: %v", rej)
		}
		held = append(held[2:], tk)
	})
	for _, tk := range held {
		tk.Release()
	}
	if a.Active() != 0 || a.ips.len() != 0 {
		t.Fatalf("Active() = %d, tracked IPs = %d", a.Active(), a.ips.len())
	}
}

func TestUpdateRefusesInvalidPolicy(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	bad := testPolicy()
	bad.Origins.Allow = nil
	bad.Limits.MaxConnections = 0
	err := a.Update(bad)
	if !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Update(invalid) = %v, want ErrInvalidPolicy", err)
	}
	if !strings.Contains(err.Error(), "limits.max_connections") {
		t.Fatalf("error does not name the field: %v", err)
	}
	if err := a.Update(nil); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Update(nil) = %v, want ErrInvalidPolicy", err)
	}
	tk, rej := a.Admit(context.Background(), handshake("https://app.example.com", "10.0.0.1:1"), "x")
	if rej != nil {
		t.Fatalf("the running policy did not stay: %v", rej)
	}
	tk.Release()
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "relative auth URL is refused", cfg: Config{AuthURL: "/auth"}},
		{name: "non-HTTP auth URL is refused", cfg: Config{AuthURL: "ftp://auth.example/x"}},
		{name: "unparsable auth URL is refused", cfg: Config{AuthURL: "http://[::1"}},
		{name: "negative auth timeout is refused", cfg: Config{AuthTimeout: -time.Second}},
		{name: "negative capacity Retry-After is refused", cfg: Config{CapacityRetryAfter: -1}},
		{name: "empty forwarded header name is refused", cfg: Config{AuthHeaders: []string{"Cookie", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.cfg, testPolicy())
			if !errors.Is(err, ErrInvalidConfig) {
				if a != nil {
					a.Close()
				}
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
	t.Run("invalid policy is refused", func(t *testing.T) {
		if _, err := New(Config{}, nil); !errors.Is(err, ErrInvalidPolicy) {
			t.Fatalf("New = %v, want ErrInvalidPolicy", err)
		}
	})
}

func TestBreakerStateWithoutAuthIsClosed(t *testing.T) {
	a := mustNew(t, Config{}, testPolicy())
	if s := a.BreakerState(); s.String() != "closed" {
		t.Fatalf("BreakerState() = %s", s)
	}
}

func TestConcurrentAdmitRelease(t *testing.T) {
	const (
		workers   = 8
		rounds    = 400
		maxConns  = 12
		maxPerIP  = 3
		clientIPs = 6
	)
	p := testPolicy()
	p.Limits.MaxConnections = maxConns
	p.Limits.MaxConnectionsPerIp = maxPerIP
	p.Limits.HandshakesPerSecond = 1_000_000
	p.Limits.HandshakeBurst = 1_000_000
	a := mustNew(t, Config{}, p)

	var held atomic.Int64
	var perIP [clientIPs]atomic.Int64
	var admitted, refused atomic.Int64
	var overNode, overIP atomic.Bool
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []*Ticket
			var mineIP []int
			for i := range rounds {
				ip := (w + i) % clientIPs
				tk, rej := a.Admit(context.Background(), handshake("", fmt.Sprintf("10.2.0.%d:%d", ip, i)), "c")
				if rej != nil {
					refused.Add(1)
				} else {
					admitted.Add(1)
					if held.Add(1) > maxConns {
						overNode.Store(true)
					}
					if perIP[ip].Add(1) > maxPerIP {
						overIP.Store(true)
					}
					mine = append(mine, tk)
					mineIP = append(mineIP, ip)
				}
				// Hold up to two tickets, then let the oldest go, so
				// workers keep competing for the caps.
				if len(mine) > 2 || (i%5 == 0 && len(mine) > 0) {
					perIP[mineIP[0]].Add(-1)
					held.Add(-1)
					mine[0].Release()
					mine[0].Release() // a double release must not corrupt the counts
					mine, mineIP = mine[1:], mineIP[1:]
				}
			}
			for j, tk := range mine {
				perIP[mineIP[j]].Add(-1)
				held.Add(-1)
				tk.Release()
			}
		}()
	}
	wg.Wait()
	if overNode.Load() {
		t.Error("more than max_connections tickets were held at once")
	}
	if overIP.Load() {
		t.Error("more than max_connections_per_ip tickets were held for one IP at once")
	}
	if a.Active() != 0 {
		t.Errorf("Active() = %d after every release, want 0", a.Active())
	}
	if n := a.ips.len(); n != 0 {
		t.Errorf("per-IP table holds %d entries after every release, want 0", n)
	}
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Errorf("admitted %d, refused %d: the test did not exercise both paths", admitted.Load(), refused.Load())
	}
}

func TestIPTableShrinksAfterAFlood(t *testing.T) {
	var tbl ipTable
	var addrs []netip.Addr
	for i := range shrinkAbove * ipShardCount * 2 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if _, ok := tbl.acquire(a, 1); !ok {
			t.Fatalf("acquire %s", a)
		}
		addrs = append(addrs, a)
	}
	for _, a := range addrs {
		tbl.release(a)
	}
	for i := range tbl.shards {
		if s := &tbl.shards[i]; s.m != nil && s.peak >= shrinkAbove {
			t.Fatalf("shard %d kept its map after a flood of %d clients", i, s.peak)
		}
	}
	if tbl.len() != 0 {
		t.Fatalf("len() = %d", tbl.len())
	}
}

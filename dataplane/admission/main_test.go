package admission

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPolicy is the default policy with one allowed origin and limits high
// enough that a test trips only the one it lowers.
func testPolicy() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = []string{"https://app.example.com", "https://*.example.org"}
	p.Origins.AllowMissing = true
	return p
}

// fakeClock drives the handshake limiter; tests move it by hand so token
// arithmetic is exact.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// handshake builds an upgrade request from remote with the given Origin
// ("" leaves the header out).
func handshake(origin, remote string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://node.test/ws?room=1", nil)
	r.RemoteAddr = remote
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func mustNew(t testing.TB, cfg Config, p *wsfleetv1.Policy) *Admitter {
	t.Helper()
	a, err := New(cfg, p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func wantRejection(t *testing.T, rej *Rejection, class wsfleetv1.ErrorClass, status int) {
	t.Helper()
	if rej == nil {
		t.Fatalf("admitted, want %v %d", class, status)
	}
	if rej.Class != class || rej.Status != status {
		t.Fatalf("rejection %v %d (%s), want %v %d", rej.Class, rej.Status, rej.Reason, class, status)
	}
}

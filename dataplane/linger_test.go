package dataplane

import (
	"strings"
	"testing"
	"time"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// A client that is still sending when the node closes it must read the
// node's close frame, not a TCP reset: a browser reports a reset as 1006,
// and the class the node decided would never reach the page.
func TestAClientStillSendingSeesTheCloseCodeNotAReset(t *testing.T) {
	t.Run("the rest of an oversized frame", func(t *testing.T) {
		p := testPolicy()
		p.Limits.MaxMessageBytes = 1024
		n := startNode(t, p, nil)
		for _, size := range []int{64 << 10, 4 << 20} {
			c := mustDial(t, n.addr, dialOpts{})
			// gws reads the frame header, refuses the frame and closes while
			// most of the payload is still on its way.
			werr := c.conn.WriteString(`{"type":"publish","channel":"a","data":"` + strings.Repeat("x", size) + `"}`)
			if code := c.closeCode(t, 10*time.Second); code != 1009 {
				t.Fatalf("%d-byte frame: client saw close code %d (write error %v), want 1009", size, code, werr)
			}
		}
	})
	t.Run("a flood closed for policy_violation", func(t *testing.T) {
		p := testPolicy()
		p.Limits.MessagesPerSecond = 20
		p.Limits.MessageBurst = 5
		n := startNode(t, p, func(c *Config) { c.AbuseWindow = time.Second })
		c := mustDial(t, n.addr, dialOpts{})
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			frame := `{"type":"publish","channel":"spam","data":"` + strings.Repeat("y", 512) + `"}`
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				if c.conn.WriteString(frame) != nil {
					return
				}
			}
		}()
		code := c.closeCode(t, 15*time.Second)
		close(stop)
		<-done
		if code != 1008 {
			t.Fatalf("flooding client saw close code %d, want 1008", code)
		}
		n.sink.wait(t, 5*time.Second, "policy_violation", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION))
	})
}

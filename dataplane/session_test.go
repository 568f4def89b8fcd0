package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestSilentPeerIsClosedAsHeartbeatTimeout(t *testing.T) {
	n := startNode(t, testPolicy(), nil) // interval 1s, timeout 2s
	conn, _ := rawHandshake(t, n.addr, testOrigin)
	start := time.Now()
	// Never read, never answer pings.
	ev := n.sink.wait(t, 6*time.Second, "heartbeat_timeout", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT))
	if el := time.Since(start); el > 3*time.Second+500*time.Millisecond {
		t.Fatalf("closed after %s, want within timeout + one interval (3s)", el)
	}
	if ev.GetCloseCode() != 1006 || ev.GetConnId() == "" {
		t.Fatalf("event %v", ev)
	}
	_ = conn
}

func TestAPeerThatAnswersPingsStaysOpen(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	c := mustDial(t, n.addr, dialOpts{})
	time.Sleep(3500 * time.Millisecond) // longer than the 2s timeout
	c.send(t, `{"type":"subscribe","channel":"alive"}`)
	c.expect(t, `"subscribed"`)
}

func TestOversizedFrameCloses1009(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxMessageBytes = 1024
	n := startNode(t, p, nil)
	c := mustDial(t, n.addr, dialOpts{})
	c.send(t, `{"type":"publish","channel":"a","data":"`+strings.Repeat("x", 2000)+`"}`)
	if code := c.closeCode(t, 5*time.Second); code != 1009 {
		t.Fatalf("close code %d", code)
	}
	n.sink.wait(t, 2*time.Second, "message_too_big", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG))
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	c := mustDial(t, n.addr, dialOpts{})
	if err := c.conn.WriteMessage(gws.OpcodeText, []byte{'"', 0xff, 0xfe, '"'}); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(t, 5*time.Second); code != 1007 {
		t.Fatalf("close code %d", code)
	}
	ev := n.sink.wait(t, 2*time.Second, "protocol_error", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR))
	if ev.GetCloseCode() != 1007 {
		t.Fatalf("event %v", ev)
	}
}

func TestPanickingHandlerCloses1011AndOthersKeepWorking(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) {
		c.Hooks.OnPublish = func(_ context.Context, _ ConnInfo, channel string, _ json.RawMessage) error {
			if channel == "boom" {
				panic("handler bug")
			}
			return nil
		}
	})
	bad := mustDial(t, n.addr, dialOpts{})
	good := mustDial(t, n.addr, dialOpts{})
	good.send(t, `{"type":"subscribe","channel":"fine"}`)
	good.expect(t, `"subscribed"`)

	bad.send(t, `{"type":"publish","channel":"boom","data":1}`)
	if code := bad.closeCode(t, 5*time.Second); code != 1011 {
		t.Fatalf("close code %d", code)
	}
	n.sink.wait(t, 2*time.Second, "internal_error", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR))

	good.send(t, `{"type":"publish","channel":"fine","data":{"still":"working"}}`)
	good.expect(t, `"still":"working"`)
}

func TestClientThatNeverReadsIsClosedAsSlowConsumer(t *testing.T) {
	n := startNode(t, testPolicy(), func(c *Config) {
		c.MaxQueueMessages = 64
		c.MaxQueueBytes = 1 << 20
		c.WriteTimeout = time.Second
	})
	// The slow client subscribes, then never reads again.
	slow, br := rawHandshake(t, n.addr, testOrigin)
	if _, err := slow.Write(maskedFrame(0x1, []byte(`{"type":"subscribe","channel":"firehose"}`))); err != nil {
		t.Fatal(err)
	}
	_ = br
	pub := mustDial(t, n.addr, dialOpts{})
	payload := `{"type":"publish","channel":"firehose","data":"` + strings.Repeat("y", 30_000) + `"}`

	runtime.GC()
	var before, peak runtime.MemStats
	runtime.ReadMemStats(&before)
	// ~60 MB published at a reader that takes nothing.
	for i := 0; i < 2000 && n.sink.count(wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER) == 0; i++ {
		pub.send(t, payload)
		if i%100 == 0 {
			runtime.ReadMemStats(&peak)
			if grew := int64(peak.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
				t.Fatalf("heap grew by %d MiB while a client did not read", grew>>20)
			}
		}
	}
	ev := n.sink.wait(t, 10*time.Second, "slow_consumer", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER))
	if ev.GetCloseCode() != 1008 {
		t.Fatalf("event %v", ev)
	}
	// The publisher is unaffected.
	pub.send(t, `{"type":"subscribe","channel":"after"}`)
	pub.expect(t, `"subscribed"`)
}

func TestTCPResetIsConnReset(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	conn, _ := rawHandshake(t, n.addr, testOrigin)
	tcp := conn.(*net.TCPConn)
	_ = tcp.SetLinger(0) // close sends RST
	_ = tcp.Close()
	n.sink.wait(t, 3*time.Second, "conn_reset", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET))
}

func TestClientCloseCodesAreExplained(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	tests := []struct {
		name  string
		code  uint16
		class wsfleetv1.ErrorClass
	}{
		{"client close 1000 is normal", 1000, wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL},
		{"client close 1001 is client_going_away", 1001, wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, n.addr, dialOpts{header: map[string][]string{"X-Trace-Id": {"close-" + strconv.Itoa(int(tt.code))}}})
			traceID := c.resp.Header.Get("X-Trace-ID")
			_ = c.conn.WriteClose(tt.code, nil)
			ev := n.sink.wait(t, 3*time.Second, tt.name, func(ev *wsfleetv1.ErrorEvent) bool {
				return ev.GetTraceId() == traceID && ev.GetKind() == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED
			})
			if ev.GetClass() != tt.class || ev.GetCloseCode() != int32(tt.code) {
				t.Fatalf("event %v", ev)
			}
		})
	}
}

func TestChannels(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	a := mustDial(t, n.addr, dialOpts{})
	b := mustDial(t, n.addr, dialOpts{})
	gone := mustDial(t, n.addr, dialOpts{})
	for _, c := range []*client{a, b, gone} {
		c.send(t, `{"type":"subscribe","channel":"news"}`)
		c.expect(t, `{"type":"subscribed","channel":"news"}`)
	}
	gone.send(t, `{"type":"unsubscribe","channel":"news"}`)
	gone.expect(t, `"unsubscribed"`)

	a.send(t, `{"type":"publish","channel":"news","data":{"n":1}}`)
	want := `{"type":"message","channel":"news","data":{"n":1}}`
	if got := a.expect(t, `"message"`); got != want {
		t.Fatalf("a got %s", got)
	}
	if got := b.expect(t, `"message"`); got != want {
		t.Fatalf("b got %s", got)
	}

	t.Run("an unsubscribed client gets nothing", func(t *testing.T) {
		gone.send(t, `{"type":"subscribe","channel":"marker"}`)
		gone.expect(t, `"channel":"marker"`) // everything before it has been delivered
		select {
		case m := <-gone.msgs:
			t.Fatalf("unsubscribed client got %s", m)
		default:
		}
	})

	t.Run("a bad frame gets an error frame and the connection stays open", func(t *testing.T) {
		for _, bad := range []string{`{not json`, `{"type":"dance","channel":"x"}`, `{"type":"subscribe","channel":""}`} {
			a.send(t, bad)
			if got := a.expect(t, `"type":"error"`); !strings.Contains(got, `"code":"`) {
				t.Fatalf("error frame %s", got)
			}
		}
		a.send(t, `{"type":"publish","channel":"news","data":"still open"}`)
		a.expect(t, `"still open"`)
	})
}

func TestMessageRateAbuseCloses1008(t *testing.T) {
	p := testPolicy()
	p.Limits.MessagesPerSecond = 20
	p.Limits.MessageBurst = 5
	n := startNode(t, p, func(c *Config) { c.AbuseWindow = time.Second })
	c := mustDial(t, n.addr, dialOpts{})
	frame := `{"type":"publish","channel":"spam","data":0}`
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && n.sink.count(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION) == 0 {
		if err := c.conn.WriteString(frame); err != nil {
			break
		}
	}
	ev := n.sink.wait(t, 5*time.Second, "policy_violation", classIs(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION))
	if ev.GetCloseCode() != 1008 || !strings.Contains(ev.GetError(), "messages_per_second 20") {
		t.Fatalf("event %v", ev)
	}
}

func TestPolicyAppliesWithoutDroppingConnections(t *testing.T) {
	n := startNode(t, testPolicy(), nil)
	c := mustDial(t, n.addr, dialOpts{})
	c.send(t, `{"type":"subscribe","channel":"live"}`)
	c.expect(t, `"subscribed"`)

	next := testPolicy()
	next.Origins.Allow = []string{"https://new.example.com"}
	next.Heartbeat.Interval = durationpb.New(2 * time.Second)
	next.Heartbeat.Timeout = durationpb.New(5 * time.Second)
	next.Limits.MessagesPerSecond = 500
	if err := n.Apply(&wsfleetv1.PolicyRevision{Pool: "default", Revision: 2, Policy: next}); err != nil {
		t.Fatal(err)
	}
	if n.Revision().GetRevision() != 2 {
		t.Fatal("revision not applied")
	}
	// The allowlist applies to the next handshake...
	if _, err := dial(t, n.addr, dialOpts{origin: testOrigin}); err == nil {
		t.Fatal("old origin still admitted")
	}
	mustDial(t, n.addr, dialOpts{origin: "https://new.example.com"})
	// ...and the open connection is still there and working.
	c.send(t, `{"type":"publish","channel":"live","data":"after apply"}`)
	c.expect(t, `"after apply"`)
	if n.sink.count(wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT) != 0 {
		t.Fatal("a connection timed out across the apply")
	}

	t.Run("an invalid policy is refused and the running one stays", func(t *testing.T) {
		bad := testPolicy()
		bad.Limits.MaxConnections = -1
		err := n.Apply(&wsfleetv1.PolicyRevision{Revision: 3, Policy: bad})
		if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), "limits.max_connections") {
			t.Fatalf("err = %v", err)
		}
		if n.Revision().GetRevision() != 2 {
			t.Fatal("revision changed")
		}
	})
}

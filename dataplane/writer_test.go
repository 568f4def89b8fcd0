package dataplane

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lxzan/gws"
	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The outgoing path (writer.go) writes many frames per system call,
// straight to the socket, next to gws's own close frames. These tests read
// what reaches the client off a raw socket and check every frame.

// wireFrame is one frame as a client reads it.
type wireFrame struct {
	op      byte
	payload []byte
}

// maxTestFrame bounds what readServerFrame accepts.
const maxTestFrame = 1 << 20

// readServerFrame reads one frame and checks everything RFC 6455 asks of
// a frame from a server (§5.2, §5.5, §8.1), and of the node's frames in
// particular: never fragmented, no extension bits, unmasked, a known
// opcode, control frames of at most 125 bytes, lengths in the fewest bytes,
// text frames of valid UTF-8 holding one JSON value, a close frame's code
// and valid UTF-8 reason. Frames that were cut into or spliced together
// fail one of these.
func readServerFrame(br *bufio.Reader) (wireFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return wireFrame{}, err
	}
	fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
	masked, n := h[1]&0x80 != 0, uint64(h[1]&0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return wireFrame{}, err
		}
		if n = uint64(binary.BigEndian.Uint16(b[:])); n < 126 {
			return wireFrame{}, fmt.Errorf("length %d in 2 extra bytes, not the fewest", n)
		}
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return wireFrame{}, err
		}
		if n = binary.BigEndian.Uint64(b[:]); n <= 0xFFFF {
			return wireFrame{}, fmt.Errorf("length %d in 8 extra bytes, not the fewest", n)
		}
	}
	switch {
	case !fin:
		return wireFrame{}, fmt.Errorf("a fragment (opcode %d)", op)
	case rsv != 0:
		return wireFrame{}, fmt.Errorf("reserved bits %#x set", rsv)
	case masked:
		return wireFrame{}, errors.New("a masked frame from the server")
	case op != 0x1 && op != 0x8 && op != 0x9 && op != 0xA:
		return wireFrame{}, fmt.Errorf("opcode %#x", op)
	case op >= 0x8 && n > 125:
		return wireFrame{}, fmt.Errorf("control frame (opcode %d) of %d bytes", op, n)
	case n > maxTestFrame:
		return wireFrame{}, fmt.Errorf("frame of %d bytes", n)
	}
	f := wireFrame{op: op, payload: make([]byte, n)}
	if _, err := io.ReadFull(br, f.payload); err != nil {
		return wireFrame{}, err
	}
	switch op {
	case 0x1:
		if !utf8.Valid(f.payload) || !json.Valid(f.payload) {
			return wireFrame{}, fmt.Errorf("text frame that is not one JSON value in UTF-8: %.80q", f.payload)
		}
	case 0x8:
		if len(f.payload) == 1 || !utf8.Valid(f.payload[min(len(f.payload), 2):]) {
			return wireFrame{}, fmt.Errorf("close frame payload %q", f.payload)
		}
	}
	return f, nil
}

// closeCodeOf is a close frame's code (1005 when it carries none).
func closeCodeOf(f wireFrame) uint16 {
	if len(f.payload) < 2 {
		return 1005
	}
	return binary.BigEndian.Uint16(f.payload)
}

// rawClient is a client on a raw socket whose every incoming frame is
// checked (readServerFrame). It answers the node's pings; writes are
// serialized.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
}

// rawDial upgrades a raw connection with trace id trace.
func rawDial(t testing.TB, addr, trace string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := conn.Write([]byte(upgradeRequest(trace, testOrigin, nil))); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return &rawClient{conn: conn, br: br}
}

func (c *rawClient) write(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(maskedFrame(opcode, payload))
	return err
}

func (c *rawClient) send(t testing.TB, text string) {
	t.Helper()
	if err := c.write(0x1, []byte(text)); err != nil {
		t.Fatal(err)
	}
}

// next reads the next frame that is not a ping, answering pings.
func (c *rawClient) next() (wireFrame, error) {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := readServerFrame(c.br)
		if err != nil || f.op != 0x9 {
			return f, err
		}
		// A pong the node no longer takes (it has closed its side) is
		// not what the caller reads for: read on.
		_ = c.write(0xA, f.payload)
	}
}

// subscribe subscribes and waits for the acknowledgement.
func (c *rawClient) subscribe(t testing.TB, ch string) {
	t.Helper()
	c.send(t, `{"type":"subscribe","channel":"`+ch+`"}`)
	for {
		f, err := c.next()
		if err != nil {
			t.Fatalf("waiting for subscribed: %v", err)
		}
		if f.op == 0x1 && strings.Contains(string(f.payload), `"subscribed"`) {
			return
		}
	}
}

// message is the part of a message frame the tests look at.
type message struct {
	Type    string `json:"type"`
	Channel string `json:"channel"`
	Data    struct {
		P   int    `json:"p"`
		Seq int    `json:"seq"`
		Pad string `json:"pad"`
	} `json:"data"`
}

func publishFrame(ch string, p, seq, pad int) string {
	return fmt.Sprintf(`{"type":"publish","channel":%q,"data":{"p":%d,"seq":%d,"pad":%q}}`, ch, p, seq, strings.Repeat("x", pad))
}

// The node's writer writes batches of frames straight to the socket while
// gws writes close frames on the same socket (its own answer to a client's
// close, the node's WriteClose): a client reading every byte must find
// whole, valid frames only — data frames, pongs and pings of every length
// encoding, a socket full enough that writes go out in pieces — and the
// close frame last, with nothing after it.
func TestFramesNeverInterleaveAndTheCloseFrameComesLast(t *testing.T) {
	tests := []struct {
		name  string
		close func(t *testing.T, n *testNode, c *rawClient, s *session)
		code  uint16
	}{
		{"the node closing the connection", func(_ *testing.T, _ *testNode, _ *rawClient, s *session) {
			s.closeWith(wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION, "closed by the test")
		}, 1008},
		{"the client closing the connection (gws answers)", func(t *testing.T, _ *testNode, c *rawClient, _ *session) {
			if err := c.write(0x8, []byte{0x03, 0xE8}); err != nil {
				t.Error(err)
			}
		}, 1000},
		{"the node shutting down", func(_ *testing.T, n *testNode, _ *rawClient, _ *session) {
			go n.stop()
		}, 1001},
	}
	for _, tt := range tests {
		t.Run("frames stay whole up to "+tt.name, func(t *testing.T) {
			p := testPolicy()
			p.Limits.MaxMessageBytes = 256 << 10
			n := startNode(t, p, func(c *Config) {
				c.MaxQueueMessages = 1 << 20
				c.MaxQueueBytes = 1 << 30
				c.Writers = 1
			})
			const trace = "whole-frames"
			sub := rawDial(t, n.addr, trace)
			sub.subscribe(t, "flood")
			subSession := sessionByTrace(t, n, trace)

			// Publishers of every length encoding: 7-bit, 16-bit and
			// 64-bit payload lengths, the last bigger than one write
			// buffer.
			stop := make(chan struct{})
			var pubs sync.WaitGroup
			for i, pad := range []int{10, 300, 70_000, 200_000} {
				pub := mustDial(t, n.addr, dialOpts{})
				pubs.Add(1)
				go func() {
					defer pubs.Done()
					for seq := 0; seq < 400; seq++ {
						select {
						case <-stop:
							return
						default:
						}
						if pub.conn.WriteString(publishFrame("flood", i, seq, pad)) != nil {
							return
						}
						time.Sleep(time.Millisecond)
					}
				}()
			}
			defer func() { close(stop); pubs.Wait() }()
			// The client's own pings make the node queue pongs among the
			// messages.
			stopPings, pingsDone := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(pingsDone)
				for i := 0; i < 2000; i++ {
					select {
					case <-stop:
						return
					case <-stopPings:
						return // no frame after a close (RFC 6455 §5.5.1)
					default:
					}
					if sub.write(0x9, []byte(fmt.Sprint(i))) != nil {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()

			var messages, pongs int
			closed := false
			var closing sync.WaitGroup
			defer closing.Wait()
			for {
				f, err := sub.next()
				if closed && err != nil && (errors.Is(err, io.EOF) || isReset(err)) {
					break // nothing after the close frame
				}
				if err != nil {
					t.Fatalf("after %d messages and %d pongs: %v", messages, pongs, err)
				}
				if closed {
					t.Fatalf("a frame (opcode %d) after the close frame", f.op)
				}
				switch f.op {
				case 0x1:
					var m message
					if err := json.Unmarshal(f.payload, &m); err != nil || (m.Type == "message" && m.Channel != "flood") {
						t.Fatalf("frame %.80q", f.payload)
					}
					messages++
					if messages == 150 {
						// Slow down for a moment: the socket fills, and
						// the node's writes go out in pieces.
						time.Sleep(300 * time.Millisecond)
						// On its own goroutine: the node's close may
						// wait for the frame in flight, which needs
						// this reader.
						close(stopPings)
						closing.Add(1)
						go func() {
							defer closing.Done()
							// A ping already past its stop check would
							// follow the client's close frame; the node,
							// closing with it unread, would reset the
							// connection before its own close frame is read.
							<-pingsDone
							tt.close(t, n, sub, subSession)
						}()
					}
				case 0xA:
					pongs++
				case 0x8:
					if got := closeCodeOf(f); got != tt.code {
						t.Fatalf("close code %d, want %d", got, tt.code)
					}
					closed = true
				}
			}
			if messages < 150 || pongs == 0 {
				t.Fatalf("%d messages and %d pongs before the close frame; want at least 150 and 1", messages, pongs)
			}
		})
	}
}

// isReset: the node closed its end while the client had unread input on
// it, or the reverse; either way after the close frame.
func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(ne.Err.Error(), "reset")
}

// Fan-out with many publishers at once: every subscriber gets every
// publisher's messages, each exactly once and in the order it published
// them.
func TestEachPublishersMessagesReachEverySubscriberInOrder(t *testing.T) {
	const (
		publishers  = 6
		perPub      = 300
		subscribers = 8
	)
	n := startNode(t, testPolicy(), func(c *Config) {
		c.MaxQueueMessages = publishers * perPub
	})
	subs := make([]*rawClient, subscribers)
	for i := range subs {
		subs[i] = rawDial(t, n.addr, fmt.Sprint("order-", i))
		subs[i].subscribe(t, "ordered")
	}
	var pubs sync.WaitGroup
	for p := range publishers {
		pub := mustDial(t, n.addr, dialOpts{})
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for seq := range perPub {
				if err := pub.conn.WriteString(publishFrame("ordered", p, seq, seq%7*20)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for i, sub := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			next := make([]int, publishers) // the seq expected next from each publisher
			for got := 0; got < publishers*perPub; {
				f, err := sub.next()
				if err != nil {
					t.Errorf("subscriber %d after %d messages: %v", i, got, err)
					return
				}
				var m message
				if f.op != 0x1 || json.Unmarshal(f.payload, &m) != nil || m.Type != "message" {
					continue
				}
				if m.Data.Seq != next[m.Data.P] {
					t.Errorf("subscriber %d got message %d of publisher %d, want %d: out of order or lost", i, m.Data.Seq, m.Data.P, next[m.Data.P])
					return
				}
				next[m.Data.P]++
				got++
			}
		}()
	}
	pubs.Wait()
	readers.Wait()
}

// A client that stops reading fills its socket; the node's writer must not
// wait for it: another subscriber of the same channel gets every message
// while the stalled one's write waits (here for longer than the test).
// With one pool goroutine, a writer that waited would hold up everyone.
func TestAClientThatStopsReadingHoldsUpNoOtherClient(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxMessageBytes = 64 << 10
	// The stalled client answers no ping: the heartbeat must not close it
	// during the test.
	p.Heartbeat.Interval, p.Heartbeat.Timeout = durationSeconds(60), durationSeconds(120)
	n := startNode(t, p, func(c *Config) {
		c.Writers = 1
		c.WriteTimeout = time.Minute
		c.MaxQueueMessages = 1 << 20
		c.MaxQueueBytes = 1 << 30
	})
	stalled := rawDial(t, n.addr, "stalled")
	stalled.subscribe(t, "wide")
	stalledSession := sessionByTrace(t, n, "stalled")
	reader := rawDial(t, n.addr, "reader")
	reader.subscribe(t, "wide")
	pub := mustDial(t, n.addr, dialOpts{})

	// 32 MiB: far more than the stalled client's socket buffers hold.
	const count = 1000
	done := make(chan error, 1)
	go func() {
		for got := 0; got < count; {
			f, err := reader.next()
			if err != nil {
				done <- fmt.Errorf("after %d messages: %w", got, err)
				return
			}
			if f.op == 0x1 && strings.Contains(string(f.payload[:min(len(f.payload), 40)]), `"message"`) {
				got++
			}
		}
		done <- nil
	}()
	for seq := range count {
		pub.send(t, publishFrame("wide", 0, seq, 32<<10))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reading client did not get every message: held up behind the stalled one")
	}
	if stalledSession.closing.Load() != nil {
		t.Fatalf("the stalled client was closed (%+v); the test needs it waiting", stalledSession.closing.Load())
	}
	stalledSession.q.mu.Lock()
	waiting := stalledSession.q.bytes
	stalledSession.q.mu.Unlock()
	if waiting == 0 {
		t.Fatal("the stalled client has nothing waiting: the test did not fill its socket")
	}
}

// A client that takes nothing is closed as slow_consumer when a write to
// it waits out the write timeout, even with queue bounds it never reaches;
// its queue is freed at once.
func TestAClientThatTakesNothingForTheWriteTimeoutIsASlowConsumer(t *testing.T) {
	p := testPolicy()
	p.Limits.MaxMessageBytes = 64 << 10
	// The client sends nothing: a heartbeat timeout far beyond the write
	// timeout, so that on a loaded machine the write timeout still comes
	// first however long filling the socket takes.
	p.Heartbeat.Interval = durationpb.New(10 * time.Second)
	p.Heartbeat.Timeout = durationpb.New(60 * time.Second)
	n := startNode(t, p, func(c *Config) {
		c.WriteTimeout = time.Second
		c.MaxQueueMessages = 1 << 20
		c.MaxQueueBytes = 1 << 30
	})
	slow := rawDial(t, n.addr, "takes-nothing")
	slow.subscribe(t, "firehose")
	s := sessionByTrace(t, n, "takes-nothing")
	pub := mustDial(t, n.addr, dialOpts{})
	for i := 0; i < 2000 && s.closing.Load() == nil; i++ {
		pub.send(t, publishFrame("firehose", 0, i, 32<<10))
	}
	ev := n.sink.wait(t, 10*time.Second, "slow_consumer", func(ev *wsfleetv1.ErrorEvent) bool {
		return ev.GetTraceId() == "takes-nothing"
	})
	if ev.GetClass() != wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER || ev.GetCloseCode() != 1008 ||
		!strings.Contains(ev.GetError(), "write timeout") {
		t.Fatalf("event %s close %d %q; want slow_consumer close 1008 naming the write timeout", ev.GetClass(), ev.GetCloseCode(), ev.GetError())
	}
	s.q.mu.Lock()
	items, bytes := len(s.q.items), s.q.bytes
	s.q.mu.Unlock()
	if items != 0 || bytes != 0 {
		t.Fatalf("the closed connection's queue still holds %d frames, %d bytes", items, bytes)
	}
	// The publisher is unaffected.
	pub.send(t, `{"type":"subscribe","channel":"after"}`)
	pub.expect(t, `"subscribed"`)
}

// The bounds count the batch being written until it is written: a client
// that does not read holds at most the bounds, not the bounds plus a batch.
func TestTheQueueBoundsCountTheBatchBeingWritten(t *testing.T) {
	var q outQueue
	msg := []byte("0123456789")
	const maxItems, maxBytes = 4, 1000
	if r := q.push(outItem{op: gws.OpcodeText, data: msg}, maxItems, maxBytes); r != pushSchedule {
		t.Fatalf("first push = %d, want pushSchedule", r)
	}
	for range 3 {
		if r := q.push(outItem{op: gws.OpcodeText, data: msg}, maxItems, maxBytes); r != pushQueued {
			t.Fatalf("push = %d, want pushQueued", r)
		}
	}
	batch := q.take()
	if len(batch) != 4 {
		t.Fatalf("took %d frames, want 4", len(batch))
	}
	if r := q.push(outItem{op: gws.OpcodeText, data: msg}, maxItems, maxBytes); r != pushOverflow {
		t.Fatalf("push while 4 frames are being written = %d, want pushOverflow", r)
	}
	if r := q.push(outItem{op: gws.OpcodePing}, maxItems, maxBytes); r != pushQueued {
		t.Fatalf("a ping over the bound = %d, want pushQueued (control frames may exceed it by one)", r)
	}
	if more := q.done(4 * len(msg)); !more {
		t.Fatal("done = false with a ping queued behind the batch")
	}
	if got := q.take(); len(got) != 1 || got[0].op != gws.OpcodePing {
		t.Fatalf("next batch %v, want the ping", got)
	}
	if more := q.done(0); more {
		t.Fatal("done = true with nothing queued")
	}
	if r := q.push(outItem{op: gws.OpcodeText, data: msg}, maxItems, maxBytes); r != pushSchedule {
		t.Fatalf("push to an emptied queue = %d, want pushSchedule", r)
	}
}

package dataplane

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The per-message counters are summed from stripes at scrape time; they
// must still count every message and byte exactly, in both directions,
// with many connections on different stripes at once, and be exposed as
// the counters they replace were (name, type, help, labels).
func TestPerMessageCountersAreExact(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := startNode(t, testPolicy(), func(c *Config) { c.Registry = reg })
	const clients, publishes = 6, 150
	type tally struct{ in, inBytes, out, outBytes, published int }
	tallies := make([]tally, clients)
	var wg sync.WaitGroup
	for i := range clients {
		c := mustDial(t, n.addr, dialOpts{})
		wg.Go(func() {
			tl := &tallies[i]
			// What the client sends: every data frame counts in, text or
			// binary, valid or not.
			send := func(op gws.Opcode, frame string) {
				if err := c.conn.WriteMessage(op, []byte(frame)); err != nil {
					t.Errorf("write: %v", err)
				}
				tl.in++
				tl.inBytes += len(frame)
			}
			// What it gets back: every text frame counts out.
			recv := func(want string) {
				m := c.expect(t, want)
				tl.out++
				tl.outBytes += len(m)
			}
			recv(`"welcome"`) // the node's first frame counts out too
			ch := "exact." + strconv.Itoa(i)
			send(gws.OpcodeText, `{"type":"subscribe","channel":"`+ch+`"}`)
			recv(`"subscribed"`)
			for j := range publishes {
				send(gws.OpcodeText, `{"type":"publish","channel":"`+ch+`","data":{"j":`+strconv.Itoa(j)+`,"pad":"`+strings.Repeat("x", j%40)+`"}}`)
				recv(`"j":` + strconv.Itoa(j) + `,`)
				tl.published++
			}
			send(gws.OpcodeText, `{"type":"publish"`)
			recv(`"bad_json"`)
			send(gws.OpcodeBinary, "\x00\x01")
			recv(`"binary_not_supported"`)
		})
	}
	wg.Wait()
	var want tally
	for _, tl := range tallies {
		want.in += tl.in
		want.inBytes += tl.inBytes
		want.out += tl.out
		want.outBytes += tl.outBytes
		want.published += tl.published
	}
	got := func() tally {
		return tally{
			in:        int(counterValue(t, reg, "wsfleet_node_messages_total", "direction", "in")),
			inBytes:   int(counterValue(t, reg, "wsfleet_node_bytes_total", "direction", "in")),
			out:       int(counterValue(t, reg, "wsfleet_node_messages_total", "direction", "out")),
			outBytes:  int(counterValue(t, reg, "wsfleet_node_bytes_total", "direction", "out")),
			published: int(counterValue(t, reg, "wsfleet_node_publishes_total", "result", "ok")),
		}
	}
	// A frame is counted out once its write returns, which may be just
	// after the client has read it: wait for the last ones, but a count
	// must never exceed what was sent.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := got()
		if g.in > want.in || g.inBytes > want.inBytes || g.out > want.out || g.outBytes > want.outBytes || g.published > want.published {
			t.Fatalf("counted more than was sent: got %+v, want %+v", g, want)
		}
		if g == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters %+v, want %+v", g, want)
		}
		time.Sleep(10 * time.Millisecond)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	for _, tt := range []struct {
		name, help string
		series     int
		labels     []string
	}{
		{"wsfleet_node_messages_total", "WebSocket data messages, by direction.", 2, []string{"direction", "node_id", "pool"}},
		{"wsfleet_node_bytes_total", "WebSocket payload bytes, by direction.", 2, []string{"direction", "node_id", "pool"}},
		{"wsfleet_node_publishes_total", "Client publishes by result: ok (handed to the broker), forbidden (the OnPublish hook refused it) or unavailable (the broker refused it: the client got an unavailable error frame), with the broker's reason: breaker_open, not_connected, timeout, unavailable, too_big, closed, canceled, error.",
			2 + 8, []string{"node_id", "pool", "reason", "result"}},
	} {
		f := byName[tt.name]
		if f == nil {
			t.Fatalf("no %s", tt.name)
		}
		if f.GetType() != dto.MetricType_COUNTER || f.GetHelp() != tt.help || len(f.GetMetric()) != tt.series {
			t.Errorf("%s: type %v, %d series, help %q", tt.name, f.GetType(), len(f.GetMetric()), f.GetHelp())
		}
		for _, m := range f.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			if strings.Join(names, ",") != strings.Join(tt.labels, ",") {
				t.Errorf("%s has labels %v, want %v", tt.name, names, tt.labels)
			}
		}
	}
}

// Connections a client ends the ordinary way are logged at debug, not at
// info: at a client-driven rate, a JSON line each was a large part of a
// handshake's cost. Errors stay at warn; the sink gets every event.
func TestOrdinaryClosesAreLoggedAtDebug(t *testing.T) {
	for _, tt := range []struct {
		name        string
		level       string
		wantClasses []string
	}{
		{"at info only the error is logged", "info", []string{"conn_reset"}},
		{"at debug every close is logged", "debug", []string{"normal", "client_going_away", "conn_reset"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			n := startNode(t, testPolicy(), func(c *Config) {
				c.Log = jsonLogger(logs)
				if tt.level == "debug" {
					c.Log.SetLevel(logrus.DebugLevel)
				}
			})
			normal := mustDial(t, n.addr, dialOpts{})
			_ = normal.conn.WriteClose(1000, nil)
			away := mustDial(t, n.addr, dialOpts{})
			_ = away.conn.WriteClose(1001, nil)
			reset := mustDial(t, n.addr, dialOpts{})
			_ = reset.conn.NetConn().Close()
			for _, c := range []wsfleetv1.ErrorClass{wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL,
				wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY, wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET} {
				n.sink.wait(t, 5*time.Second, c.String(), classIs(c))
			}
			var got []string
			for _, l := range logs.lines(t, "connection closed") {
				got = append(got, l["class"].(string)+"@"+l["level"].(string))
			}
			var want []string
			for _, c := range tt.wantClasses {
				level := "debug"
				if c == "conn_reset" {
					level = "warning"
				}
				want = append(want, c+"@"+level)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("logged %v, want %v", got, want)
			}
		})
	}
}

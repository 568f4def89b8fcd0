package fold_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane/internal/fold"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const window = 10 * time.Second

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func key(origin, remote string) fold.Key {
	return fold.Key{
		Class:   wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
		Status:  403,
		Origin:  origin,
		Network: fold.NetworkOf(remote, 24, 64),
	}
}

func rejection(trace string, at time.Time) *wsfleetv1.ErrorEvent {
	return &wsfleetv1.ErrorEvent{
		Kind:       wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED,
		Class:      wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED,
		HttpStatus: 403,
		TraceId:    trace,
		Origin:     "https://evil.example",
		RemoteAddr: "203.0.113.7:4000",
		Error:      "origin not allowed",
		Time:       timestamppb.New(at),
	}
}

// times is how many rejections an event stands for.
func times(ev *wsfleetv1.ErrorEvent) int { return max(1, int(ev.GetRepeat())) }

func TestNetworkOf(t *testing.T) {
	tests := []struct {
		name, a, b string
		same       bool
	}{
		{"two IPv4 addresses in one /24 are one network", "203.0.113.7:1", "203.0.113.200:2", true},
		{"IPv4 addresses in different /24s are not", "203.0.113.7:1", "203.0.114.7:1", false},
		{"two IPv6 addresses in one /64 are one network", "[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:2", true},
		{"IPv6 addresses in different /64s are not", "[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", false},
		{"an IPv4-mapped IPv6 address is its IPv4 address", "[::ffff:203.0.113.7]:1", "203.0.113.9:1", true},
		{"an IPv6 zone is ignored", "[fe80::1%eth0]:1", "[fe80::2%eth1]:1", true},
		{"a bare IP address works as ip:port does", "203.0.113.7", "203.0.113.8:80", true},
		{"an address that is not an IP is kept as it is", "@", "@", true},
		{"two addresses that are not IPs differ by their text", "pipe-1", "pipe-2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := fold.NetworkOf(tt.a, 24, 64), fold.NetworkOf(tt.b, 24, 64)
			if (a == b) != tt.same {
				t.Fatalf("NetworkOf(%q) = %v, NetworkOf(%q) = %v; same = %t, want %t", tt.a, a, tt.b, b, a == b, tt.same)
			}
		})
	}
	if got := fold.NetworkOf("203.0.113.7:1", 24, 64).Prefix; got != netip.MustParsePrefix("203.0.113.0/24") {
		t.Fatalf("prefix %v; want 203.0.113.0/24", got)
	}
}

func TestAFloodOfOneKeyIsOneEventAtOnceAndOneCountPerWindow(t *testing.T) {
	tab := fold.New(fold.Config{Window: window, MaxKeys: 10})
	k := key("https://evil.example", "203.0.113.7:4000")
	var recorded []*wsfleetv1.ErrorEvent
	for i := range 3000 {
		at := t0.Add(time.Duration(i) * time.Millisecond) // 3s: one window
		out := tab.Add(k, rejection(fmt.Sprint("t", i), at), at)
		if out.Ended != nil {
			recorded = append(recorded, out.Ended)
		}
		if out.Now != nil {
			recorded = append(recorded, out.Now)
		}
	}
	if len(recorded) != 1 || recorded[0].GetTraceId() != "t0" || recorded[0].GetRepeat() != 0 {
		t.Fatalf("recorded during the window: %v; want only the first rejection (t0), at once", recorded)
	}
	if got := tab.Sweep(t0.Add(window - time.Nanosecond)); len(got) != 0 {
		t.Fatalf("Sweep before the window ended returned %v", got)
	}
	ended := tab.Sweep(t0.Add(window))
	if len(ended) != 1 {
		t.Fatalf("Sweep at the window's end returned %d events; want 1", len(ended))
	}
	ev := ended[0]
	if ev.GetRepeat() != 2999 || ev.GetTraceId() != "t1" ||
		!ev.GetFirstTime().AsTime().Equal(t0.Add(time.Millisecond)) || !ev.GetTime().AsTime().Equal(t0.Add(2999*time.Millisecond)) {
		t.Fatalf("fold %v; want repeat 2999, the first counted one's trace id (t1), first_time its time, time the last one's", ev)
	}
	if sum := times(recorded[0]) + times(ev); sum != 3000 {
		t.Fatalf("the events stand for %d rejections; want 3000", sum)
	}
	if tab.Len() != 0 {
		t.Fatalf("%d keys left after the sweep", tab.Len())
	}
}

func TestAdd(t *testing.T) {
	t.Run("the next rejection after the window ends the fold and opens a new window", func(t *testing.T) {
		tab := fold.New(fold.Config{Window: window, MaxKeys: 10})
		k := key("https://evil.example", "203.0.113.7:4000")
		tab.Add(k, rejection("a", t0), t0)
		tab.Add(k, rejection("b", t0.Add(time.Second)), t0.Add(time.Second))
		tab.Add(k, rejection("c", t0.Add(2*time.Second)), t0.Add(2*time.Second))
		late := t0.Add(window)
		out := tab.Add(k, rejection("d", late), late)
		if out.Ended == nil || out.Ended.GetRepeat() != 2 || out.Now == nil || out.Now.GetTraceId() != "d" {
			t.Fatalf("outcome %+v; want the fold of b and c, and d recorded at once", out)
		}
	})

	t.Run("a single counted rejection comes out as a plain event", func(t *testing.T) {
		tab := fold.New(fold.Config{Window: window, MaxKeys: 10})
		k := key("https://evil.example", "203.0.113.7:4000")
		tab.Add(k, rejection("a", t0), t0)
		tab.Add(k, rejection("b", t0.Add(time.Second)), t0.Add(time.Second))
		got := tab.Sweep(t0.Add(window))
		if len(got) != 1 || got[0].GetTraceId() != "b" || got[0].GetRepeat() != 0 || got[0].GetFirstTime() != nil {
			t.Fatalf("sweep %v; want b alone, without repeat or first_time", got)
		}
	})

	t.Run("a key with nothing counted ends without an event", func(t *testing.T) {
		tab := fold.New(fold.Config{Window: window, MaxKeys: 10})
		tab.Add(key("https://evil.example", "203.0.113.7:4000"), rejection("a", t0), t0)
		if got := tab.Sweep(t0.Add(window)); len(got) != 0 || tab.Len() != 0 {
			t.Fatalf("sweep %v, %d keys left; want nothing", got, tab.Len())
		}
	})

	separate := []struct {
		name string
		a, b fold.Key
	}{
		{"two origins are not folded together", key("https://a.example", "203.0.113.7:1"), key("https://b.example", "203.0.113.7:1")},
		{"two networks are not folded together", key("https://a.example", "203.0.113.7:1"), key("https://a.example", "198.51.100.7:1")},
		{"two classes are not folded together", key("https://a.example", "203.0.113.7:1"),
			fold.Key{Class: wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, Status: 429, Origin: "https://a.example", Network: fold.NetworkOf("203.0.113.7:1", 24, 64)}},
		{"two statuses of one class are not folded together",
			fold.Key{Class: wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, Status: 400, Network: fold.NetworkOf("203.0.113.7:1", 24, 64)},
			fold.Key{Class: wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, Status: 426, Network: fold.NetworkOf("203.0.113.7:1", 24, 64)}},
	}
	for _, tt := range separate {
		t.Run(tt.name, func(t *testing.T) {
			tab := fold.New(fold.Config{Window: window, MaxKeys: 10})
			if out := tab.Add(tt.a, rejection("a", t0), t0); out.Now == nil {
				t.Fatal("the first key's first rejection was not recorded at once")
			}
			if out := tab.Add(tt.b, rejection("b", t0), t0); out.Now == nil {
				t.Fatal("the second key's first rejection was folded into the first key")
			}
		})
	}

	t.Run("a full table folds new keys into their class's overflow key", func(t *testing.T) {
		tab := fold.New(fold.Config{Window: window, MaxKeys: 2})
		recorded, total := 0, 0
		for i := range 100 {
			total++
			out := tab.Add(key(fmt.Sprintf("https://o%d.example", i), "203.0.113.7:1"), rejection(fmt.Sprint("t", i), t0), t0)
			if out.Now != nil {
				recorded++
			}
			if (i >= 2) != out.Overflow {
				t.Fatalf("rejection %d: overflow %t", i, out.Overflow)
			}
		}
		if recorded != 3 || tab.Len() != 3 {
			t.Fatalf("%d recorded at once, %d keys; want 3 (two keys and the overflow key's first)", recorded, tab.Len())
		}
		got := tab.Sweep(t0.Add(window))
		if len(got) != 1 || got[0].GetRepeat() != 97 || got[0].GetOrigin() != fold.OverflowOrigin || got[0].GetRemoteAddr() != "" {
			t.Fatalf("sweep %v; want one overflow fold of 97 with origin %q and no remote", got, fold.OverflowOrigin)
		}
		if recorded+int(got[0].GetRepeat()) != total {
			t.Fatal("counts lost")
		}
		// Room again: a new key gets its own window.
		if out := tab.Add(key("https://new.example", "203.0.113.7:1"), rejection("n", t0.Add(window)), t0.Add(window)); out.Overflow || out.Now == nil {
			t.Fatalf("after the sweep a new key went to overflow: %+v", out)
		}
	})

	t.Run("Close hands out every open fold and then records every rejection", func(t *testing.T) {
		tab := fold.New(fold.Config{Window: window, MaxKeys: 10})
		k := key("https://evil.example", "203.0.113.7:4000")
		for i := range 5 {
			tab.Add(k, rejection(fmt.Sprint("t", i), t0), t0)
		}
		got := tab.Close()
		if len(got) != 1 || got[0].GetRepeat() != 4 {
			t.Fatalf("Close returned %v; want the fold of 4", got)
		}
		if out := tab.Add(k, rejection("after", t0), t0); out.Now == nil {
			t.Fatal("a rejection after Close was counted, where nothing would ever hand it out")
		}
	})

	t.Run("a zero window folds nothing", func(t *testing.T) {
		tab := fold.New(fold.Config{})
		k := key("https://evil.example", "203.0.113.7:4000")
		for i := range 3 {
			if out := tab.Add(k, rejection(fmt.Sprint("t", i), t0), t0); out.Now == nil {
				t.Fatalf("rejection %d was folded", i)
			}
		}
	})
}

// Concurrent rejections, sweeps and a final Close lose no count.
func TestConcurrentRejectionsLoseNoCount(t *testing.T) {
	tab := fold.New(fold.Config{Window: time.Millisecond, MaxKeys: 3})
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
	)
	take := func(evs ...*wsfleetv1.ErrorEvent) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			if ev != nil {
				total += times(ev)
			}
		}
	}
	const workers, each = 4, 2000
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for {
			select {
			case <-stop:
				return
			default:
				take(tab.Sweep(time.Now())...)
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				out := tab.Add(key(fmt.Sprintf("https://o%d.example", (w+i)%5), "203.0.113.7:1"), rejection("t", time.Now()), time.Now())
				take(out.Ended, out.Now)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-swept
	take(tab.Close()...)
	if total != workers*each {
		t.Fatalf("the events stand for %d rejections; want %d", total, workers*each)
	}
}

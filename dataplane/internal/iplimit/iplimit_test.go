package iplimit

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func TestEachClientHasItsOwnBucket(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerSecond: 1, Burst: 2, MaxKeys: 10, Now: c.Now})
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for i := range 2 {
		if ok, _ := l.Allow(a); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow(a)
	if ok || wait < time.Second {
		t.Fatalf("over the burst: ok %t, wait %s; want refused with at least 1s", ok, wait)
	}
	if ok, _ := l.Allow(b); !ok {
		t.Fatal("another client was refused with the first one's bucket")
	}
	c.t = c.t.Add(time.Second)
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("no token after a second at 1/s")
	}
}

func TestIPv6ClientsAreKeyedByTheirSlash64(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerSecond: 1, Burst: 1, MaxKeys: 10, Now: c.Now})
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8::1")); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8::ffff:2")); ok {
		t.Fatal("another address of the same /64 got a bucket of its own")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:0:1::1")); !ok {
		t.Fatal("another /64 shares the bucket")
	}
	if Key(netip.MustParseAddr("::ffff:10.0.0.1")) != netip.MustParseAddr("10.0.0.1") {
		t.Error("an IPv4-mapped address is not keyed as IPv4")
	}
}

func TestTheTableStaysWithinItsBound(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerSecond: 1, Burst: 1, MaxKeys: 100, Now: c.Now})
	busy := netip.MustParseAddr("192.0.2.1")
	l.Allow(busy)
	for i := range 1000 {
		l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		if i%10 == 0 {
			// The busy client keeps asking: its empty bucket stays.
			if ok, _ := l.Allow(busy); ok {
				t.Fatalf("request %d: the busy client's bucket was evicted and refilled", i)
			}
		}
	}
	if l.Len() != 100 {
		t.Errorf("%d buckets, want the bound of 100", l.Len())
	}

}

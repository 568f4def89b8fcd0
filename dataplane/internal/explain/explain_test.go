package explain

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	alice = netip.MustParseAddr("127.0.0.1")
	bob   = netip.MustParseAddr("127.0.0.2")
)

const origin = wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED

func rec(trace string, client netip.Addr) Record {
	return Record{TraceID: trace, Client: client, Class: origin, HTTPStatus: 403}
}

func TestLookup(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: c.Now})
	s.Add(rec("a", alice))
	tests := []struct {
		name   string
		trace  string
		client netip.Addr
		ok     bool
	}{
		{"the address that made the attempt gets its record", "a", alice, true},
		{"the same address written as IPv4-mapped IPv6 gets it too", "a", netip.MustParseAddr("::ffff:127.0.0.1"), true},
		{"another address gets nothing", "a", bob, false},
		{"an unknown trace id gets nothing", "b", alice, false},
		{"an empty trace id gets nothing", "", alice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.Lookup(tt.trace, tt.client)
			if ok != tt.ok || (ok && (got.Class != origin || got.HTTPStatus != 403)) {
				t.Errorf("Lookup = %+v, %t; want ok %t", got, ok, tt.ok)
			}
		})
	}
}

func TestRecordsExpireAfterTheWindow(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := New(Config{Now: c.Now, Window: time.Minute})
	s.Add(rec("a", alice))
	c.advance(59 * time.Second)
	if _, ok := s.Lookup("a", alice); !ok {
		t.Fatal("gone before the window ended")
	}
	s.Add(rec("b", alice))
	c.advance(time.Second)
	if _, ok := s.Lookup("a", alice); ok {
		t.Fatal("answered after the window")
	}
	if _, ok := s.Lookup("b", alice); !ok {
		t.Fatal("a younger record expired with the old one")
	}
	if s.Len() != 1 {
		t.Errorf("%d records kept, want the one in its window", s.Len())
	}
}

func TestTheOldestRecordsGoFirstOverTheBounds(t *testing.T) {
	t.Run("over the count", func(t *testing.T) {
		s := New(Config{MaxRecords: 3})
		for i := range 5 {
			s.Add(rec("t"+strconv.Itoa(i), alice))
		}
		for i := range 5 {
			_, ok := s.Lookup("t"+strconv.Itoa(i), alice)
			if want := i >= 2; ok != want {
				t.Errorf("t%d kept %t, want %t", i, ok, want)
			}
		}
		if s.Len() != 3 {
			t.Errorf("%d records, want 3", s.Len())
		}
	})
	t.Run("over the bytes", func(t *testing.T) {
		long := strings.Repeat("x", 100)
		s := New(Config{MaxBytes: 3 * (recordOverhead + 101)})
		for i := range 10 {
			s.Add(rec(long+strconv.Itoa(i), alice))
		}
		if s.Len() != 3 || s.Bytes() > 3*(recordOverhead+101) {
			t.Errorf("%d records, %d bytes", s.Len(), s.Bytes())
		}
		if _, ok := s.Lookup(long+"9", alice); !ok {
			t.Error("the newest record was dropped")
		}
		if _, ok := s.Lookup(long+"6", alice); ok {
			t.Error("an old record outlived the bound")
		}
	})
	t.Run("a long steady stream stays bounded", func(t *testing.T) {
		s := New(Config{MaxRecords: 100})
		for i := range 10_000 {
			s.Add(rec(strconv.Itoa(i), alice))
		}
		if s.Len() != 100 || cap(s.queue) > 1000 {
			t.Errorf("%d records in a slice of %d", s.Len(), cap(s.queue))
		}
	})
}

func TestAReusedTraceIDAnswersItsLatestAttempt(t *testing.T) {
	s := New(Config{MaxRecords: 2})
	s.Add(rec("a", alice))
	later := rec("a", alice)
	later.Class = wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED
	s.Add(later)
	if got, _ := s.Lookup("a", alice); got.Class != later.Class {
		t.Fatalf("class %v, want the latest attempt's", got.Class)
	}
	// Dropping the older record must not drop the id.
	s.Add(rec("b", alice))
	if got, ok := s.Lookup("a", alice); !ok || got.Class != later.Class {
		t.Fatalf("Lookup after the older copy went = %v, %t", got.Class, ok)
	}
}

func TestRecordsNobodyCouldAskAboutAreNotKept(t *testing.T) {
	s := New(Config{})
	s.Add(rec("", alice))
	s.Add(rec("a", netip.Addr{}))
	if s.Len() != 0 {
		t.Errorf("%d records kept", s.Len())
	}
}

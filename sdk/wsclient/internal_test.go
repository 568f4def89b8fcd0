package wsclient

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestRetryAfterOfAReasonAndAHeader(t *testing.T) {
	c, err := New(Config{URL: "ws://127.0.0.1:1/ws"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		code   uint16
		reason string
		class  string
		want   time.Duration
	}{
		{"a rate_limited close with retry_after_s", 4429, "rate_limited; retry_after_s=3", "rate_limited", 3 * time.Second},
		{"an origin_rejected close", 4403, "origin_rejected", "origin_rejected", 0},
		{"a garbled reason keeps the code's class", 4503, "capacity; retry_after_s=x", "capacity", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := c.fromRejectClose(tt.code, tt.reason, "t")
			if !ok || f.Name != tt.class || f.RetryAfter != tt.want || f.Signal != fmt.Sprint("close ", tt.code) {
				t.Fatalf("fromRejectClose(%d, %q) = %+v, %t; want %s, retry after %s", tt.code, tt.reason, f, ok, tt.class, tt.want)
			}
		})
	}
	if _, ok := c.fromRejectClose(1001, "going away", "t"); ok {
		t.Error("1001 read as a reject close")
	}
	for _, tt := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"none", "", 0},
		{"garbage", "soon", 0},
		{"a date in the past", "Mon, 02 Jan 2006 15:04:05 GMT", 0},
	} {
		t.Run("a Retry-After header of "+tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.header); got != tt.want {
				t.Fatalf("parseRetryAfter(%q) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
	t.Run("a Retry-After date in the future", func(t *testing.T) {
		got := parseRetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
		if got < 58*time.Minute || got > time.Hour {
			t.Fatalf("got %s, want about an hour", got)
		}
	})
}

func TestTheReportQueueKeepsTheNewest(t *testing.T) {
	c, err := New(Config{URL: "ws://127.0.0.1:1/ws", MaxQueuedReports: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		c.queueLocked(report{TraceID: fmt.Sprint(i)})
	}
	if len(c.reports) != 3 || c.reports[0].TraceID != "2" || c.reports[2].TraceID != "4" {
		t.Fatalf("queue %+v, want reports 2..4", c.reports)
	}
	if c.stats.ReportsQueued != 5 || c.stats.ReportsDropped != 2 {
		t.Fatalf("stats %+v, want 5 queued, 2 dropped", c.stats)
	}
}

func TestAReportIsClippedNotRefused(t *testing.T) {
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'x'
	}
	r := reportOf(&Failure{Name: "client_unreachable", TraceID: "t", URL: "ws://h/ws?" + string(long), Detail: string(long), Time: time.Unix(0, 0)})
	if len(r.URL) > maxReportURLBytes || len(r.Detail) > maxReportDetailBytes {
		t.Fatalf("url %d bytes, detail %d bytes", len(r.URL), len(r.Detail))
	}
	if r.Time != "1970-01-01T00:00:00.000Z" {
		t.Fatalf("time %q", r.Time)
	}
}

func TestConfigIsChecked(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"no URL", Config{}},
		{"an http URL", Config{URL: "http://h/ws"}},
		{"no host", Config{URL: "ws:///ws"}},
		{"a trace id of its own", Config{URL: "ws://h/ws?trace_id=x"}},
		{"backoff bounds out of order", Config{URL: "ws://h/ws", MinBackoff: time.Second, MaxBackoff: time.Millisecond}},
		{"a negative timeout", Config{URL: "ws://h/ws", OpenTimeout: -1}},
	} {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
	c, err := New(Config{URL: "wss://h:8443/edge/ws?app=1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.httpURL("/explain").String(); got != "https://h:8443/edge/ws/explain" {
		t.Errorf("explain URL %s", got)
	}
	if got := c.attemptURL("abc"); got != "wss://h:8443/edge/ws?app=1&trace_id=abc" {
		t.Errorf("attempt URL %s", got)
	}
	if c.cfg.MinBackoff != DefaultMinBackoff || c.cfg.MaxBackoff != DefaultMaxBackoff || c.cfg.OpenTimeout != DefaultOpenTimeout {
		t.Errorf("defaults not filled: %+v", c.cfg)
	}
	_ = c.Close()
	if err := c.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

func TestAStatusNamesAClassOnlyWhenItIsTheClasssAlone(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   string
	}{
		{403, "origin_rejected"},
		{401, "unauthorized"},
		{429, "rate_limited"},
		{426, "bad_handshake"},
		{503, "client_handshake_failed"}, // capacity, breaker_open, node_draining
		{502, "client_handshake_failed"},
	} {
		t.Run(fmt.Sprint("HTTP ", tt.status), func(t *testing.T) {
			if got := errclassName(classOfStatus(tt.status)); got != tt.want {
				t.Fatalf("classOfStatus(%d) = %s, want %s", tt.status, got, tt.want)
			}
		})
	}
}

func errclassName(c wsfleetv1.ErrorClass) string { return errclass.Name(c) }

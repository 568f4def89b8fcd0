package dataplane

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/clip"
)

// metricValue reads one sample from a /metrics page: the first line of
// name whose labels contain every one of labels (`result="origin_rejected"`).
func metricValue(t testing.TB, page, name string, labels ...string) float64 {
	t.Helper()
next:
	for _, line := range strings.Split(page, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	t.Fatalf("no %s%v in /metrics", name, labels)
	return 0
}

// floodHandshake sends one upgrade request with the given header lines on
// a new connection and returns the status.
func floodHandshake(addr, trace, origin, userAgent string) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := upgradeRequest(trace, origin, func(h map[string]string) { h["User-Agent"] = userAgent })
	if _, err := conn.Write([]byte(req)); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// The anonymous flood, against the real binary: 3,000 rejected
// handshakes with 7 KiB Origin and User-Agent headers reach the control
// plane as a handful of small events that stand for exactly 3,000, the
// first of them at once with its trace id; the node's metrics count every
// rejection and its log says it in two lines.
func TestAnAnonymousFloodReachesTheControlPlaneAsAHandfulOfSmallEvents(t *testing.T) {
	f := startFakeTelemetry(t)
	p := startNodeProc(t, "--control", f.addr, "--cache-file", filepath.Join(t.TempDir(), "policy.json"),
		"--control-backoff-min", "10ms", "--control-backoff-max", "200ms",
		// Longer than the flood may take on a loaded machine: the fold of
		// the rest goes out at the SIGTERM below.
		"--fold-window", "10m")
	origin := "https://" + strings.Repeat("a", 7<<10) + ".example"
	userAgent := "Mozilla/5.0 " + strings.Repeat("b", 7<<10)

	if s, err := floodHandshake(p.addr, "flood-first", origin, userAgent); err != nil || s != http.StatusForbidden {
		t.Fatalf("first handshake: %d, %v", s, err)
	}
	eventually(t, 10*time.Second, "the first rejection at the control plane, before the window ends", func() bool {
		evs := f.received()
		return len(evs) == 1 && evs[0].GetTraceId() == "flood-first"
	})

	const rejected, workers = 3000, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w + 1; i < rejected; i += workers {
				if s, err := floodHandshake(p.addr, fmt.Sprint("flood-", i), origin, userAgent); err != nil || s != http.StatusForbidden {
					errs <- fmt.Errorf("handshake %d: %d, %v", i, s, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A rejection is recorded just after its answer is written: poll.
	var page string
	eventually(t, 10*time.Second, "every rejection counted", func() bool {
		page = httpBody(t, "http://"+p.metrics+"/metrics")
		return metricValue(t, page, "wsfleet_node_handshakes_total", `result="origin_rejected"`) == rejected
	})
	if got := metricValue(t, page, "wsfleet_node_event_fields_truncated_total", `field="origin"`); got != rejected {
		t.Fatalf("truncated{origin} = %v; want every one of the %d cut", got, rejected)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not exit after SIGTERM:\n%s", p.logText())
	}
	evs := f.received()
	total := 0
	for _, ev := range evs {
		total += max(1, int(ev.GetRepeat()))
		if size := proto.Size(ev); size > 2<<10 {
			t.Errorf("an event of %d bytes: the 7 KiB headers were not capped", size)
		}
		if !strings.HasSuffix(ev.GetOrigin(), clip.Mark) || len(ev.GetOrigin()) > DefaultMaxOriginBytes {
			t.Errorf("origin of %d bytes, marked %t", len(ev.GetOrigin()), strings.HasSuffix(ev.GetOrigin(), clip.Mark))
		}
	}
	if len(evs) > 5 || total != rejected {
		t.Fatalf("the control plane got %d events standing for %d rejections; want a handful for exactly %d", len(evs), total, rejected)
	}
	logs := p.logText()
	if n := strings.Count(logs, `"msg":"handshake rejected"`); n != 1 {
		t.Errorf("%d per-rejection log lines; want 1", n)
	}
	if !strings.Contains(logs, `"msg":"handshake rejections folded"`) || !strings.Contains(logs, fmt.Sprintf(`"repeat":%d`, rejected-1)) {
		t.Errorf("no folded log line saying %d:\n%.2000s", rejected-1, logs)
	}
	if n := len(logs); n > 64<<10 {
		t.Errorf("the node logged %d bytes for the flood", n)
	}
}

// --telemetry-buffer-bytes bounds the events held for a control plane that
// is away, in bytes, below the count bound.
func TestTheTelemetryBufferIsBoundedInBytes(t *testing.T) {
	p := startNodeProc(t, "--control", unreachableAddr(t), "--cache-file", filepath.Join(t.TempDir(), "policy.json"),
		"--control-backoff-min", "10ms", "--control-backoff-max", "50ms",
		"--telemetry-buffer-bytes", "4096")
	// Every origin its own fold key: one event each, ~1 KiB with the user
	// agent.
	for i := range 40 {
		if s, err := floodHandshake(p.addr, fmt.Sprint("buf-", i), fmt.Sprintf("https://o%d.example", i), strings.Repeat("u", 400)); err != nil || s != http.StatusForbidden {
			t.Fatalf("handshake %d: %d, %v", i, s, err)
		}
	}
	// A rejection is recorded just after its answer is written: poll.
	var bytes, buffered, dropped float64
	eventually(t, 10*time.Second, "all 40 events recorded", func() bool {
		page := httpBody(t, "http://"+p.metrics+"/metrics")
		bytes = metricValue(t, page, "wsfleet_node_telemetry_buffered_bytes")
		buffered = metricValue(t, page, "wsfleet_node_telemetry_buffered")
		dropped = metricValue(t, page, "wsfleet_node_telemetry_dropped_total")
		return metricValue(t, page, "wsfleet_node_telemetry_recorded_total") == 40
	})
	if bytes > 4096 || bytes == 0 || dropped == 0 || buffered+dropped != 40 {
		t.Fatalf("buffered %v events in %v bytes, %v dropped; want at most 4096 bytes, the rest of the 40 dropped", buffered, bytes, dropped)
	}
}

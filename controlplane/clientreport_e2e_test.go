package controlplane

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAClientReportAndTheNodesRejectionShowInOneTrace runs the binaries: a
// page's report of a failure only it saw and the node's own rejection of
// the same attempt's trace id reach the control plane through the node's
// telemetry, and `wsctl trace` shows both, the client's view first.
func TestAClientReportAndTheNodesRejectionShowInOneTrace(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev")
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "edge-9", "--cache-file", filepath.Join(t.TempDir(), "c.json"))
	waitFor(t, 5*time.Second, "registered", func() bool { return nodesList(t, cp.addr)["edge-9"].Connected })
	mustWsctl(t, cp.addr, "", "policy", "set", "origins.allow=https://app.example.com", "-m", "allow the app")
	waitFor(t, 5*time.Second, "revision 2 applied", func() bool { return nodesList(t, cp.addr)["edge-9"].AppliedRevision == 2 })

	if s := handshake(t, node.ws, "https://evil.example.com", "trace_id=cr-1"); s != http.StatusForbidden {
		t.Fatalf("status %d", s)
	}
	clientTime := time.Now().Add(-30 * time.Second).UTC().Truncate(time.Millisecond)
	body := `{"reports":[{"trace_id":"cr-1","class":"client_handshake_failed","url":"wss://edge.example.com/ws?trace_id=cr-1",` +
		`"time":"` + clientTime.Format(time.RFC3339Nano) + `","detail":"proxy answered 502"}]}`
	req, err := http.NewRequest(http.MethodPost, "http://"+node.ws+"/ws/client-report", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("User-Agent", "e2e-browser")
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("report: status %d, %v", res.StatusCode, res.Header)
	}

	var out string
	waitFor(t, 10*time.Second, "wsctl trace cr-1 shows both events", func() bool {
		r := runWsctl(t, cp.addr, "", "trace", "cr-1")
		out = r.stdout
		return r.code == 0 && strings.Contains(out, "2 events")
	})
	report := strings.Index(out, "client saw: client_handshake_failed at ")
	rejection := strings.Index(out, "origin_rejected (handshake rejected)")
	if report < 0 || rejection < 0 || report > rejection {
		t.Fatalf("want the client's report, then the node's rejection:\n%s", out)
	}
	for _, want := range []string{"url=wss://edge.example.com/ws?trace_id=cr-1", "detail=proxy answered 502", "to edge-9 (pool default)", "HTTP 403"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}

	var resp struct {
		Events []struct {
			Kind         string `json:"kind"`
			Class        string `json:"class"`
			TraceID      string `json:"trace_id"`
			NodeID       string `json:"node_id"`
			Pool         string `json:"pool"`
			Origin       string `json:"origin"`
			RemoteAddr   string `json:"remote_addr"`
			UserAgent    string `json:"user_agent"`
			ClientURL    string `json:"client_url"`
			ClientTime   string `json:"client_time"`
			ClientDetail string `json:"client_detail"`
			Time         string `json:"time"`
		} `json:"events"`
	}
	js := mustWsctl(t, cp.addr, "", "trace", "cr-1", "-o", "json")
	if err := json.Unmarshal([]byte(js), &resp); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	found := false
	for _, ev := range resp.Events {
		if ev.Kind != "EVENT_KIND_CLIENT_REPORT" {
			continue
		}
		found = true
		ct, err := time.Parse(time.RFC3339Nano, ev.ClientTime)
		if ev.Class != "client_handshake_failed" || ev.TraceID != "cr-1" || ev.NodeID != "edge-9" || ev.Pool != "default" ||
			ev.Origin != "https://app.example.com" || !strings.HasPrefix(ev.RemoteAddr, "127.0.0.1:") || ev.UserAgent != "e2e-browser" ||
			ev.ClientURL != "wss://edge.example.com/ws?trace_id=cr-1" || ev.ClientDetail != "proxy answered 502" ||
			err != nil || !ct.Equal(clientTime) || ev.Time == "" {
			t.Errorf("the report arrived as %+v", ev)
		}
	}
	if !found {
		t.Errorf("no client report in\n%s", js)
	}
	if top := mustWsctl(t, cp.addr, "", "errors", "top"); !strings.Contains(top, "client_handshake_failed") {
		t.Errorf("errors top lacks the client's class:\n%s", top)
	}
}

package dataplane

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsfleet/wsfleet/api/policy"
)

func TestPprofOnTheMetricsAddress(t *testing.T) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name  string
		pprof bool
		path  string
		code  int
		want  string
	}{
		{"with --pprof the profile index is served", true, "/debug/pprof/", http.StatusOK, "goroutine"},
		{"with --pprof a heap profile is served", true, "/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		{"with --pprof a one-second CPU profile is served", true, "/debug/pprof/profile?seconds=1", http.StatusOK, ""},
		{"without --pprof there is no profile index", false, "/debug/pprof/", http.StatusNotFound, ""},
		{"without --pprof there is no CPU profile", false, "/debug/pprof/profile?seconds=1", http.StatusNotFound, ""},
		{"metrics are served either way", false, "/metrics", http.StatusOK, "wsfleet_node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, policy.Default(), func(c *Config) { c.Pprof = tc.pprof })
			url := "http://" + n.MetricsAddr().String() + tc.path
			code, body := get(t, url)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("GET %s: %d, body %.200q; want %d with %q", tc.path, code, body, tc.code, tc.want)
			}
		})
	}
}

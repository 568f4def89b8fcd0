package controlplane

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/wsfleet/wsfleet/controlplane/console"
)

// The console is mounted on the HTTP listener and calls this control
// plane's services as the logged-in token (the console package tests the
// API in depth; console_browser_test.go drives it in Chromium).
func TestTheConsoleIsServedOnTheHTTPAddress(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Dev = false; c.TokensFile = writeTokens(t) })
	base := "http://" + srv.HTTPAddr().String()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	post := func(path, csrf, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Origin", base)
		req.Header.Set(console.CSRFHeader, csrf)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	resp, err := client.Get(base + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/ui/" || resp.Header.Get("Content-Security-Policy") != console.ContentSecurityPolicy ||
		!strings.Contains(string(page), `<script type="module" src="app.js">`) {
		t.Fatalf("GET /ui: %d at %s, CSP %q", resp.StatusCode, resp.Request.URL.Path, resp.Header.Get("Content-Security-Policy"))
	}

	code, body := post("/ui/api/login", "", `{"token":"`+viewerToken+`"}`)
	if code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	var s struct{ CSRF, Role, Name string }
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.Role != "viewer" || s.Name != "grafana" {
		t.Fatalf("login answer %s", body)
	}
	if code, body := post("/ui/api/rpc/FleetService/ErrorSeries", s.CSRF, `{}`); code != 200 || !strings.Contains(body, `"step":"60s"`) {
		t.Fatalf("a viewer's ErrorSeries: %d %s", code, body)
	}
	if code, body := post("/ui/api/rpc/PolicyService/RollbackPolicy", s.CSRF, `{"pool":"default","to_revision":1}`); code != 403 || !strings.Contains(body, "PermissionDenied") {
		t.Fatalf("a viewer's rollback: %d %s", code, body)
	}
}

//go:build browser

package controlplane

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleInBrowserRendersHostileTextAsText: strings from outside — a
// rejected handshake's Origin header, a revision message, a proposal
// message — carrying markup and script are shown by every page as text,
// and none of it runs (`make test-console`).
func TestConsoleInBrowserRendersHostileTextAsText(t *testing.T) {
	const (
		originXSS   = `https://x.example/"><img src=x onerror="window.__xss='origin'">`
		messageXSS  = `<img src=x onerror="window.__xss='message'"><script>window.__xss='script'</script>`
		proposalXSS = `"><svg onload="window.__xss='proposal'">`
	)
	dir := t.TempDir()
	httpAddr := freeAddr(t)
	cp := startControl(t, filepath.Join(dir, "cp"), "--dev", "--http-addr", httpAddr)
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "xss-node", "--cache-file", filepath.Join(dir, "node.json"))
	waitFor(t, 20*time.Second, "the node registered", func() bool { return nodesList(t, cp.addr)["xss-node"].Connected })

	mustWsctl(t, cp.addr, "", "policy", "apply", "-f", impactPolicy(t, dir, "a.yaml", 1000, "https://app.example.com"), "-m", messageXSS)
	if r := runWsctl(t, cp.addr, "", "policy", "propose", "-f", impactPolicy(t, dir, "b.yaml", 1000, "https://b.example.com"), "-m", proposalXSS); r.code != 0 {
		t.Fatalf("propose: %d %s", r.code, r.stderr)
	}
	if s := handshake(t, node.ws, originXSS, ""); s != http.StatusForbidden {
		t.Fatalf("handshake from the hostile origin: %d, want 403", s)
	}
	waitFor(t, 20*time.Second, "the rejection in the control plane's telemetry", func() bool {
		return strings.Contains(mustWsctl(t, cp.addr, "", "errors", "top", "--by", "origin"), "x.example")
	})

	base := "http://" + httpAddr + "/ui/"
	ctx := browser(t)
	login(t, ctx, base, "xss-admin-token", "admin")
	pages := []struct{ hash, what, shown string }{
		{"policy", "the revision message in the history", `document.querySelector('main')?.textContent.includes("<script>window.__xss='script'</script>")`},
		{"errors", "the hostile origin in the top origins", `(() => { document.querySelector('#error-filters button[type=submit]')?.click();
			return document.querySelector('#top-origins')?.textContent.includes('"><img src=x onerror='); })()`},
		{"proposals", "the proposal message", `document.querySelector('main')?.textContent.includes('"><svg onload=')`},
		{"fleet", "the fleet table", `document.querySelector('tr[data-node="xss-node"]') !== null`},
		{"rollout", "the rollout page", `document.querySelector('#rollout')?.textContent.length > 0`},
	}
	for _, p := range pages {
		t.Run(p.hash, func(t *testing.T) {
			step(t, ctx, "open the "+p.hash+" page", chromedp.Navigate(base+"#"+p.hash))
			waitJS(t, ctx, 20*time.Second, p.what+" shown as text", p.shown)
			// Give an injected element the time to load and fire.
			time.Sleep(500 * time.Millisecond)
			if ran := eval[string](t, ctx, `String(window.__xss ?? '')`); ran != "" {
				t.Fatalf("injected script ran (from the %s)", ran)
			}
			if n := eval[int](t, ctx, `document.querySelectorAll('main img[src="x"], main svg[onload], main script').length`); n != 0 {
				t.Fatalf("%d injected elements in the page", n)
			}
		})
	}
	screenshot(t, ctx, "hostile-text")
}

//go:build browser

package controlplane

// The web console in real headless Chromium (chromedp) against the real
// wsfleet-control and wsfleet-node binaries: `make test-console`. Chromium
// comes from $CHROMIUM (default /usr/bin/chromium); when it cannot start,
// the test fails — it never skips. Screenshots for a human to look at go to
// console/testdata/screenshots (git-ignored); the test prints their paths.

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	consoleViewerToken = "e2e-viewer-token-0123456789"
	consoleNodeToken   = "e2e-console-node-token-0123456789"
	consoleNodeID      = "console-node"
)

// browser starts headless Chromium; it fails the test when it cannot.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; no timeout on it (that would
	// bound the browser's whole life).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("Chromium (%s) cannot start: %v — install it (apt-get install -y chromium) or set CHROMIUM", exe, err)
	}
	return ctx
}

// step runs browser actions, each step bounded.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript predicate until it is truthy, at most within.
func waitJS(t *testing.T, ctx context.Context, within time.Duration, what, expr string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, within+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(sctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(within))); err != nil {
		t.Fatalf("%s: not within %s: %v", what, within, err)
	}
}

// screenshot writes the whole page to console/testdata/screenshots.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir, err := filepath.Abs(filepath.Join("console", "testdata", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func login(t *testing.T, ctx context.Context, base, token, role string) {
	t.Helper()
	step(t, ctx, "log in as "+role,
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#role")),
	)
	if got := eval[string](t, ctx, `document.querySelector('#role').textContent`); got != role {
		t.Fatalf("logged in as %q, want %q", got, role)
	}
}

// forcedApply is the page's own fetch of ApplyPolicy with the session's
// CSRF token, as a viewer could make it from the devtools console: the
// HTTP status it gets.
const forcedApply = `(async () => {
  const s = await (await fetch('api/session')).json();
  const head = await (await fetch('api/rpc/PolicyService/GetPolicy', {method: 'POST', headers: {'X-CSRF-Token': s.csrf}, body: '{"pool":"default"}'})).json();
  const p = head.revision.policy;
  p.origins.allow = ['https://forced.example'];
  const r = await fetch('api/rpc/PolicyService/ApplyPolicy', {method: 'POST', headers: {'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json'}, body: JSON.stringify({pool: 'default', policy: p})});
  return r.status;
})()`

func TestConsoleInBrowser(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	writeFile(t, tokens, "tokens:\n"+
		"  - {name: alice, role: admin, token: "+e2eAdminToken+"}\n"+
		"  - {name: vera, role: viewer, token: "+consoleViewerToken+"}\n"+
		"  - {name: console-node, role: node, token: "+consoleNodeToken+", nodes: ["+consoleNodeID+"], pools: [default]}\n")
	httpAddr := freeAddr(t)
	cp := startControl(t, filepath.Join(dir, "cp"), "--tokens-file", tokens, "--http-addr", httpAddr)
	node := startNodeProc(t, "--control", cp.addr, "--token", consoleNodeToken, "--node-id", consoleNodeID,
		"--cache-file", filepath.Join(dir, "node.json"))
	admin := []string{"--token", e2eAdminToken}
	waitFor(t, 20*time.Second, "the node on revision 1", func() bool {
		n := nodesAs(t, cp.addr, admin...)[consoleNodeID]
		return n.Connected && n.AppliedRevision == 1
	})
	base := "http://" + httpAddr + "/ui/"
	ctx := browser(t)

	t.Run("a viewer sees the fleet and can change nothing", func(t *testing.T) {
		login(t, ctx, base, consoleViewerToken, "viewer")
		waitJS(t, ctx, 20*time.Second, "the node in the fleet table",
			`document.querySelector('tr[data-node="`+consoleNodeID+`"] td.applied')?.textContent === 'default@1'`)
		step(t, ctx, "open the policy page", chromedp.Navigate(base+"#policy"), chromedp.WaitVisible(chromedp.CSS("#f-origins-allow")))
		disabled := eval[[]bool](t, ctx, `['#apply', '#dry-run'].map((s) => document.querySelector(s).disabled)
			.concat([...document.querySelectorAll('button.rollback')].map((b) => b.disabled))`)
		for i, d := range disabled {
			if !d {
				t.Fatalf("change control %d is enabled for a viewer (%v)", i, disabled)
			}
		}
		screenshot(t, ctx, "viewer-policy")
		if status := eval[int](t, ctx, forcedApply); status != http.StatusForbidden {
			t.Fatalf("a viewer's forced apply got HTTP %d, want 403", status)
		}
		if rev := getJSON(t, cp.addr, "--token", e2eAdminToken); rev.Revision != 1 {
			t.Fatalf("the viewer changed the policy: head %d", rev.Revision)
		}
		step(t, ctx, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	})

	t.Run("an admin sees a field error inline, then applies, and the node moves to it", func(t *testing.T) {
		login(t, ctx, base, e2eAdminToken, "admin")
		step(t, ctx, "open the policy page", chromedp.Navigate(base+"#policy"), chromedp.WaitVisible(chromedp.CSS("#f-origins-allow")))
		waitJS(t, ctx, 10*time.Second, "the form loaded with the head", `document.querySelector('#expected').value === '1'`)
		step(t, ctx, "apply an invalid allowlist",
			chromedp.SetValue(chromedp.CSS("#f-origins-allow"), "https://app.example.com\nnot an origin"),
			chromedp.Click(chromedp.CSS("#apply")),
		)
		waitJS(t, ctx, 10*time.Second, "the violation next to the allowlist",
			`document.querySelector('[data-row="origins.allow"] .field-error')?.textContent.startsWith('origins.allow[1]')`)
		if invalid := eval[bool](t, ctx, `document.querySelector('#f-origins-allow').classList.contains('invalid')`); !invalid {
			t.Fatal("the allowlist is not marked invalid")
		}
		screenshot(t, ctx, "admin-field-error")

		step(t, ctx, "apply a valid allowlist",
			chromedp.SetValue(chromedp.CSS("#f-origins-allow"), "https://app.example.com"),
			chromedp.SetValue(chromedp.CSS("#message"), "console e2e"),
			chromedp.Click(chromedp.CSS("#apply")),
		)
		waitJS(t, ctx, 10*time.Second, "the apply confirmed", `document.querySelector('#applied')?.textContent === 'Applied revision 2.'`)
		if errs := eval[int](t, ctx, `document.querySelectorAll('.field-error').length`); errs != 0 {
			t.Fatalf("%d field errors left after a valid apply", errs)
		}
		screenshot(t, ctx, "admin-applied")
		rev := getJSON(t, cp.addr, "--token", e2eAdminToken)
		if rev.Revision != 2 || rev.Author != "alice" {
			t.Fatalf("head %d by %q, want 2 by alice", rev.Revision, rev.Author)
		}

		step(t, ctx, "preview a change", chromedp.SetValue(chromedp.CSS("#f-origins-allow"), "https://app.example.com\nhttps://new.example.com"), chromedp.Click(chromedp.CSS("#dry-run")))
		waitJS(t, ctx, 10*time.Second, "the preview's change and impact",
			`document.querySelector('#preview-changes')?.textContent.includes('new.example.com') && document.querySelector('#impact') !== null`)
		if rev := getJSON(t, cp.addr, "--token", e2eAdminToken); rev.Revision != 2 {
			t.Fatalf("a dry run made revision %d", rev.Revision)
		}
		step(t, ctx, "compare revisions 1 and 2", chromedp.SetValue(chromedp.CSS("#diff-from"), "1"), chromedp.SetValue(chromedp.CSS("#diff-to"), "2"),
			chromedp.Click(chromedp.CSS("#diff-btn")))
		waitJS(t, ctx, 10*time.Second, "the side-by-side diff marks the allowlist",
			`[...document.querySelectorAll('#diff .diff div.changed')].some((d) => d.textContent.startsWith('origins.allow: https://app.example.com'))`)
		screenshot(t, ctx, "admin-preview-and-diff")

		step(t, ctx, "open the fleet page", chromedp.Navigate(base+"#fleet"))
		waitJS(t, ctx, 20*time.Second, "the node on the new head in the fleet table",
			`(() => { const r = document.querySelector('tr[data-node="`+consoleNodeID+`"]');
			  return r && r.querySelector('td.applied').textContent === 'default@2' && r.querySelector('td.head').textContent === '2'
			    && r.textContent.includes('on head'); })()`)
		screenshot(t, ctx, "fleet")
	})

	t.Run("the errors chart shows a rejection made during the test", func(t *testing.T) {
		if s := handshake(t, node.ws, "https://not-allowed.example", ""); s != http.StatusForbidden {
			t.Fatalf("handshake from a disallowed origin: %d, want 403", s)
		}
		waitFor(t, 20*time.Second, "the rejection in the control plane's telemetry", func() bool {
			return strings.Contains(mustWsctl(t, cp.addr, "", "--token", e2eAdminToken, "errors", "top", "--by", "origin"), "not-allowed.example")
		})
		step(t, ctx, "open the errors page", chromedp.Navigate(base+"#errors"))
		// The page refreshes itself every 15 s; the filter button now.
		waitJS(t, ctx, 20*time.Second, "origin_rejected in the chart's data and legend",
			`(() => { document.querySelector('#error-filters button[type=submit]').click();
			  const c = document.querySelector('#chart');
			  return c.dataset.classes?.split(',').includes('origin_rejected')
			    && [...c.querySelectorAll('.u-legend .u-label')].some((l) => l.textContent === 'origin_rejected')
			    && document.querySelector('#top-origins').textContent.includes('https://not-allowed.example'); })()`)
		screenshot(t, ctx, "errors")

		step(t, ctx, "start the live tail", chromedp.Click(chromedp.CSS("#tail-toggle")))
		waitJS(t, ctx, 10*time.Second, "the tail open", `document.querySelector('#tail-status').textContent === 'live'`)
		if s := handshake(t, node.ws, "https://tailed.example", "trace_id=console-trace-1"); s != http.StatusForbidden {
			t.Fatalf("handshake from a disallowed origin: %d, want 403", s)
		}
		waitJS(t, ctx, 20*time.Second, "the rejection in the live tail",
			`document.querySelector('#tail').textContent.includes('trace=console-trace-1')`)
		step(t, ctx, "look the trace up", chromedp.SetValue(chromedp.CSS("#trace-id"), "console-trace-1"), chromedp.Click(chromedp.CSS("#trace-btn")))
		waitJS(t, ctx, 10*time.Second, "the trace's event",
			`document.querySelector('#trace-result').textContent.includes('https://tailed.example')`)
		screenshot(t, ctx, "errors-tail-and-trace")
		step(t, ctx, "stop the live tail", chromedp.Click(chromedp.CSS("#tail-toggle")))
	})

	t.Run("rollouts and proposals show what the control plane offers", func(t *testing.T) {
		for _, page := range []string{"rollout", "proposals"} {
			step(t, ctx, "open the "+page+" page", chromedp.Navigate(base+"#"+page))
			waitJS(t, ctx, 10*time.Second, "the "+page+" page filled", `document.querySelector('#`+page+`')?.textContent.length > 0`)
			text := eval[string](t, ctx, `document.querySelector('#`+page+`').textContent`)
			if strings.Contains(text, "Internal") {
				t.Fatalf("%s page: %s", page, text)
			}
			t.Logf("%s page: %.200s", page, text)
			screenshot(t, ctx, page)
		}
	})
}

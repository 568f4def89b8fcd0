//go:build browser

package controlplane

// The web console in real headless Chromium (chromedp) against the real
// wsfleet-control and wsfleet-node binaries: `make test-console`. Chromium
// comes from $CHROMIUM (default /usr/bin/chromium); when it cannot start,
// the test fails — it never skips. Screenshots for a human to look at go to
// console/testdata/screenshots (git-ignored); the test prints their paths.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	consoleViewerToken = "e2e-viewer-token-0123456789"
	consoleNodeToken   = "e2e-console-node-token-0123456789"
	consoleNodeID      = "console-node"
	// A second admin (bob) approves alice's proposals; a second node in
	// zone b is the rest of a canary on zone=a (console-node).
	consoleBobToken   = "e2e-console-bob-token-0123456789"
	consoleNodeBToken = "e2e-console-node-b-token-0123456789"
	consoleNodeBID    = "console-node-b"
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
		// What the page showed, for the reader of the failure.
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		text, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.querySelector('main')?.innerText.slice(0, 3000) ?? ''`))
		t.Fatalf("%s: not within %s: %v\npage:\n%s", what, within, err, text)
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
		"  - {name: bob, role: admin, token: "+consoleBobToken+"}\n"+
		"  - {name: console-node, role: node, token: "+consoleNodeToken+", nodes: ["+consoleNodeID+"], pools: [default]}\n"+
		"  - {name: console-node-b, role: node, token: "+consoleNodeBToken+", nodes: ["+consoleNodeBID+"], pools: [default]}\n")
	httpAddr := freeAddr(t)
	// The control plane looks at baking canaries once an hour here: its
	// own decision would race the abort the console makes.
	cp := startControl(t, filepath.Join(dir, "cp"), "--tokens-file", tokens, "--http-addr", httpAddr, "--rollout-interval", "1h")
	// Traffic samples every 300ms and rejections folded for 500ms, so
	// that the dry run and the rollout see the test's handshakes within
	// seconds.
	nodeFlags := func(id, token, zone string) []string {
		return []string{"--control", cp.addr, "--token", token, "--node-id", id, "--label", "zone=" + zone,
			"--cache-file", filepath.Join(dir, id+".json"), "--traffic-interval", "300ms", "--fold-window", "500ms"}
	}
	node := startNodeProc(t, nodeFlags(consoleNodeID, consoleNodeToken, "a")...)
	nodeB := startNodeProc(t, nodeFlags(consoleNodeBID, consoleNodeBToken, "b")...)
	admin := []string{"--token", e2eAdminToken}
	onRevision := func(rev int64, ids ...string) func() bool {
		return func() bool {
			list := nodesAs(t, cp.addr, admin...)
			for _, id := range ids {
				if n := list[id]; !n.Connected || n.AppliedRevision != rev {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 20*time.Second, "both nodes on revision 1", onRevision(1, consoleNodeID, consoleNodeBID))
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

	// From here the console drives what issue 12 added, against the real
	// implementations: the dry run's impact, a canary rollout aborted in
	// the console, and a proposal approved by a second admin.
	logout := func(t *testing.T) {
		t.Helper()
		step(t, ctx, "log out", chromedp.Navigate(base+"#fleet"), chromedp.WaitVisible(chromedp.CSS("#logout")),
			chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	}
	// openPolicy opens the policy page with the form loaded from head.
	openPolicy := func(t *testing.T, head int64) {
		t.Helper()
		step(t, ctx, "open the policy page", chromedp.Navigate(base+"#policy"), chromedp.WaitVisible(chromedp.CSS("#f-origins-allow")))
		waitJS(t, ctx, 10*time.Second, "the form loaded with the head", fmt.Sprintf(`document.querySelector('#expected').value === '%d'`, head))
	}
	const app = "https://app.example.com"

	t.Run("a dry run shows the accepted handshakes an allowlist would newly reject, with their exact count", func(t *testing.T) {
		const accepted, held = 4, 2
		for range accepted - held {
			if s := handshake(t, node.ws, app, ""); s != http.StatusSwitchingProtocols {
				t.Fatalf("handshake from %s: %d, want 101", app, s)
			}
		}
		for range held {
			openConn(t, node.ws, app) // held open: the node's connection peak is at least `held`
		}
		openPolicy(t, 2)
		step(t, ctx, "drop the origin from the allowlist", chromedp.SetValue(chromedp.CSS("#f-origins-allow"), "https://other.example.com"))
		// Preview again, at most once a second, until the node's traffic
		// sample has reached the control plane.
		const row = `document.querySelector('#impact tr[data-effect="rejected"][data-origin="` + app + `"] td.count')`
		waitJS(t, ctx, 20*time.Second, "the origin newly rejected in the preview",
			`(() => { const c = `+row+`;
			  if (c && Number(c.textContent) >= `+strconv.Itoa(accepted)+`) return true;
			  if (!window.lastPreview || Date.now() - window.lastPreview > 1000) { window.lastPreview = Date.now(); document.querySelector('#dry-run').click(); }
			  return false; })()`)
		if got := eval[string](t, ctx, row+`.textContent`); got != strconv.Itoa(accepted) {
			t.Fatalf("the preview says %s handshakes from %s would be newly rejected, want exactly %d", got, app, accepted)
		}
		if eval[bool](t, ctx, `document.querySelector('#impact .no-traffic') !== null`) {
			t.Fatal("the preview warns that no traffic was seen while it shows the traffic's impact")
		}
		screenshot(t, ctx, "impact-preview")

		step(t, ctx, "preview a connection cap under the recent peak",
			chromedp.SetValue(chromedp.CSS("#f-limits-max_connections"), "1"), chromedp.Click(chromedp.CSS("#dry-run")))
		waitJS(t, ctx, 10*time.Second, "the exceeded limit first, said above the tables",
			`(() => { const first = document.querySelector('#impact tr[data-limit]');
			  return first?.dataset.limit === 'limits.max_connections' && first.classList.contains('error')
			    && first.textContent.includes('100000 → 1') && first.textContent.includes('on `+consoleNodeID+`')
			    && document.querySelector('#impact .limits-exceeded')?.textContent.startsWith('1 limit(s) below a recent peak'); })()`)
		screenshot(t, ctx, "impact-limit-exceeded")
		if rev := getJSON(t, cp.addr, admin...); rev.Revision != 2 {
			t.Fatalf("a dry run made revision %d", rev.Revision)
		}
	})

	t.Run("a canary on zone=a bakes live, an admin aborts it in the console, and the canary node returns to the base", func(t *testing.T) {
		const canaryOrigin = "https://canary.example.com"
		openPolicy(t, 2)
		step(t, ctx, "apply a canary on zone=a",
			chromedp.SetValue(chromedp.CSS("#f-origins-allow"), app+"\n"+canaryOrigin),
			chromedp.SetValue(chromedp.CSS("#canary"), "zone=a"),
			chromedp.SetValue(chromedp.CSS("#bake"), "10m"),
			chromedp.SetValue(chromedp.CSS("#canary-min-samples"), "2"),
			chromedp.SetValue(chromedp.CSS("#canary-max-ratio"), "1.5"),
			chromedp.SetValue(chromedp.CSS("#message"), "canary from the console"),
			chromedp.Click(chromedp.CSS("#apply")))
		waitJS(t, ctx, 10*time.Second, "the canary applied",
			`document.querySelector('#applied')?.textContent.startsWith('Applied canary revision 3 to nodes matching zone=a; the rest keep revision 2.')`)
		waitFor(t, 20*time.Second, "the zone=a node on the canary revision 3", onRevision(3, consoleNodeID))
		if n := nodesAs(t, cp.addr, admin...)[consoleNodeBID]; n.AppliedRevision != 2 {
			t.Fatalf("the zone=b node runs revision %d during the bake, want the base 2", n.AppliedRevision)
		}
		if s := handshake(t, node.ws, canaryOrigin, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the canary node refuses the canary's origin: %d", s)
		}
		if s := handshake(t, nodeB.ws, canaryOrigin, ""); s != http.StatusForbidden {
			t.Fatalf("the zone=b node admits the canary's origin: %d", s)
		}
		// origin_rejected: once on the rest, five times on the canary —
		// worse there, past its two samples and 1.5 times the rest's rate.
		for range 5 {
			if s := handshake(t, node.ws, "https://not-allowed.example", ""); s != http.StatusForbidden {
				t.Fatalf("the canary node admits a disallowed origin: %d", s)
			}
		}

		step(t, ctx, "open the rollout page", chromedp.Navigate(base+"#rollout"))
		waitJS(t, ctx, 20*time.Second, "the rollout baking with both nodes and the comparison",
			`(() => { const q = (s) => document.querySelector(s);
			  const a = q('tr[data-rollout-node="`+consoleNodeID+`"]'), b = q('tr[data-rollout-node="`+consoleNodeBID+`"]');
			  return q('#rollout-state')?.dataset.state === 'BAKING' && q('#rollout-selector').textContent === 'zone=a'
			    && /^(9|10)m/.test(q('#rollout-left').textContent) && !q('#abort').disabled
			    && a && a.querySelector('td.canary').textContent === 'canary' && a.querySelector('td.applied').textContent === '3'
			    && b && b.querySelector('td.canary').textContent === 'rest' && b.querySelector('td.applied').textContent === '2'
			    && q('tr.worse[data-class="origin_rejected"]') !== null
			    && q('#rollout p.muted').textContent.includes('saw 2 events of it') && q('#rollout p.muted').textContent.includes('1.5×'); })()`)
		screenshot(t, ctx, "rollout-baking")

		// A viewer watches the same rollout and can decide nothing.
		logout(t)
		login(t, ctx, base, consoleViewerToken, "viewer")
		step(t, ctx, "open the rollout page as a viewer", chromedp.Navigate(base+"#rollout"))
		waitJS(t, ctx, 10*time.Second, "the rollout shown to the viewer", `document.querySelector('#rollout-state')?.dataset.state === 'BAKING'`)
		if d := eval[[]bool](t, ctx, `['#promote', '#abort', '#rollout-message'].map((s) => document.querySelector(s).disabled)`); !d[0] || !d[1] || !d[2] {
			t.Fatalf("decision controls enabled for a viewer: %v", d)
		}
		forced := `(async () => {
		  const s = await (await fetch('api/session')).json();
		  const r = await fetch('api/rpc/PolicyService/AbortRollout', {method: 'POST', headers: {'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json'}, body: '{"pool":"default","canary_revision":3}'});
		  return r.status; })()`
		if status := eval[int](t, ctx, forced); status != http.StatusForbidden {
			t.Fatalf("a viewer's forced abort got HTTP %d, want 403", status)
		}
		logout(t)

		login(t, ctx, base, e2eAdminToken, "admin")
		step(t, ctx, "abort the canary with a message",
			chromedp.Navigate(base+"#rollout"), chromedp.WaitVisible(chromedp.CSS("#abort")),
			chromedp.SetValue(chromedp.CSS("#rollout-message"), "console e2e: abort the canary"),
			chromedp.Click(chromedp.CSS("#abort")))
		waitJS(t, ctx, 15*time.Second, "the rollout rolled back with the reason",
			`document.querySelector('#rollout-state')?.dataset.state === 'ROLLED_BACK'
			  && document.querySelector('#rollout-reason')?.textContent === 'console e2e: abort the canary'
			  && document.querySelector('#rollout-outcome').textContent.includes('by an admin')
			  && document.querySelector('#rollout-msg').textContent === 'Aborted: revision 4 ends canary 3.'
			  && document.querySelector('#rollout-actions').hidden`)
		screenshot(t, ctx, "rollout-rolled-back")
		waitFor(t, 20*time.Second, "both nodes on the rollback revision 4", onRevision(4, consoleNodeID, consoleNodeBID))
		if s := handshake(t, node.ws, canaryOrigin, ""); s != http.StatusForbidden {
			t.Fatalf("the zone=a node still admits the canary's origin after the abort: %d (not back on the base content)", s)
		}
		if s := handshake(t, node.ws, app, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the zone=a node refuses the base's origin after the abort: %d", s)
		}
	})

	t.Run("with approval on, alice proposes, cannot approve her own, and bob approves in the console", func(t *testing.T) {
		const proposed = "https://proposed.example.com"
		openPolicy(t, 4)
		waitJS(t, ctx, 10*time.Second, "the history marks the canary and its end",
			`document.querySelector('tr[data-revision="3"] td.message')?.textContent.endsWith('[canary zone=a, bake 10m0s, base 2]')
			  && document.querySelector('tr[data-revision="4"] td.message')?.textContent.endsWith('console e2e: abort the canary [rollback to 2] [canary 3 rolled back]')`)
		step(t, ctx, "turn approval on", chromedp.Click(chromedp.CSS("#f-approval-required")),
			chromedp.SetValue(chromedp.CSS("#message"), "changes need a second admin"), chromedp.Click(chromedp.CSS("#apply")))
		waitJS(t, ctx, 10*time.Second, "approval on, and the button proposes",
			`document.querySelector('#applied')?.textContent === 'Applied revision 5.' && document.querySelector('#apply').textContent === 'Propose'
			  && document.querySelector('#approval-note').textContent.includes('requires approval')`)
		step(t, ctx, "propose a change",
			chromedp.SetValue(chromedp.CSS("#f-origins-allow"), app+"\n"+proposed),
			chromedp.SetValue(chromedp.CSS("#message"), "allow the proposed site"),
			chromedp.Click(chromedp.CSS("#apply")))
		waitJS(t, ctx, 10*time.Second, "the proposal stored",
			`document.querySelector('#applied')?.textContent.startsWith('Proposed as proposal 1:')`)
		screenshot(t, ctx, "policy-proposed")
		if rev := getJSON(t, cp.addr, admin...); rev.Revision != 5 {
			t.Fatalf("a proposal made revision %d", rev.Revision)
		}

		step(t, ctx, "open the proposals page as the proposer", chromedp.Navigate(base+"#proposals"))
		waitJS(t, ctx, 10*time.Second, "alice's approve disabled with the reason, the diff and the impact shown",
			`(() => { const p = document.querySelector('[data-proposal="1"]');
			  return p && p.querySelector('button.approve').disabled && !p.querySelector('button.reject').disabled
			    && p.querySelector('.approve-reason').textContent === 'you proposed it: another admin approves'
			    && p.querySelector('tr[data-field="origins.allow"]')?.textContent.includes('`+proposed+`')
			    && p.querySelector('#impact-1') !== null; })()`)
		screenshot(t, ctx, "proposals-own")
		selfApprove := `(async () => {
		  const s = await (await fetch('api/session')).json();
		  const r = await fetch('api/rpc/PolicyService/ApproveProposal', {method: 'POST', headers: {'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json'}, body: '{"id":1}'});
		  return r.status; })()`
		if status := eval[int](t, ctx, selfApprove); status == http.StatusOK {
			t.Fatal("alice approved her own proposal")
		}
		// A second proposal on the same head, with wsctl: once the first
		// is approved, it is stale.
		out := mustWsctl(t, cp.addr, "", "--token", e2eAdminToken, "policy", "propose",
			"-f", policyFile(t, dir, "second.yaml", 65536, app), "-m", "a second proposal on revision 5")
		if !strings.Contains(out, "proposal 2 stored") {
			t.Fatalf("wsctl policy propose: %s", out)
		}
		logout(t)

		login(t, ctx, base, consoleViewerToken, "viewer")
		step(t, ctx, "open the proposals page as a viewer", chromedp.Navigate(base+"#proposals"))
		waitJS(t, ctx, 10*time.Second, "the viewer's decision controls disabled",
			`(() => { const p = document.querySelector('[data-proposal="1"]');
			  return p && p.querySelector('button.approve').disabled && p.querySelector('button.reject').disabled
			    && p.querySelector('.approve-reason').textContent === 'admins only' && document.querySelector('#decision-message').disabled; })()`)
		if status := eval[int](t, ctx, selfApprove); status != http.StatusForbidden {
			t.Fatalf("a viewer's forced approve got HTTP %d, want 403", status)
		}
		logout(t)

		login(t, ctx, base, consoleBobToken, "admin")
		step(t, ctx, "open the proposals page as bob", chromedp.Navigate(base+"#proposals"))
		waitJS(t, ctx, 10*time.Second, "bob may approve", `document.querySelector('[data-proposal="1"] button.approve')?.disabled === false`)
		step(t, ctx, "approve", chromedp.SetValue(chromedp.CSS("#decision-message"), "looks right"),
			chromedp.Click(chromedp.CSS(`[data-proposal="1"] button.approve`)))
		waitJS(t, ctx, 10*time.Second, "approved as revision 6, listed as decided by bob",
			`document.querySelector('#proposal-msg').textContent === 'Approved proposal 1: revision 6 of pool default.'
			  && (() => { const r = document.querySelector('#proposals-decided tr[data-proposal="1"]');
			    return r && r.querySelector('td.state').textContent === 'approved' && r.querySelector('td.decided-by').textContent === 'bob'; })()
			  && (() => { const p = document.querySelector('.proposal.stale[data-proposal="2"]');
			    return p && p.querySelector('.stale-mark') && p.querySelector('button.approve').disabled
			      && p.querySelector('.approve-reason').textContent === 'stale: the head moved past revision 5; re-propose'; })()`)
		screenshot(t, ctx, "proposals-approved")
		if rev := getJSON(t, cp.addr, admin...); rev.Revision != 6 || rev.Author != "alice" {
			t.Fatalf("head %d by %q, want 6 by alice (the proposer)", rev.Revision, rev.Author)
		}

		step(t, ctx, "open the fleet page", chromedp.Navigate(base+"#fleet"))
		waitJS(t, ctx, 20*time.Second, "the node on the approved revision in the fleet table",
			`(() => { const r = document.querySelector('tr[data-node="`+consoleNodeID+`"]');
			  return r && r.querySelector('td.applied').textContent === 'default@6' && r.querySelector('td.head').textContent === '6'
			    && r.textContent.includes('on head'); })()`)
		screenshot(t, ctx, "fleet-approved")
		if s := handshake(t, node.ws, proposed, ""); s != http.StatusSwitchingProtocols {
			t.Fatalf("the node refuses the approved origin: %d", s)
		}
	})
}

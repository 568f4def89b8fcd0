package wsctl

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness runs wsctl in-process against a fake control plane on loopback.
type harness struct {
	t     *testing.T
	fake  *fakePolicy
	fleet *fakeFleet
	addr  string
	env   map[string]string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	f := newFakePolicy()
	f.seed("default", "system", "initial policy", policy.Default(), 0)
	fl := newFakeFleet()
	addr := serveFake(t, f, fl)
	return &harness{t: t, fake: f, fleet: fl, addr: addr, env: map[string]string{envAddr: addr, envUser: "tester"}}
}

type result struct {
	stdout, stderr string
	code           int
}

func (h *harness) run(args ...string) result { return h.runStdin("", args...) }

func (h *harness) runStdin(stdin string, args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return h.env[k] })
	return result{stdout.String(), stderr.String(), code}
}

func (r result) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertEqual(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s", what, got, want)
	}
}

func assertContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

// staging is the default policy with one more origin and a longer ping.
func staging() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = []string{"https://staging.example.com"}
	p.Heartbeat.Interval = durationpb.New(30 * time.Second)
	return p
}

const stagingYAML = `origins:
  allow: ["https://staging.example.com"]
  allow_missing: true
heartbeat:
  interval: 30s
  timeout: 1m
limits:
  max_connections: 100000
  max_connections_per_ip: 1000
  handshakes_per_second: 1000
  handshake_burst: 2000
  messages_per_second: 100
  message_burst: 200
  max_message_bytes: 65536
breaker:
  failure_ratio: 0.5
  min_samples: 20
  window: 10s
  open_duration: 5s
  half_open_probes: 3
`

const stagingChanges = `  + origins.allow: "https://staging.example.com"
  ~ heartbeat.interval: "25s" -> "30s"
`

// invalid breaks four rules at once.
func invalid() *wsfleetv1.Policy {
	p := policy.Default()
	p.Origins.Allow = []string{"https://ok.example.com", "https://*.*.example.com"}
	p.Heartbeat.Timeout = durationpb.New(10 * time.Second)
	p.Limits.MaxConnections = -1
	p.Breaker.FailureRatio = 2
	return p
}

func encodeYAML(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := policyfile.EncodeYAML(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPolicyGet(t *testing.T) {
	h := newHarness(t)
	stored := h.fake.head("default")

	t.Run("table shows the revision header and the policy as a file", func(t *testing.T) {
		r := h.run("policy", "get")
		r.want(t, 0)
		want := `pool:      default
revision:  1
author:    system
time:      2026-01-02T03:05:00Z
message:   initial policy

` + encodeYAML(t, stored.GetPolicy())
		assertEqual(t, "stdout", r.stdout, want)
		assertContains(t, "stdout", r.stdout, "allow: []", "interval: 25s", "allow_missing: true")
	})
	t.Run("yaml is the revision document", func(t *testing.T) {
		r := h.run("policy", "get", "-o", "yaml")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, encodeYAML(t, stored))
		if !strings.HasPrefix(r.stdout, "pool: default\nrevision: 1\nauthor: system\n") {
			t.Errorf("fields out of proto order:\n%s", r.stdout)
		}
	})
	t.Run("json is the revision document", func(t *testing.T) {
		r := h.run("policy", "get", "--output", "json")
		r.want(t, 0)
		want, err := policyfile.EncodeJSON(stored)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "stdout", r.stdout, string(want))
	})
	t.Run("an older revision is shown with its rollback origin", func(t *testing.T) {
		h.fake.seed("default", "alice", "widen origins", staging(), 0)
		h.fake.seed("default", "bob", "undo\nfor now", policy.Default(), 1)
		r := h.run("policy", "get", "--revision", "3")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "revision:     3\n", "author:       bob\n", "message:      undo for now\n", "rollback of:  1\n")
	})
	t.Run("an unknown revision is not found", func(t *testing.T) {
		r := h.run("policy", "get", "--revision", "9")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"default\" has no revision 9\n")
	})
}

func TestGetOutputAppliesBackUnchanged(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run("policy get -o "+format+" piped into apply -f - stores nothing new", func(t *testing.T) {
			h := newHarness(t)
			stored := h.fake.seed("staging", "alice", "staging", staging(), 0)
			got := h.run("policy", "get", "--pool", "staging", "-o", format)
			got.want(t, 0)

			r := h.runStdin(got.stdout, "policy", "apply", "-f", "-")
			r.want(t, 0)
			assertEqual(t, "stdout", r.stdout, "pool staging: unchanged at revision 1\n")
			_, applies := h.fake.recorded()
			if len(applies) != 1 {
				t.Fatalf("%d ApplyPolicy calls, want 1", len(applies))
			}
			req := applies[0]
			if !proto.Equal(req.GetPolicy(), stored.GetPolicy()) {
				t.Errorf("sent %v, stored %v", req.GetPolicy(), stored.GetPolicy())
			}
			if req.GetPool() != "staging" {
				t.Errorf("sent pool %q, want the document's pool staging", req.GetPool())
			}
			if req.ExpectedRevision != nil {
				t.Errorf("sent expected revision %d; the document's revision must not be used", req.GetExpectedRevision())
			}
		})
	}
}

func TestPolicyApply(t *testing.T) {
	t.Run("a changed policy makes a new revision and lists the changes", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", writeFile(t, stagingYAML), "-m", "open staging")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "pool default: revision 1 -> 2\n"+stagingChanges)
		head := h.fake.head("default")
		if head.GetRevision() != 2 || head.GetAuthor() != "tester" || head.GetMessage() != "open staging" || !proto.Equal(head.GetPolicy(), staging()) {
			t.Errorf("stored %v", head)
		}
		_, applies := h.fake.recorded()
		if applies[0].ExpectedRevision != nil || applies[0].GetDryRun() {
			t.Errorf("sent %v, want no expected revision and no dry run", applies[0])
		}
	})
	t.Run("a dry run shows the change and stores nothing", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", writeFile(t, stagingYAML), "--dry-run")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "dry run: pool default would go from revision 1 to 2\n"+stagingChanges)
		if got := h.fake.head("default").GetRevision(); got != 1 {
			t.Errorf("head is revision %d after a dry run", got)
		}
	})
	t.Run("a matching expected revision is sent and succeeds", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", writeFile(t, stagingYAML), "--expect-revision", "1")
		r.want(t, 0)
		_, applies := h.fake.recorded()
		if applies[0].ExpectedRevision == nil || applies[0].GetExpectedRevision() != 1 {
			t.Errorf("sent expected revision %v, want 1", applies[0].ExpectedRevision)
		}
	})
	t.Run("expected revision 0 is sent, not dropped, and conflicts with an existing pool", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", writeFile(t, stagingYAML), "--expect-revision", "0")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"default\" is at revision 1, not 0 (re-read with 'wsctl policy get' and retry)\n")
		_, applies := h.fake.recorded()
		if applies[0].ExpectedRevision == nil || applies[0].GetExpectedRevision() != 0 {
			t.Errorf("sent expected revision %v, want 0", applies[0].ExpectedRevision)
		}
	})
	t.Run("a new pool is created", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", writeFile(t, stagingYAML), "--pool", "canary", "--expect-revision", "0")
		r.want(t, 0)
		if !strings.HasPrefix(r.stdout, "pool canary: created at revision 1\n") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})
	t.Run("the pool flag wins over the document's pool", func(t *testing.T) {
		h := newHarness(t)
		doc := encodeYAML(t, &wsfleetv1.PolicyRevision{Pool: "staging", Revision: 7, Policy: staging()})
		r := h.runStdin(doc, "policy", "apply", "-f", "-", "--pool", "edge")
		r.want(t, 0)
		_, applies := h.fake.recorded()
		if applies[0].GetPool() != "edge" {
			t.Errorf("sent pool %q, want edge", applies[0].GetPool())
		}
	})
	t.Run("yaml output is the apply response", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", writeFile(t, stagingYAML), "-o", "yaml")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "revision:\n  pool: default\n  revision: 2\n", "previous_revision: 1\n", "kind: KIND_ADDED\n")
	})
	t.Run("every violation of an invalid policy is printed", func(t *testing.T) {
		h := newHarness(t)
		p := invalid()
		r := h.run("policy", "apply", "-f", writeFile(t, encodeYAML(t, p)))
		r.want(t, 1)
		vs := policy.Validate(p)
		if len(vs) != 4 {
			t.Fatalf("the test policy has %d violations, want 4: %v", len(vs), vs)
		}
		want := "error: policy has 4 invalid fields\n"
		for _, v := range vs {
			want += "  " + v.GetField() + ": " + v.GetDescription() + "\n"
		}
		assertEqual(t, "stderr", r.stderr, want)
		assertContains(t, "stderr", r.stderr, "  origins.allow[1]: \"https://*.*.example.com\": ")
		if got := h.fake.head("default").GetRevision(); got != 1 {
			t.Errorf("an invalid policy was stored as revision %d", got)
		}
	})
	t.Run("a file that does not decode names the field and sends nothing", func(t *testing.T) {
		h := newHarness(t)
		path := writeFile(t, "heartbeat:\n  interval: 10 seconds\n  timeout: 1m\nlimits:\n  max_conns: 5\n")
		r := h.run("policy", "apply", "-f", path)
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr,
			"error: "+path+`: heartbeat.interval: invalid duration "10 seconds"`,
			"error: "+path+": limits.max_conns: unknown field")
		if strings.Count(r.stderr, "\n") != 2 {
			t.Errorf("want one line per problem:\n%s", r.stderr)
		}
		if _, applies := h.fake.recorded(); len(applies) != 0 {
			t.Errorf("sent %d ApplyPolicy calls for a bad file", len(applies))
		}
	})
	t.Run("empty stdin is an error", func(t *testing.T) {
		h := newHarness(t)
		r := h.runStdin("", "policy", "apply", "-f", "-")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: <stdin>: empty document\n")
	})
	t.Run("a missing file is an error", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "apply", "-f", filepath.Join(t.TempDir(), "nope.yaml"))
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "nope.yaml", "no such file")
	})
}

func TestPolicyValidate(t *testing.T) {
	h := newHarness(t)
	good := writeFile(t, stagingYAML)
	bad := writeFile(t, encodeYAML(t, invalid()))
	var wantLines string
	for _, v := range policy.Validate(invalid()) {
		wantLines += v.GetField() + ": " + v.GetDescription() + "\n"
	}

	t.Run("a valid file prints valid", func(t *testing.T) {
		r := h.run("policy", "validate", "-f", good)
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "valid\n")
		h.fake.mu.Lock()
		n := h.fake.validates
		h.fake.mu.Unlock()
		if n != 1 {
			t.Errorf("control plane asked %d times, want 1", n)
		}
	})
	t.Run("an invalid file prints one line per violation and exits 1", func(t *testing.T) {
		r := h.run("policy", "validate", "-f", bad)
		r.want(t, 1)
		assertEqual(t, "stdout", r.stdout, wantLines)
		assertEqual(t, "stderr", r.stderr, "error: "+bad+": policy has 4 invalid fields\n")
	})
	t.Run("json output lists the violations", func(t *testing.T) {
		r := h.run("policy", "validate", "-f", bad, "-o", "json")
		r.want(t, 1)
		var resp struct {
			Violations []struct{ Field, Description string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if len(resp.Violations) != 4 || resp.Violations[0].Field != "origins.allow[1]" {
			t.Errorf("got %+v", resp.Violations)
		}
	})

	// --local must not need a control plane: point wsctl at nothing.
	local := &harness{t: t, env: map[string]string{envAddr: closedAddr(t)}}
	t.Run("a local check of a valid file needs no control plane", func(t *testing.T) {
		r := local.run("policy", "validate", "--local", "-f", good)
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "valid\n")
	})
	t.Run("a local check of an invalid file prints the same violations", func(t *testing.T) {
		r := local.run("policy", "validate", "--local", "-f", bad)
		r.want(t, 1)
		assertEqual(t, "stdout", r.stdout, wantLines)
	})
	t.Run("a local check of a file that does not decode names the field", func(t *testing.T) {
		r := local.runStdin("breaker: {window: forever}\n", "policy", "validate", "--local", "-f", "-")
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, `error: <stdin>: breaker.window: invalid duration "forever"`)
	})
}

// history seeds four revisions, the last a rollback.
func historyHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.fake.seed("default", "alice", "open staging", staging(), 0)
	p := staging()
	p.Heartbeat.Timeout = durationpb.New(90 * time.Second)
	h.fake.seed("default", "bob", "longer\ttimeout", p, 0)
	h.fake.seed("default", "tester", "undo", staging(), 2)
	return h
}

func TestPolicyHistory(t *testing.T) {
	t.Run("table lists revisions newest first, following page tokens up to the limit", func(t *testing.T) {
		h := historyHarness(t)
		h.fake.pageCap = 2
		r := h.run("policy", "history", "--limit", "3")
		r.want(t, 0)
		want := `REVISION  CREATED               AUTHOR  MESSAGE
4         2026-01-02T03:08:00Z  tester  undo (rollback of 2)
3         2026-01-02T03:07:00Z  bob     longer timeout
2         2026-01-02T03:06:00Z  alice   open staging
`
		assertEqual(t, "stdout", r.stdout, want)
		h.fake.mu.Lock()
		lists := h.fake.lists
		h.fake.mu.Unlock()
		if len(lists) != 2 || lists[1].GetPageToken() != "2" {
			t.Errorf("list calls %v, want two with the second at token 2", lists)
		}
	})
	t.Run("limit 0 lists everything", func(t *testing.T) {
		h := historyHarness(t)
		h.fake.pageCap = 1
		r := h.run("policy", "history", "--limit", "0")
		r.want(t, 0)
		if got := strings.Count(r.stdout, "\n"); got != 5 {
			t.Errorf("%d lines, want a header and 4 rows:\n%s", got, r.stdout)
		}
	})
	t.Run("json lists the revisions and says there is more", func(t *testing.T) {
		h := historyHarness(t)
		r := h.run("policy", "history", "--limit", "2", "-o", "json")
		r.want(t, 0)
		var resp struct {
			Revisions []struct {
				Revision   int64
				RollbackOf int64 `json:"rollback_of"`
			}
			NextPageToken string `json:"next_page_token"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if len(resp.Revisions) != 2 || resp.Revisions[0].Revision != 4 || resp.Revisions[0].RollbackOf != 2 || resp.NextPageToken == "" {
			t.Errorf("got %+v", resp)
		}
	})
	t.Run("an unknown pool is not found", func(t *testing.T) {
		h := historyHarness(t)
		r := h.run("policy", "history", "--pool", "nope")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"nope\" has no policy\n")
	})
}

func TestPolicyDiff(t *testing.T) {
	h := newHarness(t)
	h.fake.seed("default", "alice", "", staging(), 0)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"one line per change", []string{"1", "2"}, "+ origins.allow: \"https://staging.example.com\"\n~ heartbeat.interval: \"25s\" -> \"30s\"\n"},
		{"the other way round the signs flip", []string{"2", "1"}, "- origins.allow: \"https://staging.example.com\"\n~ heartbeat.interval: \"30s\" -> \"25s\"\n"},
		{"a revision against itself has no differences", []string{"2", "2"}, "no differences\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(append([]string{"policy", "diff"}, tt.args...)...)
			r.want(t, 0)
			assertEqual(t, "stdout", r.stdout, tt.want)
		})
	}
	t.Run("yaml output is the diff response", func(t *testing.T) {
		r := h.run("policy", "diff", "1", "2", "-o", "yaml")
		r.want(t, 0)
		assertContains(t, "stdout", r.stdout, "changes:\n- field: origins.allow\n  kind: KIND_ADDED\n")
	})
	t.Run("an unknown revision is not found", func(t *testing.T) {
		r := h.run("policy", "diff", "1", "7")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"default\" has no revision 7\n")
	})
}

func TestPolicyRollback(t *testing.T) {
	t.Run("rolling back makes a new revision with the old content", func(t *testing.T) {
		h := newHarness(t)
		h.fake.seed("default", "alice", "", staging(), 0)
		r := h.run("policy", "rollback", "--to", "1", "-m", "staging broke")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, `pool default: revision 2 -> 3 (content of revision 1)
  - origins.allow: "https://staging.example.com"
  ~ heartbeat.interval: "30s" -> "25s"
`)
		head := h.fake.head("default")
		if head.GetRevision() != 3 || head.GetRollbackOf() != 1 || head.GetMessage() != "staging broke" || !proto.Equal(head.GetPolicy(), policy.Default()) {
			t.Errorf("stored %v", head)
		}
	})
	t.Run("rolling back to the current content changes nothing", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "rollback", "--to", "1")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "pool default: unchanged at revision 1\n")
	})
	t.Run("a stale expected revision is a conflict", func(t *testing.T) {
		h := newHarness(t)
		h.fake.seed("default", "alice", "", staging(), 0)
		r := h.run("policy", "rollback", "--to", "1", "--expect-revision", "1")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"default\" is at revision 2, not 1 (re-read with 'wsctl policy get' and retry)\n")
	})
	t.Run("an unknown revision is not found", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("policy", "rollback", "--to", "5")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: pool \"default\" has no revision 5\n")
	})
}

func TestUsageErrorsExit2(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown command", []string{"polcy"}, `unknown command "polcy" for "wsctl"; did you mean "policy"?`},
		{"an unknown policy subcommand", []string{"policy", "gte"}, `unknown command "gte" for "wsctl policy"; did you mean "get"?`},
		{"an unknown flag", []string{"policy", "get", "--bogus"}, "unknown flag: --bogus"},
		{"apply without a file", []string{"policy", "apply"}, `required flag(s) "file" not set`},
		{"validate without a file", []string{"policy", "validate", "--local"}, `required flag(s) "file" not set`},
		{"rollback without a target", []string{"policy", "rollback"}, `required flag(s) "to" not set`},
		{"diff with one revision", []string{"policy", "diff", "1"}, "accepts 2 arg(s), received 1"},
		{"diff with a revision that is not a number", []string{"policy", "diff", "one", "2"}, `REV_A must be a revision number (1 or more), got "one"`},
		{"get with a stray argument", []string{"policy", "get", "default"}, "accepts 0 arg(s), received 1"},
		{"a revision that is not a number", []string{"policy", "get", "--revision", "latest"}, `invalid argument "latest" for "--revision"`},
		{"an expected revision that is not a number", []string{"policy", "apply", "-f", "-", "--expect-revision", "x"}, `invalid argument "x" for "--expect-revision"`},
		{"an unknown output format", []string{"policy", "get", "-o", "xml"}, `invalid output format "xml"`},
		{"a negative history limit", []string{"policy", "history", "--limit", "-1"}, "--limit must be 0 (all) or more"},
		{"a zero rollback target", []string{"policy", "rollback", "--to", "0"}, "--to must be a revision number"},
		{"a zero timeout", []string{"--timeout", "0s", "policy", "get"}, "--timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" exits 2", func(t *testing.T) {
			r := h.run(tt.args...)
			r.want(t, 2)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "error: "+tt.want) {
				t.Errorf("stderr:\n%s\nwant the error %q then a pointer to --help", r.stderr, tt.want)
			}
			assertContains(t, "stderr", r.stderr, "--help' for usage.")
		})
	}
	if md, _ := h.fake.recorded(); len(md) != 0 {
		t.Errorf("usage errors reached the control plane %d times", len(md))
	}
}

func TestHelpExits0(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{{}, {"--help"}, {"policy"}, {"policy", "apply", "--help"}, {"help", "policy"}} {
		t.Run(strings.Join(append([]string{"wsctl"}, args...), " ")+" shows help", func(t *testing.T) {
			r := h.run(args...)
			r.want(t, 0)
			assertContains(t, "stdout", r.stdout, "Usage:")
		})
	}
}

func TestMainWiresTheProcess(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"policy", "--help"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Errorf("help exited %d: %s", code, stderr.String())
	}
	assertContains(t, "stdout", stdout.String(), "rollback", "history")
	stderr.Reset()
	if code := Main([]string{"policy", "nope"}, strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Errorf("an unknown command exited %d, want 2", code)
	}
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantAuth string
		wantUser string
	}{
		{"the token flag is sent as a bearer token", nil, []string{"--token", "s3cret"}, "Bearer s3cret", "tester"},
		{"the token comes from WSFLEET_TOKEN", map[string]string{envToken: "fromenv"}, nil, "Bearer fromenv", "tester"},
		{"the token flag wins over WSFLEET_TOKEN", map[string]string{envToken: "fromenv"}, []string{"--token", "flag"}, "Bearer flag", "tester"},
		{"no token sends no authorization", nil, nil, "", "tester"},
		{"without USER the user is unknown", map[string]string{envUser: ""}, nil, "", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for k, v := range tt.env {
				h.env[k] = v
			}
			r := h.run(append(tt.args, "policy", "get")...)
			r.want(t, 0)
			md, _ := h.fake.recorded()
			if len(md) != 1 {
				t.Fatalf("%d calls, want 1", len(md))
			}
			if got := strings.Join(md[0].Get("authorization"), ","); got != tt.wantAuth {
				t.Errorf("authorization %q, want %q", got, tt.wantAuth)
			}
			if got := strings.Join(md[0].Get("x-wsfleet-user"), ","); got != tt.wantUser {
				t.Errorf("x-wsfleet-user %q, want %q", got, tt.wantUser)
			}
		})
	}
}

func TestTokenIsNotSentInPlaintextToARemoteHost(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"from the flag", map[string]string{envAddr: "10.0.0.1:7400"}, []string{"--token", "s3cret"}},
		{"from the environment", map[string]string{envAddr: "10.0.0.1:7400", envToken: "s3cret"}, nil},
		{"to an address given as a flag", nil, []string{"--addr", "cp.example.com:7400", "--token", "s3cret"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &harness{t: t, env: tt.env}
			r := h.run(append(tt.args, "policy", "get")...)
			r.want(t, 1)
			assertContains(t, "stderr", r.stderr, "plaintext", "--tls")
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("stderr leaks the token: %s", r.stderr)
			}
		})
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestControlPlaneProblems(t *testing.T) {
	t.Run("an unreachable control plane is named with its address", func(t *testing.T) {
		addr := closedAddr(t)
		h := &harness{t: t, env: map[string]string{}}
		r := h.run("--addr", addr, "policy", "get")
		r.want(t, exitUnreachable)
		assertContains(t, "stderr", r.stderr, "error: the control plane at "+addr+" is unreachable", "connection refused")
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("want one line:\n%s", r.stderr)
		}
	})
	t.Run("the address flag wins over WSFLEET_ADDR", func(t *testing.T) {
		h := newHarness(t)
		addr := h.addr
		h.env[envAddr] = closedAddr(t)
		h.run("--addr", addr, "policy", "get").want(t, 0)
	})
	t.Run("a refused token says how to pass one", func(t *testing.T) {
		h := newHarness(t)
		h.fake.token = "right"
		r := h.run("--token", "wrong", "policy", "get")
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "did not accept the credentials", "--token", "WSFLEET_TOKEN")
	})
	t.Run("a token without the right role says permission denied", func(t *testing.T) {
		h := newHarness(t)
		h.fake.token = "viewer"
		h.fake.writerToken = "admin"
		h.run("--token", "viewer", "policy", "get").want(t, 0)
		r := h.run("--token", "viewer", "policy", "apply", "-f", writeFile(t, stagingYAML))
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "permission denied", "role viewer may not change policy", "--token", "WSFLEET_TOKEN")
	})
	t.Run("a CA file that cannot be read is reported before any call", func(t *testing.T) {
		h := newHarness(t)
		missing := filepath.Join(t.TempDir(), "ca.pem")
		r := h.run("--ca-file", missing, "policy", "get")
		r.want(t, 1)
		assertContains(t, "stderr", r.stderr, "error: cannot load TLS material: CA file: ", missing)
		if md, _ := h.fake.recorded(); len(md) != 0 {
			t.Errorf("%d calls reached the control plane", len(md))
		}
	})
	t.Run("a slow control plane runs into the timeout", func(t *testing.T) {
		h := newHarness(t)
		r := h.run("--timeout", "100ms", "policy", "get", "--pool", "slow")
		r.want(t, 1)
		assertEqual(t, "stderr", r.stderr, "error: no answer from the control plane at "+h.addr+" within 100ms (raise --timeout)\n")
	})
}

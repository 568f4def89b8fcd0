package wsctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// readmeBadPolicy returns the README's bad.yaml and what it says wsctl
// prints for it.
func readmeBadPolicy(t *testing.T) (file, stderr string) {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		cat   = "$ cat bad.yaml\n"
		apply = "$ wsctl policy apply -f bad.yaml\n"
		end   = "```"
	)
	s := string(readme)
	i := strings.Index(s, cat)
	j := strings.Index(s, apply)
	if i < 0 || j < i {
		t.Fatalf("the README has no %q followed by %q", cat, apply)
	}
	k := strings.Index(s[j:], end)
	if k < 0 {
		t.Fatal("the README's bad-policy example does not end")
	}
	return s[i+len(cat) : j], s[j+len(apply) : j+k]
}

func TestTheREADMEsBadPolicyExampleIsTrue(t *testing.T) {
	file, want := readmeBadPolicy(t)
	h := newHarness(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.run("policy", "apply", "-f", path)
	r.want(t, 1)
	assertEqual(t, "stderr", r.stderr, want)
	if got := h.fake.head("default").GetRevision(); got != 1 {
		t.Errorf("the bad policy was stored as revision %d", got)
	}
}

func TestApplyingAPartialPolicyFile(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		stdout string
		want   func(p *wsfleetv1.Policy) // applied to policy.Default()
	}{
		{"a file with only origins.allow changes only origins.allow",
			"origins:\n  allow: [\"https://app.example.com\"]\n",
			"pool default: revision 1 -> 2\n  + origins.allow: \"https://app.example.com\"\n",
			func(p *wsfleetv1.Policy) { p.Origins.Allow = []string{"https://app.example.com"} }},
		{"an explicit allow_missing false is honoured",
			"origins: {allow: [], allow_missing: false}\n",
			"pool default: revision 1 -> 2\n  ~ origins.allow_missing: true -> false\n",
			func(p *wsfleetv1.Policy) { p.Origins.AllowMissing = false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run("policy", "apply", "-f", writeFile(t, tt.file))
			r.want(t, 0)
			assertEqual(t, "stdout", r.stdout, tt.stdout)
			want := policy.Default()
			tt.want(want)
			if got := h.fake.head("default").GetPolicy(); !proto.Equal(got, want) {
				t.Errorf("stored %v\nwant   %v", got, want)
			}
		})
	}
	t.Run("fields a file leaves out go back to their defaults, and the diff says so", func(t *testing.T) {
		h := newHarness(t)
		h.fake.seed("default", "alice", "staging", staging(), 0)
		r := h.run("policy", "apply", "-f", writeFile(t, "origins: {allow: [\"https://staging.example.com\"]}\n"), "--dry-run")
		r.want(t, 0)
		assertEqual(t, "stdout", r.stdout, "dry run: pool default would go from revision 2 to 3\n  ~ heartbeat.interval: \"30s\" -> \"25s\"\n")
	})
}

package controlplane

// The store file end to end: the real wsfleet-control binary started on a
// data directory whose policy.db is missing, empty, damaged, foreign or
// busy, the way an operator (or a disk) leaves it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// runControl runs wsfleet-control to its end (it is expected to exit on
// its own, within 20 s) and returns what it printed and its exit code.
func runControl(t *testing.T, args ...string) result {
	t.Helper()
	control, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, control, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("wsfleet-control %v did not exit within 20s:\nstdout: %s\nstderr: %s", args, out.String(), errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// controlArgs are the flags of a dev control plane on kernel-chosen
// loopback ports with JSON logs.
func controlArgs(dataDir string, more ...string) []string {
	return append([]string{"--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--data-dir", dataDir, "--log-format", "json"}, more...)
}

// oneErrorLine checks that r is a refusal as an operator should see it:
// exit 1, nothing on stdout, exactly one log line, at level error, whose
// error names file and says what to do; no panic or fault anywhere.
func oneErrorLine(t *testing.T, r result, file string, todo ...string) {
	t.Helper()
	all := r.stdout + r.stderr
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	for _, bad := range []string{"panic", "goroutine", "SIGBUS", "SIGSEGV", "fatal error"} {
		if strings.Contains(all, bad) {
			t.Errorf("output contains %q", bad)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout is not empty")
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr has %d lines, want exactly one error line:\n%s", len(lines), all)
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatalf("stderr line is not a JSON log line: %v\n%s", err, lines[0])
	}
	msg, _ := entry["error"].(string)
	if entry["level"] != "error" {
		t.Errorf("level %v, want error", entry["level"])
	}
	for _, want := range append([]string{file}, todo...) {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", all)
	}
}

// storeTemplate runs a control plane, applies a few revisions and stops it,
// returning its policy.db: a store file as a real run leaves it.
func storeTemplate(t *testing.T) string {
	t.Helper()
	dataDir := t.TempDir()
	cp := startControl(t, dataDir, "--dev")
	cc, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	pc := wsfleetv1.NewPolicyServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, pool := range []string{"default", "edge", "default", "internal", "edge", "default"} {
		p := policy.Default()
		p.Limits.MaxConnections = int32(10_000 + i)
		for j := range 150 { // values over a page: overflow pages too
			p.Origins.Allow = append(p.Origins.Allow, fmt.Sprintf("https://tenant-%03d.example.com", j))
		}
		if _, err := pc.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{Pool: pool, Policy: p, Message: fmt.Sprint("apply ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	cp.stop(t)
	return filepath.Join(dataDir, "policy.db")
}

// firstUsedPage is the first page after the meta pages that the file's
// tree or freelist uses (not a free page), and the page size.
func firstUsedPage(t *testing.T, path string) (id, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for id = 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return fmt.Errorf("no used page: %v", err)
			}
			if info.Type != "free" {
				return nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, db.Info().PageSize
}

func overwrite(t *testing.T, path string, off int64, n int) {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(off), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

const (
	restoreOrRecover = "restore it from a backup"
	recoverCommand   = "wsctl policy recover"
)

func TestControlPlaneRefusesAStoreFileItCannotUse(t *testing.T) {
	template := storeTemplate(t)
	tmpl, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	usedPage, pageSize := firstUsedPage(t, template)

	tests := []struct {
		name string
		// damage turns dataDir/policy.db (a copy of the template) into
		// the case; it returns the path the error must name.
		damage func(t *testing.T, dataDir, db string) string
		todo   []string
	}{
		{
			name: "an empty store file",
			damage: func(t *testing.T, _, db string) string {
				must(t, os.Truncate(db, 0))
				return db
			},
			todo: []string{"empty", restoreOrRecover, recoverCommand},
		},
		{
			name: "a store file truncated to half",
			damage: func(t *testing.T, _, db string) string {
				must(t, os.Truncate(db, int64(len(tmpl)/2)))
				return db
			},
			todo: []string{"truncated", restoreOrRecover, recoverCommand},
		},
		{
			name: "garbage over meta page 0",
			damage: func(t *testing.T, _, db string) string {
				overwrite(t, db, 0, pageSize)
				return db
			},
			todo: []string{"meta page 0", restoreOrRecover},
		},
		{
			name: "garbage over meta page 1",
			damage: func(t *testing.T, _, db string) string {
				overwrite(t, db, int64(pageSize), pageSize)
				return db
			},
			todo: []string{"meta page 1", restoreOrRecover},
		},
		{
			name: "garbage over both meta pages",
			damage: func(t *testing.T, _, db string) string {
				overwrite(t, db, 0, 2*pageSize)
				return db
			},
			todo: []string{"meta pages", restoreOrRecover},
		},
		{
			name: "garbage in a data page",
			damage: func(t *testing.T, _, db string) string {
				overwrite(t, db, int64(usedPage*pageSize), pageSize)
				return db
			},
			todo: []string{fmt.Sprintf("page %d", usedPage), restoreOrRecover},
		},
		{
			name: "another program's bbolt file",
			damage: func(t *testing.T, _, db string) string {
				must(t, os.Remove(db))
				raw, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: time.Second})
				must(t, err)
				must(t, raw.Update(func(tx *bolt.Tx) error {
					_, err := tx.CreateBucket([]byte("sessions"))
					return err
				}))
				must(t, raw.Close())
				return db
			},
			todo: []string{"not a wsfleet policy database", "sessions", restoreOrRecover},
		},
		{
			name: "a file that is not bbolt",
			damage: func(t *testing.T, _, db string) string {
				must(t, os.WriteFile(db, bytes.Repeat([]byte("SQLite format 3\x00"), 2048), 0o600))
				return db
			},
			todo: []string{"not a bbolt database", restoreOrRecover},
		},
		{
			name: "a store file that is a directory",
			damage: func(t *testing.T, _, db string) string {
				must(t, os.Remove(db))
				must(t, os.Mkdir(db, 0o700))
				return db
			},
			todo: []string{"is a directory", "--data-dir"},
		},
		{
			name: "a data directory that is a file",
			damage: func(t *testing.T, dataDir, db string) string {
				must(t, os.RemoveAll(dataDir))
				must(t, os.WriteFile(dataDir, []byte("not a directory\n"), 0o600))
				return dataDir
			},
			todo: []string{"not a directory", "--data-dir must name a directory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "control")
			must(t, os.Mkdir(dataDir, 0o700))
			db := filepath.Join(dataDir, "policy.db")
			must(t, os.WriteFile(db, tmpl, 0o600))
			named := tt.damage(t, dataDir, db)
			before := snapshot(t, named)

			r := runControl(t, controlArgs(dataDir)...)
			oneErrorLine(t, r, named, tt.todo...)
			if after := snapshot(t, named); after != before {
				t.Errorf("the refused %s changed", named)
			}
		})
	}

	t.Run("a store another control plane holds", func(t *testing.T) {
		dataDir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dataDir, "policy.db"), tmpl, 0o600))
		first := startControl(t, dataDir, "--dev")
		r := runControl(t, controlArgs(dataDir)...)
		oneErrorLine(t, r, filepath.Join(dataDir, "policy.db"), "locked", "another wsfleet-control")
		// The first one is untouched by the second's attempt.
		if got := getJSON(t, first.addr).Revision; got < 2 {
			t.Fatalf("the running control plane's default head is %d", got)
		}
	})
}

// snapshot is a file's bytes, or a directory's or missing file's stand-in.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	if fi.IsDir() {
		return "directory"
	}
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

var storeIDPattern = regexp.MustCompile(`^bolt-[0-9a-f]{16}$`)

// logEntries parses a process's JSON log lines with the given msg.
func logEntries(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// listeningStoreID is the store id a control plane logged when it started
// listening.
func listeningStoreID(t *testing.T, cp *controlProc) string {
	t.Helper()
	ls := logEntries(t, cp.logText(), "control plane listening")
	if len(ls) != 1 {
		t.Fatalf("%d \"control plane listening\" lines:\n%s", len(ls), cp.logText())
	}
	id, _ := ls[0]["store_id"].(string)
	if !storeIDPattern.MatchString(id) {
		t.Fatalf("listening line has store_id %q", id)
	}
	return id
}

func TestAMissingStoreFileIsCreatedAndSaidSo(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "fresh", "control")
	cp := startControl(t, dataDir, "--dev")
	created := logEntries(t, cp.logText(), "created a new store")
	if len(created) != 1 {
		t.Fatalf("%d \"created a new store\" lines, want 1:\n%s", len(created), cp.logText())
	}
	id := listeningStoreID(t, cp)
	if created[0]["store_id"] != id || created[0]["path"] != filepath.Join(dataDir, "policy.db") {
		t.Fatalf("created line %v, want store_id %s and path %s", created[0], id, filepath.Join(dataDir, "policy.db"))
	}
	if r := getJSON(t, cp.addr); r.Revision != 1 {
		t.Fatalf("a new store serves default@%d, want 1", r.Revision)
	}
	cp.stop(t)

	again := startControl(t, dataDir, "--dev")
	if n := len(logEntries(t, again.logText(), "created a new store")); n != 0 {
		t.Fatalf("a restart on the same store logged \"created a new store\":\n%s", again.logText())
	}
	if got := listeningStoreID(t, again); got != id {
		t.Fatalf("the restarted control plane has store %s, want %s", got, id)
	}
}

func TestInitCreatesAStoreAndNeverOverwrites(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "control")
	db := filepath.Join(dataDir, "policy.db")

	r := runControl(t, "--init", "--data-dir", dataDir, "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("--init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`^created a new store (bolt-[0-9a-f]{16}) in (.+)\n$`).FindStringSubmatch(r.stdout)
	if m == nil || m[2] != db {
		t.Fatalf("--init printed %q, want \"created a new store <id> in %s\"", r.stdout, db)
	}
	id := m[1]
	before := snapshot(t, db)

	t.Run("a second --init is refused and changes nothing", func(t *testing.T) {
		r := runControl(t, "--init", "--data-dir", dataDir, "--log-format", "json")
		oneErrorLine(t, r, db, "already exists", "never overwritten")
		if snapshot(t, db) != before {
			t.Fatal("the second --init changed the store file")
		}
	})

	t.Run("--init over an empty file is refused", func(t *testing.T) {
		dir := t.TempDir()
		empty := filepath.Join(dir, "policy.db")
		must(t, os.WriteFile(empty, nil, 0o600))
		r := runControl(t, "--init", "--data-dir", dir, "--log-format", "json")
		oneErrorLine(t, r, empty, "already exists")
		if snapshot(t, empty) != "" {
			t.Fatal("--init wrote into the empty file")
		}
	})

	t.Run("the control plane starts on the store --init made", func(t *testing.T) {
		cp := startControl(t, dataDir, "--dev")
		if got := listeningStoreID(t, cp); got != id {
			t.Fatalf("the control plane runs store %s, --init made %s", got, id)
		}
		if n := len(logEntries(t, cp.logText(), "created a new store")); n != 0 {
			t.Fatalf("starting on an --init store logged \"created a new store\":\n%s", cp.logText())
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

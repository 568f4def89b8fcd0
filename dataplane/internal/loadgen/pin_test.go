package loadgen

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParsePin(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Pin
		err  string
	}{
		{"off pins nothing", "off", Pin{}, ""},
		{"empty pins nothing", "", Pin{}, ""},
		{"auto is resolved at run time", "auto", Pin{Auto: true}, ""},
		{"one CPU each", "server=1,load=0", Pin{Server: []int{1}, Load: []int{0}}, ""},
		{"lists and ranges, in any order", "load=0,1,server=4-5,2", Pin{Server: []int{2, 4, 5}, Load: []int{0, 1}}, ""},
		{"a CPU on both sides is refused", "server=1,load=0-1", Pin{}, "both a server and a load CPU"},
		{"a side missing is refused", "server=1", Pin{}, "want both"},
		{"an unknown side is refused", "server=1,client=0", Pin{}, `unknown side "client"`},
		{"a side given twice is refused", "server=1,load=0,server=2", Pin{}, "given twice"},
		{"a CPU that is not a number is refused", "server=x,load=0", Pin{}, `"x" is not a CPU`},
		{"a backwards range is refused", "server=3-1,load=0", Pin{}, `"3-1"`},
		{"a number without a side is refused", "1,load=0", Pin{}, "want off, auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePin(tc.in)
			if tc.err != "" {
				wantErr(t, err, ErrConfig, tc.err)
				return
			}
			if err != nil || !slices.Equal(got.Server, tc.want.Server) || !slices.Equal(got.Load, tc.want.Load) || got.Auto != tc.want.Auto {
				t.Errorf("ParsePin(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestPinResolve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pin     Pin
		allowed []int
		want    Pin
		note    string
		err     string
	}{
		{"auto on two CPUs: servers on the higher, load on the other", Pin{Auto: true}, []int{0, 1},
			Pin{Server: []int{1}, Load: []int{0}, Auto: true}, "", ""},
		{"auto on four: servers on the last, load on the other three", Pin{Auto: true}, []int{2, 3, 5, 7},
			Pin{Server: []int{7}, Load: []int{2, 3, 5}, Auto: true}, "", ""},
		{"auto on one CPU pins nothing and says so", Pin{Auto: true}, []int{3},
			Pin{Auto: true}, "not pinned: only CPU 3 is available", ""},
		{"explicit CPUs that exist are kept", Pin{Server: []int{1}, Load: []int{0}}, []int{0, 1},
			Pin{Server: []int{1}, Load: []int{0}}, "", ""},
		{"an explicit CPU this process may not use is refused", Pin{Server: []int{1}, Load: []int{0}}, []int{0},
			Pin{}, "", "CPU 1 is not one this process may run on (0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, note, err := tc.pin.resolve(tc.allowed)
			if tc.err != "" {
				wantErr(t, err, ErrConfig, tc.err)
				return
			}
			if err != nil || !slices.Equal(got.Server, tc.want.Server) || !slices.Equal(got.Load, tc.want.Load) || got.Auto != tc.want.Auto {
				t.Errorf("resolve = %+v, %v; want %+v", got, err, tc.want)
			}
			if tc.note == "" && note != "" || tc.note != "" && !strings.Contains(note, tc.note) {
				t.Errorf("note %q, want %q", note, tc.note)
			}
		})
	}
}

func TestCPUList(t *testing.T) {
	for _, tc := range []struct {
		cpus []int
		want string
	}{{[]int{0}, "0"}, {[]int{0, 1, 2, 5}, "0-2,5"}, {[]int{1, 3, 4}, "1,3-4"}, {nil, ""}} {
		if got := cpuList(tc.cpus); got != tc.want {
			t.Errorf("cpuList(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
	got, err := parseCPUsAllowed([]byte("Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-2,5\n"))
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5}) {
		t.Errorf("parseCPUsAllowed = %v, %v; want [0 1 2 5]", got, err)
	}
	if _, err := parseCPUsAllowed([]byte("Name:\tx\n")); err == nil {
		t.Error("a status without Cpus_allowed_list parsed")
	}
}

// threadsOn fails t unless every thread of pid runs on want only.
func threadsOn(t *testing.T, pid int, want []int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + e.Name() + "/status")
		if err != nil {
			continue // exited meanwhile
		}
		if got, err := parseCPUsAllowed(data); err != nil || !slices.Equal(got, want) {
			t.Errorf("thread %s of %d runs on %v (%v), want %v", e.Name(), pid, got, err, want)
		}
	}
}

// A child started with cpus runs, with every thread it starts, on those
// CPUs only, while this process keeps its own.
func TestStartChildPinsTheChild(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 2 {
		t.Skipf("only CPU %s: nothing to pin apart", cpuList(allowed))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := allowed[len(allowed)-1:]
	c, err := startChild(t.Context(), childSpec{
		name: "pinned", bin: exe, env: []string{childRoleEnv + "=" + roleStubborn},
		readyMsg: nodeReadyMsg, timeout: DefaultStartTimeout, cpus: want,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.kill() })
	got, err := cpusAllowed(c.pid)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("child runs on %v (%v), want %v", got, err, want)
	}
	// Every thread, not only the main one: Go starts several at once.
	threadsOn(t, c.pid, want)
	if self, err := allowedCPUs(); err != nil || !slices.Equal(self, allowed) {
		t.Errorf("this thread runs on %v after starting the child (%v), want %v as before", self, err, allowed)
	}
}

// pinProcess moves every thread of a running process, as Run does with
// its own when it pins the load.
func TestPinProcessMovesEveryThread(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 2 {
		t.Skipf("only CPU %s: nothing to pin apart", cpuList(allowed))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c, err := startChild(t.Context(), childSpec{
		name: "unpinned", bin: exe, env: []string{childRoleEnv + "=" + roleStubborn},
		readyMsg: nodeReadyMsg, timeout: DefaultStartTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.kill() })
	threadsOn(t, c.pid, allowed)
	want := allowed[:1]
	if err := pinProcess(c.pid, want); err != nil {
		t.Fatal(err)
	}
	threadsOn(t, c.pid, want)
	if err := pinProcess(-1, want); err == nil || !strings.Contains(err.Error(), "loadgen: cannot pin") {
		t.Errorf("pinning no process: %v, want ErrPin", err)
	}
}

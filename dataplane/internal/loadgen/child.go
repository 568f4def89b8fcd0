package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childSpec says how to start a server process and how it announces itself:
// a JSON line on stderr whose "msg" is readyMsg and whose addrField
// ("ws_addr" unless set) is the address it serves on, or, for a process
// that does not log JSON (nats-server), a line readyRe matches, its first
// group the address.
type childSpec struct {
	name      string
	bin       string
	args      []string
	env       []string // appended to this process's environment
	readyMsg  string
	addrField string         // default "ws_addr"
	readyRe   *regexp.Regexp // instead of readyMsg and addrField
	timeout   time.Duration  // to the ready line
	// diesOfSIGTERM: the process stops cleanly on SIGTERM and then
	// re-raises it, so "killed by SIGTERM" after stop's SIGTERM is a clean
	// exit (etcd does this).
	diesOfSIGTERM bool
	// cpus, if set, are the only CPUs the process and its threads may run
	// on, from birth (see startOn); checked once it has started.
	cpus []int
}

// child is a running server process. Its stderr is read to the end by one
// goroutine (the node logs a line per connection closed, so an unread pipe
// would stall it); the last lines are kept for error messages.
type child struct {
	name string
	cmd  *exec.Cmd
	pid  int
	addr string
	// readyLine is the line that announced addr (written before addr is
	// handed over).
	readyLine []byte

	exited        chan struct{} // closed once Wait returned
	waitErr       error         // written before exited is closed
	readerDone    chan struct{}
	tail          *lineTail
	diesOfSIGTERM bool
	// stopping is set by stop before its SIGTERM.
	stopping bool
}

// tailLines is how many stderr lines a failed child's error shows.
const tailLines = 20

// startChild starts spec and waits for its ready line. On any failure the
// process is killed and reaped before it returns.
func startChild(ctx context.Context, spec childSpec) (*child, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrChild, spec.name, err)
	}
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stderr = pw // an *os.File: the child writes to it directly, no copy goroutine
	setDeathSignal(cmd)
	c := &child{
		name:          spec.name,
		cmd:           cmd,
		exited:        make(chan struct{}),
		readerDone:    make(chan struct{}),
		tail:          &lineTail{max: tailLines},
		diesOfSIGTERM: spec.diesOfSIGTERM,
	}

	started := make(chan error, 1)
	go func() {
		// The death signal (Linux) fires when the thread that started the
		// child exits, which is meant to be when the bench dies. Locking
		// this goroutine to its thread for the child's whole life stops the
		// runtime from retiring that thread earlier. The thread is never
		// unlocked, so it ends with this goroutine, after the child.
		runtime.LockOSThread()
		if err := startOn(spec.cpus, cmd.Start); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	err = <-started
	_ = pw.Close() // the child holds its own copy; EOF comes when it exits
	if err != nil {
		_ = pr.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrChild, spec.name, err)
	}
	c.pid = cmd.Process.Pid

	ready := make(chan string, 1)
	go c.readStderr(pr, spec, ready)
	if len(spec.cpus) > 0 {
		if got, err := cpusAllowed(c.pid); err != nil || !slices.Equal(got, spec.cpus) {
			_ = c.kill()
			return nil, fmt.Errorf("%w: %s runs on CPUs %s, want %s (%v)", ErrPin, spec.name, cpuList(got), cpuList(spec.cpus), err)
		}
	}

	timer := time.NewTimer(spec.timeout)
	defer timer.Stop()
	select {
	case c.addr = <-ready:
		return c, nil
	case <-c.exited:
		<-c.readerDone
		err = fmt.Errorf("%w: %s exited before announcing its address: %v%s", ErrChild, spec.name, c.waitErr, c.tail)
	case <-timer.C:
		err = fmt.Errorf("%w: %s did not log %q within %s%s", ErrChild, spec.name, spec.readyMsg, spec.timeout, c.tail)
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	_ = c.kill()
	return nil, err
}

// readStderr reads the child's stderr until EOF, sends the address of the
// ready line on ready, and keeps the last lines in c.tail.
func (c *child) readStderr(r *os.File, spec childSpec, ready chan<- string) {
	defer close(c.readerDone)
	defer func() { _ = r.Close() }()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	announced := false
	for sc.Scan() {
		line := sc.Bytes()
		c.tail.add(string(line))
		if announced {
			continue
		}
		if addr := readyAddr(spec, line); addr != "" {
			announced = true
			c.readyLine = slices.Clone(line)
			ready <- addr
		}
	}
	// A line over the scanner's limit ends the scan; keep draining so the
	// child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// readyAddr is the address line announces, or "" if it is not spec's
// ready line.
func readyAddr(spec childSpec, line []byte) string {
	if spec.readyRe != nil {
		if m := spec.readyRe.FindSubmatch(line); len(m) > 1 {
			return string(m[1])
		}
		return ""
	}
	if len(line) == 0 || line[0] != '{' {
		return ""
	}
	var l map[string]any
	if json.Unmarshal(line, &l) != nil || l["msg"] != spec.readyMsg {
		return ""
	}
	addr, _ := l[withDefault(spec.addrField, "ws_addr")].(string)
	return addr
}

// readyField is a string field of the JSON ready line, "" if none.
func (c *child) readyField(name string) string {
	var l map[string]any
	_ = json.Unmarshal(c.readyLine, &l)
	v, _ := l[name].(string)
	return v
}

// alive reports an error if the process has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		<-c.readerDone
		return fmt.Errorf("%w: %s exited: %v%s", ErrChild, c.name, c.waitErr, c.tail)
	default:
		return nil
	}
}

// stop sends SIGTERM, waits up to timeout for the process to exit, kills it
// otherwise, and reaps it. It reports a process that had to be killed or
// exited with a non-zero status.
func (c *child) stop(timeout time.Duration) error {
	select {
	case <-c.exited:
	default:
		c.stopping = true
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-c.exited:
		case <-timer.C:
			_ = c.kill()
			return fmt.Errorf("%w: %s did not exit within %s of SIGTERM and was killed%s", ErrChild, c.name, timeout, c.tail)
		}
	}
	<-c.readerDone
	if c.waitErr != nil && !(c.stopping && c.diesOfSIGTERM && diedOf(c.cmd.ProcessState, syscall.SIGTERM)) {
		return fmt.Errorf("%w: %s: %v%s", ErrChild, c.name, c.waitErr, c.tail)
	}
	return nil
}

// diedOf reports whether the process was killed by sig.
func diedOf(ps *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// killWait bounds waiting for a killed process to be reaped; SIGKILL cannot
// be ignored, so only a wedged kernel makes it matter.
const killWait = 5 * time.Second

// kill sends SIGKILL and waits for the process and its stderr reader.
func (c *child) kill() error {
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exited:
		<-c.readerDone
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%w: %s (pid %d) not reaped %s after SIGKILL", ErrChild, c.name, c.pid, killWait)
	}
}

// lineTail keeps the last max lines written to it.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.max-1]
	}
	t.lines = append(t.lines, line)
}

// String renders the kept lines for the end of an error message.
func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return " (no output)"
	}
	return "; last lines of stderr:\n    " + strings.Join(t.lines, "\n    ")
}

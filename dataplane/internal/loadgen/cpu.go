package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for what it exports to user space whatever the
// kernel's own tick rate.
const userHZ = 100

// ReadCPU returns the CPU time process pid has used so far, user and
// system, all its threads (utime + stime of /proc/<pid>/stat; Linux
// only). Its resolution is 10 ms, so a figure derived from it needs a
// measured phase of seconds.
func ReadCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCPU, err)
	}
	return parseStatCPU(data)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("%w: malformed stat line %q", ErrCPU, stat)
	}
	// After the name: state (field 3) ... utime (14), stime (15).
	f := bytes.Fields(stat[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("%w: stat line has %d fields after the name, want more than %d", ErrCPU, len(f), stime)
	}
	var ticks int64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: malformed stat field %d %q", ErrCPU, i+3, f[i])
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// cpuOf sums ReadCPU over pids.
func cpuOf(pids ...int) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		var total time.Duration
		for _, pid := range pids {
			d, err := ReadCPU(pid)
			if err != nil {
				return 0, err
			}
			total += d
		}
		return total, nil
	}
}

// cpuMeter reads CPU time around one measured window: the servers' (its
// reader, when set: ReadCPU of the children) and this process's, the
// load's. Reading /proc is cheap next to any window it measures.
type cpuMeter struct {
	server func() (time.Duration, error)
	s0, l0 time.Duration
}

func newCPUMeter(server func() (time.Duration, error)) *cpuMeter {
	return &cpuMeter{server: server}
}

func (m *cpuMeter) start() error {
	var err error
	if m.server != nil {
		if m.s0, err = m.server(); err != nil {
			return err
		}
	}
	m.l0, err = ReadCPU(os.Getpid())
	return err
}

// stop returns the servers' and the load's CPU time since start; the
// servers' is zero without a reader.
func (m *cpuMeter) stop() (server, load time.Duration, err error) {
	if m.server != nil {
		s1, err := m.server()
		if err != nil {
			return 0, 0, err
		}
		server = s1 - m.s0
	}
	l1, err := ReadCPU(os.Getpid())
	if err != nil {
		return 0, 0, err
	}
	return server, l1 - m.l0, nil
}

// perOp is cpu / ops in nanoseconds, 0 without ops.
func perOp(cpu time.Duration, ops int64) float64 {
	if ops <= 0 {
		return 0
	}
	return float64(cpu) / float64(ops)
}

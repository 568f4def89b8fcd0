package loadgen

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs the calling thread may run on (at Run's
// start: the whole process's, as no thread is pinned yet).
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("%w: sched_getaffinity: %v", ErrPin, err)
	}
	var cpus []int
	for c := 0; c <= maxCPU; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinThreadsPasses bounds pinProcess's passes over a process's threads.
const pinThreadsPasses = 10

// pinProcess pins every thread of process pid to cpus. sched_setaffinity
// moves one thread; a thread started later inherits its creator's mask, so
// the threads are listed again until a pass finds none left to move (a
// thread created from one not yet moved would otherwise escape).
func pinProcess(pid int, cpus []int) error {
	want := cpuSet(cpus)
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	for range pinThreadsPasses {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPin, err)
		}
		moved := 0
		for _, e := range entries {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var have unix.CPUSet
			if unix.SchedGetaffinity(tid, &have) == nil && have == *want {
				continue
			}
			// A thread that exited meanwhile (ESRCH) needs no pinning.
			if err := unix.SchedSetaffinity(tid, want); err != nil && err != unix.ESRCH {
				return fmt.Errorf("%w: thread %d of pid %d: %v", ErrPin, tid, pid, err)
			}
			moved++
		}
		if moved == 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: pid %d keeps starting threads not on CPU %s", ErrPin, pid, cpuList(cpus))
}

// startOn runs start, which must fork a child from the calling thread
// (exec.Cmd.Start does), with that thread pinned to cpus, so the child and
// every thread it ever starts inherit the mask from birth; the thread's
// own mask is restored after. The caller must be locked to its OS thread.
func startOn(cpus []int, start func() error) error {
	if len(cpus) == 0 {
		return start()
	}
	var prev unix.CPUSet
	if err := unix.SchedGetaffinity(0, &prev); err != nil {
		return fmt.Errorf("%w: sched_getaffinity: %v", ErrPin, err)
	}
	if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
		return fmt.Errorf("%w: sched_setaffinity: %v", ErrPin, err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, &prev); rerr != nil && err == nil {
		err = fmt.Errorf("%w: restoring the starting thread's CPUs: %v", ErrPin, rerr)
	}
	return err
}

// cpusAllowed reads the CPUs process pid may run on, from /proc.
func cpusAllowed(pid int) ([]int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPin, err)
	}
	return parseCPUsAllowed(data)
}

//go:build unix

package benchcpu

import "syscall"

// processCPU is this process's user + system CPU time in nanoseconds, for
// the benchmarks' cpu-ns/op (every goroutine's, the garbage collector's
// included); ok is false where it cannot be read.
func processCPU() (ns int64, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}

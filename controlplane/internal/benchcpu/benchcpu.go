// Package benchcpu reports a benchmark's CPU time per operation
// (cpu-ns/op): the whole process's user and system time over the measured
// loop — every goroutine's, the garbage collector's included — divided by
// b.N. The control plane's benchmarks (make bench) print it beside ns/op,
// which on a shared machine measures the machine's load as much as the code.
package benchcpu

import "testing"

// Meter holds the process's CPU time when a benchmark's loop started.
type Meter struct {
	start int64
	ok    bool
}

// Start reads the process's CPU time now.
func Start() Meter {
	ns, ok := processCPU()
	return Meter{start: ns, ok: ok}
}

// Report adds cpu-ns/op: the CPU time since Start divided by b.N. Call it
// after b.Loop's loop: b.Loop's first call deletes metrics reported before
// it. Where the CPU time cannot be read, it reports nothing.
func (m Meter) Report(b *testing.B) {
	ns, ok := processCPU()
	if m.ok && ok && b.N > 0 {
		b.ReportMetric(float64(ns-m.start)/float64(b.N), "cpu-ns/op")
	}
}

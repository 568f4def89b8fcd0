package dataplane

import "testing"

// cpuMeter measures the process's CPU time (processCPU) over a
// benchmark's measured phase.
type cpuMeter struct {
	start int64
	ok    bool
}

func startCPU() cpuMeter {
	ns, ok := processCPU()
	return cpuMeter{start: ns, ok: ok}
}

// report adds cpu-ns/op: CPU time since startCPU divided by ops. Call it
// after b.Loop's loop: its first call deletes metrics reported before.
func (m cpuMeter) report(b *testing.B, ops int) {
	ns, ok := processCPU()
	if m.ok && ok && ops > 0 {
		b.ReportMetric(float64(ns-m.start)/float64(ops), "cpu-ns/op")
	}
}

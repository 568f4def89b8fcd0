package benchcpu

import (
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Work on this goroutine shows as CPU time: the clock moves, and not
// backwards.
func TestProcessCPUCountsWork(t *testing.T) {
	before, ok := processCPU()
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("cannot read the process's CPU time on linux")
		}
		t.Skip("no process CPU time on " + runtime.GOOS)
	}
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x ^= i * i
	}
	after, _ := processCPU()
	if after <= before {
		t.Fatalf("CPU time %d then %d after a busy loop (%d)", before, after, x)
	}
}

//go:build !linux

package loadgen

import (
	"fmt"
	"runtime"
)

// allowedCPUs assumes every CPU: only Linux tells (and pins).
func allowedCPUs() ([]int, error) {
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus, nil
}

func pinProcess(int, []int) error {
	return fmt.Errorf("%w: pinning needs Linux", ErrPin)
}

func startOn(cpus []int, start func() error) error {
	if len(cpus) > 0 {
		return fmt.Errorf("%w: pinning needs Linux", ErrPin)
	}
	return start()
}

func cpusAllowed(int) ([]int, error) {
	return nil, fmt.Errorf("%w: needs Linux", ErrPin)
}

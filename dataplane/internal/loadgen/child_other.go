//go:build !linux

package loadgen

import "os/exec"

// setDeathSignal does nothing where the kernel offers no parent-death
// signal; Run still stops its children on every return path.
func setDeathSignal(*exec.Cmd) {}

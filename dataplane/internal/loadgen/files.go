//go:build unix

package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// FileLimit is this process's descriptor limit (RLIMIT_NOFILE) as Run left
// it; the children it starts inherit it (a process that sets the limit
// itself, as Run does, is not given the original back for its children by
// Go's os/exec).
type FileLimit struct {
	Soft   uint64 `json:"soft"`
	Hard   uint64 `json:"hard"`
	Needed uint64 `json:"needed"`
	// Note says what could not be done: a hard limit under Needed that
	// could not be raised.
	Note string `json:"note,omitempty"`
}

// nrOpenPath is Linux's ceiling on any process's descriptor limit.
const nrOpenPath = "/proc/sys/fs/nr_open"

// raiseFileLimit raises the soft descriptor limit to the hard one, and,
// when the hard one is under need, tries to raise both to need (which
// takes root, CAP_SYS_RESOURCE, and is capped by fs.nr_open). It fails
// only when the limit cannot be read or set at all; a limit still under
// need is reported in FileLimit.Note, for the scenario that needs it to
// refuse.
func raiseFileLimit(need uint64) (FileLimit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return FileLimit{}, fmt.Errorf("%w: getrlimit: %v", ErrFiles, err)
	}
	fl := FileLimit{Needed: need}
	if rl.Max < need {
		want := need
		if max, err := readNROpen(); err == nil && max < want {
			want = max
		}
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			rl = raised
		}
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return FileLimit{}, fmt.Errorf("%w: setrlimit: %v", ErrFiles, err)
		}
	}
	// Read back: what the kernel keeps is what the children get.
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return FileLimit{}, fmt.Errorf("%w: getrlimit: %v", ErrFiles, err)
	}
	fl.Soft, fl.Hard = rl.Cur, rl.Max
	if fl.Soft < need {
		fl.Note = fmt.Sprintf("the descriptor limit is %d (hard) and could not be raised to the %d needed: "+
			"raising a hard limit takes CAP_SYS_RESOURCE, which this process lacks or the system refuses "+
			"(ulimit -Hn as root, or LimitNOFILE for a service)", fl.Soft, need)
	}
	return fl, nil
}

func readNROpen() (uint64, error) {
	b, err := os.ReadFile(nrOpenPath)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

package loadgen

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Pin says which CPUs the servers (the node, the echo baseline and every
// other child) and the load (this process) run on, so that on a small
// machine the load generator does not take CPU from the server it
// measures, and the server's CPU time per operation is not inflated by
// sharing caches and run queues with it. The zero Pin pins nothing.
type Pin struct {
	Server []int `json:"server,omitempty"`
	Load   []int `json:"load,omitempty"`
	// Auto: chosen from the CPUs this process may run on (ParsePin "auto").
	Auto bool `json:"auto,omitempty"`
}

// On reports whether anything is pinned.
func (p Pin) On() bool { return len(p.Server) > 0 }

// String is the --pin form: "server=1,load=0", "auto" or "off".
func (p Pin) String() string {
	switch {
	case p.Auto && !p.On():
		return "auto"
	case !p.On():
		return "off"
	}
	return "server=" + cpuList(p.Server) + ",load=" + cpuList(p.Load)
}

// ParsePin reads --pin: "off" (the default: nothing pinned), "auto" (with
// two CPUs or more, the servers on the highest one this process may use
// and the load on the others; with one, nothing is pinned and the report
// says so), or explicit lists, "server=1,load=0" or "server=2,3,load=0,1"
// (ranges like 2-3 too). Which CPUs exist is checked by resolve, at Run.
func ParsePin(s string) (Pin, error) {
	switch s = strings.TrimSpace(s); s {
	case "", "off":
		return Pin{}, nil
	case "auto":
		return Pin{Auto: true}, nil
	}
	var p Pin
	var cur *[]int
	for tok := range strings.SplitSeq(s, ",") {
		tok = strings.TrimSpace(tok)
		if key, val, ok := strings.Cut(tok, "="); ok {
			switch key {
			case "server":
				cur = &p.Server
			case "load":
				cur = &p.Load
			default:
				return Pin{}, fmt.Errorf("%w: --pin: unknown side %q (want server= and load=)", ErrConfig, key)
			}
			if len(*cur) > 0 {
				return Pin{}, fmt.Errorf("%w: --pin: %s= given twice", ErrConfig, key)
			}
			tok = val
		}
		if cur == nil {
			return Pin{}, fmt.Errorf("%w: --pin %q: want off, auto or server=CPUS,load=CPUS", ErrConfig, s)
		}
		cpus, err := parseCPURange(tok)
		if err != nil {
			return Pin{}, fmt.Errorf("%w: --pin: %v", ErrConfig, err)
		}
		*cur = append(*cur, cpus...)
	}
	if len(p.Server) == 0 || len(p.Load) == 0 {
		return Pin{}, fmt.Errorf("%w: --pin %q: want both server= and load=", ErrConfig, s)
	}
	slices.Sort(p.Server)
	slices.Sort(p.Load)
	p.Server, p.Load = slices.Compact(p.Server), slices.Compact(p.Load)
	for _, c := range p.Server {
		if slices.Contains(p.Load, c) {
			return Pin{}, fmt.Errorf("%w: --pin: CPU %d is both a server and a load CPU", ErrConfig, c)
		}
	}
	return p, nil
}

// maxCPU bounds a CPU number, far above any machine's (and Linux's
// CPU_SETSIZE of 1024, which x/sys's CPUSet holds).
const maxCPU = 1023

// parseCPURange reads "3" or "2-5".
func parseCPURange(s string) ([]int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	b := a
	if err == nil && isRange {
		b, err = strconv.Atoi(hi)
	}
	if err != nil || a < 0 || b < a || b > maxCPU {
		return nil, fmt.Errorf("%q is not a CPU number or range (0-%d)", s, maxCPU)
	}
	out := make([]int, 0, b-a+1)
	for c := a; c <= b; c++ {
		out = append(out, c)
	}
	return out, nil
}

// cpuList renders CPUs as Linux does in Cpus_allowed_list: "0-2,5".
func cpuList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// resolve checks p against the CPUs this process may run on and returns
// the Pin to apply and a note for the report ("" when nothing is worth
// saying). "auto" with fewer than two CPUs pins nothing: the servers and
// the load then share the one CPU, and the note says that CPU figures
// include the load's interference.
func (p Pin) resolve(allowed []int) (Pin, string, error) {
	if p.Auto {
		if len(allowed) < 2 {
			return Pin{Auto: true}, fmt.Sprintf("not pinned: only CPU %s is available, so the servers share it with the load", cpuList(allowed)), nil
		}
		last := len(allowed) - 1
		return Pin{Server: allowed[last:], Load: slices.Clone(allowed[:last]), Auto: true}, "", nil
	}
	for _, c := range slices.Concat(p.Server, p.Load) {
		if !slices.Contains(allowed, c) {
			return Pin{}, "", fmt.Errorf("%w: --pin %s: CPU %d is not one this process may run on (%s)", ErrConfig, p, c, cpuList(allowed))
		}
	}
	return p, "", nil
}

// parseCPUsAllowed reads the Cpus_allowed_list line of a /proc status
// file: the CPUs a process may run on.
func parseCPUsAllowed(status []byte) ([]int, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		var cpus []int
		for part := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
			r, err := parseCPURange(part)
			if err != nil {
				return nil, fmt.Errorf("%w: Cpus_allowed_list: %v", ErrPin, err)
			}
			cpus = append(cpus, r...)
		}
		return cpus, nil
	}
	return nil, fmt.Errorf("%w: no Cpus_allowed_list line", ErrPin)
}

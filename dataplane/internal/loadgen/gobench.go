package loadgen

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// GoBench is what Go benchmarks (`go test -bench` output, as make bench
// saves it) measured: per full benchmark name as go test prints it
// (BenchmarkX/sub=1) without the GOMAXPROCS suffix, each unit's mean over
// the runs of that name (-count). Names are not qualified by package.
type GoBench map[string]map[string]float64

// ReadGoBench reads the Go benchmark results in the file at path (with
// golang.org/x/perf/benchfmt, which also reads the lines that are not
// results, and skips them). Units are kept as the benchmarks print them
// (ns/op, cpu-ns/op, B/op).
func ReadGoBench(path string) (GoBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGoBench, err)
	}
	defer func() { _ = f.Close() }()
	sums := map[string]map[string]float64{}
	runs := map[string]map[string]int{}
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue // a syntax error or unit metadata: not a result
		}
		base, procs := res.Name.Full(), ""
		if _, parts := res.Name.Parts(); len(parts) > 0 && strings.HasPrefix(string(parts[len(parts)-1]), "-") {
			procs = string(parts[len(parts)-1])
		}
		// benchfmt drops the "Benchmark" every name starts with.
		name := "Benchmark" + strings.TrimSuffix(string(base), procs)
		if sums[name] == nil {
			sums[name], runs[name] = map[string]float64{}, map[string]int{}
		}
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, val = v.OrigUnit, v.OrigValue
			}
			sums[name][unit] += val
			runs[name][unit]++
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrGoBench, path, err)
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%w: %s: no benchmark result in it", ErrGoBench, path)
	}
	for name, units := range sums {
		for unit := range units {
			units[unit] /= float64(runs[name][unit])
		}
	}
	return sums, nil
}

// value is benchmark name's mean in unit, ok false when it did not run
// (or reported no such unit).
func (g GoBench) value(name, unit string) (float64, bool) {
	v, ok := g[name][unit]
	return v, ok
}

package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report as an aligned table, node and bare gws side
// by side, each target followed by ok or MISSED, then every error.
func WriteTable(w io.Writer, r *Report) error {
	s := r.Settings
	if _, err := fmt.Fprintf(w, "wsfleet-bench: node vs bare gws on loopback, %s, %d CPUs, started %s\n\n",
		r.GoVersion, r.CPUs, r.Started.Format(time.RFC3339)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("scenario", "measure", "node", "bare gws", "node vs gws", "target")
	row("--------", "-------", "----", "--------", "-----------", "------")

	if c := r.Idle; c != nil {
		measure := fmt.Sprintf("RSS per idle conn, %s conns", grouped(float64(s.IdleConns)))
		diff, target := "-", fmt.Sprintf("<= +%s B", grouped(c.TargetMaxDiff))
		if c.Node != nil && c.Echo != nil {
			diff = signedBytes(c.DiffBytesPerConn)
			target += " " + verdict(c.Met)
		}
		row(ScenarioIdle, measure, idleBytes(c.Node), idleBytes(c.Echo), diff, target)
		row("", "RSS before -> after", idleRSS(c.Node), idleRSS(c.Echo), "", "")
	}
	if c := r.Roundtrip; c != nil {
		measure := fmt.Sprintf("round trips/s, %d clients, %s in %d rounds", s.Clients, s.Duration, s.Rounds)
		ratio, target := "-", fmt.Sprintf(">= %.2f", c.Target)
		if c.Node != nil && c.Echo != nil {
			ratio = fmt.Sprintf("%.2f", c.Ratio)
			target += " " + verdict(c.Met)
		}
		row(ScenarioRoundtrip, measure, rtRate(c.Node), rtRate(c.Echo), ratio, target)
		row("", "latency p50 / p99", rtLatency(c.Node), rtLatency(c.Echo), "", "")
	}
	if f := r.Fanout; f != nil {
		row(ScenarioFanout, fmt.Sprintf("deliveries/s, %s subs x %s msgs", grouped(float64(f.Subscribers)), grouped(float64(f.Messages))),
			grouped(f.DeliveriesPerSecond), "-", "", "")
		row("", fmt.Sprintf("publish -> last delivery p50 / p99 / max, %d in flight", f.Window),
			fmt.Sprintf("%s / %s / %s", short(f.LatencyP50), short(f.LatencyP99), short(f.LatencyMax)), "-", "", "")
		row("", fmt.Sprintf("publish -> last delivery p50 / p99, 1 in flight (%d probes)", f.Probes),
			fmt.Sprintf("%s / %s", short(f.ProbeLatencyP50), short(f.ProbeLatencyP99)), "-", "", "")
	}
	if c := r.Handshake; c != nil {
		ratio := "-"
		if c.Node != nil && c.Echo != nil {
			ratio = fmt.Sprintf("%.2f", c.Ratio)
		}
		row(ScenarioHandshake, fmt.Sprintf("handshakes/s, %s over %d workers", grouped(float64(s.Handshakes)), s.Clients),
			hsRate(c.Node), hsRate(c.Echo), ratio, "")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range r.Errors {
		if _, err := fmt.Fprintf(w, "\nFAILED: %s\n", e); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func verdict(met bool) string {
	if met {
		return "ok"
	}
	return "MISSED"
}

func idleBytes(r *IdleResult) string {
	if r == nil {
		return "failed"
	}
	return grouped(r.BytesPerConn) + " B"
}

func idleRSS(r *IdleResult) string {
	if r == nil {
		return ""
	}
	return mib(r.RSSBefore) + " -> " + mib(r.RSSAfter)
}

func rtRate(r *RoundtripResult) string {
	if r == nil {
		return "failed"
	}
	return grouped(r.PerSecond)
}

func rtLatency(r *RoundtripResult) string {
	if r == nil {
		return ""
	}
	return short(r.LatencyP50) + " / " + short(r.LatencyP99)
}

func hsRate(r *HandshakeResult) string {
	if r == nil {
		return "failed"
	}
	return grouped(r.PerSecond)
}

// grouped renders v rounded to an integer with thousands separators.
func grouped(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	n := int64(math.Round(v))
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return sign + b.String()
}

func signedBytes(v float64) string {
	if v >= 0 {
		return "+" + grouped(v) + " B"
	}
	return grouped(v) + " B"
}

func mib(b int64) string {
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
}

// short rounds a duration to three significant figures.
func short(d time.Duration) string {
	unit := time.Duration(1)
	for v := d; v >= 1000; v /= 10 {
		unit *= 10
	}
	return d.Round(unit).String()
}

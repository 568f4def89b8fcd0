package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report as aligned tables, node and bare gws side
// by side, then the control plane's policy propagation, each target
// followed by ok or MISSED, then skipped scenarios and every error.
func WriteTable(w io.Writer, r *Report) error {
	if _, err := fmt.Fprintf(w, "wsfleet-bench: on loopback, %s, %d CPUs, started %s\n",
		r.GoVersion, r.CPUs, r.Started.Format(time.RFC3339)); err != nil {
		return err
	}
	if r.Idle != nil || r.Roundtrip != nil || r.Fanout != nil || r.Handshake != nil {
		if err := writeNodeTable(w, r); err != nil {
			return err
		}
	}
	if r.Propagation != nil {
		if err := writePropagationTable(w, r.Propagation, r.Settings.PropagationClients); err != nil {
			return err
		}
	}
	for _, s := range r.Skipped {
		if _, err := fmt.Fprintf(w, "\nskipped: %s\n", s); err != nil {
			return err
		}
	}
	for _, e := range r.Errors {
		if _, err := fmt.Fprintf(w, "\nFAILED: %s\n", e); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeTable prints the node against bare gws.
func writeNodeTable(w io.Writer, r *Report) error {
	s := r.Settings
	if _, err := io.WriteString(w, "\nnode vs bare gws\n\n"); err != nil {
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
	return tw.Flush()
}

// writePropagationTable prints the control plane's propagation runs, one
// block per fleet size; a target size that was asked for and failed shows
// as a missed target.
func writePropagationTable(w io.Writer, p *PropagationRuns, sizes []int) error {
	if _, err := io.WriteString(w, "\ncontrol plane: policy propagation to in-process policy clients"+
		" (ACK time = the client's Apply call, right before it sends the ACK)\n\n"); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("clients", "measure", "value", "target")
	row("-------", "-------", "-----", "------")
	for _, res := range p.Runs {
		target := ""
		if res.Clients == p.TargetClients {
			target = "p99 < " + short(p.TargetP99) + " " + verdict(res.LastAckP99 < p.TargetP99)
		}
		row(grouped(float64(res.Clients)), fmt.Sprintf("apply returned -> last ACK p50 / p99 / max, %d applies", res.Applies),
			fmt.Sprintf("%s / %s / %s", short(res.LastAckP50), short(res.LastAckP99), short(res.LastAckMax)), target)
		row("", "apply called -> last ACK p50 / p99",
			fmt.Sprintf("%s / %s", short(res.SentLastAckP50), short(res.SentLastAckP99)), "")
		row("", "apply returned -> each client's ACK p50 / p99",
			fmt.Sprintf("%s / %s (%s ACKs before the reply)", short(res.ClientP50), short(res.ClientP99), grouped(float64(res.EarlyAcks))), "")
		row("", "ApplyPolicy call p50 / p99", fmt.Sprintf("%s / %s", short(res.ApplyRPCP50), short(res.ApplyRPCP99)), "")
		row("", fmt.Sprintf("start: all on revision %d, %d gRPC connections", res.FirstRevision, res.Conns), short(res.SetupElapsed), "")
		if res.RSSWatching > 0 {
			row("", "control plane RSS before -> watching",
				fmt.Sprintf("%s -> %s (%s B per watcher)", mib(res.RSSBefore), mib(res.RSSWatching), signed(res.BytesPerWatcher)), "")
		}
	}
	if !p.Judged && slices.Contains(sizes, p.TargetClients) {
		row(grouped(float64(p.TargetClients)), "apply returned -> last ACK p99", "failed", "p99 < "+short(p.TargetP99)+" MISSED")
	}
	return tw.Flush()
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

func signedBytes(v float64) string { return signed(v) + " B" }

func signed(v float64) string {
	if v >= 0 {
		return "+" + grouped(v)
	}
	return grouped(v)
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

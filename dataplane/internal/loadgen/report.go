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
// by side (with the servers' CPU per operation), the node's fan-out at
// each window, the channel of 100,000 subscribers, the reconnect storm,
// then the fan-out
// through NATS beside the in-process one, then the control plane's policy
// propagation (embedded store and etcd replicas side by side), each target
// followed by ok or MISSED, each table followed by what its figures do not
// cover, then the goals of issue 10 in one table and those of issue 11 in
// another, skipped scenarios and every error.
func WriteTable(w io.Writer, r *Report) error {
	if _, err := fmt.Fprintf(w, "wsfleet-bench: on loopback, %s, %d CPUs, started %s\n",
		r.GoVersion, r.CPUs, r.Started.Format(time.RFC3339)); err != nil {
		return err
	}
	if err := writeSetup(w, r); err != nil {
		return err
	}
	if r.Idle != nil || r.Roundtrip != nil || r.Handshake != nil {
		if err := writeNodeTable(w, r); err != nil {
			return err
		}
	}
	if len(r.Fanout) > 0 {
		if err := writeFanoutTable(w, r.Fanout); err != nil {
			return err
		}
	}
	if r.BrokerChannel != nil {
		if err := writeBrokerChannelTable(w, r.BrokerChannel); err != nil {
			return err
		}
	}
	if r.Channel != nil {
		if err := writeChannelTable(w, r.Channel); err != nil {
			return err
		}
	}
	if r.Storm != nil {
		if err := writeStormTable(w, r.Storm); err != nil {
			return err
		}
	}
	if r.FanoutNATS != nil {
		if err := writeFanoutNATSTable(w, r.FanoutNATS, r.Settings); err != nil {
			return err
		}
	}
	var setups []*PropagationRuns
	for _, p := range []*PropagationRuns{r.Propagation, r.PropagationEtcd} {
		if p != nil {
			setups = append(setups, p)
		}
	}
	if len(setups) > 0 {
		if err := writePropagationTable(w, setups, r.Settings); err != nil {
			return err
		}
	}
	if len(r.Goals) > 0 {
		if err := writeGoals(w, 10, r.Goals, GoalsFootnote(r)); err != nil {
			return err
		}
	}
	if len(r.StormGoals) > 0 {
		if err := writeGoals(w, 11, r.StormGoals, ""); err != nil {
			return err
		}
	}
	if len(r.Issue12Goals) > 0 {
		if err := writeGoals(w, 12, r.Issue12Goals, Issue12Footnote); err != nil {
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

// writeSetup says where the servers and the load ran and the descriptor
// limit.
func writeSetup(w io.Writer, r *Report) error {
	where := "servers and load not pinned: they share every CPU (--pin auto pins them)"
	switch {
	case r.Pin.On():
		where = fmt.Sprintf("servers pinned to CPU %s, load (this process) to CPU %s", cpuList(r.Pin.Server), cpuList(r.Pin.Load))
	case r.PinNote != "":
		where = r.PinNote
	}
	if _, err := fmt.Fprintf(w, "%s\n", where); err != nil {
		return err
	}
	if r.Files.Needed > 0 {
		note := ""
		if r.Files.Note != "" {
			note = ": " + r.Files.Note
		}
		if _, err := fmt.Fprintf(w, "descriptor limit %s (hard %s), %s needed%s\n",
			grouped(float64(r.Files.Soft)), grouped(float64(r.Files.Hard)), grouped(float64(r.Files.Needed)), note); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeTable prints the node against bare gws.
func writeNodeTable(w io.Writer, r *Report) error {
	s := r.Settings
	if _, err := io.WriteString(w, "\nnode (full bench policy: origin, limits, pacing, UTF-8, metrics) vs bare gws (net/http + gws.Upgrader, default options)\n\n"); err != nil {
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
		row("", "server CPU per conn opened", idleCPU(c.Node), idleCPU(c.Echo), ratioOf(idleCPUPer(c.Node), idleCPUPer(c.Echo)), "")
	}
	if c := r.Roundtrip; c != nil {
		target := fmt.Sprintf("<= %.2fx", c.Target)
		cpuRatio := "-"
		if c.Node != nil && c.Echo != nil && c.CPURatio > 0 {
			cpuRatio = fmt.Sprintf("%.2fx", c.CPURatio)
			target += " " + verdict(c.Met)
		}
		row(ScenarioRoundtrip, fmt.Sprintf("server CPU per round trip, %d clients", s.Clients),
			rtCPU(c.Node), rtCPU(c.Echo), cpuRatio, target)
		ratio := "-"
		if c.Node != nil && c.Echo != nil {
			ratio = fmt.Sprintf("%.2f", c.Ratio)
		}
		row("", fmt.Sprintf("round trips/s, %s in %d rounds", s.Duration, s.Rounds), rtRate(c.Node), rtRate(c.Echo), ratio, "")
		row("", "latency p50 / p99", rtLatency(c.Node), rtLatency(c.Echo), "", "")
		row("", "CPU busy: server / load", rtBusy(c.Node), rtBusy(c.Echo), "", "")
	}
	if c := r.Handshake; c != nil {
		ratio, target := "-", fmt.Sprintf(">= %.2f", c.Target)
		if c.Node != nil && c.Echo != nil {
			ratio = fmt.Sprintf("%.2f", c.Ratio)
			target += " " + verdict(c.Met)
		}
		row(ScenarioHandshake, fmt.Sprintf("handshakes/s, %s over %d workers in %d rounds", grouped(float64(s.Handshakes)), s.Clients, s.Rounds),
			hsRate(c.Node), hsRate(c.Echo), ratio, target)
		cpuRatio := "-"
		if c.CPURatio > 0 {
			cpuRatio = fmt.Sprintf("%.2fx", c.CPURatio)
		}
		row("", "server CPU per handshake", hsCPU(c.Node), hsCPU(c.Echo), cpuRatio, "")
		row("", "CPU busy: server / load", hsBusy(c.Node), hsBusy(c.Echo), "", "")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
Server CPU: utime + stime of the server process (/proc/PID/stat, 10 ms
ticks) over exactly the measured phase; "CPU busy" is that over the phase's
wall time (100% = one CPU), for the server and for this process, the load.
The round trip is judged on CPU per operation: when the load shares the
machine, round trips/s says as much about the load as about the server.
Not covered: the kernel's loopback work not charged to either process.
`)
	return err
}

// writeFanoutTable prints the node's fan-out runs, one column per window.
func writeFanoutTable(w io.Writer, runs []FanoutResult) error {
	if _, err := fmt.Fprintf(w, "\nfan-out on the node: 1 publisher -> %s subscribers on one channel, by messages in flight\n\n",
		grouped(float64(runs[0].Subscribers))); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	line := func(measure string, render func(*FanoutResult) string) {
		cells := []string{measure}
		for i := range runs {
			cells = append(cells, render(&runs[i]))
		}
		row(cells...)
	}
	line("measure", func(f *FanoutResult) string { return fmt.Sprintf("%d in flight", f.Window) })
	line("-------", func(f *FanoutResult) string { return strings.Repeat("-", len(fmt.Sprintf("%d in flight", f.Window))) })
	line("messages x subscribers = deliveries", deliveries)
	line("deliveries/s", func(f *FanoutResult) string { return grouped(f.DeliveriesPerSecond) })
	line("server CPU per delivery", cpuPerDelivery)
	line("server CPU / loaded phase", cpuOverElapsed)
	line("CPU busy: server / load", func(f *FanoutResult) string { return busy(f.ServerCPU, f.LoadCPU, f.Elapsed) })
	line("publish -> last delivery p50 / p99 / max", loadedLatency)
	line("publish -> last delivery p50 / p99, probes 1 at a time", probeLatency)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
Publishing stops at --fanout-messages or --duration. Not covered: the
bench's subscribers read every delivery on the load CPUs; when those are
busy (load near 100%), deliveries/s is the load's ceiling, not the node's,
and CPU per delivery is the node's figure.
`)
	return err
}

// writeChannelTable prints the channel of many subscribers.
func writeChannelTable(w io.Writer, c *ChannelResult) error {
	if _, err := fmt.Fprintf(w, "\none channel, %s subscribers on a node of its own\n\n", grouped(float64(c.Subscribers))); err != nil {
		return err
	}
	if c.Limited != "" {
		if _, err := fmt.Fprintf(w, "%s\n\n", wrap(c.Limited, 78)); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("measure", "node")
	row("-------", "----")
	row("connections opened (none subscribed)", fmt.Sprintf("%s in %s, server RSS %s", grouped(float64(c.Subscribers)), short(c.OpenElapsed), mib(c.RSSOpen)))
	if !c.SubscribeComplete {
		row("build: first subscribe -> last ack", fmt.Sprintf("not done in %s: %s of %s acked", short(c.SubscribeElapsed),
			grouped(float64(c.Subscribed)), grouped(float64(c.Subscribers))))
	} else {
		row("build: first subscribe -> last ack", fmt.Sprintf("%s (%s subscriptions/s)", short(c.SubscribeElapsed),
			grouped(float64(c.Subscribers)/c.SubscribeElapsed.Seconds())))
		row("server CPU per subscription", nanos(c.CPUPerSubscription))
		row("memory per subscription", fmt.Sprintf("%s RSS (%s -> %s)", signedBytes(c.BytesPerSubscription), mib(c.RSSOpen), mib(c.RSSSubscribed)))
		switch {
		case c.DeliveryComplete:
			row("one publish -> last delivery", fmt.Sprintf("%s (%s deliveries)", short(c.DeliveryElapsed), grouped(float64(c.Delivered))))
			row("server CPU per delivery", nanos(c.CPUPerDelivery))
		default:
			row("one publish -> last delivery", fmt.Sprintf("not done in %s: %s of %s delivered", short(c.DeliveryElapsed),
				grouped(float64(c.Delivered)), grouped(float64(c.Subscribers))))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
Build: every subscribe is written at once (16 writers) and the node
acknowledges each; timed from the first written to the last
acknowledgement read, so it includes the load's writing and reading.
Memory: server RSS with every subscription minus with none, the same
connections open, each read after --settle. Not covered: more than one
channel per connection, unsubscribing.
`)
	return err
}

// writeBrokerChannelTable prints the broker-alone channel.
func writeBrokerChannelTable(w io.Writer, c *BrokerChannelResult) error {
	n := float64(c.Subscribers)
	if _, err := fmt.Fprintf(w, "\none channel, %s subscribers, the node's broker alone (in this process, no sockets)\n\n", grouped(n)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("measure", "broker")
	row("-------", "------")
	row("build: first subscribe -> last", fmt.Sprintf("%s (%s per subscribe)", short(c.Build), nanos(float64(c.Build.Nanoseconds())/n)))
	row("memory per subscription", fmt.Sprintf("%s Go heap", signedBytes(c.BytesPerSubscription)))
	row("one publish -> every Deliver returned", fmt.Sprintf("%s (%s deliveries)", short(c.Publish), grouped(float64(c.Delivered))))
	row("unsubscribe all", fmt.Sprintf("%s (%s per unsubscribe)", short(c.Unsubscribe), nanos(float64(c.Unsubscribe.Nanoseconds())/n)))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
The data structure alone (dataplane/broker.InProcess): subscribers that
count deliveries, one goroutine. Not covered: the wire (a subscribe frame
read and its acknowledgement written), which the next table measures.
`)
	return err
}

// writeGoals prints the goals of an issue with their measured figures.
func writeGoals(w io.Writer, issue int, goals []Goal, footnote string) error {
	if _, err := fmt.Fprintf(w, "\ngoals (issue %d), measured in this run\n\n", issue); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("goal", "measured", "target", "")
	row("----", "--------", "------", "")
	for _, g := range goals {
		row(g.Goal, g.Measured, g.Target, g.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if footnote != "" {
		if _, err := fmt.Fprintf(w, "\n%s\n", wrap(footnote, 78)); err != nil {
			return err
		}
	}
	return nil
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// busy renders server / load CPU over elapsed as percentages of one CPU.
func busy(server, load, elapsed time.Duration) string {
	if elapsed <= 0 || server == 0 && load == 0 {
		return "-"
	}
	pct := func(d time.Duration) string {
		return strconv.Itoa(int(math.Round(100*float64(d)/float64(elapsed)))) + "%"
	}
	return pct(server) + " / " + pct(load)
}

// ratioOf renders a / b as "1.23x", "-" without both.
func ratioOf(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// writeFanoutNATSTable prints the fan-out through NATS beside the one on
// the node alone.
func writeFanoutNATSTable(w io.Writer, c *FanoutComparison, s Settings) error {
	if _, err := fmt.Fprintf(w, "\nchannels across nodes: fan-out on one node (in-process broker) vs two nodes sharing channels through NATS\n"+
		"(%s subscribers, up to %s messages, %d in flight)\n\n", grouped(float64(s.FanoutSubs)), grouped(float64(s.FanoutMessages)), slices.Max(s.FanoutWindows)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	cell := func(f *FanoutResult, render func(*FanoutResult) string) string {
		if f == nil {
			return "failed"
		}
		return render(f)
	}
	row("measure", "in-process (1 node)", "NATS (2 nodes + nats-server)")
	row("-------", "-------------------", "----------------------------")
	row("messages x subscribers = deliveries",
		cell(c.InProcess, deliveries), cell(c.NATS, deliveries))
	row("deliveries/s",
		cell(c.InProcess, func(f *FanoutResult) string { return grouped(f.DeliveriesPerSecond) }),
		cell(c.NATS, func(f *FanoutResult) string { return grouped(f.DeliveriesPerSecond) }))
	row("server CPU per delivery",
		cell(c.InProcess, cpuPerDelivery),
		cell(c.NATS, func(f *FanoutResult) string {
			return cpuPerDelivery(f) + fmt.Sprintf(" (nats-server %s)", nanos(float64(c.NATSServerCPU)/float64(max(f.Deliveries, 1))))
		}))
	row("server CPU / loaded phase",
		cell(c.InProcess, cpuOverElapsed), cell(c.NATS, cpuOverElapsed))
	row(fmt.Sprintf("publish -> last delivery p50 / p99 / max, %d in flight", slices.Max(s.FanoutWindows)),
		cell(c.InProcess, loadedLatency), cell(c.NATS, loadedLatency))
	row("publish -> last delivery p50 / p99, 1 in flight",
		cell(c.InProcess, probeLatency), cell(c.NATS, probeLatency))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
in-process: every subscriber and the publisher on one node. NATS: subscribers
split over two nodes, the publisher on the first; every message goes through
nats-server, to each node once, and each node fans out to its subscribers.
Server CPU: utime + stime of the servers (the node; the two nodes and
nats-server) from the first measured publish to the last delivery, from
/proc/PID/stat in 10 ms ticks. Not covered: the bench's own WebSocket clients
(every delivery is also read by them, on the same CPUs), the kernel's loopback
work not charged to the servers, and a real network between the nodes and
NATS (here loopback, one machine).
`)
	return err
}

func deliveries(f *FanoutResult) string {
	return fmt.Sprintf("%s x %s = %s", grouped(float64(f.Messages)), grouped(float64(f.Subscribers)), grouped(float64(f.Deliveries)))
}

func cpuPerDelivery(f *FanoutResult) string { return nanos(f.CPUPerDelivery) }

func cpuOverElapsed(f *FanoutResult) string {
	return short(f.ServerCPU) + " / " + short(f.Elapsed)
}

func loadedLatency(f *FanoutResult) string {
	return fmt.Sprintf("%s / %s / %s", short(f.LatencyP50), short(f.LatencyP99), short(f.LatencyMax))
}

func probeLatency(f *FanoutResult) string {
	return fmt.Sprintf("%s / %s", short(f.ProbeLatencyP50), short(f.ProbeLatencyP99))
}

// nanos renders a float number of nanoseconds to three figures.
func nanos(ns float64) string {
	if math.IsNaN(ns) || math.IsInf(ns, 0) {
		return "-"
	}
	return short(time.Duration(math.Round(ns)))
}

// writePropagationTable prints the control plane's propagation runs, the
// setups (embedded store, etcd replicas) side by side, one block per fleet
// size; a target size that was asked for and failed shows as a missed
// target.
func writePropagationTable(w io.Writer, setups []*PropagationRuns, s Settings) error {
	if _, err := fmt.Fprintf(w, "\ncontrol plane: policy propagation to in-process policy clients (sdk/policyclient), %d applies per fleet size\n\n",
		s.PropagationApplies); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	head, rule := []string{"clients", "measure"}, []string{"-------", "-------"}
	for _, p := range setups {
		head, rule = append(head, p.Setup), append(rule, strings.Repeat("-", len(p.Setup)))
	}
	row(append(head, "target")...)
	row(append(rule, "------")...)

	// Every size asked for, then any other a setup ran.
	sizes := slices.Clone(s.PropagationClients)
	for _, p := range setups {
		for _, res := range p.Runs {
			if !slices.Contains(sizes, res.Clients) {
				sizes = append(sizes, res.Clients)
			}
		}
	}
	for _, n := range sizes {
		results := make([]*PropagationResult, len(setups))
		for i, p := range setups {
			if k := slices.IndexFunc(p.Runs, func(r PropagationResult) bool { return r.Clients == n }); k >= 0 {
				results[i] = &p.Runs[k]
			}
		}
		// line prints one measure of every setup; the block's first line
		// names the size and carries the target.
		first := true
		line := func(measure, target string, render func(*PropagationResult) string) {
			cells := []string{"", measure}
			if first {
				cells[0], first = grouped(float64(n)), false
			}
			for _, res := range results {
				if res == nil {
					cells = append(cells, "failed")
				} else {
					cells = append(cells, render(res))
				}
			}
			row(append(cells, target)...)
		}
		target := ""
		if n == setups[0].TargetClients {
			var verdicts []string
			for i, p := range setups {
				verdicts = append(verdicts, verdict(results[i] != nil && p.Met))
			}
			target = "max < " + short(setups[0].TargetMax) + " " + strings.Join(verdicts, " / ")
		}
		line("apply called -> last ACK received, p50 / max", target, func(r *PropagationResult) string {
			return fmt.Sprintf("%s / %s", short(r.ReceivedLastP50), short(r.ReceivedLastMax))
		})
		line("apply called -> each ACK received, p50 / p99", "", func(r *PropagationResult) string {
			return fmt.Sprintf("%s / %s", short(r.ReceivedEachP50), short(r.ReceivedEachP99))
		})
		line("ApplyPolicy call, p50 / max", "", func(r *PropagationResult) string {
			return fmt.Sprintf("%s / %s", short(r.ApplyRPCP50), short(r.ApplyRPCMax))
		})
		line("start: every client on the head", "", func(r *PropagationResult) string {
			return fmt.Sprintf("%s (%d gRPC conns)", short(r.SetupElapsed), r.Conns)
		})
		line("control plane RSS before -> watching", "", func(r *PropagationResult) string {
			if r.RSSWatching == 0 {
				return "-"
			}
			return fmt.Sprintf("%s -> %s (%s B/watcher)", mib(r.RSSBefore), mib(r.RSSWatching), signed(r.BytesPerWatcher))
		})
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	etcd := ""
	if slices.ContainsFunc(setups, func(p *PropagationRuns) bool { return strings.HasPrefix(p.Setup, "etcd") }) {
		etcd = "\netcd: one member on this machine, started by the bench (--etcd-bin); the replicas' RSS is\nadded up."
	}
	_, err := fmt.Fprintf(w, `
Measured from just before the ApplyPolicy call to the control plane receiving
each client's ACK: the node's last_ack_time in ListNodes, stamped by the
replica the client watches when the ACK arrives (bench and control plane read
one clock: one machine). p50 and max over the applies (a p99 of %d is their
max). Applies go to the first replica; the clients are spread evenly over the
replicas, several hundred to a gRPC connection (a real node has its own).%s
Not covered: a real node's own apply (the clients' Apply only takes the time),
a network between replicas, etcd and nodes (loopback), an etcd cluster of
several members.
`, s.PropagationApplies, etcd)
	return err
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

func idleCPUPer(r *IdleResult) float64 {
	if r == nil {
		return 0
	}
	return r.CPUPerConn
}

func idleCPU(r *IdleResult) string {
	if r == nil || r.OpenServerCPU == 0 {
		return "-"
	}
	return nanos(r.CPUPerConn)
}

func rtCPU(r *RoundtripResult) string {
	if r == nil {
		return "failed"
	}
	if r.ServerCPU == 0 {
		return "-"
	}
	return nanos(r.CPUPerRoundTrip)
}

func rtBusy(r *RoundtripResult) string {
	if r == nil {
		return ""
	}
	return busy(r.ServerCPU, r.LoadCPU, r.Elapsed)
}

func hsCPU(r *HandshakeResult) string {
	if r == nil || r.ServerCPU == 0 {
		return "-"
	}
	return nanos(r.CPUPerHandshake)
}

func hsBusy(r *HandshakeResult) string {
	if r == nil {
		return ""
	}
	return busy(r.ServerCPU, r.LoadCPU, r.Elapsed)
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

// writeStormTable prints the reconnect storm.
func writeStormTable(w io.Writer, r *StormResult) error {
	if _, err := fmt.Fprintf(w, "\nreconnect storm: %s sdk/wsclient clients, the node restarted (SIGKILL, same address)\n\n", grouped(float64(r.Clients))); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { _, _ = fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("measure", "node")
	row("-------", "----")
	row("policy: handshakes/s + burst", fmt.Sprintf("%s + %s = %s/s", grouped(float64(r.Rate)), grouped(float64(r.Burst)), grouped(float64(r.Limit()))))
	row("all connected at the start", short(r.Connected))
	row("node down (kill -> serving again)", short(r.Down))
	if r.AllBack {
		row("all back (kill -> last welcome)", short(r.BackAfter))
	} else {
		row("all back (kill -> last welcome)", fmt.Sprintf("not all: %s of %s back", grouped(float64(r.Back)), grouped(float64(r.Clients))))
	}
	row("peak accepted handshakes/s at the node", fmt.Sprintf("%s (limit %s)", grouped(r.PeakAccepted), grouped(float64(r.Limit()))))
	row("peak handshakes/s at the node, refused included", grouped(r.PeakAttempts))
	row("handshakes refused while they came back", grouped(r.Rejected))
	row("clients that gave up", strconv.Itoa(r.GaveUp))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `
Every client is an sdk/wsclient client with its defaults (full-jitter
backoff 500ms -> 20s, honouring Retry-After), all from one process on
loopback; the node is killed 6s after the last one connected, past
wsclient's StableAfter (5s), so every client's backoff has started over.
Accepted handshakes are judged against the policy's rate + burst; refused
ones (429, which cost the node no upgrade) are counted beside them: the
first wave after a restart comes within the clients' first backoff
(0-500ms), faster than any rate limit admits.
Peaks are per one-second window of the node's
wsfleet_node_handshakes_total, read every second from the restart on.
`)
	return err
}

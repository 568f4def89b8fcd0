package loadgen

import (
	"fmt"
	"strconv"
)

// Goal is one target of issue 10 beside what a run measured.
type Goal struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	// Status is ok or MISSED against the target; "not measured" when the
	// scenario did not run or failed; "-" for a figure the issue asks to
	// state, with no target.
	Status string `json:"status"`
}

const (
	statusNotMeasured = "not measured"
	statusStated      = "-"
)

// Goals lists every goal of issue 10 with the figure rep measured for it,
// in the order.
func Goals(rep *Report) []Goal {
	var out []Goal
	add := func(goal, target string, measured func() (string, string)) {
		g := Goal{Goal: goal, Target: target, Measured: "-", Status: statusNotMeasured}
		if m, st := measured(); st != "" {
			g.Measured, g.Status = m, st
		}
		out = append(out, g)
	}

	fan := fanoutRun(rep.Fanout, TargetFanoutWindow)
	fanGoal := fmt.Sprintf("fan-out 1 -> %s, %d in flight", grouped(TargetFanoutSubscribers), TargetFanoutWindow)
	if fan != nil && fan.Subscribers != TargetFanoutSubscribers {
		fanGoal = fmt.Sprintf("fan-out 1 -> %s (not %s), %d in flight", grouped(float64(fan.Subscribers)), grouped(TargetFanoutSubscribers), TargetFanoutWindow)
	}
	add(fanGoal+": deliveries/s", ">= "+grouped(TargetFanoutDeliveries), func() (string, string) {
		if fan == nil {
			return "", ""
		}
		return grouped(fan.DeliveriesPerSecond), verdict(fan.DeliveriesPerSecond >= TargetFanoutDeliveries)
	})
	add(fanGoal+": server CPU per delivery", "<= "+short(TargetFanoutCPU), func() (string, string) {
		if fan == nil || fan.ServerCPU == 0 {
			return "", ""
		}
		return nanos(fan.CPUPerDelivery), verdict(fan.CPUPerDelivery <= float64(TargetFanoutCPU))
	})

	add("round trip: server CPU per round trip, node / bare gws", fmt.Sprintf("<= %.2fx", TargetRoundtripCPURatio), func() (string, string) {
		c := rep.Roundtrip
		if c == nil || c.Node == nil || c.Echo == nil || c.CPURatio == 0 {
			return "", ""
		}
		return fmt.Sprintf("%.2fx (%s / %s)", c.CPURatio, nanos(c.Node.CPUPerRoundTrip), nanos(c.Echo.CPUPerRoundTrip)), verdict(c.Met)
	})

	add("idle: RSS per connection, node - bare gws", "<= +"+grouped(TargetIdleDiffBytes)+" B", func() (string, string) {
		c := rep.Idle
		if c == nil || c.Node == nil || c.Echo == nil {
			return "", ""
		}
		return fmt.Sprintf("%s (%s / %s B)", signedBytes(c.DiffBytesPerConn), grouped(c.Node.BytesPerConn), grouped(c.Echo.BytesPerConn)), verdict(c.Met)
	})

	add("handshakes/s, node / bare gws", fmt.Sprintf(">= %.2f", TargetHandshakeRatio), func() (string, string) {
		c := rep.Handshake
		if c == nil || c.Node == nil || c.Echo == nil {
			return "", ""
		}
		return fmt.Sprintf("%.2f (%s / %s)", c.Ratio, grouped(c.Node.PerSecond), grouped(c.Echo.PerSecond)), verdict(c.Met)
	})

	bc := rep.BrokerChannel
	bcGoal := fmt.Sprintf("%s subscribers on one channel, the broker alone", grouped(TargetChannelSubscribers))
	if bc != nil && bc.Subscribers != TargetChannelSubscribers {
		bcGoal = fmt.Sprintf("%s (not %s) subscribers on one channel, the broker alone", grouped(float64(bc.Subscribers)), grouped(TargetChannelSubscribers))
	}
	add(bcGoal+": built", "< "+short(TargetChannelBuild), func() (string, string) {
		if bc == nil {
			return "", ""
		}
		return short(bc.Build), verdict(bc.Build < TargetChannelBuild && bc.Subscribers >= TargetChannelSubscribers)
	})
	add(bcGoal+": memory per subscription", "stated", func() (string, string) {
		if bc == nil {
			return "", ""
		}
		return signedBytes(bc.BytesPerSubscription) + " Go heap", statusStated
	})

	ch := rep.Channel
	chGoal := fmt.Sprintf("%s subscribers on one channel over WebSockets", grouped(TargetChannelSubscribers))
	// A smaller channel (too few descriptors, or asked for) is judged by
	// its rate: the target's subscribers in the target's time.
	scaled := ch != nil && ch.Subscribers != TargetChannelSubscribers
	minRate := float64(TargetChannelSubscribers) / TargetChannelBuild.Seconds()
	buildTarget := "< " + short(TargetChannelBuild)
	if scaled {
		buildTarget += fmt.Sprintf(" (>= %s/s)", grouped(minRate))
	}
	add(chGoal+": built (first subscribe -> last ack)", buildTarget, func() (string, string) {
		if ch == nil {
			return "", ""
		}
		if !ch.SubscribeComplete {
			return fmt.Sprintf("> %s (%s of %s acked)", short(ch.SubscribeElapsed), grouped(float64(ch.Subscribed)), grouped(float64(ch.Subscribers))), verdict(false)
		}
		if scaled {
			rate := float64(ch.Subscribers) / ch.SubscribeElapsed.Seconds()
			return fmt.Sprintf("%s for %s* (%s/s)", short(ch.SubscribeElapsed), grouped(float64(ch.Subscribers)), grouped(rate)), verdict(rate >= minRate)
		}
		return short(ch.SubscribeElapsed), verdict(ch.SubscribeElapsed < TargetChannelBuild)
	})
	add(chGoal+": memory per subscription", "stated", func() (string, string) {
		if ch == nil || !ch.SubscribeComplete {
			return "", ""
		}
		return signedBytes(ch.BytesPerSubscription) + " RSS" + star(scaled), statusStated
	})
	add(chGoal+": one publish -> last delivery", "stated", func() (string, string) {
		if ch == nil || !ch.SubscribeComplete {
			return "", ""
		}
		if !ch.DeliveryComplete {
			return fmt.Sprintf("> %s (%s of %s delivered)", short(ch.DeliveryElapsed), grouped(float64(ch.Delivered)), grouped(float64(ch.Subscribers))), statusStated
		}
		return fmt.Sprintf("%s to %s%s", short(ch.DeliveryElapsed), grouped(float64(ch.Subscribers)), star(scaled)), statusStated
	})
	return out
}

// fanoutRun is the fan-out run with window w, nil if there is none.
func fanoutRun(runs []FanoutResult, w int) *FanoutResult {
	for i := range runs {
		if runs[i].Window == w {
			return &runs[i]
		}
	}
	return nil
}

func star(on bool) string {
	if on {
		return "*"
	}
	return ""
}

// GoalsFootnote explains a goal measured on a smaller channel than the
// issue's ("" when none was).
func GoalsFootnote(rep *Report) string {
	ch := rep.Channel
	if ch == nil || ch.Subscribers == TargetChannelSubscribers {
		return ""
	}
	why := ch.Limited
	if why == "" {
		why = fmt.Sprintf("%s subscribers, as asked (--channel-subs)", grouped(float64(ch.Subscribers)))
	}
	return fmt.Sprintf("* %s. The build is judged as a rate, which carries over to %s only if a subscribe costs the same "+
		"whatever the channel's size; the memory per subscription carries over as it is; the publish takes longer with more subscribers.",
		why, grouped(TargetChannelSubscribers))
}

// TargetStormClients is the reconnect storm's size in issue 11.
const TargetStormClients = 5000

// StormGoals lists the goals of issue 11's reconnect storm with what rep
// measured for them.
func StormGoals(rep *Report) []Goal {
	st := rep.Storm
	name := fmt.Sprintf("reconnect storm, %s clients, node restarted", grouped(TargetStormClients))
	if st != nil && st.Clients != TargetStormClients {
		name = fmt.Sprintf("reconnect storm, %s clients (not %s), node restarted", grouped(float64(st.Clients)), grouped(TargetStormClients))
	}
	measured := st != nil && st.Clients > 0 && st.Back > 0
	limit := "<= rate + burst"
	if st != nil {
		limit = fmt.Sprintf("<= rate + burst (%s)", grouped(float64(st.Limit())))
	}
	return []Goal{
		goalOf(name+": time until all are back", "stated", measured, func() (string, string) {
			if !st.AllBack {
				return fmt.Sprintf("> %s (%s of %s back)", short(st.BackAfter), grouped(float64(st.Back)), grouped(float64(st.Clients))), statusStated
			}
			return short(st.BackAfter), statusStated
		}),
		goalOf(name+": peak handshakes/s at the node", limit, measured, func() (string, string) {
			return fmt.Sprintf("%s accepted, %s with refused", grouped(st.PeakAccepted), grouped(st.PeakAttempts)), verdict(st.Within)
		}),
		goalOf(name+": clients that gave up", "0", measured, func() (string, string) {
			return strconv.Itoa(st.GaveUp), verdict(st.GaveUp == 0 && st.AllBack)
		}),
	}
}

// goalOf is a goal measured by figure when measured, else "not measured".
func goalOf(goal, target string, measured bool, figure func() (string, string)) Goal {
	g := Goal{Goal: goal, Target: target, Measured: "-", Status: statusNotMeasured}
	if measured {
		g.Measured, g.Status = figure()
	}
	return g
}

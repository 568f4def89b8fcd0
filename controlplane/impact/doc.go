// Package impact computes a policy's dry-run impact (PolicyImpact): what
// it would have done to the pool's last hour of traffic, from the nodes'
// telemetry.
//
//   - newly_rejected: origins whose handshakes nodes accepted in the window
//     (traffic samples, FleetService.TrafficSummary) that the head policy
//     admits and the new allowlist does not, with their accepted count.
//   - newly_admitted: origins rejected as origin_rejected in the window
//     (error counts, FleetService.TopErrors grouped by origin) that the
//     head policy refuses and the new allowlist admits, with their count.
//   - limits: each limit of the new policy against the highest value any
//     node saw in the window.
//
// Samples are counted under the pool whose policy the node enforced (a
// node of a pool without its own policy counts under default); rejections
// under the node's own pool. What the figures do not cover: accepted
// handshakes a node could not attribute to an origin (its per-minute
// origin cap; reported as unattributed_accepted), rejections counted under
// the "(other)" origin of the control plane's aggregates, and handshakes
// refused for another reason (rate, capacity) that the new policy would
// refuse or admit differently.
//
// Impact is a function of its inputs alone (Compute); Source fetches them
// with the caller's context, across replicas when the source fans out. It
// starts no goroutines.
package impact

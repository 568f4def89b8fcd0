// Package rollout decides baking canary rollouts: every control-plane
// replica runs an Evaluator, which every Config.Interval looks at each
// pool whose head is a baking canary (a revision carrying a RolloutSpec,
// see policyserver) and compares, per error class, the events of the
// canary nodes (those the selector matches, counted only while they ran
// the canary revision) with the events of the pool's other nodes since the
// canary was stored, as rates per node per minute, fleet-wide (through
// the same event queries FleetService answers: with several replicas,
// every replica's telemetry). Expected closes (normal, client_going_away,
// server_shutdown, node_draining) never count.
//
// A class is worse on the canary when the canary nodes recorded at least
// min_samples events of it and their rate exceeds max_ratio times the
// rest's (any rate when the rest's is 0). A worse class, or a canary node
// that refused (NACKed) the canary revision, rolls the canary back at
// once; a bake that elapsed with no class worse promotes it, provided at
// least one canary node runs the canary revision (no evidence is no
// promotion). When the
// comparison may miss part of the fleet's telemetry (a replica did not
// answer) the evaluator never promotes — it waits, and GetRollout says so
// in degraded — but it does roll back on the evidence it has.
//
// Decisions are written through Ender (policyserver.Server.EndRollout): a
// compare-and-set on the canary revision, so when several replicas decide
// at once exactly one revision ends the rollout and the others see the
// conflict; the state lives in the store, so a replica that restarts or
// takes over carries on where another left off.
//
// Goroutines: Run owns one goroutine (its caller's) and returns when its
// context ends; Compare may be called concurrently from GetRollout. Both
// block on the store, the node list and the event queries, each call
// bounded by Config.Timeout.
package rollout

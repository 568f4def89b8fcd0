// Package traffic counts what a node accepted, per sample interval, for
// the control plane's dry-run impact: accepted handshakes per origin and
// the peaks of everything the policy's limits bound (connections, per-IP
// connections, handshakes per second, messages per second of one
// connection, message bytes). Cut turns the counts into a TrafficSample
// and starts the next interval.
//
// # Bounds
//
// A Collector counts at most Config.MaxOrigins distinct origins per
// interval, first come first counted: once full, the handshakes of origins
// it has no entry for are counted in accepted_other only. First-come keeps
// the per-handshake work one map lookup; the busiest origins of a minute
// nearly always show up within its first handshakes, and the control plane
// reports the unattributed count beside the impact so that an operator
// sees how much of the traffic the per-origin figures miss.
//
// # Concurrency
//
// Every method is safe for concurrent use. Accepted (once per accepted
// handshake) takes one short mutex. MessageRate and MessageBytes, on the
// per-message path, read one shared word each and write it only when they
// raise a peak (compare-and-swap), which after the first second of an
// interval is rare; the per-connection count of the current second lives
// in the caller's own per-connection state. Cut takes the mutex and swaps the
// peaks. The package starts no goroutines: the node cuts on a timer.
package traffic

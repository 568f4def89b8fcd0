// Package admin is the Go client for the control plane's admin API
// (PolicyService and FleetService), the one wsctl is built on.
//
// Dial is non-blocking: it validates the configuration, loads TLS material and
// returns at once; the connection is made on the first call and re-made after
// failures by gRPC. Every call takes its deadline from its context, so callers
// bound each call (wsctl uses --timeout). A Client is safe for concurrent use;
// Close it when done, which stops gRPC's background goroutines.
//
// Policy and Fleet are the generated clients; Recover wraps RecoverPolicy,
// the call that restores a pool's policy from what the fleet runs after the
// control plane lost its store.
//
// FieldViolations and Conflict decode the structured errors the control plane
// returns, so callers can show every invalid field of a refused policy and
// tell a stale write from any other refusal.
package admin

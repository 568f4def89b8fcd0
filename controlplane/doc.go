// Package controlplane is the wsfleet control plane: a gRPC server for the
// policy API (and, as the fleet loop lands, node watch and telemetry), with
// an embedded bbolt store, token auth, Prometheus metrics, gRPC health
// checking and server reflection.
//
// Lifecycle: New validates the Config, opens the store and binds both
// listeners (so a port in use fails at once and tests may bind port 0);
// Run serves until its context is cancelled, then stops gracefully within
// Config.ShutdownTimeout and closes the store. Run owns every goroutine it
// starts and returns only after they have ended.
//
// A request on the policy path: interceptors (metrics → logging → auth →
// recovery) → policyserver → store.
package controlplane

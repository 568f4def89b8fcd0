// Package controlplane is the wsfleet control plane: a gRPC server for the
// policy API, the node watch (registry) and telemetry ingest and queries,
// over a policy store (embedded bbolt by default, or etcd shared by
// several replicas), with token auth, Prometheus metrics, gRPC health
// checking and server reflection.
//
// Lifecycle: New validates the Config, opens the store and binds both
// listeners (so a port in use fails at once and tests may bind port 0);
// Run starts the store's watch of pool heads, serves until its context is
// cancelled, then stops gracefully within Config.ShutdownTimeout, ends the
// watch and closes the store. Run owns every goroutine it
// starts and returns only after they have ended. New starts no goroutine;
// when it fails it has released whatever it had built (Close is safe on a
// partly built Server) and its error is the cause, with what to do when
// the store is the problem.
//
// The store (Config.Store): bolt, one file in DataDir, or etcd, a key
// prefix in an etcd cluster that any number of replicas share. A missing
// policy.db, or an empty prefix, is created as a new store (logged with
// its identity); an existing one that is empty, damaged, not a wsfleet
// store, locked by another process or unreachable makes New fail instead
// of starting: a lost store never silently becomes a fresh one at
// revision 1. InitStore creates a store explicitly (wsfleet-control
// --init).
//
// The push follows the store: apply → policyserver → store → the store's
// watch of pool heads (store.Store.WatchHeads, started by Run) → registry
// (Registry.Follow) → every watching node. Nothing in this process hands
// its own commits to the registry, so a revision committed through any
// replica sharing the store reaches the nodes of every replica the same
// way.
//
// Replicas (the etcd store only): every replica answers for the whole
// fleet. It registers itself in etcd under a lease (package replicas,
// --lease-ttl, --advertise-addr), writes the status of the nodes attached
// to it there, coalesced, and keeps a copy of every other replica's
// (package registry/etcdstatus), so that ListNodes lists every node; the
// event queries (QueryEvents, TopErrors, TailEvents) ask every other
// registered replica too, forwarding the caller's credentials (package
// telemetry/fanout, --peer-timeout). Run starts both and, when it stops,
// writes the last statuses and revokes the lease before the store closes.
// With bolt, node status stays in this process as it always was.
//
// Canary rollouts: the state is in the revision history (a canary revision
// carries its RolloutSpec, the next one its RolloutOutcome), so every
// replica sees it through the store's watch. Every replica runs the
// rollout evaluator (package rollout, --rollout-interval) in a goroutine
// Run owns; it reads the pool's nodes from the registry's merged view and
// the events through the same queries as FleetService (every replica's,
// with --peer-token-file as its credential when tokens are on), and ends a
// rollout through policyserver.EndRollout, whose compare-and-set on the
// canary revision lets one replica's decision win.
//
// A request on the policy path: interceptors (metrics → logging → auth →
// recovery) → policyserver → store. A node's watch: NodeService.Watch →
// registry; its telemetry: NodeService.ReportTelemetry → telemetry. A
// backend publish: PublishService.Publish (or POST /v1/publish on the HTTP
// listener, same tokens) → publish → NATS when configured, else the
// delivery streams (NodeService.Deliveries) of the pool's attached nodes.
// Auth
// stores the caller's identity (token entry, client certificate or dev) in
// the context; the registry and telemetry check what a node says it is
// against it (auth.AuthorizeNode).
//
// Memory: everything nodes and clients can fill is bounded in count and in
// bytes, each bound a Config field (and a wsfleet-control flag): gRPC
// requests (MaxRecvMsgSize), the telemetry store's strings, raw events,
// per-minute counts, duplicate table and tails (Telemetry*, MaxTails,
// TailBuffer), the registry's hellos and nodes (MaxNodes, MaxNodesBytes),
// backend publishes (Publish: message size, per-node queues, queued bytes,
// delivery streams, per-credential rate), and every answer (ListNodes
// pages, QueryEvents) fits in a message.
package controlplane

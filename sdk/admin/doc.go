// Package admin is the Go client for the control plane's admin API
// (PolicyService and FleetService), the one wsctl is built on.
//
// Dial is non-blocking: it validates the configuration, loads TLS material and
// returns at once; the connection is made on the first call and re-made after
// failures by gRPC. Every call takes its deadline from its context, so callers
// bound each call (wsctl uses --timeout). A Client is safe for concurrent use;
// Close it when done, which stops gRPC's background goroutines.
//
// # Replicas
//
// Config.Addr may name several control-plane replicas: a comma-separated
// list of host:port, or a DNS name with several A/AAAA records (a bare
// host:port goes through gRPC's DNS resolver). The connection uses gRPC's
// pick_first policy with the replicas shuffled: every call and stream of a
// Client goes to one replica, and different Clients (a fleet of nodes)
// spread over all of them. When that replica's connection breaks, calls and
// streams in flight fail as they would with one control plane (a write is
// then of unknown outcome), and the next call or stream goes to the first
// replica that accepts a connection, in the Client's shuffled order. A
// Client does not move back when a replica returns. The TLS server name is
// Config.ServerName for every replica if set, else each replica's own host.
// A token is sent in plaintext only when every replica is a loopback
// address.
//
// Policy and Fleet are the generated clients; Recover wraps RecoverPolicy,
// the call that restores a pool's policy from what the fleet runs after the
// control plane lost its store; AllNodes follows ListNodes' pages to list a
// whole fleet. Publish sends a backend message to a channel of a pool
// (PublishService): its failures are classified the same way, with
// ErrNotDelivered for the control plane answering that nothing went out
// (NotDelivered says why), and ErrOutcomeUnknown also when NATS took the
// message without confirming it.
//
// FieldViolations, Conflict and StoreUnavailable decode the structured errors
// the control plane returns, so callers can show every invalid field of a
// refused policy, tell a stale write from any other refusal, and tell a
// failed store (the server answered: nothing was stored) from a transport
// failure.
//
// Every failed call of the admin API (PolicyService, FleetService) made
// through a Client is classified by what is known of its effect, as a
// *CallError wrapping the status (which status.FromError still reads):
//
//   - ErrUnreachable: no connection could be made; the call was never sent.
//   - ErrStoreUnavailable: the server's store failed; nothing was stored.
//   - ErrOutcomeUnknown: a write (apply, rollback, recover; not a dry run)
//     was sent, and the connection broke, the deadline passed or the call was
//     cancelled before the answer: it may or may not have been stored.
//   - ErrConnectionLost: a call that changes nothing was sent and the
//     connection broke before the answer.
//
// "Sent" means gRPC opened a stream for the call on an established
// connection (grpc.Peer is filled in); a call that fails before that, e.g.
// while the connection is refused or the TLS handshake fails, never left the
// process. A server stream (TailEvents) that could not be opened is
// unreachable, one that breaks later lost its connection. Any other failure
// is returned as the status error it is, and the streams of a node (Watch,
// telemetry) on a Client's connection are not touched.
package admin

// Package admission decides, before the WebSocket upgrade, whether a
// handshake may proceed, and answers the ones it refuses.
//
// The node's http.Handler calls, in this order:
//
//	id, _ := admission.TraceID(r)            // header > query > traceparent > generated
//	t, rej := admitter.Admit(ctx, r, id)      // origin → capacity → rate → connect authorization
//	rej = admission.ValidateUpgrade(r)        // just before gws's Upgrade
//	admission.WriteRejection(w, id, rej)      // any refusal: status + small JSON body
//	defer t.Release()                         // when the connection ends or the upgrade fails
//
// Every refusal is a *Rejection carrying its error class; the HTTP status
// and whether Retry-After is sent always come from api/errclass (426 for a
// wrong Sec-WebSocket-Version is the class's alternative status in the
// table). The trace id goes out as X-Trace-ID (TraceHeader), spelled so on
// the wire.
//
// # State and policy changes
//
// An Admitter keeps three kinds of state: connection slots (a node-wide
// atomic counter and per-client-IP counters in sharded maps, whose entries
// disappear when they drop to zero), the handshake token bucket, and the
// circuit breaker around connect authorization. Update swaps in a new
// immutable snapshot of everything Admit reads and carries state over where
// it still holds: slots always, the bucket's tokens when rate and burst are
// unchanged (adjusted in place otherwise), the breaker when its settings are
// unchanged (rebuilt closed otherwise).
//
// # Concurrency and blocking
//
// All methods are safe for concurrent use. An Admitter starts no goroutines
// of its own; the default HTTP client's transport keeps idle keep-alive
// connections to the authorization endpoint, which Close releases.
//
// Admit reads the snapshot with one atomic load. It takes only short
// internal locks: one per-IP shard lock, the token bucket's lock, and, with
// connect authorization, the breaker's lock. It blocks on the network only
// for the authorization POST, for at most Config.AuthTimeout, and returns
// early when its ctx ends. Ticket.Release takes one shard lock. Update
// serializes with other Updates, never with Admit. Config.OnBreakerState runs
// under the breaker's lock and must neither block nor call the Admitter.
//
// TraceID, ValidateUpgrade and WriteRejection are pure functions of their
// arguments.
package admission

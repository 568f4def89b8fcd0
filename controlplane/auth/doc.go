// Package auth authenticates control-plane callers and authorizes them by
// role and, for nodes, by identity.
//
// Callers present a bearer token ("authorization: Bearer <token>"); the
// tokens file maps each token (or its SHA-256) to a name and one role:
//
//	admin      read and change policy, publish to any pool, everything else
//	viewer     read policy, nodes and telemetry
//	node       watch policy, report telemetry, receive deliveries only
//	publisher  publish (PublishService.Publish) to its pools only
//
// Authorization is default-deny: a method absent from the role table is
// refused to everyone but admin. The name becomes the author of policy
// revisions. In dev mode (only allowed on loopback) authentication is off and
// every caller is an admin named after the x-wsfleet-user header, who may
// act as any node.
//
// A node credential is an identity: a node token lists the node ids and
// pools it may act as (Patterns; required, fail closed), and over mutual
// TLS a call without a token is the node its verified client certificate
// names (see certIdentity). The interceptor stores the Identity in the
// context; Watch, ReportTelemetry and Deliveries check what a node says it
// is with AuthorizeNode. An admin, viewer or publisher acts as no node.
//
// A publisher token lists the pools it may publish to (required, fail
// closed, like a node token's); Publish checks the pool of each call with
// AuthorizePublish. An admin may publish to any pool. AuthorizeHTTP does
// for the HTTP/JSON form of a call (POST /v1/publish) what the interceptor
// does for gRPC.
//
// Tokens are swapped atomically on Reload (SIGHUP), so a rotation never
// interrupts in-flight calls; the per-call path takes no lock.
package auth

// Package auth authenticates control-plane callers and authorizes them by
// role and, for nodes, by identity.
//
// Callers present a bearer token ("authorization: Bearer <token>"); the
// tokens file maps each token (or its SHA-256) to a name and one role:
//
//	admin   read and change policy, and everything else
//	viewer  read policy, nodes and telemetry
//	node    watch policy and report telemetry only
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
// context; Watch and ReportTelemetry check what a node says it is with
// AuthorizeNode. An admin or viewer acts as no node.
//
// Tokens are swapped atomically on Reload (SIGHUP), so a rotation never
// interrupts in-flight calls; the per-call path takes no lock.
package auth

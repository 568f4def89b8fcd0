// Package console is the control plane's web console: static pages
// (embedded with go:embed: plain ES modules and CSS, no build step; uPlot,
// pinned by package-lock.json, vendored into web/vendor by `make
// fix-console-assets`) and a JSON API, both under Prefix (/ui/) on the
// control plane's HTTP listener (--http-addr).
//
// # The API
//
// POST /ui/api/rpc/{Service}/{Method} calls a PolicyService or
// FleetService method of this control plane in-process: the request is
// the method's request message as JSON (protojson, proto or JSON names),
// the answer its response message (proto names, every field present).
// The call runs as the logged-in identity: auth.Allowed decides, as over
// gRPC (a viewer's ApplyPolicy is 403), the identity is put in the context
// with auth.WithIdentity and the credential in the incoming metadata, so
// validation, errors, authorship and the queries that ask the other
// replicas (telemetry/fanout) are those of a gRPC call. A gRPC status
// becomes an HTTP status (HTTPStatus: InvalidArgument 400,
// FailedPrecondition 409, PermissionDenied 403, Unimplemented 501, ...)
// with a JSON body carrying the code, the message and the BadRequest field
// violations. GET /ui/api/tail streams TailEvents as server-sent events.
//
// # Sessions
//
// POST /ui/api/login takes a token (the tokens file's, admin or viewer)
// in its body and sets a session cookie: a random 256-bit id, HttpOnly,
// SameSite=Strict, Path=/ui/, Secure when served over TLS, valid for
// Config.SessionTTL. The token stays in the control plane's memory and is
// re-authenticated on every request, and by a live tail at every
// keepalive (Config.TailKeepalive), so a token removed by a reload ends
// its sessions and their tails; a token is at most MaxTokenBytes. The
// browser never holds it after the login request, and never in a URL or
// localStorage. Sessions live in this replica's memory: with
// several replicas behind one address, a browser sent to another replica
// logs in again. At most Config.MaxSessions are held (a login beyond ends
// the oldest); login attempts are limited per client address, an IPv6
// one's /64 (Config.LoginRate, LoginBurst), in a table of at most
// Config.MaxLoginIPs.
//
// # Requests from elsewhere
//
// Every POST must come from a page of the console — Sec-Fetch-Site:
// same-origin, or, from a browser without Fetch metadata, an Origin whose
// host is the request's Host (net/http's CrossOriginProtection; the
// scheme is not compared, so the console works behind a TLS-terminating
// proxy) — and (besides the login) carry the session's CSRF token in
// X-CSRF-Token. Every response carries ContentSecurityPolicy (no inline
// script or style, no framing), X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer and X-Frame-Options: DENY; API answers
// Cache-Control: no-store.
//
// # Concurrency
//
// Handlers run on the HTTP server's goroutines; the session table and the
// login limiter each have one mutex, held for map operations only. A live
// tail adds one goroutine (its keepalive) for its lifetime; it ends with
// its request, its session (logout, expiry, eviction) or Close, which the
// control plane calls before it shuts the HTTP server down. At most
// Config.MaxTails tails are open at once (Config.MaxTailsPerSession per
// session), each also holding one of the telemetry store's tails, whose
// bounded buffer drops a browser that reads too slowly.
package console

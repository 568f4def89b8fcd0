// Package wsclient is the Go client of a wsfleet node, for services and
// load tools: it keeps one WebSocket connection to a node up, reconnecting
// with full-jitter backoff, subscribes and publishes on channels with
// acknowledgements, and says why a connection failed in the terms of the
// error-class table (api/errclass). The JS SDK (sdk/js) has the same
// semantics and names.
//
//	c, err := wsclient.New(wsclient.Config{URL: "ws://127.0.0.1:8080/ws", Origin: "https://app.example.com",
//		OnEvent: func(ev wsclient.Event) { log.Println(ev.State, ev.Failure) }})
//	_ = c.Start()
//	defer c.Close()
//	_ = c.Subscribe(ctx, "room:1", func(ch string, data json.RawMessage) { … })
//	_ = c.Publish(ctx, "room:1", json.RawMessage(`{"text":"hi"}`))
//
// # Attempts
//
// Each attempt has a fresh random trace id (32 hex digits), sent as
// ?trace_id= so that the node files its decision under it. An attempt
// succeeds when the node's welcome frame arrives (its first frame after
// the 101, carrying the node id and the heartbeat interval and timeout);
// dial, TLS, the 101 and the welcome together must fit in
// Config.OpenTimeout.
//
// # Why it failed
//
// A failed attempt or an ended connection becomes a Failure:
//
//   - a close frame with a 4xxx reject code (the pool's
//     handshake.reject_with: close) carries the class itself
//     (errclass.FromRejectCloseCode), and the reason its retry_after_s;
//   - the node's HTTP rejection, a close frame with another code, or a
//     connection that ended without one: the client asks
//     GET <path>/explain?trace_id= on the same host; the node answers what
//     it decided (class, retryable, retry_after_s, what to do, a message).
//     A 404 means the node never saw the attempt: something in front of it
//     answered (client_handshake_failed), or, for an open connection, the
//     network lost it (client_connection_lost; also when the node cannot be
//     asked any more, e.g. it was killed);
//   - a dial that failed (DNS, TCP refused, TLS) never reached a node:
//     client_unreachable, with what failed in Failure.Detail — a Go client,
//     unlike a browser, can tell these apart;
//   - no welcome within OpenTimeout: client_handshake_timeout;
//   - no frame at all for the welcome's heartbeat timeout on an open
//     connection: the client cuts it, client_connection_lost.
//
// Failure.Message is a sentence for an end user (Config.Messages, else
// errclass's UserMessage); WhatToDo is for the developer.
//
// # Reconnecting
//
// After a retryable failure the client waits
// random(0, min(MaxBackoff, MinBackoff·2^n)) for the n-th failure in a row,
// and never less than the node's retry_after_s; a connection that lasts
// StableAfter (5 s) past its welcome starts n over. A terminal failure
// (Retryable false: origin_rejected, unauthorized, bad_handshake) stops the
// client: state closed, Client.Failure says why, Done is closed. Exactly
// one socket exists at a time: the next dial starts after the last socket's
// read loop has ended.
//
// On every connect the client resubscribes to each channel it holds.
//
// # Reports
//
// Failures of the client_* classes are queued (Config.MaxQueuedReports,
// the oldest dropped and counted) and POSTed to <path>/client-report once
// a node has welcomed the next connection, so that the operator sees
// failures no node could record (`wsctl trace ID`).
//
// # Goroutines and blocking
//
// The client owns every goroutine it starts, and Close waits for all of
// them:
//
//   - one run goroutine makes the attempts one after the other, waits out
//     the backoff, explains failures (an HTTP request bounded by
//     ExplainTimeout) and calls Config.OnEvent in order;
//   - per socket, gws's read loop (which calls the Handlers, in order, and
//     must therefore not be blocked by them) and one heartbeat goroutine
//     that sends {"type":"ping"} every heartbeat interval and cuts the
//     socket when the node has been silent for the heartbeat timeout;
//   - at most one goroutine posting client reports.
//
// Every write to the socket has RequestTimeout as its deadline, so a node
// that stops reading fails the connection rather than blocking a caller.
// Publish, Subscribe and Unsubscribe may be called from any goroutine and
// wait at most RequestTimeout (or their context) for the node's answer,
// which the read loop delivers: a Handler that calls them directly waits
// on itself until the timeout, so it must start a goroutine for that.
package wsclient

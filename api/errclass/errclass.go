package errclass

import (
	"fmt"
	"strconv"
	"strings"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Info describes one error class: every wire signal of the class is
// decided here, and the node, the control plane and wsctl read it from
// here rather than keep their own copies.
type Info struct {
	Class wsfleetv1.ErrorClass
	// Name is the short snake_case name used in logs, JSON bodies, metric
	// labels and the CLI: "origin_rejected".
	Name string
	// Kind tells a rejected handshake from a closed connection; it is what
	// a node records in ErrorEvent.kind for this class.
	Kind wsfleetv1.EventKind
	// HTTPStatus is the status a rejected handshake of this class is
	// answered with; 0 for close classes.
	HTTPStatus int
	// AltHTTPStatus is the one other status the class may carry, which the
	// node picks per request: 426 for a bad_handshake whose
	// Sec-WebSocket-Version is wrong. 0 when there is none.
	AltHTTPStatus int
	// RetryAfter: the rejection carries a Retry-After header, because the
	// refusal is temporary and the client should come back (429, 503).
	RetryAfter bool
	// CloseCode is the close code the client sees when its connection ends
	// with this class; 0 for handshake classes. 1006 is never on the wire:
	// it is what the client reports when no close frame reached it.
	CloseCode uint16
	// AltCloseCode is the one other code the class may carry: 1007 for a
	// protocol_error caused by invalid UTF-8. 0 when there is none.
	AltCloseCode uint16
	// SentCloseCode is the code of the close frame the node writes when it
	// (or its WebSocket library) ends a connection for this class. It is 0
	// when the node writes none: heartbeat_timeout (the node cuts the
	// connection of a peer that is gone; the client sees 1006) and the
	// classes only the client or the network decide (conn_reset,
	// client_going_away, normal).
	SentCloseCode uint16
	// Signal is what the client sees, for humans: "HTTP 403",
	// "close 1006 seen by client". It agrees with the fields above.
	Signal string
	// Cause is the typical cause.
	Cause string
	// Action is what to do about it.
	Action string
	// Error is false for the expected closes (normal, client_going_away,
	// server_shutdown) that dashboards and errors-only queries leave out.
	Error bool
	// Retryable is false for the terminal classes, where trying again
	// cannot help until someone changes something (the allowlist, the
	// credentials, the proxy): a client stops reconnecting and says so.
	// True for every other class.
	Retryable bool
	// RejectCloseCode is the 4xxx close code a handshake of this class is
	// closed with when the pool's policy says handshake.reject_with: close
	// (the node upgrades, then closes at once, so that a browser page reads
	// the reason in CloseEvent). 0 for every class that is not answered
	// that way: close classes, client reports, and bad_handshake, which
	// cannot be upgraded and stays HTTP. The codes mirror the HTTP status
	// (4403 for 403) except where two classes share a status (503): 4503
	// capacity, 4502 breaker_open, 4504 node_draining.
	RejectCloseCode uint16
	// UserMessage is a sentence for the end user of an app (not the
	// operator): what a client SDK shows by default when a connection
	// fails with this class. Apps may replace it (translations).
	UserMessage string
}

// HTTP statuses and close codes, named here rather than taken from net/http
// and gws so that this package stays a dependency-free part of the contract.
const (
	statusBadRequest         = 400
	statusUnauthorized       = 401
	statusForbidden          = 403
	statusUpgradeRequired    = 426
	statusTooManyRequests    = 429
	statusServiceUnavailable = 503

	closeNormal          = 1000
	closeGoingAway       = 1001
	closeProtocolError   = 1002
	closeUnsupportedData = 1003
	closeAbnormal        = 1006
	closeInvalidPayload  = 1007
	closePolicyViolation = 1008
	closeMessageTooBig   = 1009
	closeInternalError   = 1011
)

// Close codes of handshakes rejected with reject_with: close, in the range
// RFC 6455 leaves to applications (4000-4999).
const (
	rejectUnauthorized = 4401
	rejectForbidden    = 4403
	rejectTooMany      = 4429
	rejectBreaker      = 4502
	rejectCapacity     = 4503
	rejectDraining     = 4504
)

const (
	handshake = wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED
	closed    = wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED
	reported  = wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT
)

// table is indexed by class number; entry 0 is what Lookup returns for
// UNSPECIFIED and for numbers this build does not know.
var table = []Info{
	{
		Class:  wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED,
		Name:   "unspecified",
		Signal: "none",
		Cause:  "the class was not set or is newer than this build",
		Action: "upgrade the reader; report a node that records it",
		Error:  true, Retryable: true,
		UserMessage: "The connection to the live service failed.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, Name: "origin_rejected", Kind: handshake,
		HTTPStatus: statusForbidden, Signal: "HTTP 403", RejectCloseCode: rejectForbidden,
		Cause:       "the page's origin is not in the allowlist",
		Action:      "fix the allowlist or the page's domain",
		Error:       true,
		UserMessage: "This site is not allowed to connect to the live service.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED, Name: "unauthorized", Kind: handshake,
		HTTPStatus: statusUnauthorized, Signal: "HTTP 401", RejectCloseCode: rejectUnauthorized,
		Cause:       "missing or invalid credentials",
		Action:      "fix the client's authentication",
		Error:       true,
		UserMessage: "You are not signed in to the live service. Sign in again and reload the page.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, Name: "bad_handshake", Kind: handshake,
		HTTPStatus: statusBadRequest, AltHTTPStatus: statusUpgradeRequired, Signal: "HTTP 400/426",
		Cause:       "not a valid upgrade request (a proxy stripped the Upgrade headers, wrong WebSocket version)",
		Action:      "check proxies and load balancers pass WebSocket upgrades",
		Error:       true,
		UserMessage: "Your network does not allow live connections (a proxy or firewall may be blocking them).",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, Name: "rate_limited", Kind: handshake,
		HTTPStatus: statusTooManyRequests, RetryAfter: true, Signal: "HTTP 429 + Retry-After", RejectCloseCode: rejectTooMany,
		Cause:  "handshake rate over the policy's limit",
		Action: "make clients back off; raise limits.handshakes_per_second",
		Error:  true, Retryable: true,
		UserMessage: "The live service is busy. Reconnecting shortly.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, Name: "capacity", Kind: handshake,
		HTTPStatus: statusServiceUnavailable, RetryAfter: true, Signal: "HTTP 503 + Retry-After", RejectCloseCode: rejectCapacity,
		Cause:  "the node's or the client IP's connection cap is reached",
		Action: "scale out; raise limits.max_connections or max_connections_per_ip",
		Error:  true, Retryable: true,
		UserMessage: "The live service is full right now. Reconnecting shortly.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN, Name: "breaker_open", Kind: handshake,
		HTTPStatus: statusServiceUnavailable, RetryAfter: true, Signal: "HTTP 503 + Retry-After", RejectCloseCode: rejectBreaker,
		Cause:  "the breaker is open after upstream failures",
		Action: "fix the upstream; clients back off",
		Error:  true, Retryable: true,
		UserMessage: "The live service is having trouble. Reconnecting shortly.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, Name: "heartbeat_timeout", Kind: closed,
		CloseCode: closeAbnormal, Signal: "close 1006 seen by client",
		Cause:  "the peer was silent past the heartbeat timeout (NAT dropped it, device asleep)",
		Action: "tune heartbeat.interval and heartbeat.timeout",
		Error:  true, Retryable: true,
		UserMessage: "The live connection went quiet and was dropped. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, Name: "conn_reset", Kind: closed,
		CloseCode: closeAbnormal, Signal: "TCP reset or EOF without a close frame (1006)",
		Cause:  "the connection was reset or ended without a close frame",
		Action: "check the client's network",
		Error:  true, Retryable: true,
		UserMessage: "The live connection was interrupted. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG, Name: "message_too_big", Kind: closed,
		CloseCode: closeMessageTooBig, SentCloseCode: closeMessageTooBig, Signal: "close 1009",
		Cause:  "a frame over the policy's max message bytes",
		Action: "raise limits.max_message_bytes or split messages",
		Error:  true, Retryable: true,
		UserMessage: "A message was too large for the live service. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION, Name: "policy_violation", Kind: closed,
		CloseCode: closePolicyViolation, SentCloseCode: closePolicyViolation, Signal: "close 1008",
		Cause:  "message-rate abuse and similar",
		Action: "fix the client bug",
		Error:  true, Retryable: true,
		UserMessage: "The live service closed the connection after too many messages. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER, Name: "slow_consumer", Kind: closed,
		CloseCode: closePolicyViolation, SentCloseCode: closePolicyViolation, Signal: "close 1008",
		Cause:  "the client does not read; its outgoing queue filled up",
		Action: "fix the client bug or its network",
		Error:  true, Retryable: true,
		UserMessage: "The live connection fell behind. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR, Name: "protocol_error", Kind: closed,
		CloseCode: closeProtocolError, AltCloseCode: closeInvalidPayload, SentCloseCode: closeProtocolError, Signal: "close 1002/1007",
		Cause:  "bad frames or invalid UTF-8",
		Action: "fix the client bug",
		Error:  true, Retryable: true,
		UserMessage: "The live connection received data it could not read. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR, Name: "internal_error", Kind: closed,
		CloseCode: closeInternalError, SentCloseCode: closeInternalError, Signal: "close 1011",
		Cause:  "a handler panicked (recovered, stack logged)",
		Action: "fix the server bug",
		Error:  true, Retryable: true,
		UserMessage: "The live service had an internal error. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, Name: "server_shutdown", Kind: closed,
		CloseCode: closeGoingAway, SentCloseCode: closeGoingAway, Signal: "close 1001",
		Cause:       "the node is draining",
		Action:      "none",
		Retryable:   true,
		UserMessage: "The live service is restarting. Reconnecting.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY, Name: "client_going_away", Kind: closed,
		CloseCode: closeGoingAway, Signal: "close 1001 from client",
		Cause:       "the page navigated away",
		Action:      "none",
		Retryable:   true,
		UserMessage: "The live connection was closed because the page is going away.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, Name: "normal", Kind: closed,
		CloseCode: closeNormal, Signal: "close 1000",
		Cause:       "the client or the node closed normally",
		Action:      "none",
		Retryable:   true,
		UserMessage: "The live connection was closed.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, Name: "node_draining", Kind: handshake,
		HTTPStatus: statusServiceUnavailable, RetryAfter: true, Signal: "HTTP 503 + Retry-After", RejectCloseCode: rejectDraining,
		Cause:       "the node is shutting down and takes no new connections",
		Action:      "none: clients retry and reach another node",
		Retryable:   true,
		UserMessage: "The live service is restarting. Reconnecting shortly.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_UNREACHABLE, Name: "client_unreachable", Kind: reported,
		Signal: "no connection (reported by the client)",
		Cause:  "the client reached no node: DNS, TCP refused, TLS or the network is down",
		Action: "check DNS, TLS certificates and that nodes listen where clients connect; the client's network",
		Error:  true, Retryable: true,
		UserMessage: "The live service cannot be reached. Check your internet connection; retrying.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_FAILED, Name: "client_handshake_failed", Kind: reported,
		Signal: "handshake failed, no node saw it (reported by the client)",
		Cause:  "something in front of the nodes (proxy, load balancer, CDN) refused the upgrade or answered instead",
		Action: "check proxies, load balancers and CDNs pass WebSocket upgrades to the nodes",
		Error:  true, Retryable: true,
		UserMessage: "The live connection could not be set up (a proxy or firewall may be in the way); retrying.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_HANDSHAKE_TIMEOUT, Name: "client_handshake_timeout", Kind: reported,
		Signal: "no 101 within the open timeout (reported by the client)",
		Cause:  "the handshake got no answer in time: overloaded node or proxy, or a slow network",
		Action: "check node and proxy load; the client's network",
		Error:  true, Retryable: true,
		UserMessage: "The live service is taking too long to answer; retrying.",
	},
	{
		Class: wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_CONNECTION_LOST, Name: "client_connection_lost", Kind: reported,
		CloseCode: closeAbnormal, Signal: "close 1006 seen by client, node did not close (reported by the client)",
		Cause:  "an open connection ended without a close frame and the node had not closed it: the network between them dropped it",
		Action: "check the client's network and proxy idle timeouts (tune heartbeat.interval below them)",
		Error:  true, Retryable: true,
		UserMessage: "The live connection was lost. Reconnecting.",
	},
}

// byName maps short names to classes; Parse lowercases its input and strips
// the enum prefix before looking it up.
var byName = func() map[string]wsfleetv1.ErrorClass {
	m := make(map[string]wsfleetv1.ErrorClass, len(table))
	for _, info := range table[1:] {
		m[info.Name] = info.Class
	}
	return m
}()

// Close codes to classes, built from the table. sentCodes: the codes the
// node writes (SentCloseCode, AltCloseCode), the first class in enum order
// winning a shared code (policy_violation over slow_consumer: the node
// records its own closes with the class it decided, so the tie only matters
// for a code its WebSocket library wrote). clientCodes: the codes of the
// classes only a client decides (1000 normal, 1001 client_going_away),
// which a client's frame means whatever the node would mean by the same
// code.
var sentCodes, clientCodes = func() (sent, client map[uint16]wsfleetv1.ErrorClass) {
	sent = map[uint16]wsfleetv1.ErrorClass{
		// 1003: the client got a data type it cannot take. The node never
		// sends it; from a client it is a protocol mismatch.
		closeUnsupportedData: wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR,
	}
	client = map[uint16]wsfleetv1.ErrorClass{}
	for _, info := range table[1:] {
		for _, code := range []uint16{info.SentCloseCode, info.AltCloseCode} {
			if _, taken := sent[code]; code != 0 && !taken {
				sent[code] = info.Class
			}
		}
		if info.Kind == closed && info.SentCloseCode == 0 && info.CloseCode != closeAbnormal {
			client[info.CloseCode] = info.Class
		}
	}
	return sent, client
}()

// FromCloseCode returns the class of a connection that ended with a close
// frame carrying code. byClient says the client sent the frame; otherwise
// the node's WebSocket library wrote it on its own (1009 for an oversized
// frame, 1002 or 1007 for a protocol error).
//
// A code means the same from either side, except the codes of the classes
// only a client decides: 1001 from the client is client_going_away (the
// page went away), from the node server_shutdown. A code no class claims is
// normal from a client (1005 no status, application codes 3000-4999: the
// client chose to close; nothing for the platform to fix) and
// protocol_error from the node's side.
func FromCloseCode(code uint16, byClient bool) wsfleetv1.ErrorClass {
	if byClient {
		if c, ok := clientCodes[code]; ok {
			return c
		}
	}
	if c, ok := sentCodes[code]; ok {
		return c
	}
	if c, ok := clientCodes[code]; ok {
		return c
	}
	if byClient {
		return wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL
	}
	return wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR
}

// rejectCodes maps RejectCloseCode back to the class, built from the table.
var rejectCodes = func() map[uint16]Info {
	m := map[uint16]Info{}
	for _, info := range table[1:] {
		if info.RejectCloseCode != 0 {
			m[info.RejectCloseCode] = info
		}
	}
	return m
}()

// FromRejectCloseCode returns the class whose rejected handshakes a node
// closes with code (handshake.reject_with: close): what a client that got
// a 4xxx close before anything else reads it as. ok is false for any other
// code.
func FromRejectCloseCode(code uint16) (info Info, ok bool) {
	info, ok = rejectCodes[code]
	return info, ok
}

// RejectReason is the close reason of a handshake of class info rejected
// with a close frame: the class's name, and when the class carries
// Retry-After, "; retry_after_s=N" with N the whole seconds to wait. It is
// at most a few dozen bytes, well within a close frame's 123.
func RejectReason(info Info, retryAfterSeconds int) string {
	if !info.RetryAfter {
		return info.Name
	}
	return fmt.Sprintf("%s; %s=%d", info.Name, retryAfterKey, retryAfterSeconds)
}

// retryAfterKey names the wait in a reject close reason.
const retryAfterKey = "retry_after_s"

// ParseRejectReason reads a reject close reason (RejectReason's output)
// back: the class name and the seconds to wait (0 when absent). ok is false
// when the reason does not name a class or its wait is not a whole number
// of seconds.
func ParseRejectReason(reason string) (class wsfleetv1.ErrorClass, retryAfterSeconds int, ok bool) {
	name, rest, hasRest := strings.Cut(reason, ";")
	c, err := Parse(name)
	if err != nil {
		return wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED, 0, false
	}
	if !hasRest {
		return c, 0, true
	}
	key, value, found := strings.Cut(strings.TrimSpace(rest), "=")
	if !found || key != retryAfterKey {
		return c, 0, false
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 {
		return c, 0, false
	}
	return c, n, true
}

// enumPrefix is what the proto enum names carry in front of the short name.
const enumPrefix = "error_class_"

// Lookup returns the class's entry. UNSPECIFIED and numbers this build does
// not know give an entry named "unspecified", so a reader older than the
// writer still prints something.
func Lookup(c wsfleetv1.ErrorClass) Info {
	if c <= 0 || int(c) >= len(table) {
		info := table[0]
		info.Class = c
		return info
	}
	return table[c]
}

// Name returns the class's short name, "unspecified" for unknown ones.
func Name(c wsfleetv1.ErrorClass) string {
	return Lookup(c).Name
}

// Parse reads a class name as users type it: the short name
// ("origin_rejected"), upper case ("ORIGIN_REJECTED") or the proto enum name
// ("ERROR_CLASS_ORIGIN_REJECTED"), in any case, surrounding spaces ignored.
// "unspecified" is not a class one can ask for. The error wraps
// ErrUnknownClass and lists the valid names.
func Parse(name string) (wsfleetv1.ErrorClass, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	key = strings.TrimPrefix(key, enumPrefix)
	if c, ok := byName[key]; ok {
		return c, nil
	}
	return wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED,
		fmt.Errorf("%w %q (valid: %s)", ErrUnknownClass, name, strings.Join(Names(), ", "))
}

// All returns every class except UNSPECIFIED, in enum order. The slice is a
// fresh copy.
func All() []Info {
	out := make([]Info, len(table)-1)
	copy(out, table[1:])
	return out
}

// Names returns every class's short name except "unspecified", in enum
// order.
func Names() []string {
	out := make([]string, 0, len(table)-1)
	for _, info := range table[1:] {
		out = append(out, info.Name)
	}
	return out
}

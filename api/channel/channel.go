// Package channel is the contract of a channel, shared by the node (client
// frames, dataplane/protocol) and the control plane's publish API: what a
// channel name may be, what a published message may be, and the
// google.rpc.ErrorInfo reasons a refused backend publish carries.
//
// A channel name is 1..MaxNameLength bytes of A-Z a-z 0-9 _ . : @ / -.
// Names end up in logs, metrics, NATS subjects (api/subject) and every
// message frame, so they are kept to characters that need no escaping in
// JSON or a log line: no spaces, no control characters, no quotes, nothing
// that is not ASCII.
//
// A published message ("data") is one JSON value in valid UTF-8, `null`
// included; subscribers get it inside a {"type":"message",...} frame.
package channel

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxNameLength is the longest channel name in bytes (a node may be
// configured with a lower bound; never a higher one).
const MaxNameLength = 128

// MaxDataBytes is the most a control plane may be configured to accept as
// one backend publish's data (its --publish-max-bytes defaults to 64 KiB):
// NATS servers refuse payloads over 1 MiB unless told otherwise
// (max_payload), and it stays far under what a node takes on its delivery
// stream (gRPC's 4 MiB receive limit) and holds per connection (its 4 MiB
// outgoing queue).
const MaxDataBytes = 1 << 20

// nameByte marks the bytes a channel name may hold: [A-Za-z0-9_.:@/-].
var nameByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_.:@/-" {
		t[c] = true
	}
	return t
}()

// NameByte reports whether c may appear in a channel name.
func NameByte(c byte) bool { return nameByte[c] }

// ValidateName returns nil for a valid channel name, else an error saying
// what is wrong (naming the first bad byte and its offset, never quoting
// the name: it may be anything).
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrName)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: %d bytes long; at most %d allowed", ErrName, len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !nameByte[c] {
			return fmt.Errorf("%w: %s at byte %d; allowed are A-Z a-z 0-9 and _ . : @ / -", ErrName, DescribeByte(c), i)
		}
	}
	return nil
}

// DescribeByte names a byte for an error message: a quoted ASCII
// character, or its hex value.
func DescribeByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// CheckData returns nil when data is one JSON value in valid UTF-8, else an
// error saying why. It does not bound the size: the caller does, first.
func CheckData(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty; send one JSON value (null is one)", ErrData)
	}
	// encoding/json passes invalid UTF-8 inside strings, and a message
	// frame with invalid UTF-8 makes a browser fail the whole connection.
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: not valid UTF-8", ErrData)
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		if err == nil { // json.Valid and Unmarshal disagree: never expected
			return fmt.Errorf("%w: not valid JSON", ErrData)
		}
		return fmt.Errorf("%w: not valid JSON: %v", ErrData, err)
	}
	return nil
}

// The google.rpc.ErrorInfo values a refused or unconfirmed backend publish
// carries (domain policy.ErrorDomain, "wsfleet.v1"). Part of the API
// contract: the control plane sets them, clients (sdk/admin) match on them.
const (
	// ReasonNotDelivered: the control plane answered, and the message went
	// nowhere (no node attached, NATS not connected, buffers full, rate
	// limited): publishing it again duplicates nothing. The metadata's
	// CauseKey says which.
	ReasonNotDelivered = "NOT_DELIVERED"
	// ReasonUnconfirmed: the message was handed to NATS but NATS did not
	// confirm it in time: subscribers may or may not get it.
	ReasonUnconfirmed = "DELIVERY_UNCONFIRMED"
	// CauseKey names, in the ErrorInfo metadata, why nothing was delivered.
	CauseKey = "cause"
)

// Causes of ReasonNotDelivered (CauseKey values).
const (
	CauseNoNodeAttached  = "no_node_attached"
	CauseNodeQueuesFull  = "node_queues_full"
	CauseBufferFull      = "buffer_full"
	CauseNATSUnavailable = "nats_unavailable"
	CauseRateLimited     = "rate_limited"
	CauseShuttingDown    = "shutting_down"
)

package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/clip"
)

// FrameType is the type of a client frame. The zero value is no type.
type FrameType uint8

// The client frame types.
const (
	Subscribe FrameType = iota + 1
	Unsubscribe
	Publish
	// Ping is the application heartbeat: browsers cannot see WebSocket
	// pings, so a page sends {"type":"ping"} and the node answers
	// {"type":"pong"}.
	Ping
)

// String returns the wire name ("subscribe", "unsubscribe", "publish",
// "ping").
func (t FrameType) String() string {
	switch t {
	case Subscribe:
		return "subscribe"
	case Unsubscribe:
		return "unsubscribe"
	case Publish:
		return "publish"
	case Ping:
		return "ping"
	default:
		return "FrameType(" + strconv.Itoa(int(t)) + ")"
	}
}

// ClientFrame is one decoded, valid client frame.
type ClientFrame struct {
	Type FrameType
	// ID is the request id the client attached ("" when none): a valid id
	// (see DecodeClientFrame), echoed on the frame that answers this one.
	ID string
	// Channel is a valid channel name (see DecodeClientFrame); empty for
	// Ping.
	Channel string
	// Data is set for Publish only: compact, valid JSON in valid UTF-8,
	// possibly `null`. It is the caller's own copy (it does not alias the
	// decoded buffer), so it may be kept after the read buffer is reused.
	Data json.RawMessage
}

// DefaultMaxChannelLength is Limits.MaxChannelLength when left zero.
const DefaultMaxChannelLength = channel.MaxNameLength

// MaxIDLength is the longest request id in bytes. An id only has to tell a
// client's requests in flight apart; it is echoed as is, so it is short and
// of characters that need no escaping.
const MaxIDLength = 64

// Limits bound what a client frame may carry, and say what the caller has
// checked already. The frame's total size is bounded before it gets here,
// by the policy's max_message_bytes at the WebSocket layer.
type Limits struct {
	// MaxChannelLength is the longest channel name in bytes. Zero or
	// negative means DefaultMaxChannelLength.
	MaxChannelLength int
	// FrameUTF8Checked says the caller has already checked that the whole
	// frame is valid UTF-8, as gws does for every text frame when
	// CheckUtf8Enabled is set (the node sets it); the decoder then does not
	// check data a second time. Leave it false otherwise: data goes on to
	// every subscriber in a text frame.
	FrameUTF8Checked bool
}

func (l Limits) maxChannelLength() int {
	if l.MaxChannelLength <= 0 {
		return DefaultMaxChannelLength
	}
	return l.MaxChannelLength
}

// A channel name's bytes are api/channel's rule ([A-Za-z0-9_.:@/-]),
// shared with the control plane's publish API. Channel names end up in logs
// and metrics and are echoed in every message frame, so they are kept to
// characters that need no escaping anywhere: no spaces, no control
// characters, no quotes, nothing that is not ASCII (no look-alike or
// invalid UTF-8 names either). That is also what lets AppendMessageFrame
// copy them without escaping.

// checkChannel returns nil when s is a valid, non-empty channel name of at
// most max bytes.
func checkChannel[T string | []byte](s T, max int) *FrameError {
	if len(s) == 0 {
		return frameErr(CodeMissingChannel, `"channel" is empty`)
	}
	if len(s) > max {
		return frameErr(CodeBadChannel, fmt.Sprintf("channel is %d bytes long; at most %d allowed", len(s), max))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !channel.NameByte(c) {
			return frameErr(CodeBadChannel, fmt.Sprintf("channel has %s at byte %d; allowed are A-Z a-z 0-9 and _ . : @ / -", channel.DescribeByte(c), i))
		}
	}
	return nil
}

// idByte reports whether c may appear in a request id: [A-Za-z0-9._:-].
func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// checkID returns nil when s is a valid request id: 1..MaxIDLength bytes of
// [A-Za-z0-9._:-]. An empty id is refused: the answer could not echo it
// apart from no id at all.
func checkID[T string | []byte](s T) *FrameError {
	if len(s) == 0 {
		return frameErr(CodeBadID, `"id" is empty; omit it or send 1 to 64 characters`)
	}
	if len(s) > MaxIDLength {
		return frameErr(CodeBadID, fmt.Sprintf("id is %d bytes long; at most %d allowed", len(s), MaxIDLength))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !idByte(c) {
			return frameErr(CodeBadID, fmt.Sprintf("id has %s at byte %d; allowed are A-Z a-z 0-9 and . _ : -", channel.DescribeByte(c), i))
		}
	}
	return nil
}

// maxQuoted bounds how much of a client's own input an error message
// repeats: enough to recognise it, not enough to echo a payload.
const maxQuoted = 32

// quoteShort quotes s, cut to maxQuoted bytes on a rune boundary: a cut
// inside a character would be quoted as \x escapes of half of it.
func quoteShort(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(clip.String(s, maxQuoted)) + "..."
}

// DecodeClientFrame parses one text frame. Unknown extra fields are ignored,
// so clients may send fields a later node understands; keys match exactly
// (encoding/json's case-insensitive matching would make "Type" and "TYPE"
// part of the protocol) and a repeated key keeps its last value. "channel"
// is read for every type but ping, "data" only for publish.
//
// A channel name is 1..lim.MaxChannelLength bytes of [A-Za-z0-9_.:@/-]:
// names end up in logs, metrics and every message frame, so no control
// characters, spaces, quotes or non-ASCII bytes. An "id", optional on every
// type, is a string of 1..MaxIDLength bytes of [A-Za-z0-9._:-] (anything
// else, null included, is bad_id). JSON escapes are decoded before either
// check.
//
// Problems are reported in a fixed order whatever the order of keys: syntax,
// id, type, channel, data. The id comes first so that every later problem
// is answered with it: the *FrameError carries the frame's id (FrameError.ID)
// whenever the id itself was valid.
func DecodeClientFrame(b []byte, lim Limits) (ClientFrame, *FrameError) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return ClientFrame{}, frameErr(CodeBadJSON, "a frame must be a JSON object")
	}
	// One pass decides validity as json.Valid would and finds the three
	// top-level values (see scan.go).
	raw, ok := scanFrame(b, i)
	if !ok {
		return ClientFrame{}, frameErr(CodeBadJSON, "frame is not valid JSON: "+syntaxError(b))
	}

	var f ClientFrame
	var ferr *FrameError
	if raw.id != nil {
		if f.ID, ferr = parseID(raw.id); ferr != nil {
			return ClientFrame{}, ferr
		}
	}
	if raw.typ == nil {
		return ClientFrame{}, f.refuse(CodeUnknownType, `"type" is missing; want `+typeNames)
	}
	if f.Type, ferr = parseType(raw.typ); ferr != nil {
		return ClientFrame{}, f.withID(ferr)
	}
	if f.Type == Ping {
		return f, nil
	}
	if raw.channel == nil || string(raw.channel) == "null" {
		return ClientFrame{}, f.refuse(CodeMissingChannel, `"channel" is missing`)
	}
	if f.Channel, ferr = parseChannel(raw.channel, lim.maxChannelLength()); ferr != nil {
		return ClientFrame{}, f.withID(ferr)
	}
	if f.Type != Publish {
		return f, nil
	}
	data := raw.data
	if data == nil {
		return ClientFrame{}, f.refuse(CodeMissingData, `a publish needs "data" (null is allowed)`)
	}
	// encoding/json checks syntax but passes invalid UTF-8 inside strings
	// through, and data goes on to every subscriber in a text frame, where
	// a browser fails the whole connection on invalid UTF-8. One bad
	// publish must not disconnect a channel's audience. Only data with a
	// byte of 0x80 or above can be invalid, and none is when the caller
	// has checked the whole frame already.
	if raw.dataInfo.high && !lim.FrameUTF8Checked && !utf8.Valid(data) {
		return ClientFrame{}, f.refuse(CodeBadJSON, `"data" is not valid UTF-8`)
	}
	if raw.dataInfo.spaced {
		f.Data = appendCompact(make([]byte, 0, len(data)), data)
	} else {
		f.Data = append(make([]byte, 0, len(data)), data...)
	}
	return f, nil
}

// refuse is the error for a frame decoded as far as f, carrying its id.
func (f *ClientFrame) refuse(code, message string) *FrameError {
	return &FrameError{Code: code, Message: message, ID: f.ID}
}

// withID attaches the frame's id to an error found after it was read.
func (f *ClientFrame) withID(e *FrameError) *FrameError {
	e.ID = f.ID
	return e
}

// syntaxError describes why b is not valid JSON (the slow path: only for
// frames already known to be bad).
func syntaxError(b []byte) string {
	err := json.Unmarshal(b, &struct{}{})
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// The top-level keys the decoder reads.
const (
	keyOther = iota
	keyType
	keyChannel
	keyData
	keyID
)

// whichKey names the key token; it allocates only for a key with escapes.
func whichKey(key []byte, escaped bool) int {
	body := key[1 : len(key)-1]
	if escaped {
		s, ferr := unquote(key)
		if ferr != nil {
			return keyOther
		}
		body = []byte(s)
	}
	switch string(body) {
	case "type":
		return keyType
	case "channel":
		return keyChannel
	case "data":
		return keyData
	case "id":
		return keyID
	}
	return keyOther
}

// unquote decodes a JSON string token with escapes (rare).
func unquote(tok []byte) (string, *FrameError) {
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", frameErr(CodeBadJSON, "frame is not valid JSON: "+err.Error())
	}
	return s, nil
}

func parseType(v []byte) (FrameType, *FrameError) {
	if v[0] != '"' {
		return 0, frameErr(CodeUnknownType, `"type" must be a string`)
	}
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		s, ferr := unquote(v)
		if ferr != nil {
			return 0, ferr
		}
		body = []byte(s)
	}
	switch string(body) {
	case "subscribe":
		return Subscribe, nil
	case "unsubscribe":
		return Unsubscribe, nil
	case "publish":
		return Publish, nil
	case "ping":
		return Ping, nil
	}
	return 0, frameErr(CodeUnknownType, "unknown type "+quoteShort(string(body))+"; want "+typeNames)
}

// typeNames lists the client frame types for error messages.
const typeNames = "subscribe, unsubscribe, publish or ping"

// parseID checks a request id on the raw bytes and allocates only for a
// valid one.
func parseID(v []byte) (string, *FrameError) {
	if v[0] != '"' {
		return "", frameErr(CodeBadID, `"id" must be a string`)
	}
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		s, ferr := unquote(v)
		if ferr != nil {
			return "", ferr
		}
		if ferr := checkID(s); ferr != nil {
			return "", ferr
		}
		return s, nil
	}
	if ferr := checkID(body); ferr != nil {
		return "", ferr
	}
	return string(body), nil
}

// parseChannel checks the name on the raw bytes and allocates only for a
// valid one.
func parseChannel(v []byte, max int) (string, *FrameError) {
	if v[0] != '"' {
		return "", frameErr(CodeBadChannel, `"channel" must be a string`)
	}
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') >= 0 {
		// Escapes are legal JSON; decode them, then apply the same rule.
		s, ferr := unquote(v)
		if ferr != nil {
			return "", ferr
		}
		if ferr := checkChannel(s, max); ferr != nil {
			return "", ferr
		}
		return s, nil
	}
	if ferr := checkChannel(body, max); ferr != nil {
		return "", ferr
	}
	return string(body), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string token starting at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; j++ {
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			j++ // skip the escaped byte; the hex digits of a \u escape need no care
		}
	}
}

// appendCompact appends src, which must be valid JSON, without the
// whitespace between tokens. It does what json.Compact does for valid input
// without a bytes.Buffer or a second validation pass.
func appendCompact(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); {
		switch src[i] {
		case '"':
			i = stringEnd(src, i)
			continue
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
		i++
	}
	return append(dst, src[start:]...)
}

const (
	messagePrefix = `{"type":"message","channel":`
	messageData   = `,"data":`
)

// AppendMessageFrame appends {"type":"message","channel":…,"data":…} to dst.
// It is encoded once per publish and shared read-only by every subscriber,
// so it costs one copy and at most one allocation (none when dst has room).
// data must be valid JSON (a ClientFrame's Data is); it is copied as is, and
// empty data is written as null. A channel from DecodeClientFrame needs no
// escaping and is copied as is; any other string is escaped, so the frame is
// valid JSON whatever the caller passes.
func AppendMessageFrame(dst []byte, channel string, data json.RawMessage) []byte {
	n := len(messagePrefix) + len(channel) + 2 + len(messageData) + len(data) + 1
	if len(data) == 0 {
		n += len("null")
	}
	dst = grow(dst, n)
	dst = append(dst, messagePrefix...)
	dst = appendJSONString(dst, channel)
	dst = append(dst, messageData...)
	if len(data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, data...)
	}
	return append(dst, '}')
}

// grow makes room for n more bytes in dst at once, so a frame appended to a
// nil or full buffer costs one allocation instead of one per doubling. n
// counts strings as copied without escapes; one that needs escapes grows
// the buffer again (rare: only error messages quote client input).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	grown := make([]byte, len(dst), len(dst)+n)
	copy(grown, dst)
	return grown
}

// idLen is what ,"id":"…" adds to a frame.
func idLen(id string) int {
	if id == "" {
		return 0
	}
	return len(`,"id":""`) + len(id)
}

// AppendErrorFrame appends {"type":"error","code":…,"message":…} to dst,
// with ,"id":… when id is not empty (the id of the request it answers).
// Every string is escaped as a JSON string (the message may carry client
// input); invalid UTF-8 becomes U+FFFD.
func AppendErrorFrame(dst []byte, code, message, id string) []byte {
	dst = grow(dst, len(`{"type":"error","code":"","message":""}`)+len(code)+len(message)+idLen(id))
	dst = append(dst, `{"type":"error","code":`...)
	dst = appendJSONString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, message)
	return appendID(dst, id)
}

// appendID closes a frame, with ,"id":… first when id is not empty.
func appendID(dst []byte, id string) []byte {
	if id != "" {
		dst = append(dst, `,"id":`...)
		dst = appendJSONString(dst, id)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Strings of printable ASCII
// without quotes or backslashes (every valid channel name and code) are
// copied in one go.
func appendJSONString(dst []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	dst = append(dst, '"')
	if plain {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but line terminators in JavaScript source; escaped
			// as encoding/json does, for clients that eval or embed frames.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Ack frame types: the node confirms a subscribe or unsubscribe once it is
// in effect, so a client knows when publishes to the channel reach it, and
// a publish that carried an id once the broker took it (a publish without
// one is not acknowledged: most publishers do not wait, and the fan-out
// path stays one frame per subscriber).
const (
	AckSubscribed   = "subscribed"
	AckUnsubscribed = "unsubscribed"
	AckPublished    = "published"
)

// AppendAckFrame appends {"type":"<kind>","channel":<channel>} to dst, with
// ,"id":… when id is not empty.
func AppendAckFrame(dst []byte, kind, channel, id string) []byte {
	dst = grow(dst, len(`{"type":"","channel":""}`)+len(kind)+len(channel)+idLen(id))
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, kind)
	dst = append(dst, `,"channel":`...)
	dst = appendJSONString(dst, channel)
	return appendID(dst, id)
}

// AppendPongFrame appends {"type":"pong"} to dst, with ,"id":… when id is
// not empty: the answer to a ping frame.
func AppendPongFrame(dst []byte, id string) []byte {
	dst = grow(dst, len(`{"type":"pong"}`)+idLen(id))
	return appendID(append(dst, `{"type":"pong"`...), id)
}

// Welcome is what the node tells a client in the first frame after the
// upgrade: the connection's trace id (what /ws/explain and wsctl trace take),
// the node's id, and the heartbeat in force when the connection opened, so a
// browser, which cannot see WebSocket pings, knows how often to send its
// application ping and how long silence may last.
type Welcome struct {
	TraceID           string
	NodeID            string
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
}

// AppendWelcomeFrame appends
// {"type":"welcome","trace_id":…,"node_id":…,"heartbeat_interval_ms":N,"heartbeat_timeout_ms":N}
// to dst. Both strings are escaped, so the frame is valid JSON whatever they
// hold.
func AppendWelcomeFrame(dst []byte, w Welcome) []byte {
	// Two int64s take at most 20 digits each.
	dst = grow(dst, len(`{"type":"welcome","trace_id":"","node_id":"","heartbeat_interval_ms":,"heartbeat_timeout_ms":}`)+
		len(w.TraceID)+len(w.NodeID)+2*20)
	dst = append(dst, `{"type":"welcome","trace_id":`...)
	dst = appendJSONString(dst, w.TraceID)
	dst = append(dst, `,"node_id":`...)
	dst = appendJSONString(dst, w.NodeID)
	dst = append(dst, `,"heartbeat_interval_ms":`...)
	dst = strconv.AppendInt(dst, w.HeartbeatInterval.Milliseconds(), 10)
	dst = append(dst, `,"heartbeat_timeout_ms":`...)
	dst = strconv.AppendInt(dst, w.HeartbeatTimeout.Milliseconds(), 10)
	return append(dst, '}')
}

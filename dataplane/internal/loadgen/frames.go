package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// The node's channel protocol (DESIGN.md, issue 3; dataplane/protocol):
// JSON text frames. Client to node: {"type":"subscribe","channel":"c"} and
// {"type":"publish","channel":"c","data":<JSON>}; node to client: first
// {"type":"welcome",...} (issue 11), then {"type":"message","channel":"c","data":...}
// and {"type":"error","code":"...","message":"..."}. The scenarios send no
// request ids, so the node sends them no "published" acknowledgements.

// subscribeFrame is the frame subscribing to channel.
func subscribeFrame(channel string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
	}{"subscribe", channel})
	return b
}

// publishFrame builds a publish frame whose data is {"seq":N,"pad":"..."},
// padded so that the data value is about dataBytes long. seq is what a
// receiver reads back to match a delivery to its send; -1 marks a warm-up
// message that no scenario counts. The prefix is built once per publisher
// (publishPrefix) so the hot loop only appends the number and the padding.
func publishFrame(dst, prefix []byte, seq int64, pad string) []byte {
	dst = append(dst[:0], prefix...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"pad":"`...)
	dst = append(dst, pad...)
	dst = append(dst, `"}}`...)
	return dst
}

// publishPrefix is the constant start of every publish frame to channel,
// up to and including `"seq":`.
func publishPrefix(channel string) []byte {
	ch, _ := json.Marshal(channel)
	b := []byte(`{"type":"publish","channel":`)
	b = append(b, ch...)
	return append(b, `,"data":{"seq":`...)
}

// padding returns the filler that makes the data value about dataBytes long
// (`{"seq":123456,"pad":""}` is about 24 bytes without filler).
func padding(dataBytes int) string {
	return strings.Repeat("x", max(0, dataBytes-24))
}

var (
	seqKey        = []byte(`"seq":`)
	errorType     = []byte(`"type":"error"`)
	ackTypes      = [][]byte{[]byte(`"type":"subscribed"`), []byte(`"type":"unsubscribed"`)}
	welcomePrefix = []byte(`{"type":"welcome",`)
)

// isWelcome reports whether a frame is the node's welcome, the first frame
// of every node connection, which scenarios skip. Only called off the hot
// path, for frames parseSeq refused.
func isWelcome(b []byte) bool { return bytes.HasPrefix(b, welcomePrefix) }

// isAck reports whether a frame without a sequence number is the node's
// acknowledgement of a subscribe or unsubscribe
// ({"type":"subscribed","channel":"c"}), which scenarios skip. Only called
// off the hot path, for frames parseSeq refused.
func isAck(b []byte) bool {
	for _, t := range ackTypes {
		if bytes.Contains(b, t) {
			return true
		}
	}
	return false
}

// parseSeq finds the sequence number in a received frame: a node message
// wrapping the data, or an echo of the publish frame itself. It does not
// decode the JSON: it runs on every delivery of the fan-out and must cost the
// same against every target. ok is false for a frame without one, which
// includes the node's error frames.
func parseSeq(b []byte) (seq int64, ok bool) {
	i := bytes.Index(b, seqKey)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(seqKey):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	n := 0
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		seq = seq*10 + int64(b[n]-'0')
		n++
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		seq = -seq
	}
	return seq, true
}

// describeFrame shortens an unexpected frame for an error message.
func describeFrame(b []byte) string {
	const limit = 200
	if bytes.Contains(b, errorType) {
		return "error frame " + strconv.Quote(string(b[:min(len(b), limit)]))
	}
	return "frame " + strconv.Quote(string(b[:min(len(b), limit)]))
}

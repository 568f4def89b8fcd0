package admission

import (
	"crypto/sha1" //nolint:gosec // RFC 6455 fixes SHA-1 for Sec-WebSocket-Accept; nothing secret is hashed.
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"

	"github.com/wsfleet/wsfleet/api/errclass"
)

// websocketGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxClosePayload is the most a control frame may carry (RFC 6455 §5.5).
const maxClosePayload = 125

// RetryAfterSeconds is what Retry-After (or a reject close reason) says for
// the rejection: whole seconds rounded up, at least 1, as WriteRejection
// writes it; 0 for a class that carries no Retry-After.
func (r *Rejection) RetryAfterSeconds() int {
	if !errclass.Lookup(r.Class).RetryAfter {
		return 0
	}
	return int(retryAfterSeconds(r.RetryAfter))
}

// CloseCode is the 4xxx code a handshake rejected with a close frame is
// closed with (errclass RejectCloseCode); 0 when the class is always
// answered over HTTP (bad_handshake).
func (r *Rejection) CloseCode() uint16 { return errclass.Lookup(r.Class).RejectCloseCode }

// RejectionClose is the answer to a rejected handshake under the policy's
// handshake.reject_with: close, in the bytes that go on the wire at once: a
// 101 response accepting the upgrade (with X-Trace-ID spelled as
// TraceHeader, omitted when traceID is empty) followed by one unmasked close
// frame carrying the class's RejectCloseCode and errclass.RejectReason
// ("rate_limited; retry_after_s=2"). A browser page reads both in its
// CloseEvent, which it never could from an HTTP status.
//
// ok is false when the rejection cannot be answered that way and must go
// out over HTTP (WriteRejection): a class without a reject close code
// (bad_handshake), or a request that is not a valid upgrade (ValidateUpgrade
// refuses it), which no client could take a 101 for.
func RejectionClose(r *http.Request, traceID string, rej *Rejection) (wire []byte, ok bool) {
	code := rej.CloseCode()
	if code == 0 || ValidateUpgrade(r) != nil {
		return nil, false
	}
	reason := errclass.RejectReason(errclass.Lookup(rej.Class), rej.RetryAfterSeconds())
	if len(reason) > maxClosePayload-2 {
		// Never with the names and waits of the table; the bound is the
		// frame format's.
		reason = reason[:maxClosePayload-2]
	}
	key := strings.TrimSpace(r.Header.Get("Sec-Websocket-Key"))
	sum := sha1.Sum([]byte(key + websocketGUID)) //nolint:gosec // see the import

	wire = make([]byte, 0, 192+len(traceID)+len(reason))
	wire = append(wire, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	wire = base64.StdEncoding.AppendEncode(wire, sum[:])
	wire = append(wire, "\r\n"...)
	if traceID != "" {
		wire = append(wire, TraceHeader+": "...)
		wire = append(wire, traceID...)
		wire = append(wire, "\r\n"...)
	}
	wire = append(wire, "\r\n"...)
	// FIN + opcode 8 (close), unmasked (server to client), then the code
	// and the reason.
	wire = append(wire, 0x88, byte(2+len(reason)))
	wire = binary.BigEndian.AppendUint16(wire, code)
	wire = append(wire, reason...)
	return wire, true
}

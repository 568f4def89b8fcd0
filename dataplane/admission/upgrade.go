package admission

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// websocketVersion is the only version RFC 6455 defines and gws speaks.
const websocketVersion = "13"

// websocketKeyLen is the length of a Sec-WebSocket-Key: base64 of 16 bytes.
const websocketKeyLen = 24

// ValidateUpgrade checks the request is a valid WebSocket upgrade (RFC 6455
// §4.2.1): GET, Connection contains the "upgrade" token (comma-separated,
// case-insensitive), Upgrade contains "websocket", Sec-WebSocket-Key is base64
// of 16 bytes, Sec-WebSocket-Version is 13 (else 426). → bad_handshake. gws
// would answer 400 text itself without our trace id and JSON body.
//
// It also requires HTTP/1.1 or later, which RFC 6455 demands. The version is
// checked before the key so that a client speaking an older draft learns
// which version to use. Reason names the first failed check.
func ValidateUpgrade(r *http.Request) *Rejection {
	const class = wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE
	if r.Method != http.MethodGet {
		return NewRejection(class, fmt.Sprintf("method %s is not GET", clipQuoted(r.Method)))
	}
	if !r.ProtoAtLeast(1, 1) {
		return NewRejection(class, fmt.Sprintf("protocol %s is older than HTTP/1.1", clipQuoted(r.Proto)))
	}
	if !headerHasToken(r.Header["Connection"], "upgrade") {
		return NewRejection(class, fmt.Sprintf(`Connection header %q has no "upgrade" token (a proxy may have stripped it)`,
			clipQuoted(strings.Join(r.Header["Connection"], ", "))))
	}
	if !headerHasToken(r.Header["Upgrade"], "websocket") {
		return NewRejection(class, fmt.Sprintf(`Upgrade header %q has no "websocket" token (a proxy may have stripped it)`,
			clipQuoted(strings.Join(r.Header["Upgrade"], ", "))))
	}
	if vs := r.Header["Sec-Websocket-Version"]; len(vs) != 1 || strings.TrimSpace(vs[0]) != websocketVersion {
		rej := NewRejection(class, fmt.Sprintf("Sec-WebSocket-Version %q is not %s", clipQuoted(strings.Join(vs, ", ")), websocketVersion))
		rej.Status = http.StatusUpgradeRequired
		return rej
	}
	if vs := r.Header["Sec-Websocket-Key"]; len(vs) != 1 || !validKey(vs[0]) {
		return NewRejection(class, fmt.Sprintf("Sec-WebSocket-Key %q is not base64 of 16 bytes", clipQuoted(strings.Join(vs, ", "))))
	}
	return nil
}

// validKey reports whether k is the base64 encoding of 16 bytes. The length
// test first keeps the decode allocation-free and bounded.
func validKey(k string) bool {
	k = strings.TrimSpace(k)
	if len(k) != websocketKeyLen {
		return false
	}
	var buf [18]byte
	n, err := base64.StdEncoding.Decode(buf[:], []byte(k))
	return err == nil && n == 16
}

// headerHasToken reports whether any comma-separated element of any of the
// header's values equals token, case-insensitively (RFC 9110 §5.6.1 lists).
// A product version ("websocket/13") does not count: RFC 6455 asks for the
// bare token.
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(part, " \t"), token) {
				return true
			}
		}
	}
	return false
}

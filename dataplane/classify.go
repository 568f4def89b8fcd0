package dataplane

import (
	"errors"
	"net"

	"github.com/lxzan/gws"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Close codes of RFC 6455 §7.4.1 the node uses.
const (
	closeNormal          = 1000
	closeGoingAway       = 1001
	closeProtocolError   = 1002
	closeUnsupported     = 1003
	closeNoStatus        = 1005
	closeAbnormal        = 1006
	closeInvalidPayload  = 1007
	closePolicyViolation = 1008
	closeTooBig          = 1009
	closeInternal        = 1011
)

// classify explains why gws ended a connection the node did not close
// itself. It runs in OnClose with the error gws stored:
//
//   - *gws.CloseError: the client sent a close frame with that code;
//   - a value with Uint16(): gws closed with that code (1009 too big, 1002
//     protocol error);
//   - gws.ErrTextEncoding: invalid UTF-8 in a text frame (gws sent 1007);
//   - net.Error with Timeout(): a read deadline (heartbeat) or a write
//     deadline (slow consumer), told apart by the operation;
//   - io.EOF or any other network error: the peer went away without a
//     close frame.
func classify(err error) (class wsfleetv1.ErrorClass, code int32) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		if ce.Code == 0 {
			return wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, closeNoStatus
		}
		return classifyClientCode(ce.Code), int32(ce.Code)
	}
	if errors.Is(err, gws.ErrTextEncoding) {
		return wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR, closeInvalidPayload
	}
	var coded interface{ Uint16() uint16 }
	if errors.As(err, &coded) {
		c := coded.Uint16()
		switch c {
		case closeTooBig:
			return wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG, closeTooBig
		case closeProtocolError, closeInvalidPayload, closeUnsupported:
			return wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR, int32(c)
		case closeInternal:
			return wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR, closeInternal
		case closePolicyViolation:
			return wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION, closePolicyViolation
		case closeGoingAway:
			return wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, closeGoingAway
		case closeNormal:
			return wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, closeNormal
		}
		return wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR, int32(c)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "write" {
			return wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER, closePolicyViolation
		}
		return wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, closeAbnormal
	}
	// io.EOF (FIN without a close frame), a reset (*net.OpError) or anything
	// else from the network: the peer vanished.
	return wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, closeAbnormal
}

// classifyClientCode explains a close frame the client sent.
func classifyClientCode(code uint16) wsfleetv1.ErrorClass {
	switch code {
	case closeNormal:
		return wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL
	case closeGoingAway:
		return wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY
	case closeProtocolError, closeUnsupported, closeInvalidPayload:
		return wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR
	case closeTooBig:
		return wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG
	case closePolicyViolation:
		return wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION
	case closeInternal:
		return wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR
	}
	// 1005 (no status), application codes 3000-4999 and the rest: the
	// client chose to close; nothing for the platform to fix.
	return wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL
}

package dataplane

import (
	"errors"
	"net"

	"github.com/lxzan/gws"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// closeNoStatus is recorded for a close frame without a code (RFC 6455
// §7.1.5: the connection's close code is then 1005). Every other code the
// node sends or records comes from api/errclass.
const closeNoStatus = 1005

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
//
// The class of a code, and the code recorded for a class, are the error
// class table's (errclass.FromCloseCode, errclass.Info.CloseCode).
func classify(err error) (class wsfleetv1.ErrorClass, code int32) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		if ce.Code == 0 {
			return wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, closeNoStatus
		}
		return errclass.FromCloseCode(ce.Code, true), int32(ce.Code)
	}
	if errors.Is(err, gws.ErrTextEncoding) {
		info := errclass.Lookup(wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR)
		return info.Class, int32(info.AltCloseCode)
	}
	var coded interface{ Uint16() uint16 }
	if errors.As(err, &coded) {
		c := coded.Uint16()
		return errclass.FromCloseCode(c, false), int32(c)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "write" {
			return seen(wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER)
		}
		return seen(wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT)
	}
	// io.EOF (FIN without a close frame), a reset (*net.OpError) or anything
	// else from the network: the peer vanished.
	return seen(wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET)
}

// seen is the class with the close code its table entry says the client
// sees.
func seen(class wsfleetv1.ErrorClass) (wsfleetv1.ErrorClass, int32) {
	return class, int32(errclass.Lookup(class).CloseCode)
}

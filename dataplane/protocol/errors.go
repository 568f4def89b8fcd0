package protocol

import "errors"

// ErrBadFrame is what every *FrameError wraps, for errors.Is.
var ErrBadFrame = errors.New("protocol: bad client frame")

// Codes of the error frames the node sends: for a bad client frame, and
// for a valid one it cannot carry out. They are part of the wire contract:
// clients switch on them, so they never change meaning. After any error
// frame the connection stays open.
const (
	// CodeBadJSON: the frame is not a JSON object, or its data is not valid
	// UTF-8.
	CodeBadJSON = "bad_json"
	// CodeUnknownType: "type" is missing, not a string, or not one of
	// subscribe, unsubscribe, publish, ping.
	CodeUnknownType = "unknown_type"
	// CodeBadID: "id" is present but not a string of 1 to MaxIDLength
	// bytes of [A-Za-z0-9._:-] (null is not an id either). The error
	// frame carries no id: the client's could not be echoed.
	CodeBadID = "bad_id"
	// CodeMissingChannel: "channel" is missing, null or empty.
	CodeMissingChannel = "missing_channel"
	// CodeBadChannel: "channel" is not a string, too long, or has a
	// character outside [A-Za-z0-9_.:@/-].
	CodeBadChannel = "bad_channel"
	// CodeMissingData: a publish without "data" (an explicit null is data).
	CodeMissingData = "missing_data"
	// CodeBinaryNotSupported: the client sent a binary frame; the protocol
	// is JSON text only. The decoder never returns it (it only sees text);
	// the session answers binary frames with BinaryFrameError.
	CodeBinaryNotSupported = "binary_not_supported"
	// CodeTooManySubscriptions: a subscribe over the node's per-connection
	// limit of channels; the client must unsubscribe from one first.
	CodeTooManySubscriptions = "too_many_subscriptions"
	// CodeForbidden: the embedding service's hook refused a subscribe or a
	// publish; the message is the hook's error text.
	CodeForbidden = "forbidden"
	// CodeUnavailable: the broker failed a subscribe or a publish; the
	// client may retry.
	CodeUnavailable = "unavailable"
)

// FrameError is a bad client frame. It is answered with an error frame
// (AppendErrorFrame(dst, e.Code, e.Message, e.ID)) and the connection stays
// open.
type FrameError struct {
	// Code is one of the Code* constants.
	Code string
	// Message says what is wrong for a human. It may quote a short, escaped
	// prefix of the client's input, never more than a few dozen bytes of it.
	Message string
	// ID is the frame's request id when it had a valid one ("" otherwise),
	// so the error answers that request.
	ID string
}

func (e *FrameError) Error() string {
	return "protocol: " + e.Code + ": " + e.Message
}

// Unwrap makes every FrameError match ErrBadFrame.
func (e *FrameError) Unwrap() error { return ErrBadFrame }

// BinaryFrameError is the answer to a binary frame, kept here so the wording
// lives with the rest of the protocol.
func BinaryFrameError() *FrameError {
	return &FrameError{Code: CodeBinaryNotSupported, Message: "binary frames are not supported; send JSON text frames"}
}

func frameErr(code, message string) *FrameError {
	return &FrameError{Code: code, Message: message}
}

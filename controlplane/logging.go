package controlplane

import (
	"context"
	"fmt"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
)

type interceptorsCallMeta = interceptors.CallMeta

// interceptorLogger adapts logrus to go-grpc-middleware's logging.Logger.
func interceptorLogger(l logrus.FieldLogger) logging.Logger {
	return logging.LoggerFunc(func(_ context.Context, lvl logging.Level, msg string, fields ...any) {
		f := make(logrus.Fields, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			f[fmt.Sprint(fields[i])] = fields[i+1]
		}
		entry := l.WithFields(f)
		switch lvl {
		case logging.LevelDebug:
			entry.Debug(msg)
		case logging.LevelInfo:
			entry.Info(msg)
		case logging.LevelWarn:
			entry.Warn(msg)
		default:
			entry.Error(msg)
		}
	})
}

// streamCodeToLevel is codeToLevel for streaming calls (node watch and
// telemetry streams, event tails). Such a stream ends when either side goes
// away: a node that stops or reconnects (Canceled) and a stream this
// control plane ends as it shuts down (Unavailable) are the normal end of
// a long-lived stream, logged at info like a node disconnect, not as a
// fault.
func streamCodeToLevel(code codes.Code) logging.Level {
	switch code {
	case codes.Canceled, codes.Unavailable:
		return logging.LevelInfo
	default:
		return codeToLevel(code)
	}
}

// codeToLevel keeps successful calls (reads polled by dashboards, node
// streams) out of the info log, shows refusals at info so denied and invalid
// requests are visible, and server faults at error.
func codeToLevel(code codes.Code) logging.Level {
	switch code {
	case codes.OK:
		return logging.LevelDebug
	case codes.Unavailable:
		// Mostly streams ended by a shutdown; the client retries.
		return logging.LevelWarn
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition,
		codes.Aborted, codes.OutOfRange, codes.ResourceExhausted, codes.DeadlineExceeded:
		return logging.LevelInfo
	default:
		return logging.LevelError
	}
}

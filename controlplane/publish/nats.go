package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/subject"
)

// NATS liveness: a server that stops answering (a stopped process, a
// dead link without a reset) is noticed after natsPingInterval times
// natsMaxPings, and publishes are then refused at once while nats.go
// reconnects, instead of each waiting for Config.Timeout. nats.go's
// defaults (2 minutes, 2 pings) would keep a dead server "connected" for
// 4 minutes.
const (
	natsPingInterval = 5 * time.Second
	natsMaxPings     = 2
	natsReconnect    = time.Second
)

// natsRoute publishes to NATS: subject api/subject.Channel(pool, channel),
// payload the data.
type natsRoute struct {
	nc      *nats.Conn
	timeout time.Duration
}

// connectNATS starts connecting and returns at once (nats.go keeps
// retrying in the background, for ever). Messages are never buffered
// while disconnected (ReconnectBufSize -1): a publish is either refused at
// once or written to a live connection, so "not delivered" is never a
// guess.
func connectNATS(cfg NATSConfig, timeout time.Duration, log *logrus.Logger, m *metrics) (*natsRoute, error) {
	opts := []nats.Option{
		nats.Name("wsfleet-control"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(natsReconnect),
		nats.ReconnectBufSize(-1),
		// A write to a server that stopped reading fails after the
		// publish timeout instead of nats.go's minute.
		nats.FlusherTimeout(timeout),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPings),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.WithField("nats_url", nc.ConnectedUrlRedacted()).Info("connected to NATS")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			m.natsReconnects.Inc()
			log.WithField("nats_url", nc.ConnectedUrlRedacted()).Info("reconnected to NATS")
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // our own Close at shutdown, not an outage
			}
			log.WithError(err).Warn("disconnected from NATS; publishes are refused until it is back")
		}),
	}
	if cfg.Creds != "" {
		// nats.go reads the file at each connect; read it once now so a
		// wrong path fails the start instead of every reconnect.
		if _, err := os.ReadFile(cfg.Creds); err != nil {
			return nil, fmt.Errorf("%w: --nats-creds: %w", ErrNATS, err)
		}
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.CA != "" {
		opts = append(opts, nats.RootCAs(cfg.CA))
	}
	if cfg.Cert != "" {
		opts = append(opts, nats.ClientCert(cfg.Cert, cfg.Key))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNATS, err)
	}
	m.registerNATS(nc)
	return &natsRoute{nc: nc, timeout: timeout}, nil
}

// publish hands the message to NATS and waits (at most r.timeout) for the
// server to confirm it has everything this connection sent so far
// (PING/PONG): once it has, it delivers to every subscriber. NATS core is
// at most once, as the node streams are.
func (r *natsRoute) publish(ctx context.Context, pool, ch string, data []byte) error {
	if !r.nc.IsConnected() {
		return natsDown(r.nc.Status().String())
	}
	if mp := r.nc.MaxPayload(); mp > 0 && int64(len(data)) > mp {
		return tooBigForNATS(len(data), mp)
	}
	switch err := r.nc.Publish(subject.Channel(pool, ch), data); {
	case errors.Is(err, nats.ErrMaxPayload):
		return tooBigForNATS(len(data), r.nc.MaxPayload())
	case err != nil:
		// Refused before anything was written (closed, reconnecting,
		// nothing buffered while disconnected).
		return natsDown(err.Error())
	}
	fctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.nc.FlushWithContext(fctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return status.FromContextError(ctxErr).Err()
		}
		return withInfo(codes.Unavailable, channel.ReasonUnconfirmed, resultUnconfirmed,
			fmt.Sprintf("NATS did not confirm the message within %s (%v): subscribers may or may not get it", r.timeout, err), 0)
	}
	return nil
}

func natsDown(state string) error {
	return notDelivered(codes.Unavailable, channel.CauseNATSUnavailable,
		fmt.Sprintf("NATS is not connected (%s); nothing was delivered", state), retryLater)
}

// tooBigForNATS: the NATS server takes less than --publish-max-bytes (its
// max_payload is lower than the control plane was told).
func tooBigForNATS(n int, maxPayload int64) error {
	msg := fmt.Sprintf("data: %d bytes; the NATS server takes at most %d (its max_payload)", n, maxPayload)
	st, err := status.New(codes.InvalidArgument, "invalid publish: "+msg).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "data", Description: msg[len("data: "):]}},
	})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

func (r *natsRoute) close() { r.nc.Close() }

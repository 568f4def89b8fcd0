package wsctl

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wsfleet/wsfleet/api/channel"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func (a *app) publishCommand() *cobra.Command {
	var pool string
	cmd := &cobra.Command{
		Use:   "publish [--pool P] CHANNEL DATA|-",
		Short: "Publish a message to a channel on every node of a pool",
		Long: `Publish a message to a channel on every node of a pool, as a product's
backend does: every client subscribed to CHANNEL on any node of the pool
gets {"type":"message","channel":CHANNEL,"data":DATA}.

DATA is one JSON value: '{"status":"paid"}', '42', '"text"', 'null'.
'-' reads it from stdin. The token needs the publisher role for the pool
(or admin).

The control plane delivers through NATS when it is configured with it,
else to the pool's nodes attached to it; the answer says which (and to how
many nodes). Delivery is at most once. Exit 6: the control plane answered
that nothing was delivered (no node of the pool attached, NATS down, over
the rate): retry later. Exit 5: the outcome is unknown, subscribers may or
may not have the message (publishing again may deliver it twice).`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, data := args[0], []byte(args[1])
			if err := channel.ValidateName(ch); err != nil {
				return usageErrorf("CHANNEL %q: %s", ch, strings.TrimPrefix(err.Error(), channel.ErrName.Error()+": "))
			}
			if args[1] == "-" {
				var err error
				// One more byte than any control plane takes, to tell
				// "too big" from "exactly at the limit".
				if data, err = io.ReadAll(io.LimitReader(a.stdin, channel.MaxDataBytes+1)); err != nil {
					return fmt.Errorf("reading DATA from stdin: %w", err)
				}
				if len(data) > channel.MaxDataBytes {
					return usageErrorf("DATA from stdin is over %d bytes, more than any control plane takes", channel.MaxDataBytes)
				}
			}
			if err := channel.CheckData(data); err != nil {
				return usageErrorf("DATA: %s (quote it for your shell: '{\"a\":1}')", strings.TrimPrefix(err.Error(), channel.ErrData.Error()+": "))
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := c.Publish(ctx, pool, ch, data)
			if err != nil {
				return err
			}
			return a.emit(resp, func(w io.Writer) error { return writePublished(w, pool, ch, resp) })
		},
	}
	cmd.Flags().StringVar(&pool, "pool", policy.DefaultPool, "the pool whose nodes deliver it")
	return cmd
}

func writePublished(w io.Writer, pool, ch string, resp *wsfleetv1.PublishResponse) error {
	var err error
	switch resp.GetRoute() {
	case wsfleetv1.PublishResponse_ROUTE_NATS:
		_, err = fmt.Fprintf(w, "published to %s in pool %s through NATS\n", ch, pool)
	default:
		line := fmt.Sprintf("published to %s in pool %s: queued for %d %s attached to the control plane", ch, pool, resp.GetNodes(), plural(int(resp.GetNodes()), "node", "nodes"))
		if n := resp.GetNodesSkipped(); n > 0 {
			line += fmt.Sprintf("; %d %s skipped (delivery queue full)", n, plural(int(n), "node", "nodes"))
		}
		_, err = fmt.Fprintln(w, line)
	}
	return err
}

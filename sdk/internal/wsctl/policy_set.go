package wsctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/clip"
	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// maxDefaultSetMessage bounds the message `policy set` writes when -m is
// not given: the assignments themselves, which can be long lists.
const maxDefaultSetMessage = 256

func (a *app) policySetCommand() *cobra.Command {
	var (
		pool    string
		message string
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   "set PATH=VALUE...",
		Short: "Change named fields of a pool's current policy",
		Long: `Change named fields of a pool's current policy, leaving every other field
as it is, and store the result as the pool's next revision.

PATH names a field as validation errors and diffs do (origins.allow,
heartbeat.interval, limits.max_connections, breaker.failure_ratio...).
VALUE is read as a policy file reads it: durations as 10s or 1m30s, numbers,
true or false, choices by name (handshake.reject_with=close); a list as a,b
or as ["a","b"], [] for an empty list.

wsctl reads the current revision and stores the change only if the pool is
still at that revision, so a change someone else made in between is never
overwritten: run the command again to apply yours on top of it.

Paths: ` + wrap(strings.Join(policyfile.Paths(), ", "), 72),
		Example: `  wsctl policy set origins.allow=https://app.example.com,https://*.example.com -m "allow the app"
  wsctl policy set heartbeat.interval=20s heartbeat.timeout=45s --pool edge
  wsctl policy set handshake.reject_with=close -m "pages read why in CloseEvent"
  wsctl policy set 'origins.allow=[]' --dry-run   # quoted: [] is a glob to some shells`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("policy set needs at least one PATH=VALUE (valid paths: %s)", strings.Join(policyfile.Paths(), ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			assignments := make([]policyfile.Assignment, 0, len(args))
			for _, arg := range args {
				as, err := policyfile.ParseAssignment(arg)
				if err != nil {
					return usageErrorf("%s (valid paths: %s)", fieldErrorText(err), strings.Join(policyfile.Paths(), ", "))
				}
				assignments = append(assignments, as)
			}
			// Paths and values do not depend on the pool: check them
			// before asking the control plane anything.
			if _, err := policyfile.Assign(policy.Default(), assignments); err != nil {
				return usageError{fieldErrorText(err)}
			}

			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			got, err := pc.GetPolicy(ctx, &wsfleetv1.GetPolicyRequest{Pool: pool})
			if status.Code(err) == codes.NotFound {
				return fmt.Errorf("pool %q has no policy to change; create it with 'wsctl policy apply -f FILE --pool %s'", pool, pool)
			}
			if err != nil {
				return err
			}
			head := got.GetRevision()
			changed, err := policyfile.Assign(head.GetPolicy(), assignments)
			if err != nil {
				return usageError{fieldErrorText(err)}
			}
			if message == "" && !cmd.Flags().Changed("message") {
				message = clip.Marked("wsctl policy set "+strings.Join(args, " "), maxDefaultSetMessage)
			}
			ctx, cancel = a.callContext(cmd)
			defer cancel()
			resp, err := pc.ApplyPolicy(ctx, &wsfleetv1.ApplyPolicyRequest{
				Pool:             pool,
				Policy:           changed,
				Message:          message,
				DryRun:           dryRun,
				ExpectedRevision: proto.Int64(head.GetRevision()),
			})
			if current, ok := admin.Conflict(err); ok {
				return fmt.Errorf("pool %q changed while wsctl was setting fields (revision %d, now %d); nothing was stored: run the command again to set them on the new revision",
					pool, head.GetRevision(), current)
			}
			if err != nil {
				return err
			}
			return a.emit(resp, appliedWithImpact(resp, pool, dryRun))
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().StringVarP(&message, "message", "m", "", `why the change is made (default: the command line, "wsctl policy set ...")`)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show what would change and its impact on the last hour of traffic; store nothing")
	return cmd
}

// fieldErrorText renders the problems of a policyfile error on one line,
// each naming its path, without the package prefix.
func fieldErrorText(err error) string {
	var parts []string
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *policyfile.FieldError
		switch {
		case errors.As(err, &fe) && fe.Path != "":
			parts = append(parts, fe.Path+": "+fe.Detail)
		case errors.As(err, &fe):
			parts = append(parts, fe.Detail)
		default:
			parts = append(parts, strings.TrimPrefix(err.Error(), "policyfile: "))
		}
	}
	walk(err)
	return strings.Join(parts, "; ")
}

// wrap breaks text into lines of at most width bytes at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(text) {
		if i > 0 {
			if line+1+len(word) > width {
				b.WriteByte('\n')
				line = 0
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}

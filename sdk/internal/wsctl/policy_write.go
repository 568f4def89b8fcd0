package wsctl

import (
	"io"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// stdinName is how -f - shows up in messages.
const stdinName = "<stdin>"

// readDocument reads and decodes a policy file, "-" being stdin.
func (a *app) readDocument(name string) (*policyfile.Document, string, error) {
	var (
		data []byte
		err  error
	)
	if name == "-" {
		name = stdinName
		data, err = io.ReadAll(a.stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		// os errors already name the file.
		return nil, name, err
	}
	doc, err := policyfile.Decode(data)
	if err != nil {
		return nil, name, &fileError{name: name, err: err}
	}
	return doc, name, nil
}

func fileFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "file", "f", "", "policy file, YAML or JSON; - reads stdin")
	_ = cmd.MarkFlagRequired("file")
}

// expectFlag registers --expect-revision. Callers must test Changed, not
// the value: 0 is a real expectation ("the pool must not exist yet").
func expectFlag(cmd *cobra.Command, expect *int64) {
	cmd.Flags().Int64Var(expect, "expect-revision", 0,
		"fail unless the pool is at this revision (0: the pool must not exist yet)")
}

func (a *app) policyApplyCommand() *cobra.Command {
	var (
		file    string
		pool    string
		expect  int64
		message string
		dryRun  bool
		canary  canaryOptions
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|-",
		Short: "Store a policy file as a pool's next revision",
		Long: `Store a policy file as a pool's next revision.

The file is a bare policy or a revision document as printed by
'wsctl policy get -o yaml|json'. It need not be complete: a field it leaves
out takes its documented default (not the pool's current value), and the
changes printed show exactly what differs from the current revision. To
change a few fields and keep the rest, use 'wsctl policy set'.

The pool is --pool if given, else the document's pool, else "default". The
document's revision number is not an expectation; pass --expect-revision to
refuse the change if someone else changed the pool since you read it.

With --canary the revision goes only to the nodes whose labels match the
selector; the control plane compares each error class's rate on them with
the other nodes during --bake, then promotes it to every node or rolls it
back with the reason (see 'wsctl rollout status').`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, _, err := a.readDocument(file)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("pool") {
				pool = doc.Pool
				if pool == "" {
					pool = policy.DefaultPool
				}
			}
			req := &wsfleetv1.ApplyPolicyRequest{Pool: pool, Policy: doc.Policy, Message: message, DryRun: dryRun}
			if cmd.Flags().Changed("expect-revision") {
				req.ExpectedRevision = proto.Int64(expect)
			}
			canary.set(req)
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.ApplyPolicy(ctx, req)
			if err != nil {
				return err
			}
			if resp.GetRevision().GetRollout() != nil && !dryRun && !resp.GetUnchanged() {
				return a.emitCanary(cmd, resp, appliedWithImpact(resp, pool, dryRun))
			}
			return a.emit(resp, appliedWithImpact(resp, pool, dryRun))
		},
	}
	fileFlag(cmd, &file)
	poolFlag(cmd, &pool)
	expectFlag(cmd, &expect)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why the change is made; kept with the revision")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show what would change and its impact on the last hour of traffic; store nothing")
	canaryFlags(cmd, &canary)
	return cmd
}

func (a *app) policyRollbackCommand() *cobra.Command {
	var (
		pool    string
		to      int64
		expect  int64
		message string
	)
	cmd := &cobra.Command{
		Use:   "rollback --to N",
		Short: "Make a new revision with the content of an older one",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to < 1 {
				return usageErrorf("--to must be a revision number (1 or more), got %d", to)
			}
			req := &wsfleetv1.RollbackPolicyRequest{Pool: pool, ToRevision: to, Message: message}
			if cmd.Flags().Changed("expect-revision") {
				req.ExpectedRevision = proto.Int64(expect)
			}
			pc, err := a.policy()
			if err != nil {
				return err
			}
			ctx, cancel := a.callContext(cmd)
			defer cancel()
			resp, err := pc.RollbackPolicy(ctx, req)
			if err != nil {
				return err
			}
			return a.emit(resp, outcome{
				pool:       poolOf(resp.GetRevision(), pool),
				revision:   resp.GetRevision().GetRevision(),
				previous:   resp.GetPreviousRevision(),
				unchanged:  resp.GetUnchanged(),
				rollbackOf: to,
				changes:    resp.GetChanges(),
			}.write)
		},
	}
	poolFlag(cmd, &pool)
	cmd.Flags().Int64Var(&to, "to", 0, "revision whose content to restore")
	_ = cmd.MarkFlagRequired("to")
	expectFlag(cmd, &expect)
	cmd.Flags().StringVarP(&message, "message", "m", "", "why; kept with the new revision")
	return cmd
}

func (a *app) policyValidateCommand() *cobra.Command {
	var (
		file  string
		local bool
	)
	cmd := &cobra.Command{
		Use:   "validate -f FILE|-",
		Short: "Check a policy file without storing it",
		Long: `Check a policy file without storing it: prints "valid", or one line per
invalid field and exits 1. With --local the check runs in wsctl with the
rules it was built with, without contacting the control plane.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, name, err := a.readDocument(file)
			if err != nil {
				return err
			}
			var violations []*wsfleetv1.FieldViolation
			if local {
				violations = policy.Validate(doc.Policy)
			} else {
				pc, err := a.policy()
				if err != nil {
					return err
				}
				ctx, cancel := a.callContext(cmd)
				defer cancel()
				resp, err := pc.ValidatePolicy(ctx, &wsfleetv1.ValidatePolicyRequest{Policy: doc.Policy})
				if err != nil {
					return err
				}
				violations = resp.GetViolations()
			}
			resp := &wsfleetv1.ValidatePolicyResponse{Violations: violations}
			err = a.emit(resp, func(w io.Writer) error {
				if len(violations) == 0 {
					_, err := io.WriteString(w, "valid\n")
					return err
				}
				for _, v := range violations {
					if _, err := io.WriteString(w, v.GetField()+": "+v.GetDescription()+"\n"); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(violations) > 0 {
				return &invalidError{name: name, n: len(violations)}
			}
			return nil
		},
	}
	fileFlag(cmd, &file)
	cmd.Flags().BoolVar(&local, "local", false, "check with wsctl's built-in rules, without the control plane")
	return cmd
}

func poolOf(rev *wsfleetv1.PolicyRevision, asked string) string {
	if p := rev.GetPool(); p != "" {
		return p
	}
	return asked
}

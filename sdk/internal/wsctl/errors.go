package wsctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/channel"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// Sentinels for conditions wsctl itself detects.
var (
	// errInvalidPolicy: validate found violations (they are already printed).
	errInvalidPolicy = errors.New("wsctl: invalid policy")
	// errNoEvents: a query that must find events found none.
	errNoEvents = errors.New("wsctl: no events")
	// errStreamEnded: the control plane closed a stream that should run
	// until Ctrl-C.
	errStreamEnded = errors.New("wsctl: the control plane ended the event stream")
)

// usageError is a mistake on the command line; it exits 2 with a pointer to
// --help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// fileError is a policy file that could not be read or decoded.
type fileError struct {
	name string
	err  error
}

func (e *fileError) Error() string { return e.name + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// invalidError reports how many violations validate printed.
type invalidError struct {
	name string
	n    int
}

func (e *invalidError) Error() string {
	return fmt.Sprintf("%s: policy has %d invalid %s", e.name, e.n, plural(e.n, "field", "fields"))
}
func (e *invalidError) Unwrap() error { return errInvalidPolicy }

// noTraceError is a trace id with no event in the range asked for.
type noTraceError struct {
	trace string
	since time.Duration
	// truncated: the control plane's bounded event buffer no longer
	// reaches back to the start of the range.
	truncated bool
	// partial: some control-plane replicas did not answer (noted above).
	partial bool
}

func (e *noTraceError) Error() string {
	if e.partial {
		return fmt.Sprintf("no events for trace %s from the control-plane replicas that answered (the others may hold it)", e.trace)
	}
	if e.truncated {
		return fmt.Sprintf("no events for trace %s (the control plane keeps a bounded number of recent events and no longer holds all of %s; the trace may be older)",
			e.trace, sinceText(e.since))
	}
	return fmt.Sprintf("no events for trace %s in %s (check the trace id, or look further back with --since; the control plane keeps a bounded number of recent events)",
		e.trace, sinceText(e.since))
}
func (e *noTraceError) Unwrap() error { return errNoEvents }

// report prints err to stderr as one line per problem and returns the exit
// code.
func (a *app) report(cmd *cobra.Command, err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "error: %s\n", ue.msg)
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	for _, line := range a.explain(err) {
		fmt.Fprintln(a.stderr, line)
	}
	switch {
	case errors.Is(err, admin.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, admin.ErrStoreUnavailable):
		return exitStoreFailed
	case errors.Is(err, admin.ErrOutcomeUnknown):
		return exitOutcomeUnknown
	case errors.Is(err, admin.ErrNotDelivered):
		return exitNotDelivered
	}
	return exitError
}

// explain turns an error into the lines an operator needs: what failed,
// every field at fault, and what to do next.
func (a *app) explain(err error) []string {
	var fe *fileError
	if errors.As(err, &fe) {
		return explainFile(fe)
	}
	var ce *admin.CallError
	if errors.As(err, &ce) {
		return a.explainCall(ce)
	}
	if errors.Is(err, context.Canceled) {
		return []string{"error: interrupted"}
	}
	if st, ok := status.FromError(err); ok {
		return a.explainStatus(st, err)
	}
	// Errors of our own packages carry a "pkg: " prefix for logs; on a
	// terminal it is noise.
	msg := strings.TrimPrefix(err.Error(), "admin: ")
	msg = strings.TrimPrefix(msg, "wsctl: ")
	return []string{"error: " + msg}
}

func explainFile(fe *fileError) []string {
	var problems []error
	if joined, ok := fe.err.(interface{ Unwrap() []error }); ok {
		problems = joined.Unwrap()
	} else {
		problems = []error{fe.err}
	}
	lines := make([]string, 0, len(problems))
	for _, p := range problems {
		var field *policyfile.FieldError
		switch {
		case errors.As(p, &field) && field.Path != "":
			lines = append(lines, fmt.Sprintf("error: %s: %s: %s", fe.name, field.Path, field.Detail))
		case errors.As(p, &field):
			lines = append(lines, fmt.Sprintf("error: %s: %s", fe.name, field.Detail))
		default:
			lines = append(lines, fmt.Sprintf("error: %s: %s", fe.name, strings.TrimPrefix(p.Error(), "policyfile: ")))
		}
	}
	return lines
}

func (a *app) explainStatus(st *status.Status, err error) []string {
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		lines := []string{"error: " + msg}
		for _, v := range admin.FieldViolations(err) {
			lines = append(lines, "  "+v.GetField()+": "+v.GetDescription())
		}
		return lines
	case codes.FailedPrecondition:
		if _, ok := admin.Conflict(err); ok {
			return []string{"error: " + msg + " (re-read with 'wsctl policy get' and retry)"}
		}
		return []string{"error: " + msg}
	case codes.Unavailable:
		return []string{fmt.Sprintf("error: the control plane at %s is unreachable: %s (check --addr or %s)", a.addr, dialDetail(msg), envAddr)}
	case codes.Unauthenticated:
		return []string{fmt.Sprintf("error: the control plane at %s did not accept the credentials: %s (pass a valid token with --token or %s)", a.addr, msg, envToken)}
	case codes.PermissionDenied:
		return []string{fmt.Sprintf("error: permission denied: %s (use a token whose role allows this, with --token or %s)", msg, envToken)}
	case codes.DeadlineExceeded:
		return []string{fmt.Sprintf("error: no answer from the control plane at %s within %s (raise --timeout)", a.addr, a.timeout)}
	case codes.Canceled:
		return []string{"error: interrupted"}
	case codes.Unimplemented:
		return []string{fmt.Sprintf("error: the control plane at %s does not support this call (%s); is it older than wsctl?", a.addr, msg)}
	case codes.NotFound, codes.AlreadyExists, codes.Aborted, codes.ResourceExhausted:
		return []string{"error: " + msg}
	default:
		return []string{fmt.Sprintf("error: %s (%s)", msg, st.Code())}
	}
}

// explainCall says what is known of a call that failed without the control
// plane refusing it: nothing sent, nothing stored, or the outcome unknown.
func (a *app) explainCall(ce *admin.CallError) []string {
	st := status.Convert(ce.Err)
	switch {
	case errors.Is(ce, admin.ErrUnreachable):
		detail := dialDetail(st.Message())
		if st.Code() == codes.DeadlineExceeded {
			detail = "no connection within " + a.timeout.String()
		}
		return []string{fmt.Sprintf("error: the control plane at %s is unreachable: %s; nothing was sent (check --addr or %s)",
			a.addr, detail, envAddr)}
	case errors.Is(ce, admin.ErrStoreUnavailable):
		op, _ := admin.StoreUnavailable(ce.Err)
		return []string{fmt.Sprintf("error: the control plane at %s could not use its policy store (%s failed); nothing was stored: retry later (its log says why)",
			a.addr, op)}
	case errors.Is(ce, admin.ErrNotDelivered):
		// The control plane's message says why and that nothing went out.
		return []string{"error: " + st.Message() + " (publishing again is safe)"}
	case errors.Is(ce, admin.ErrOutcomeUnknown) && ce.Method == wsfleetv1.PublishService_Publish_FullMethodName:
		what := "the connection to the control plane at " + a.addr + " broke before it answered (" + dialDetail(st.Message()) + ")"
		switch {
		case st.Code() == codes.DeadlineExceeded:
			what = fmt.Sprintf("no answer from the control plane at %s within %s", a.addr, a.timeout)
		case st.Code() == codes.Canceled:
			what = "interrupted before the control plane at " + a.addr + " answered"
		case isUnconfirmed(ce.Err):
			what = st.Message()
		}
		return []string{fmt.Sprintf("error: %s; the outcome is unknown: subscribers may or may not have the message (publishing again may deliver it twice)", what)}
	case errors.Is(ce, admin.ErrOutcomeUnknown):
		var what string
		switch st.Code() {
		case codes.DeadlineExceeded:
			what = fmt.Sprintf("no answer from the control plane at %s within %s", a.addr, a.timeout)
		case codes.Canceled:
			what = "interrupted before the control plane at " + a.addr + " answered"
		default:
			what = fmt.Sprintf("the connection to the control plane at %s broke before it answered (%s)", a.addr, dialDetail(st.Message()))
		}
		if ce.Pool == "" { // a decision on a proposal
			return []string{fmt.Sprintf("error: %s; the outcome is unknown: check 'wsctl policy proposals' before retrying", what)}
		}
		return []string{fmt.Sprintf("error: %s; the outcome is unknown: check 'wsctl policy history --pool %s' before retrying",
			what, ce.Pool)}
	default: // admin.ErrConnectionLost
		return []string{fmt.Sprintf("error: the connection to the control plane at %s broke before it answered (%s); nothing was changed: retry",
			a.addr, dialDetail(st.Message()))}
	}
}

// dialDetail digs the network error out of gRPC's transport wrapping:
// `connection error: desc = "transport: Error while dialing: dial tcp ...:
// connect: connection refused"` reads better as its last part.
func dialDetail(msg string) string {
	if i := strings.LastIndex(msg, `desc = "`); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len(`desc = "`):], `"`)
	}
	msg = strings.TrimPrefix(msg, "transport: ")
	msg = strings.TrimPrefix(msg, "Error while dialing: ")
	msg = strings.TrimPrefix(msg, "error while dialing: ")
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// isUnconfirmed: the control plane answered that NATS took a publish
// without confirming it (DELIVERY_UNCONFIRMED).
func isUnconfirmed(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == channel.ReasonUnconfirmed {
			return true
		}
	}
	return false
}

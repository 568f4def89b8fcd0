package wsctl

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/admin"
)

// Environment variables read for flags the user did not set.
const (
	envAddr  = "WSFLEET_ADDR"
	envToken = "WSFLEET_TOKEN"
	envUser  = "USER"
)

// Exit codes. 3 to 5 tell a script whether retrying is safe: after 3 and 4
// nothing changed; after 5 a write may or may not have been stored.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitUnreachable: no connection to the control plane; nothing was sent.
	exitUnreachable = 3
	// exitStoreFailed: the control plane's store failed; nothing was stored.
	exitStoreFailed = 4
	// exitOutcomeUnknown: a write was sent and no answer came back.
	exitOutcomeUnknown = 5
	// exitNotDelivered: the control plane answered that a publish went
	// nowhere; publishing again is safe.
	exitNotDelivered = 6
)

// Main runs wsctl with args (without the program name) and returns the
// process exit code. Ctrl-C (or SIGTERM) cancels the call in flight and ends
// `errors tail --follow`, which then exits 0; a second Ctrl-C kills the
// process as usual.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once the first signal has cancelled ctx, give signals back their
	// default action, so a wedged call can still be killed.
	context.AfterFunc(ctx, stop)
	return MainContext(ctx, args, stdin, stdout, stderr)
}

// MainContext is Main under a context the caller controls instead of the
// process signals: cancelling ctx interrupts wsctl like Ctrl-C does. The
// environment is read from the process.
func MainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// run is Main with the environment injected, so tests need not touch the
// process environment.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	a.close()
	if err == nil {
		return exitOK
	}
	return a.report(cmd, err)
}

// app is one invocation: its streams, global flags and connection.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	addr       string
	token      string
	tls        bool
	caFile     string
	certFile   string
	keyFile    string
	serverName string
	output     string
	timeout    time.Duration

	client *admin.Client
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "wsctl",
		Short: "Operate a wsfleet control plane",
		Long: `wsctl reads and changes the policy of wsfleet gateway pools through the
control plane's admin API: every change is a numbered revision with author,
time and message, which can be diffed and rolled back.

It also shows the fleet: which nodes run which revision (nodes list), which
errors clients hit and what to do about them (errors top, errors tail), and
everything that happened to one connection attempt (trace); and publishes
to a channel on every node of a pool, as a backend does (publish).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Arbitrary args reach groupRun, which turns an unknown command into
		// a usage error (cobra's own check cannot be told from other errors).
		Args:              cobra.ArbitraryArgs,
		RunE:              groupRun,
		PersistentPreRunE: a.prepare,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })

	f := root.PersistentFlags()
	f.StringVar(&a.addr, "addr", admin.DefaultAddr, "control plane address host:port, or its replicas host:port,host:port,... or a DNS name with several addresses; calls go to one live replica (env "+envAddr+")")
	f.StringVar(&a.token, "token", "", "bearer token (env "+envToken+")")
	f.BoolVar(&a.tls, "tls", false, "use TLS, verifying the server with the system roots unless --ca-file")
	f.StringVar(&a.caFile, "ca-file", "", "PEM CA bundle to verify the control plane (implies --tls)")
	f.StringVar(&a.certFile, "cert-file", "", "client certificate for mutual TLS (implies --tls)")
	f.StringVar(&a.keyFile, "key-file", "", "client key for mutual TLS")
	f.StringVar(&a.serverName, "server-name", "", "server name to verify every replica's certificate against (default: each replica's host as --addr gives it)")
	f.StringVarP(&a.output, "output", "o", formatTable, "output format: table, json or yaml")
	f.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline for each call to the control plane")

	root.AddCommand(a.policyCommand(), a.nodesCommand(), a.errorsCommand(), a.traceCommand(), a.publishCommand(), a.rolloutCommand())
	return root
}

// prepare runs before every command: it checks what cobra checks only after
// the pre-run hooks (so those errors can be marked as usage errors) and
// fills unset flags from the environment.
func (a *app) prepare(cmd *cobra.Command, _ []string) error {
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return usageError{err.Error()}
	}
	if err := cmd.ValidateFlagGroups(); err != nil {
		return usageError{err.Error()}
	}
	switch a.output {
	case formatTable, formatJSON, formatYAML:
	default:
		return usageErrorf("invalid output format %q (want table, json or yaml)", a.output)
	}
	if a.timeout <= 0 {
		return usageErrorf("--timeout must be positive, got %s", a.timeout)
	}
	flags := cmd.Flags()
	// The token is not a flag default: help output would print it.
	if !flags.Changed("addr") {
		if v := a.getenv(envAddr); v != "" {
			a.addr = v
		}
	}
	if !flags.Changed("token") {
		a.token = a.getenv(envToken)
	}
	return nil
}

// groupRun is the RunE of commands that only group others: alone it shows
// help; with an argument it is an unknown command.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := "unknown command \"" + args[0] + "\" for \"" + cmd.CommandPath() + "\""
	// cobra sets its default distance only on its own lookup path.
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean \"" + s[0] + "\"?"
	}
	return usageError{msg}
}

// exactArgs is cobra.ExactArgs with its error marked as a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err.Error()}
		}
		return nil
	}
}

// dial connects on first use, so commands that need no control plane
// (validate --local, help) work without one.
func (a *app) dial() (*admin.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	user := a.getenv(envUser)
	if user == "" {
		user = "unknown"
	}
	c, err := admin.Dial(admin.Config{
		Addr:       a.addr,
		Token:      a.token,
		User:       user,
		TLS:        a.tls,
		CAFile:     a.caFile,
		CertFile:   a.certFile,
		KeyFile:    a.keyFile,
		ServerName: a.serverName,
	})
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

func (a *app) policy() (wsfleetv1.PolicyServiceClient, error) {
	c, err := a.dial()
	if err != nil {
		return nil, err
	}
	return c.Policy(), nil
}

// callContext bounds one RPC by --timeout.
func (a *app) callContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.timeout)
}

func (a *app) close() {
	if a.client != nil {
		_ = a.client.Close()
		a.client = nil
	}
}

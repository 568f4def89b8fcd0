// Package wsctl is the wsctl command line: cobra commands over the SDK's
// admin client (sdk/admin) and policy file format (sdk/policyfile).
//
// Layout: root.go holds Main, the global flags and the lazily dialled
// client; output.go the -o table|json|yaml rendering; errors.go the mapping
// from errors to the lines on stderr and the exit code; one file per command
// group (policy.go, policy_write.go, ...). A new group (nodes, errors,
// trace) is a new file with a constructor added in root.go.
//
// Exit codes: 0 success, 1 an operation failed (the control plane refused,
// a file did not decode, a policy is invalid), 2 the command line itself was
// wrong, 3 the control plane could not be reached (nothing was sent), 4 its
// policy store failed (nothing was stored), 5 a write was sent and no answer
// came back (the outcome is unknown: check the history before retrying).
// sdk/admin classifies the failures; errors.go words them. Every RPC gets
// its own --timeout deadline,
// except the stream of `errors tail --follow`, which runs until the context
// of Main (Ctrl-C) or MainContext ends and then exits 0. One invocation uses
// one connection, closed before Main returns. Commands run on the caller's
// goroutine; gRPC owns the connection's goroutines, all gone after close.
package wsctl

package policysource

import (
	"errors"
	"strings"
)

var (
	// ErrConfig: the FileConfig cannot work (no path, a bad pool name...).
	ErrConfig = errors.New("policysource: invalid config")
	// ErrRead: the policy file cannot be read (missing, unreadable, too big).
	ErrRead = errors.New("policysource: cannot read policy file")
	// ErrInvalid: the file does not decode or its policy does not validate.
	// The error names every problem; it also matches the policyfile
	// sentinels (decoding) or policy.ErrInvalidPolicy (validation).
	ErrInvalid = errors.New("policysource: invalid policy file")
	// ErrRefused: the file is valid but Apply refused it; the error also
	// matches what Apply returned.
	ErrRefused = errors.New("policysource: policy refused")
)

// fileError is a policy file that was not applied, with every problem in
// one line: it goes into a single log line and a single returned error.
type fileError struct {
	kind     error // one of the sentinels above
	path     string
	problems []string
	cause    error
}

func (e *fileError) Error() string {
	return e.kind.Error() + ": " + e.path + ": " + strings.Join(e.problems, "; ")
}

func (e *fileError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

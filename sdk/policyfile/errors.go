package policyfile

import "errors"

// Sentinels for errors.Is. Decode reports problems with a field as
// *FieldError values wrapping one of these; several problems are joined with
// errors.Join so a reader can fix a file in one pass.
var (
	// ErrEmpty: the input holds no document (nothing, blanks, comments or null).
	ErrEmpty = errors.New("policyfile: empty document")
	// ErrSyntax: the input is not well-formed YAML or JSON.
	ErrSyntax = errors.New("policyfile: syntax error")
	// ErrUnknownField: a key that is not a field of the message at that path.
	ErrUnknownField = errors.New("policyfile: unknown field")
	// ErrWrongType: a value of the wrong kind (a string where a number belongs...).
	ErrWrongType = errors.New("policyfile: wrong type")
	// ErrInvalidDuration: a duration that neither time.ParseDuration nor
	// protojson accepts.
	ErrInvalidDuration = errors.New("policyfile: invalid duration")
	// ErrInvalidTimestamp: a timestamp that is not RFC 3339 or is out of range.
	ErrInvalidTimestamp = errors.New("policyfile: invalid timestamp")
	// ErrInvalidValue: a value of the right kind that the field cannot hold
	// (out of range, unknown enum name, a field given twice).
	ErrInvalidValue = errors.New("policyfile: invalid value")
	// ErrUnsupported: Encode met a message it cannot write so that Decode
	// reads it back (a well-known type other than Duration and Timestamp, or
	// an invalid Duration or Timestamp value).
	ErrUnsupported = errors.New("policyfile: cannot encode")
)

// FieldError is one problem at one place in a document.
type FieldError struct {
	// Path of the offending field as it reads in the file, with proto
	// (snake_case) names: "heartbeat.interval", "origins.allow[1]",
	// "policy.limits.max_connections" in a revision document. Empty for the
	// document itself.
	Path string
	// What is wrong, e.g. `invalid duration "10 seconds"`.
	Detail string
	// One of the sentinels above.
	Err error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return "policyfile: " + e.Detail
	}
	return "policyfile: " + e.Path + ": " + e.Detail
}

func (e *FieldError) Unwrap() error { return e.Err }

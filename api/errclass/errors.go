package errclass

import "errors"

// ErrUnknownClass: a name does not name an error class.
var ErrUnknownClass = errors.New("errclass: unknown error class")

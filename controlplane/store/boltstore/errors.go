package boltstore

import "errors"

var (
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("boltstore: invalid config")
	// ErrLocked: another process holds the database file's lock, so two
	// control planes cannot write the same file.
	ErrLocked = errors.New("boltstore: database file is locked by another process")
	// ErrSchemaTooNew: the file was written by a newer wsfleet whose layout
	// this build does not understand; opening it could corrupt it.
	ErrSchemaTooNew = errors.New("boltstore: database schema is newer than this build supports")
	// ErrNotPolicyDB: the file is a bbolt database, but not one of ours.
	ErrNotPolicyDB = errors.New("boltstore: not a wsfleet policy database")
	// ErrCorrupt: a stored key or value cannot be decoded.
	ErrCorrupt = errors.New("boltstore: corrupt data")
	// ErrInvalidRevision: Append got a nil revision or one without a pool.
	ErrInvalidRevision = errors.New("boltstore: invalid revision")
)

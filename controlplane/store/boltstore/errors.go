package boltstore

import "errors"

// Errors of Open and Create name the file and say what is wrong with it;
// what an operator should do about it is the caller's to say (the control
// plane adds it, since it knows its flags and tools).
var (
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("boltstore: invalid config")
	// ErrBadPath: the path cannot hold a store file: it is a directory or
	// another non-regular file, or its parent is not a directory.
	ErrBadPath = errors.New("boltstore: unusable path")
	// ErrLocked: another process holds the database file's lock, so two
	// control planes cannot write the same file.
	ErrLocked = errors.New("boltstore: database file is locked by another process")
	// ErrEmpty: the file exists but has no bytes. It is never initialised in
	// place: an empty file where a store was expected means the store was
	// lost, and starting afresh over it would silently roll the fleet back.
	ErrEmpty = errors.New("boltstore: database file is empty")
	// ErrExists: Create found a file at the path; it never overwrites one.
	ErrExists = errors.New("boltstore: database file already exists")
	// ErrSchemaTooNew: the file was written by a newer wsfleet whose layout
	// this build does not understand; opening it could corrupt it.
	ErrSchemaTooNew = errors.New("boltstore: database schema is newer than this build supports")
	// ErrNotPolicyDB: the file is not a bbolt database, or a bbolt database
	// that is not one of ours (another program's, or one without our
	// layout).
	ErrNotPolicyDB = errors.New("boltstore: not a wsfleet policy database")
	// ErrCorrupt: the file is damaged (truncated, a bad meta page, a page
	// bbolt's consistency check refuses, bbolt failing while reading it), or
	// a stored key or value cannot be decoded.
	ErrCorrupt = errors.New("boltstore: corrupt data")
	// ErrInvalidRevision: Append got a nil revision or one without a pool.
	ErrInvalidRevision = errors.New("boltstore: invalid revision")
)

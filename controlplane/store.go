package controlplane

import (
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
)

// openStore opens the embedded store in cfg.DataDir. A missing file is a
// new store, said so in the log with its identity; an existing one that
// cannot be used is an error saying what to do. Either way the caller gets
// a usable store or a nil one, never a nil *boltstore.Store in an
// interface.
func openStore(cfg *Config, log *logrus.Logger) (*boltstore.Store, error) {
	path := cfg.storePath()
	st, err := boltstore.Open(boltstore.Config{Path: path})
	if err != nil {
		return nil, withStoreAdvice(err)
	}
	if st.Created() {
		log.WithFields(logrus.Fields{"store_id": st.ID(), "path": path}).
			Info("created a new store")
	}
	return st, nil
}

// InitStore creates a new, empty store in cfg.DataDir (wsfleet-control
// --init) and returns its identity and file. It never overwrites: if a
// store file is already there it fails with boltstore.ErrExists.
func InitStore(cfg Config) (id, path string, err error) {
	cfg.setDefaults()
	path = cfg.storePath()
	st, err := boltstore.Create(boltstore.Config{Path: path})
	if err != nil {
		return "", path, withStoreAdvice(err)
	}
	id = st.ID()
	if err := st.Close(); err != nil {
		return "", path, err
	}
	return id, path, nil
}

// withStoreAdvice adds to a store error what the operator can do about it.
// The store's error already names the file and what is wrong with it.
func withStoreAdvice(err error) error {
	var advice string
	switch {
	case errors.Is(err, boltstore.ErrLocked):
		advice = "another wsfleet-control (or another process) holds the lock on it: stop that one, or give this one its own --data-dir"
	case errors.Is(err, boltstore.ErrEmpty), errors.Is(err, boltstore.ErrCorrupt), errors.Is(err, boltstore.ErrNotPolicyDB):
		advice = "restore it from a backup, or move it away (a new store is then created) and recover the fleet's policy with `wsctl policy recover`"
	case errors.Is(err, boltstore.ErrExists):
		advice = "a store file is never overwritten: move it away first to start a new store"
	case errors.Is(err, boltstore.ErrBadPath):
		advice = "--data-dir must name a directory"
	default:
		return err
	}
	return fmt.Errorf("%w; %s", err, advice)
}

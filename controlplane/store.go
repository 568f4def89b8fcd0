package controlplane

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/boltstore"
	"github.com/wsfleet/wsfleet/controlplane/store/etcdstore"
)

// openStore opens the store cfg.Store selects. A new store (a missing
// file, an empty etcd prefix) is said so in the log with its identity; an
// existing one that cannot be used is an error saying what to do. Either
// way the caller gets a usable store or a nil one, never a nil
// *boltstore.Store in an interface.
func openStore(cfg *Config, log *logrus.Logger) (store.Store, error) {
	if cfg.Store == StoreEtcd {
		ec, err := cfg.etcdConfig(log)
		if err != nil {
			return nil, err
		}
		st, err := etcdstore.Open(ec)
		if err != nil {
			return nil, withStoreAdvice(err)
		}
		if st.Created() {
			log.WithFields(logrus.Fields{"store_id": st.ID(), "etcd_endpoints": strings.Join(ec.Endpoints, ","), "etcd_prefix": st.Prefix()}).
				Info("created a new store")
		}
		return st, nil
	}
	path := cfg.storePath()
	st, err := boltstore.Open(boltstore.Config{Path: path, Log: log})
	if err != nil {
		return nil, withStoreAdvice(err)
	}
	if st.Created() {
		log.WithFields(logrus.Fields{"store_id": st.ID(), "path": path}).
			Info("created a new store")
	}
	return st, nil
}

// etcdConfig is cfg.Etcd with the password from EtcdPasswordFile and the
// control plane's logger.
func (c *Config) etcdConfig(log *logrus.Logger) (etcdstore.Config, error) {
	ec := c.Etcd
	ec.Log = log
	if c.EtcdPasswordFile != "" {
		b, err := os.ReadFile(c.EtcdPasswordFile)
		if err != nil {
			return ec, fmt.Errorf("%w: etcd password file: %w", ErrConfig, err)
		}
		ec.Password = strings.TrimRight(string(b), "\r\n")
	}
	return ec, nil
}

// InitStore creates a new, empty store (wsfleet-control --init): a
// policy.db in cfg.DataDir, or the identity under an empty etcd prefix. It
// returns the store's identity and where it is. It never overwrites: if a
// store is already there it fails with boltstore.ErrExists or
// etcdstore.ErrExists.
func InitStore(cfg Config) (id, where string, err error) {
	cfg.setDefaults()
	if err := cfg.validateStore(); err != nil {
		return "", "", err
	}
	var st store.Store
	if cfg.Store == StoreEtcd {
		ec, err := cfg.etcdConfig(cfg.Log)
		if err != nil {
			return "", "", err
		}
		where = fmt.Sprintf("etcd %s prefix %s", strings.Join(ec.Endpoints, ","), ec.Prefix)
		est, err := etcdstore.Create(ec)
		if err != nil {
			return "", where, withStoreAdvice(err)
		}
		st = est
	} else {
		where = cfg.storePath()
		bst, err := boltstore.Create(boltstore.Config{Path: where})
		if err != nil {
			return "", where, withStoreAdvice(err)
		}
		st = bst
	}
	id = st.ID()
	if err := st.Close(); err != nil {
		return "", where, err
	}
	return id, where, nil
}

// withStoreAdvice adds to a store error what the operator can do about it.
// The store's error already names the file (or etcd and the prefix) and
// what is wrong with it.
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
	case errors.Is(err, etcdstore.ErrUnavailable):
		advice = "check --etcd-endpoints, that etcd is up and has a leader, and the --etcd-ca, --etcd-cert, --etcd-key and credential flags"
	case errors.Is(err, etcdstore.ErrForeign):
		advice = "another program's keys are never written over: give wsfleet a prefix of its own with --etcd-prefix"
	case errors.Is(err, etcdstore.ErrNoIdentity), errors.Is(err, etcdstore.ErrCorrupt):
		advice = "restore the prefix from an etcd snapshot, or start a new store under another --etcd-prefix and recover the fleet's policy with `wsctl policy recover`"
	case errors.Is(err, etcdstore.ErrExists):
		advice = "a store is never overwritten: choose another --etcd-prefix, or delete the prefix first to start a new store"
	case errors.Is(err, etcdstore.ErrReplaced):
		advice = "the store was deleted and created anew while this control plane ran: restart it to serve the new store"
	default:
		return err
	}
	return fmt.Errorf("%w; %s", err, advice)
}

package store

import (
	"sync"

	"github.com/sirupsen/logrus"
)

// MaxDamageKeys bounds the damaged keys a DamageLog remembers: damage is
// counted and logged once per key up to it; beyond it, once more to say
// so, and no further (a store full of garbage must not grow the set).
const MaxDamageKeys = 1024

// Stats is what a store counts about its own contents, for the control
// plane's metrics.
type Stats struct {
	// DamagedProposals is how many distinct proposal records were found
	// damaged (not decodable, or not the proposal their key names) since
	// the store was opened. Listing, counting open ones and pruning skip
	// them; reading or deciding one by its id fails with the store's
	// ErrCorrupt. They are kept for an operator to inspect.
	DamagedProposals uint64
}

// DamageLog reports damaged records that a store skips: each key is
// logged once (with its key and what is wrong) and counted once, so a
// record read on every list does not flood the log. Safe for concurrent
// use; the zero value logs to logrus's standard logger.
type DamageLog struct {
	Log logrus.FieldLogger

	mu   sync.Mutex
	seen map[string]struct{}
	n    uint64
	full bool
}

// Skip reports that the record at key (already clipped for logging) was
// skipped because of err.
func (d *DamageLog) Skip(what, key string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[key]; ok {
		return
	}
	log := d.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	if len(d.seen) >= MaxDamageKeys {
		if !d.full {
			d.full = true
			log.WithField("max", MaxDamageKeys).Errorf("more damaged %s records than are remembered; not logging or counting further ones", what)
		}
		return
	}
	if d.seen == nil {
		d.seen = map[string]struct{}{}
	}
	d.seen[key] = struct{}{}
	d.n++
	log.WithError(err).WithField("key", key).Errorf("damaged %s record skipped; it is kept for inspection: repair or delete it", what)
}

// Count is how many distinct damaged records were reported.
func (d *DamageLog) Count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

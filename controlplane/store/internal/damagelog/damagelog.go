// Package damagelog reports the damaged records a store skips instead of
// failing on them: each key is logged once (with the key and what is
// wrong) and counted once, so a record read on every list does not flood
// the log, and the set of keys remembered is bounded.
package damagelog

import (
	"sync"

	"github.com/sirupsen/logrus"
)

// MaxKeys bounds the damaged keys a Log remembers: damage is counted and
// logged once per key up to it; beyond it, once more to say so, and no
// further (a store full of garbage must not grow the set).
const MaxKeys = 1024

// Log reports damaged records that a store skips. Safe for concurrent
// use; the zero value logs to logrus's standard logger.
type Log struct {
	Logger logrus.FieldLogger

	mu   sync.Mutex
	seen map[string]struct{}
	n    uint64
	full bool
}

// Skip reports that the record at key (already clipped for logging) was
// skipped because of err.
func (d *Log) Skip(what, key string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[key]; ok {
		return
	}
	log := d.Logger
	if log == nil {
		log = logrus.StandardLogger()
	}
	if len(d.seen) >= MaxKeys {
		if !d.full {
			d.full = true
			log.WithField("max", MaxKeys).Errorf("more damaged %s records than are remembered; not logging or counting further ones", what)
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
func (d *Log) Count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

//go:build !windows && !plan9 && !solaris && !aix && !android

package boltstore

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockRetry is how often lockFile tries again, as bbolt does.
const lockRetry = 50 * time.Millisecond

// lockFile takes the exclusive flock bbolt takes, on the same open file, so
// that the file is checked only once no other process can be writing it.
// bbolt's own flock on this file then succeeds at once (flock locks belong
// to the open file description). It gives up after timeout with errLockTimeout.
func lockFile(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return errLockTimeout
		}
		time.Sleep(lockRetry)
	}
}

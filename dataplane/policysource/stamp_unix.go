//go:build unix

package policysource

import (
	"os"
	"syscall"
)

// fileID identifies the file behind a path: a rename over it or a symlink
// swap changes it even when size and modification time come out equal.
func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) // the field types differ between platforms
	}
	return 0, 0
}

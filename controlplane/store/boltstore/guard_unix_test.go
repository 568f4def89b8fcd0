//go:build unix

package boltstore

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
)

// TestGuardTurnsFaultsAndPanicsIntoErrCorrupt reads a memory-mapped page
// whose file was truncated under it (the SIGBUS bbolt meets on a truncated
// store) and panics the way bbolt's assertions do; both become ErrCorrupt
// instead of ending the process.
func TestGuardTurnsFaultsAndPanicsIntoErrCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped")
	ps := os.Getpagesize()
	if err := os.WriteFile(path, make([]byte, 2*ps), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := syscall.Mmap(int(f.Fd()), 0, 2*ps, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Munmap(data) }()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}

	var sink byte
	tests := []struct {
		name string
		fn   func() error
		want string
	}{
		{"a read past the end of a truncated mapped file", func() error { sink = data[ps]; return nil }, "memory map of it faulted"},
		{"a bbolt assertion", func() error { panic("assertion failed: Page expected to be: 7, but self identifies as 9") }, "assertion failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := guard(path, tt.fn)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("guard: error = %v, want ErrCorrupt naming %s and %q", err, path, tt.want)
			}
			if debug.SetPanicOnFault(false) {
				t.Fatal("guard left SetPanicOnFault on")
			}
		})
	}
	_ = sink
}

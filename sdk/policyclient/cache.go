package policyclient

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// cacheMarshal writes the cache the way an operator would want to read it
// during an incident (`cat` or `jq` on the node): indented, proto field
// names as in `wsctl policy get -o json`.
var cacheMarshal = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}

// cacheUnmarshal accepts a cache written by a newer build: unknown fields
// are dropped rather than costing the node its cached policy.
var cacheUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// ReadCache returns the revision a Client of pool would start with from
// the cache file at path: (nil, nil) when there is no file, an error
// wrapping ErrCache when there is one that cannot be used (unreadable,
// corrupt, invalid, another pool's). New reads it the same way; an
// embedding service reads it first to build what the client will Apply to
// (the node starts serving with it).
func ReadCache(path, pool string) (*wsfleetv1.PolicyRevision, error) {
	rev, err := loadCache(path)
	if err != nil || rev == nil {
		return nil, err
	}
	if err := checkRevision(rev, pool); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCache, path, err)
	}
	return rev, nil
}

// loadCache reads the revision in path: (nil, nil) when there is no file,
// an error wrapping ErrCache when there is one that cannot be used.
func loadCache(path string) (*wsfleetv1.PolicyRevision, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCache, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCacheBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrCache, path, err)
	}
	if len(data) > MaxCacheBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCache, path, MaxCacheBytes)
	}
	rev := new(wsfleetv1.PolicyRevision)
	if err := cacheUnmarshal.Unmarshal(data, rev); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", ErrCache, path, err)
	}
	return rev, nil
}

// writeCache replaces path with rev so that a crash at any point leaves
// either the old file or the new one, whole: the bytes go to a temporary
// file in the same directory (a rename across file systems is not atomic),
// which is synced, renamed over path, and the directory is synced so the
// rename itself survives a power cut.
func writeCache(path string, rev *wsfleetv1.PolicyRevision) error {
	data, err := cacheMarshal.Marshal(rev)
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrCache, err)
	}
	data = append(data, '\n')
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCache, err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrCache, tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrCache, tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%w: close %s: %w", ErrCache, tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("%w: %w", ErrCache, err)
	}
	committed = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: open directory: %w", ErrCache, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: sync directory %s: %w", ErrCache, dir, err)
	}
	return nil
}

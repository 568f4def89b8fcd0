package policyclient

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestCacheWriteLeavesOnlyTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.json")
	for n := int64(1); n <= 5; n++ {
		if err := writeCache(path, revision("edge", n)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "policy.json" {
		t.Fatalf("directory holds %v, want only policy.json", entries)
	}
	got, err := loadCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, revision("edge", 5)) {
		t.Fatalf("cache holds %v, want revision 5", got)
	}
}

func TestCacheIsReadableJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := writeCache(path, revision("edge", 3)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Proto field names, as `wsctl policy get -o json` shows them.
	for _, want := range []string{`"pool"`, `"max_connections"`, `"allow_missing"`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Fatalf("cache file lacks %s:\n%s", want, data)
		}
	}
}

func TestMissingCacheIsNotAnError(t *testing.T) {
	rev, err := loadCache(filepath.Join(t.TempDir(), "absent.json"))
	if rev != nil || err != nil {
		t.Fatalf("loadCache = %v, %v; want nil, nil", rev, err)
	}
}

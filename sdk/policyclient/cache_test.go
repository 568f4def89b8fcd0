package policyclient

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
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

func TestReadCacheGivesWhatAClientOfThePoolStartsWith(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rev *wsfleetv1.PolicyRevision) string {
		path := filepath.Join(dir, name)
		if err := writeCache(path, rev); err != nil {
			t.Fatal(err)
		}
		return path
	}
	edge := write("edge.json", revision("edge", 4))
	def := write("default.json", revision(policy.DefaultPool, 2))
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		pool    string
		want    *wsfleetv1.PolicyRevision
		wantErr bool
	}{
		{"the pool's own revision is taken", edge, "edge", revision("edge", 4), false},
		{"a revision of default is taken by any pool", def, "edge", revision(policy.DefaultPool, 2), false},
		{"another pool's revision is refused", edge, "eu", nil, true},
		{"a corrupt file is refused", garbage, "edge", nil, true},
		{"no file is no cache, not an error", filepath.Join(dir, "absent.json"), "edge", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadCache(tt.path, tt.pool)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrCache)) {
				t.Fatalf("ReadCache error = %v, want error %v wrapping ErrCache", err, tt.wantErr)
			}
			if !proto.Equal(got, tt.want) {
				t.Fatalf("ReadCache = %v, want %v", got, tt.want)
			}
		})
	}
}

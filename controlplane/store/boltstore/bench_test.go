package boltstore_test

import (
	"testing"

	"github.com/wsfleet/wsfleet/controlplane/store"
	"github.com/wsfleet/wsfleet/controlplane/store/storetest"
)

// BenchmarkAppend includes the fsync of every commit, so its ns/op is the
// latency of one durable policy write on the filesystem holding TMPDIR
// (tmpfs makes it look far cheaper than a real disk).
func BenchmarkAppend(b *testing.B) {
	s := openStore(b, dbPath(b))
	rev := storetest.Revision("default", "bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(b.Context(), rev, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHead is the read every Watch hello and every push does.
func BenchmarkHead(b *testing.B) {
	s := filledStore(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Head(b.Context(), "default"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet reads revisions spread over a longer history.
func BenchmarkGet(b *testing.B) {
	const n = 1000
	s := filledStore(b, n)
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		if _, err := s.Get(b.Context(), "default", i%n+1); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func filledStore(b *testing.B, n int) store.Store {
	b.Helper()
	s := openStore(b, dbPath(b))
	rev := storetest.Revision("default", "bench")
	for range n {
		if _, err := s.Append(b.Context(), rev, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

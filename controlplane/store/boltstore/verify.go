package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk format (go.etcd.io/bbolt/internal/common, format version
// 2). bbolt writes its structs in the machine's byte order.
const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elementSize      = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	bucketHeaderSize = 16 // root pgid u64 (0: inline page follows), sequence u64
	metaChecksumAt   = 56 // the checksum (u64) is FNV-1a 64 of the meta's first 56 bytes

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	noFreelist = ^uint64(0)

	// Page sizes bbolt could have written: it probes for the second meta
	// page from 1 KiB to 16 MiB.
	minPageSize = 1 << 10
	maxPageSize = 1 << 24
)

var ne = binary.NativeEndian

// meta is one decoded bbolt meta page.
type meta struct {
	pageSize uint64
	root     uint64 // root bucket's page
	freelist uint64 // freelist page, or noFreelist
	hwm      uint64 // high-water mark: pages the file holds
	txid     uint64
}

var (
	errNoMagic   = errors.New("no bbolt magic number")
	errShortMeta = errors.New("too short for a meta page")
)

// parseMeta decodes and validates the meta page at the start of b, as
// bbolt's Meta.Validate does: magic, version, checksum.
func parseMeta(b []byte) (meta, error) {
	if len(b) < pageHeaderSize+metaChecksumAt+8 {
		return meta{}, errShortMeta
	}
	m := b[pageHeaderSize:]
	if ne.Uint32(m[0:]) != boltMagic {
		return meta{}, errNoMagic
	}
	if v := ne.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksumAt])
	if got, want := ne.Uint64(m[metaChecksumAt:]), h.Sum64(); got != want {
		return meta{}, fmt.Errorf("checksum %016x, want %016x", got, want)
	}
	return meta{
		pageSize: uint64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		hwm:      ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// verifier checks a store file through plain reads before bbolt maps it.
//
// bbolt follows page numbers found in the file straight into its memory
// map. A number beyond the end of a truncated or damaged file is a SIGBUS
// or SIGSEGV, which no recover catches unless the goroutine asked for
// debug.SetPanicOnFault. Open's own goroutine does, but tx.Check walks the
// file on a goroutine bbolt starts, so every page the tree and the freelist
// reference, and every key and value inside them, is checked here to lie
// within the file first. bbolt's checks of what these pages mean (key
// order, double references, freed pages still reachable) are left to
// tx.Check.
type verifier struct {
	f    io.ReaderAt
	path string
	size uint64
	m    meta // the meta page bbolt will use
	seen map[uint64]bool
}

func (v *verifier) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, v.path, fmt.Sprintf(format, args...))
}

// verifyFile checks the file f (at path, of size bytes, locked by the
// caller so that no writer is mid-commit) before bbolt opens it.
func verifyFile(f io.ReaderAt, path string, size int64) error {
	v := &verifier{f: f, path: path, size: uint64(size), seen: map[uint64]bool{}}
	if size == 0 {
		return fmt.Errorf("%w: %s (0 bytes)", ErrEmpty, path)
	}
	if err := v.readMetas(); err != nil {
		return err
	}
	if v.m.freelist != noFreelist {
		if err := v.checkFreelist(); err != nil {
			return err
		}
	}
	return v.checkPage(v.m.root, 0)
}

// readMetas finds the page size the way bbolt does (from meta page 0, else
// by probing for meta page 1), then insists that both meta pages are
// intact and that the file holds every page they count.
//
// bbolt itself falls back to the other meta page when one is invalid,
// which is how it recovers from a meta write torn by a crash. That write is
// the page's first 80 bytes, inside one disk sector, so a torn one is
// practically unheard of, while a meta page overwritten by garbage is
// damage: falling back would silently drop the newest commit, which is the
// rollback a store must never do on its own. So either invalid is refused.
func (v *verifier) readMetas() error {
	var pageSize uint64
	buf := make([]byte, 4096)
	n, _ := v.f.ReadAt(buf, 0)
	m0, err0 := parseMeta(buf[:n])
	magic := !errors.Is(err0, errNoMagic) && !errors.Is(err0, errShortMeta)
	if err0 == nil {
		pageSize = m0.pageSize
	} else {
		for ps := uint64(minPageSize); ps <= maxPageSize && ps+pageHeaderSize+metaChecksumAt+8 <= v.size; ps *= 2 {
			n, _ := v.f.ReadAt(buf, int64(ps))
			m, err := parseMeta(buf[:n])
			magic = magic || !errors.Is(err, errNoMagic) && !errors.Is(err, errShortMeta)
			if err == nil {
				pageSize = m.pageSize
				break
			}
		}
	}
	if pageSize == 0 {
		if !magic && !v.hasBoltPages() {
			return fmt.Errorf("%w: %s is not a bbolt database (no meta page)", ErrNotPolicyDB, v.path)
		}
		return v.corrupt("both bbolt meta pages are damaged (page 0: %v)", err0)
	}
	if pageSize < minPageSize || pageSize > maxPageSize || pageSize&(pageSize-1) != 0 {
		return v.corrupt("the meta page gives page size %d", pageSize)
	}
	if v.size < 2*pageSize {
		return v.corrupt("the file is %d bytes, shorter than its two meta pages of %d bytes: it was truncated", v.size, pageSize)
	}

	var metas [2]meta
	for i := range uint64(2) {
		page := make([]byte, pageHeaderSize+metaChecksumAt+8)
		if _, err := v.f.ReadAt(page, int64(i*pageSize)); err != nil {
			return fmt.Errorf("boltstore: read %s: %w", v.path, err)
		}
		m, err := parseMeta(page)
		if err == nil && (ne.Uint64(page[0:]) != i || ne.Uint16(page[8:]) != metaPageFlag) {
			err = fmt.Errorf("page header says page %d of type %#x", ne.Uint64(page[0:]), ne.Uint16(page[8:]))
		}
		if err == nil && m.pageSize != pageSize {
			err = fmt.Errorf("page size %d, the other meta page says %d", m.pageSize, pageSize)
		}
		if err != nil {
			return v.corrupt("bbolt meta page %d is damaged (%v)", i, err)
		}
		metas[i] = m
	}

	for i, m := range metas {
		// Every meta must fit the file: bbolt never shrinks it, so a file
		// shorter than a meta's page count lost its end.
		if m.hwm < 2 || m.hwm > v.size/pageSize {
			return v.corrupt("the file is %d bytes, but bbolt meta page %d counts %d pages of %d bytes (%d bytes): it was truncated",
				v.size, i, m.hwm, pageSize, m.hwm*pageSize)
		}
		if m.root < 2 || m.root >= m.hwm {
			return v.corrupt("bbolt meta page %d puts the root bucket at page %d of %d", i, m.root, m.hwm)
		}
		if m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm) {
			return v.corrupt("bbolt meta page %d puts the freelist at page %d of %d", i, m.freelist, m.hwm)
		}
	}
	// bbolt uses the meta with the higher transaction id.
	v.m = metas[0]
	if metas[1].txid > metas[0].txid {
		v.m = metas[1]
	}
	return nil
}

// hasBoltPages tells a bbolt file whose two meta pages were overwritten
// from a file that never was one: with either common page size, its pages
// 2 and 3 still carry bbolt page headers naming themselves.
func (v *verifier) hasBoltPages() bool {
	for _, ps := range []uint64{4096, 16384, 65536} {
		ok := true
		for id := uint64(2); id <= 3 && ok; id++ {
			hdr := make([]byte, pageHeaderSize)
			_, err := v.f.ReadAt(hdr, int64(id*ps))
			switch flags := ne.Uint16(hdr[8:]); {
			case err != nil, ne.Uint64(hdr[0:]) != id:
				ok = false
			case flags != branchPageFlag && flags != leafPageFlag && flags != freelistPageFlag:
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// readPage reads page id and its overflow pages, checking that they lie
// below the high-water mark and that the page is the one it claims to be
// (bbolt asserts that on every page it reads).
func (v *verifier) readPage(id uint64) ([]byte, error) {
	ps := v.m.pageSize
	if id < 2 || id >= v.m.hwm {
		return nil, v.corrupt("a reference to page %d, outside the file's pages 2..%d", id, v.m.hwm-1)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := v.f.ReadAt(hdr, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("boltstore: read %s: %w", v.path, err)
	}
	if got := ne.Uint64(hdr[0:]); got != id {
		return nil, v.corrupt("page %d identifies itself as page %d", id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if overflow >= v.m.hwm-id {
		return nil, v.corrupt("page %d runs %d pages past the end of the file", id, overflow+1-(v.m.hwm-id))
	}
	for i := range overflow + 1 {
		if v.seen[id+i] {
			return nil, v.corrupt("page %d is referenced twice", id+i)
		}
		v.seen[id+i] = true
	}
	page := make([]byte, (overflow+1)*ps)
	if _, err := v.f.ReadAt(page, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("boltstore: read %s: %w", v.path, err)
	}
	return page, nil
}

func (v *verifier) checkFreelist() error {
	page, err := v.readPage(v.m.freelist)
	if err != nil {
		return err
	}
	if flags := ne.Uint16(page[8:]); flags != freelistPageFlag {
		return v.corrupt("the freelist page %d has type %#x", v.m.freelist, flags)
	}
	start, count := uint64(pageHeaderSize), uint64(ne.Uint16(page[10:]))
	if count == 0xFFFF { // the real count is the first element
		if len(page) < pageHeaderSize+8 {
			return v.corrupt("the freelist page %d is cut short", v.m.freelist)
		}
		count = ne.Uint64(page[pageHeaderSize:])
		start += 8
	}
	if count > (uint64(len(page))-start)/8 {
		return v.corrupt("the freelist page %d lists %d pages, more than it holds", v.m.freelist, count)
	}
	for i := range count {
		if id := ne.Uint64(page[start+8*i:]); id < 2 || id >= v.m.hwm {
			return v.corrupt("the freelist lists page %d, outside the file's pages 2..%d", id, v.m.hwm-1)
		}
	}
	return nil
}

// checkPage checks a bucket's page (branch or leaf) and everything below
// it. depth only bounds the recursion; the seen set already refuses cycles.
func (v *verifier) checkPage(id uint64, depth int) error {
	page, err := v.readPage(id)
	if err != nil {
		return err
	}
	return v.checkNode(page, id, depth)
}

// checkNode checks the elements of a branch or leaf page (an inline one
// has id 0) and recurses into the pages and buckets they reference.
func (v *verifier) checkNode(page []byte, id uint64, depth int) error {
	if depth > 64 {
		return v.corrupt("page %d is nested more than 64 levels deep", id)
	}
	flags, count := ne.Uint16(page[8:]), uint64(ne.Uint16(page[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		return v.corrupt("page %d has type %#x where a branch or leaf page belongs", id, flags)
	}
	if count > (uint64(len(page))-pageHeaderSize)/elementSize {
		return v.corrupt("page %d has %d elements, more than it holds", id, count)
	}
	for i := range count {
		at := pageHeaderSize + i*elementSize
		e := page[at : at+elementSize]
		if flags == branchPageFlag {
			pos, ksize, child := uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:])), ne.Uint64(e[8:])
			if at+pos+ksize > uint64(len(page)) {
				return v.corrupt("page %d element %d: its key runs past the page", id, i)
			}
			if err := v.checkPage(child, depth+1); err != nil {
				return err
			}
			continue
		}
		eflags, pos := ne.Uint32(e[0:]), uint64(ne.Uint32(e[4:]))
		ksize, vsize := uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		end := at + pos + ksize + vsize
		if end > uint64(len(page)) {
			return v.corrupt("page %d element %d: its key and value run past the page", id, i)
		}
		if eflags&bucketLeafFlag == 0 {
			continue
		}
		value := page[end-vsize : end]
		if len(value) < bucketHeaderSize {
			return v.corrupt("page %d element %d: a bucket value of %d bytes", id, i, len(value))
		}
		if root := ne.Uint64(value[0:]); root != 0 {
			if err := v.checkPage(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := value[bucketHeaderSize:]
		if len(inline) < pageHeaderSize {
			return v.corrupt("page %d element %d: an inline bucket of %d bytes", id, i, len(inline))
		}
		if err := v.checkNode(inline, 0, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// fileSize is the size of f, which must be a regular file.
func fileSize(f *os.File, path string) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("boltstore: stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s is not a regular file (%s)", ErrBadPath, path, fi.Mode().Type())
	}
	return fi.Size(), nil
}
